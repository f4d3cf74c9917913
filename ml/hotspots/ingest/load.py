"""Loads extract deliveries into the warehouse: one extract date, one transaction.

- A delivery is complete once its `_MANIFEST.json` exists.
- Checksums and row counts are verified first; a delivery that disagrees with
  its manifest is rejected whole and recorded in the ledger, nothing loaded.
- A delivery whose fingerprint (manifest + real checksums) is already the
  latest in the ledger for its date is skipped: re-running is a no-op.
- Good rows are upserted by key with COPY into a temporary table; quarantined
  rows go to ingest.quarantine with their reason; the ledger counts both, and
  the quarantined rows per reason.
- No byte sequence in a delivery raises: a row that cannot be stored is quarantined
  (unstorable_bytes), and anything else that cannot be read or stored rejects the
  delivery with its reason in the ledger. Everything written or logged from a
  delivery (raw text, details, reasons, errors) is storable and has its mobiles hashed.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import logging
import queue
import re
import threading
import time as _time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from hotspots import contract, db, settings
from hotspots.errors import NotReady
from hotspots.ingest import pii, reader, validate

log = logging.getLogger(__name__)
SCHEMA_SQL = Path(__file__).with_name("schema.sql")
DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RejectedDelivery(Exception):
    pass


@dataclass
class FileResult:
    file_name: str
    entity: str
    sha256: str
    rows_manifest: int | None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_repaired: int = 0
    seconds: float = 0.0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class DeliveryResult:
    extract_date: str
    status: str            # loaded | rejected | unchanged
    reason: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_repaired: int = 0
    seconds: float = 0.0
    files: list[FileResult] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)   # seconds: read_check, upsert, quarantine_ledger


# ---------------------------------------------------------------- discovery


def _is_date(name: str) -> bool:
    if not DATE_DIR.match(name):
        return False
    try:
        date.fromisoformat(name)
    except ValueError:
        log.warning("landing folder %s is not a calendar date: ignored", name)
        return False
    return True


def discover(landing: Path) -> tuple[list[str], list[str]]:
    """(complete extract dates, dates still being written), sorted."""
    landing = Path(landing)
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    complete, pending = [], []
    for d in sorted(p for p in landing.iterdir() if p.is_dir() and _is_date(p.name)):
        (complete if (d / contract.MANIFEST).exists() else pending).append(d.name)
    return complete, pending


def schema_version() -> str:
    """The version of schema.sql (a digest of its text)."""
    return "hotspots ingest schema " + hashlib.sha256(SCHEMA_SQL.read_bytes()).hexdigest()[:16]


# The shape of the ingest's own tables (those schema.sql creates; not dbt's seeds beside them in
# ref) as the catalog has it: a digest of every column and its type.
_OWN_TABLES = sorted(set(re.findall(r"create table if not exists (\w+\.\w+)", SCHEMA_SQL.read_text())))
_SHAPE_SQL = f"""
    select md5(coalesce(string_agg(n.nspname || '.' || c.relname || '.' || a.attname || ':' ||
                                   format_type(a.atttypid, a.atttypmod), ',' order by n.nspname, c.relname, a.attnum), ''))
    from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname || '.' || c.relname in ({", ".join(f"'{t}'" for t in _OWN_TABLES)})
      and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped
"""


def ensure_schema(conn) -> None:
    """Creates or upgrades the ingest's tables (schema.sql) unless the warehouse already has them as
    this version of schema.sql made them: the schema's comment holds the version and the digest of
    the tables' columns it left (a table changed since, by hand or by older code, runs schema.sql
    again). A load then runs no DDL, so the ingest's role needs no right to create or alter
    anything (init-warehouse, as the owner, makes the schema current)."""
    version = schema_version()
    with conn.cursor() as cur:
        cur.execute(f"select obj_description(oid, 'pg_namespace'), ({_SHAPE_SQL}) from pg_namespace "
                    "where nspname = 'ingest'")
        row = cur.fetchone()
        if row and row[0] == f"{version} {row[1]}":
            conn.commit()
            return
        try:
            cur.execute("select pg_advisory_xact_lock(hashtext('hotspots.ensure_schema'))")
            cur.execute(SCHEMA_SQL.read_text())
            cur.execute(_SHAPE_SQL)
            cur.execute(f"comment on schema ingest is '{version} {cur.fetchone()[0]}'")
        except psycopg2.errors.InsufficientPrivilege as exc:
            conn.rollback()
            raise NotReady(f"the warehouse's ingest schema is not at this version ({version}) and "
                           f"{conn.info.user} may not change it: run `hotspots init-warehouse` as "
                           f"the warehouse's owner ({exc.pgerror.strip() if exc.pgerror else exc})") from exc
    conn.commit()


def load_gazetteer(conn) -> int:
    """Fills ref.pincodes and ref.post_offices once, from the packaged directory."""
    from hotspots.geo import gazetteer

    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('hotspots.gazetteer'))")
        cur.execute("select count(*) from ref.pincodes")
        if cur.fetchone()[0]:
            conn.commit()
            return 0
        pins = gazetteer.pin_directory()
        pins = pins.assign(h3_cell=gazetteer.h3_cells(pins["lat"], pins["lon"]))
        _copy(cur, "ref.pincodes", pins, list(pins.columns))
        offices = gazetteer.post_offices()
        cols = ["pincode", "office_name", "office_type", "district", "state", "lat", "lon"]
        _copy(cur, "ref.post_offices", offices[cols], cols)
    conn.commit()
    return len(pins)


# ---------------------------------------------------------------- manifest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path) -> tuple[dict, dict[str, str], str]:
    """(manifest, real sha256 per listed file, delivery fingerprint). Raises RejectedDelivery."""
    path = folder / contract.MANIFEST
    raw = path.read_bytes()
    try:
        man = json.loads(raw)
    except ValueError as exc:
        raise RejectedDelivery(f"_MANIFEST.json is not JSON ({exc})") from exc
    if not isinstance(man, dict) or not isinstance(man.get("files"), dict):
        raise RejectedDelivery("_MANIFEST.json lacks a files object")
    real = {}
    for name in man["files"]:
        # Only plain file names inside the folder are read (no paths, no NUL).
        plain = name and name == Path(name).name and name not in (".", "..") and not pii.unstorable(name)
        p = folder / name if plain else None
        real[name] = _sha256(p) if p is not None and p.is_file() else "missing"
    fp = hashlib.sha256(raw + json.dumps(sorted(real.items())).encode()).hexdigest()
    return man, real, fp


def verify_manifest(folder: Path, man: dict, real: dict[str, str]) -> dict[str, str]:
    """Checks the manifest against the contract and the files; returns entity -> file name."""
    if man.get("contract") != contract.CONTRACT:
        raise RejectedDelivery(f"manifest contract is {man.get('contract')!r}, not {contract.CONTRACT!r}")
    if man.get("extract_date") != folder.name:
        raise RejectedDelivery(f"manifest extract_date {man.get('extract_date')!r} is not the folder's {folder.name}")
    files = {}
    for entity in contract.ENTITIES:
        names = [n for n in man["files"] if n in contract.file_candidates(entity)]
        if len(names) != 1:
            raise RejectedDelivery(f"manifest lists {len(names)} files for {entity}, needs exactly one")
        name = names[0]
        spec = man["files"][name]
        if real[name] == "missing":
            raise RejectedDelivery(f"{name} is listed in the manifest but missing")
        if not isinstance(spec, dict) or real[name] != str(spec.get("sha256", "")).lower():
            raise RejectedDelivery(f"{name}: sha256 {real[name][:12]}… differs from the manifest's")
        if not isinstance(spec.get("rows"), int) or isinstance(spec["rows"], bool) or spec["rows"] < 0:
            raise RejectedDelivery(f"{name}: manifest row count {spec.get('rows')!r} is not a count")
        files[entity] = name
    return files


# ---------------------------------------------------------------- COPY and upsert


def _copy(cur, table: str, df: pd.DataFrame, columns: list[str], not_null: tuple[str, ...] = ()) -> None:
    """COPY a frame in CSV format (`_csv_bytes`)."""
    _copy_bytes(cur, table, columns, _csv_bytes(df, columns, not_null), not_null)


def _csv_bytes(df: pd.DataFrame, columns: list[str], not_null: tuple[str, ...] = ()) -> bytes:
    """A frame as the CSV text COPY reads. Missing values (and empty strings: the checks turned
    empty fields into missing values first) are NULL, except in `not_null` columns, where an empty
    field is an empty string (an empty line's raw text); list columns (dq_flags) become PostgreSQL
    arrays. Written by Arrow's CSV writer from whole columns (in C++, without the GIL, so the
    ingest's checking thread runs meanwhile): every text quoted, a missing value an empty unquoted
    field."""
    table_ = pa.table({c: _arrow_column(df[c], c in not_null) for c in columns})
    buf = io.BytesIO()
    pa_csv.write_csv(table_, buf, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return buf.getvalue()


def _copy_bytes(cur, table: str, columns: list[str], data: bytes, not_null: tuple[str, ...] = ()) -> None:
    force = f", force_not_null ({', '.join(not_null)})" if not_null else ""
    # The whole text in one read: psycopg2 takes the GIL back after sending each chunk, and while
    # the checking thread runs, each such hand-over can wait a switch interval (8 KB chunks: a
    # national file's 600 of them, up to 5 ms each).
    cur.copy_expert(f"copy {table} ({', '.join(columns)}) from stdin with (format csv{force})", io.BytesIO(data),
                    size=max(8192, len(data)))


def _arrow_column(s: pd.Series, keep_empty: bool = False) -> pa.Array:
    """One column as an Arrow array for the CSV writer: missing values null; timestamps as text
    ("%Y-%m-%dT%H:%M:%S%z" in UTC, whole seconds); lists of flags as PostgreSQL arrays; empty
    text null unless keep_empty (as csv.writer wrote it, unquoted, before)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return pa.array(_iso_utc(s).to_numpy(), type=pa.string(), from_pandas=True)
    if s.dtype.kind in "fiub":
        return pa.array(s.to_numpy(), from_pandas=True)
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        arr = pa.array(s.array)  # Arrow already: no Python objects
    else:
        # Arrow takes None, NaN, NaT and pd.NA in an object array as null itself (from_pandas).
        values = s.to_numpy(dtype=object)
        if len(values) and isinstance(values[0], list):
            values = np.array(["{" + ",".join(flags) + "}" for flags in values], dtype=object)
        try:
            arr = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python types: their text, as csv.writer wrote them
            values = s.astype(object).where(s.notna(), None).to_numpy()
            arr = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    if (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) and not keep_empty:
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
    return arr


def _iso_utc(ts: pd.Series) -> pd.Series:
    """Aware timestamps as the text to_csv's date_format wrote ("%Y-%m-%dT%H:%M:%S%z", whole
    seconds, in UTC), formatted by numpy in one pass instead of strftime per value; NaT as missing."""
    values = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[s]")
    text = np.char.add(np.datetime_as_string(values, unit="s"), "+0000").astype(object)
    text[np.isnat(values)] = None
    return pd.Series(text, index=ts.index, dtype=object)


RAW_COLUMNS = {
    "complaints": ["ack_no", "reported_at", "incident_at", "category", "amount_lost_inr", "victim_pincode",
                   "victim_state", "victim_district", "victim_lat", "victim_lon", "victim_mobile_hash", "victim_h3_cell", "status",
                   "updated_at", "dq_flags", "extract_date", "first_extract_date", "source_file", "source_line"],
    "transactions": ["txn_id", "ack_no", "layer", "from_account", "to_account", "to_ifsc", "amount_inr",
                     "txn_at", "status", "dq_flags", "extract_date", "first_extract_date", "source_file", "source_line"],
    "withdrawals": ["withdrawal_id", "account", "ack_no", "channel", "terminal_id", "lat", "lon", "pincode",
                    "h3_cell", "amount_inr", "withdrawn_at", "dq_flags", "extract_date", "first_extract_date", "source_file",
                    "source_line"],
}

# Which incoming version wins over the stored one. Complaints: newest updated_at,
# a tie goes to the later (or same, re-sent) extract. Others: the later extract.
_WINS = {
    "complaints": "(excluded.updated_at, excluded.extract_date) >= (t.updated_at, t.extract_date)",
    "transactions": "excluded.extract_date >= t.extract_date",
    "withdrawals": "excluded.extract_date >= t.extract_date",
}


def raw_rows(rows: pd.DataFrame, extract_date: date, file_name: str) -> pd.DataFrame:
    """A file's checked rows with the columns raw.<entity> adds: the extract they came in (their
    first arrival, as far as this file knows), the file and the line."""
    return rows.assign(extract_date=extract_date.isoformat(), first_extract_date=extract_date.isoformat(),
                       source_file=file_name, source_line=rows["_line"])


def _upsert(cur, entity: str, rows: pd.DataFrame, extract_date: date, file_name: str) -> None:
    cols = RAW_COLUMNS[entity]
    rows = raw_rows(rows, extract_date, file_name)
    cur.execute(f"create temp table incoming (like raw.{entity}) on commit drop")
    _copy(cur, "incoming", rows, cols)
    key = ", ".join(contract.TABLE_KEYS[entity])
    kept = (*contract.TABLE_KEYS[entity], "first_extract_date")
    changed = " or ".join(f"t.{c} is distinct from excluded.{c}" for c in cols if c not in kept)
    order = "updated_at desc, source_line desc" if entity == "complaints" else "source_line desc"
    # One statement per table: the incoming version replaces the stored one when it wins and
    # differs, and first_extract_date moves back when an earlier extract arrives late (the key's
    # first arrival is what features may use). Both decided on the conflicting row, found
    # through the primary key: no pass over the stored history.
    cur.execute(f"""
        insert into raw.{entity} as t ({', '.join(cols)})
        select distinct on ({key}) {', '.join(cols)} from incoming order by {key}, {order}
        on conflict ({key}) do update set {_replace_if(cols, kept, f"{_WINS[entity]} and ({changed})")}
        where ({_WINS[entity]} and ({changed})) or excluded.first_extract_date < t.first_extract_date
    """)
    if entity == "complaints":
        vcols = ", ".join(cols)
        vkept = ("ack_no", "updated_at", "first_extract_date")
        cur.execute(f"""
            insert into raw.complaint_versions as t ({vcols}) select {vcols} from incoming
            on conflict (ack_no, updated_at) do update set
              {_replace_if(cols, vkept, "excluded.extract_date >= t.extract_date")}
            where excluded.extract_date >= t.extract_date or excluded.first_extract_date < t.first_extract_date
        """)
    cur.execute("drop table incoming")


def _replace_if(cols: list[str], kept: tuple[str, ...], wins: str) -> str:
    """SET list of an upsert: every column but `kept` takes the incoming value where `wins`, and
    first_extract_date the earlier of the two."""
    sets = [f"{c} = case when {wins} then excluded.{c} else t.{c} end" for c in cols if c not in kept]
    return ", ".join([*sets, "first_extract_date = least(t.first_extract_date, excluded.first_extract_date)"])


# ---------------------------------------------------------------- one delivery


def latest_delivery(cur, extract_date: str) -> tuple[str, str, str | None] | None:
    """(fingerprint, status, reason) of the latest delivery of this date in the ledger."""
    cur.execute("""select fingerprint, status, reason from ingest.extract_ledger where extract_date = %s
                   order by delivery_id desc limit 1""", (extract_date,))
    return cur.fetchone()


def load_extract(landing: Path, extract_date: str, warehouse: str | None = None,
                 cfg: settings.IngestConfig | None = None) -> DeliveryResult:
    """Loads one extract date; a no-op when this exact delivery is already in the ledger.

    Files are read and checked one after the other in this thread while a writer thread stores
    the ones already checked (the database works while Python checks the next file); everything
    is one transaction, committed only when every file was read, checked and stored."""
    with _gc_paused():
        return _load_extract(landing, extract_date, warehouse, cfg)


@contextlib.contextmanager
def _gc_paused():
    """The cyclic garbage collector paused for one delivery: reading and checking a national date
    makes some 600,000 lists and strings (no cycles among them), and each collection their
    allocation triggered walked them all again: about a quarter of the reading and checking.
    What cycles a delivery leaves are collected once it is done."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _load_extract(landing: Path, extract_date: str, warehouse: str | None,
                  cfg: settings.IngestConfig | None) -> DeliveryResult:
    cfg = cfg or settings.ingest_config()
    key = settings.pii_key()
    if not _is_date(extract_date):
        raise ValueError(f"{pii.safe_text(extract_date, key)!r} is not an extract date (YYYY-MM-DD)")
    folder = Path(landing) / extract_date
    started = datetime.now(timezone.utc)
    t0 = _time.perf_counter()
    conn = db.connect(warehouse)
    writer = None
    try:
        ensure_schema(conn)
        with conn.cursor() as cur:
            # One loader per extract date at a time; others wait rather than interleave.
            cur.execute("select pg_advisory_xact_lock(hashtext('hotspots.load:' || %s))", (extract_date,))
            try:
                man, real, fp = read_manifest(folder)
            except RejectedDelivery as exc:
                fp = hashlib.sha256((folder / contract.MANIFEST).read_bytes()).hexdigest()
                return _reject(conn, landing, extract_date, fp, str(exc), started, t0, key)
            latest = latest_delivery(cur, extract_date)
            if latest and latest[0] == fp:
                conn.rollback()
                status = "unchanged" if latest[1] == "loaded" else "rejected"
                return DeliveryResult(extract_date, status, reason=latest[2], seconds=_time.perf_counter() - t0)
            try:
                files = verify_manifest(folder, man, real)
                writer = _Writer(cur, landing, extract_date, fp, started, man, real)
                # The file with the most to store first: its upserts run while the others are checked.
                for entity, name in sorted(files.items(), key=lambda f: _STORE_ORDER.index(f[0])):
                    writer.submit(entity, name, *read_checked(folder, entity, name, man, cfg, key))
            except (RejectedDelivery, reader.ContractViolation) as exc:
                _stop(writer)
                return _reject(conn, landing, extract_date, fp, str(exc), started, t0, key)
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - a defect on hostile bytes must leave a trace, not a crash
                # Reading and checking depend only on the delivered bytes: the same delivery would
                # fail again, so it is rejected (by fingerprint) with the error as its reason.
                _stop(writer)
                log.error("extract %s: reading failed:\n%s", extract_date, pii.safe_text(traceback.format_exc(), key))
                return _reject(conn, landing, extract_date, fp, f"could not be read ({type(exc).__name__}: {exc})",
                               started, t0, key)
            try:
                result = writer.finish(t0)
            except (psycopg2.DataError, psycopg2.IntegrityError, psycopg2.errors.ProgramLimitExceeded) as exc:
                # A value PostgreSQL refuses (the checks should have quarantined its row): the whole
                # date is rejected with the database's reason rather than half-loaded or crashed.
                log.error("extract %s: storing failed:\n%s", extract_date, pii.safe_text(traceback.format_exc(), key))
                return _reject(conn, landing, extract_date, fp, f"could not be stored ({type(exc).__name__}: {exc})",
                               started, t0, key)
        conn.commit()
        return result
    except BaseException:
        _stop(writer)
        conn.rollback()
        raise
    finally:
        conn.close()


# Storing a national date's transactions takes the server longest (five indexes, the most rows),
# then the complaints (and their versions), then the withdrawals.
_STORE_ORDER = ("transactions", "complaints", "withdrawals")


def read_checked(folder: Path, entity: str, name: str, man: dict, cfg: settings.IngestConfig,
                 key: bytes) -> tuple[reader.RawFile, validate.Checked, float]:
    """One delivered file read and checked: (records, checked rows and quarantine, seconds).
    Raises RejectedDelivery when its data rows are not the manifest's count."""
    f0 = _time.perf_counter()
    raw = reader.read_file(entity, folder / name, cfg.csv_field_size_limit)
    if raw.rows_read != man["files"][name]["rows"]:
        raise RejectedDelivery(f"{name}: {raw.rows_read} data rows, the manifest says {man['files'][name]['rows']}")
    chk = validate.check_file(raw, date.fromisoformat(folder.name), cfg, key)
    return raw, chk, _time.perf_counter() - f0


QUARANTINE_COLUMNS = ["delivery_id", "extract_date", "entity", "file_name", "line_no", "reason", "details", "raw_text"]


def quarantine_frame(delivery_id: int, extract_date: str, entity: str, name: str,
                     chk: validate.Checked) -> pd.DataFrame:
    """A file's quarantined rows as ingest.quarantine holds them."""
    return pd.DataFrame([{"delivery_id": delivery_id, "extract_date": extract_date, "entity": entity,
                          "file_name": name, "line_no": r.line_no, "reason": r.reason,
                          "details": json.dumps(r.details, default=str), "raw_text": r.raw_text}
                         for r in chk.quarantine], columns=QUARANTINE_COLUMNS)


def file_result(name: str, entity: str, sha256: str, rows_manifest: int, raw: reader.RawFile,
                chk: validate.Checked, secs: float) -> FileResult:
    """A stored file's counts; every row read is either loaded or quarantined."""
    fr = FileResult(name, entity, sha256, rows_manifest, raw.rows_read, len(chk.rows), len(chk.quarantine),
                    chk.repaired, secs, dict(sorted(Counter(r.reason for r in chk.quarantine).items())))
    if fr.rows_loaded + fr.rows_quarantined != fr.rows_read:
        raise AssertionError(f"{name}: {fr.rows_read} read but {fr.rows_loaded} loaded + "
                             f"{fr.rows_quarantined} quarantined")
    return fr


def insert_file_ledger(cur, delivery_id: int, fr: FileResult) -> None:
    cur.execute("""insert into ingest.file_ledger (delivery_id, file_name, entity, sha256, rows_manifest,
                   rows_read, rows_loaded, rows_quarantined, rows_repaired, seconds, quarantine_reasons)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (delivery_id, fr.file_name, fr.entity, fr.sha256, fr.rows_manifest, fr.rows_read, fr.rows_loaded,
                 fr.rows_quarantined, fr.rows_repaired, fr.seconds, json.dumps(fr.quarantine_reasons)))


def finish_ledger(cur, delivery_id: int, result: DeliveryResult) -> None:
    """A loaded delivery's ledger row gets its totals, reasons and time."""
    cur.execute("""update ingest.extract_ledger set rows_read = %s, rows_loaded = %s, rows_quarantined = %s,
                   rows_repaired = %s, quarantine_reasons = %s, finished_at = %s, seconds = %s
                   where delivery_id = %s""",
                (result.rows_read, result.rows_loaded, result.rows_quarantined, result.rows_repaired,
                 json.dumps(result.quarantine_reasons), datetime.now(timezone.utc), result.seconds, delivery_id))


def summed(result: DeliveryResult) -> DeliveryResult:
    """A delivery's totals from its files (kept in the contract's order) and its reasons merged."""
    result.files.sort(key=lambda f: contract.ENTITIES.index(f.entity))
    for attr in ("rows_read", "rows_loaded", "rows_quarantined", "rows_repaired"):
        setattr(result, attr, sum(getattr(f, attr) for f in result.files))
    total = Counter()
    for f in result.files:
        total.update(f.quarantine_reasons)
    result.quarantine_reasons = dict(sorted(total.items()))
    return result


def _stop(writer: _Writer | None) -> None:
    """Stops the writer thread (its error, if any, dropped: the transaction is rolled back)."""
    if writer is not None:
        writer.stop()


class _Writer:
    """Stores checked files in a thread of its own, in the order submitted, inside the caller's
    transaction: the ledger row first, then per file the upserts, its quarantined rows and its
    file ledger row. psycopg2 lets the Python thread run while the server works, so the next
    file is checked meanwhile. The caller touches the connection only after finish() or stop()."""

    def __init__(self, cur, landing, extract_date, fp, started, man, real):
        self.cur, self.extract_date, self.man, self.real = cur, extract_date, man, real
        self.result = DeliveryResult(extract_date, "loaded", phases={"read_check": 0.0, "upsert": 0.0,
                                                                     "quarantine_ledger": 0.0})
        self.queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.delivery_id = None
        self._begin = (landing, fp, started)
        self.thread = threading.Thread(target=self._run, name=f"ingest-writer-{extract_date}", daemon=True)
        self.thread.start()

    def submit(self, entity, name, raw, chk, secs) -> None:
        self.result.phases["read_check"] += secs
        self.queue.put((entity, name, raw, chk, secs))

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def finish(self, t0: float) -> DeliveryResult:
        self.stop()
        if self.error is not None:
            raise self.error
        result = summed(self.result)
        result.seconds = _time.perf_counter() - t0
        finish_ledger(self.cur, self.delivery_id, result)
        return result

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain: the caller will roll back
            try:
                if self.delivery_id is None:
                    self._ledger()
                self._store(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller by finish()
                self.error = exc

    def _ledger(self) -> None:
        landing, fp, started = self._begin
        self.cur.execute("""insert into ingest.extract_ledger (extract_date, landing, fingerprint, status,
                       started_at, finished_at, seconds) values (%s, %s, %s, 'loaded', %s, %s, 0)
                       returning delivery_id""", (self.extract_date, pii.storable(str(landing)), fp, started, started))
        self.delivery_id = self.cur.fetchone()[0]
        self.cur.execute("delete from ingest.quarantine where extract_date = %s", (self.extract_date,))

    def _store(self, entity, name, raw, chk, secs) -> None:
        cur, phases = self.cur, self.result.phases
        f0 = _time.perf_counter()
        _upsert(cur, entity, chk.rows, date.fromisoformat(self.extract_date), name)
        f1 = _time.perf_counter()
        phases["upsert"] += f1 - f0
        q = quarantine_frame(self.delivery_id, self.extract_date, entity, name, chk)
        if len(q):
            _copy(cur, "ingest.quarantine", q, QUARANTINE_COLUMNS, not_null=("raw_text",))
        fr = file_result(name, entity, self.real[name], self.man["files"][name]["rows"], raw, chk,
                         secs + _time.perf_counter() - f0)
        insert_file_ledger(cur, self.delivery_id, fr)
        self.result.files.append(fr)
        phases["quarantine_ledger"] += _time.perf_counter() - f1


def _reject(conn, landing, extract_date, fp, reason, started, t0, key) -> DeliveryResult:
    reason = pii.safe_text(reason, key)
    conn.rollback()
    with conn.cursor() as cur:
        latest = latest_delivery(cur, extract_date)
        if not latest or latest[0] != fp:
            secs = _time.perf_counter() - t0
            cur.execute("""insert into ingest.extract_ledger (extract_date, landing, fingerprint, status, reason,
                            started_at, finished_at, seconds) values (%s, %s, %s, 'rejected', %s, %s, %s, %s)""",
                         (extract_date, pii.storable(str(landing)), fp, reason, started, datetime.now(timezone.utc),
                          secs))
    conn.commit()
    log.warning("extract %s rejected: %s", extract_date, reason)
    return DeliveryResult(extract_date, "rejected", reason=reason, seconds=_time.perf_counter() - t0)
