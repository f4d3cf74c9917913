"""The first load of a warehouse: many extract dates into empty raw tables at once.

What it stores is what `load.load_extract` date after date would store, row for row: the same
checks (each date read and checked on its own, in worker processes, both cores busy), the same
quarantine and ledgers, and in `raw.*` the same winning version of every key with the same
first arrival. Only the way to the tables differs, as PostgreSQL advises for populating a
database: the raw tables' indexes are dropped, every date's checked rows are COPYed in as plain
appends, the keys delivered on more than one date are reduced to their winner by the upsert's
own rules (`load._WINS`), and the indexes are built once at the end (a sorted build, where the
date-by-date upserts inserted tens of millions of random keys into B-trees).

- Used only when every raw table is empty (a new warehouse, or one emptied to re-run from
  scratch); otherwise the caller loads date by date.
- One transaction: the raw tables are locked for all of it, and a failure leaves nothing
  behind. A value the server refuses (the checks should have quarantined its row) fails the whole
  transaction; the caller then loads date by date, where it rejects only that date.
- Rejected and unchanged deliveries are recorded exactly as date by date.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time as _time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import psycopg2

from hotspots import contract, db, settings
from hotspots.ingest import load, pii, reader

log = logging.getLogger(__name__)

# Below this many dates the worker processes' start-up (a few seconds) outweighs what they save.
MIN_DATES = 10
RAW_TABLES = ("raw.complaints", "raw.complaint_versions", "raw.transactions", "raw.withdrawals")
# Where each entity's checked rows are appended: a complaint row is a version first; the newest
# version of each complaint is taken from the versions at the end.
_TARGET = {"complaints": "raw.complaint_versions", "transactions": "raw.transactions",
           "withdrawals": "raw.withdrawals"}
# The key of each appended table and the order that makes the first row of a key its winner:
# the later extract (the upserts' `excluded.extract_date >= t.extract_date`), then, inside one
# file, the later line (their `distinct on ... source_line desc`).
_DEDUP = {"raw.complaint_versions": ("ack_no, updated_at", "extract_date desc"),
          "raw.transactions": ("txn_id", "extract_date desc, source_line desc"),
          "raw.withdrawals": ("withdrawal_id", "extract_date desc, source_line desc")}


@dataclass
class Prepared:
    """One extract date read and checked in a worker: what to store, or why not."""

    extract_date: str
    delivery_id: int
    fingerprint: str = ""
    status: str = "load"            # load | reject | unchanged
    reason: str | None = None
    latest_status: str | None = None
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    seconds: float = 0.0
    # (entity, file name, rows as COPY text for _TARGET, quarantine as COPY text or b"", FileResult)
    files: list[tuple[str, str, bytes, bytes, load.FileResult]] = field(default_factory=list)


def workers_for(n_dates: int) -> int:
    """Worker processes for n dates: one per core (the server's appends fit between them)."""
    return max(1, min(n_dates, os.cpu_count() or 1))


def raw_tables_empty(cur) -> bool:
    cur.execute("select " + " and ".join(f"not exists (select 1 from {t})" for t in RAW_TABLES))
    return cur.fetchone()[0]


def _prepare(job: tuple[str, str, int, tuple | None]) -> Prepared:
    """Reads and checks one date (in a worker process), as `load._load_extract` does before it
    stores: the same rejections, the same reasons."""
    landing, extract_date, delivery_id, latest = job
    with load._gc_paused():
        return _prepare_date(Path(landing), extract_date, delivery_id, latest)


def _prepare_date(landing: Path, extract_date: str, delivery_id: int, latest: tuple | None) -> Prepared:
    cfg, key = settings.ingest_config(), settings.pii_key()
    t0 = _time.perf_counter()
    p = Prepared(extract_date, delivery_id)
    folder = landing / extract_date
    try:
        man, real, p.fingerprint = load.read_manifest(folder)
    except load.RejectedDelivery as exc:
        p.fingerprint = hashlib.sha256((folder / contract.MANIFEST).read_bytes()).hexdigest()
        return _rejected(p, str(exc), latest, t0)
    if latest and latest[0] == p.fingerprint:
        p.status, p.latest_status, p.reason = "unchanged", latest[1], latest[2]
        return p
    try:
        files = load.verify_manifest(folder, man, real)
        for entity, name in sorted(files.items(), key=lambda f: load._STORE_ORDER.index(f[0])):
            raw, chk, secs = load.read_checked(folder, entity, name, man, cfg, key)
            f0 = _time.perf_counter()
            cols = load.RAW_COLUMNS[entity]
            rows = load._csv_bytes(load.raw_rows(chk.rows, date.fromisoformat(extract_date), name), cols)
            q = load.quarantine_frame(delivery_id, extract_date, entity, name, chk)
            qtext = load._csv_bytes(q, load.QUARANTINE_COLUMNS, not_null=("raw_text",)) if len(q) else b""
            fr = load.file_result(name, entity, real[name], man["files"][name]["rows"], raw, chk,
                                  secs + _time.perf_counter() - f0)
            p.files.append((entity, name, rows, qtext, fr))
    except (load.RejectedDelivery, reader.ContractViolation) as exc:
        return _rejected(p, str(exc), latest, t0)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - as load._load_extract: the same delivery would fail again
        log.error("extract %s: reading failed:\n%s", extract_date, pii.safe_text(traceback.format_exc(), key))
        return _rejected(p, f"could not be read ({type(exc).__name__}: {exc})", latest, t0)
    p.seconds = _time.perf_counter() - t0
    return p


def _rejected(p: Prepared, reason: str, latest: tuple | None, t0: float) -> Prepared:
    p.files = []
    p.status, p.reason = "reject", pii.safe_text(reason, settings.pii_key())
    if latest and latest[0] == p.fingerprint:  # load._reject records a delivery once
        p.status, p.latest_status = "unchanged", latest[1]
    p.seconds = _time.perf_counter() - t0
    return p


def load_all(landing: Path, dates: list[str], warehouse: str | None = None, workers: int | None = None,
             on_result: Callable[[int, load.DeliveryResult], None] | None = None) -> dict | None:
    """Loads `dates` into empty raw tables in one transaction. Returns None, with nothing written,
    when a raw table holds rows (load date by date then); else {"results": [DeliveryResult per
    date, in order], "phases": seconds per phase (start: locks, ledger, indexes dropped;
    check_and_append: the dates checked and appended, of_which_appending this process's COPYs;
    winners; indexes; analyze; all)}. A storing error rolls everything back and is
    raised (psycopg2.Error): the caller loads date by date, which rejects only the date at fault."""
    landing = Path(landing)
    key = settings.pii_key()
    workers = workers or workers_for(len(dates))
    t0 = _time.perf_counter()
    conn = db.connect(warehouse)
    try:
        load.ensure_schema(conn)
        with conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtext('hotspots.load:' || d)) from unnest(%s::text[]) d",
                        (dates,))
            cur.execute(f"lock table {', '.join(RAW_TABLES)} in access exclusive mode")
            if not raw_tables_empty(cur):
                conn.rollback()
                return None
            cur.execute("""select distinct on (extract_date) extract_date::text, fingerprint, status, reason
                           from ingest.extract_ledger where extract_date = any(%s::date[])
                           order by extract_date, delivery_id desc""", (dates,))
            latest = {r[0]: r[1:] for r in cur.fetchall()}
            cur.execute("select nextval(pg_get_serial_sequence('ingest.extract_ledger', 'delivery_id')) "
                        "from generate_series(1, %s) order by 1", (len(dates),))
            ids = [r[0] for r in cur.fetchall()]
            indexes = _drop_indexes(cur)
            phases = {"start": _time.perf_counter() - t0}
            f0, phases["check_and_append"] = _time.perf_counter(), 0.0
            results = _store_all(cur, landing, dates, ids, latest, workers, on_result, phases)
            phases["check_and_append"] = _time.perf_counter() - f0
            f0 = _time.perf_counter()
            # The winners' grouping and sorts run over every row loaded: in memory, not in batches on disk.
            cur.execute("set local work_mem = '512MB'")
            _reduce_to_winners(cur)
            phases["winners"] = _time.perf_counter() - f0
            f0 = _time.perf_counter()
            cur.execute("set local maintenance_work_mem = '1GB'")
            for statement in indexes:
                cur.execute(statement)
            phases["indexes"] = _time.perf_counter() - f0
            f0 = _time.perf_counter()
            for table in RAW_TABLES:
                cur.execute(f"analyze {table}")
            phases["analyze"] = _time.perf_counter() - f0
        conn.commit()
        phases["all"] = _time.perf_counter() - t0
        log.info("bulk load of %d dates: %s", len(dates), {k: round(v, 1) for k, v in phases.items()})
        return {"results": results, "phases": phases}
    except BaseException as exc:
        conn.rollback()
        if isinstance(exc, psycopg2.Error):
            log.error("bulk load failed, nothing stored:\n%s", pii.safe_text(traceback.format_exc(), key))
        raise
    finally:
        conn.close()


def _drop_indexes(cur) -> list[str]:
    """Drops the raw tables' indexes and key constraints; returns the statements that make them
    again, exactly as they were (names included)."""
    cur.execute("""select c.oid is not null, format('%%s', i.indrelid::regclass), c.conname,
                          pg_get_constraintdef(c.oid), i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
                   from pg_index i left join pg_constraint c on c.conindid = i.indexrelid and c.contype in ('p', 'u')
                   where i.indrelid = any(%s::regclass[]) order by i.indexrelid""", (list(RAW_TABLES),))
    again = []
    for is_constraint, table, conname, condef, index, indexdef in cur.fetchall():
        if is_constraint:
            cur.execute(f'alter table {table} drop constraint "{conname}"')
            again.append(f'alter table {table} add constraint "{conname}" {condef}')
        else:
            cur.execute(f"drop index {index}")
            again.append(indexdef)
    return again


def _store_all(cur, landing: Path, dates: list[str], ids: list[int], latest: dict, workers: int,
               on_result, phases: dict) -> list[load.DeliveryResult]:
    """Dates read and checked in worker processes (spawned: no copy of this process's connection)
    and stored here in date order as they come: the server appends one date while the workers
    check the next ones."""
    jobs = [(str(landing), d, i, latest.get(d)) for d, i in zip(dates, ids, strict=True)]
    results = []
    store_s = 0.0
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        for n, p in enumerate(pool.imap(_prepare, jobs, chunksize=1), 1):
            f0 = _time.perf_counter()
            r = _store(cur, landing, p)
            store_s += _time.perf_counter() - f0
            results.append(r)
            if on_result:
                on_result(n, r)
    phases["of_which_appending"] = store_s  # this process's share, while the workers check
    return results


def _store(cur, landing: Path, p: Prepared) -> load.DeliveryResult:
    if p.status == "unchanged":
        status = "unchanged" if p.latest_status == "loaded" else "rejected"
        return load.DeliveryResult(p.extract_date, status, reason=p.reason, seconds=p.seconds)
    f0 = _time.perf_counter()
    if p.status == "reject":
        cur.execute("""insert into ingest.extract_ledger (delivery_id, extract_date, landing, fingerprint, status,
                       reason, started_at, finished_at, seconds) values (%s, %s, %s, %s, 'rejected', %s, %s, %s, %s)""",
                    (p.delivery_id, p.extract_date, pii.storable(str(landing)), p.fingerprint, p.reason, p.started,
                     datetime.now(timezone.utc), p.seconds))
        log.warning("extract %s rejected: %s", p.extract_date, p.reason)
        return load.DeliveryResult(p.extract_date, "rejected", reason=p.reason, seconds=p.seconds)
    result = load.summed(load.DeliveryResult(p.extract_date, "loaded", files=[f[4] for f in p.files]))
    cur.execute("""insert into ingest.extract_ledger (delivery_id, extract_date, landing, fingerprint, status,
                   started_at, finished_at, seconds) values (%s, %s, %s, %s, 'loaded', %s, %s, 0)""",
                (p.delivery_id, p.extract_date, pii.storable(str(landing)), p.fingerprint, p.started, p.started))
    cur.execute("delete from ingest.quarantine where extract_date = %s", (p.extract_date,))
    for entity, _name, rows, qtext, fr in p.files:
        load._copy_bytes(cur, _TARGET[entity], load.RAW_COLUMNS[entity], rows)
        if qtext:
            load._copy_bytes(cur, "ingest.quarantine", load.QUARANTINE_COLUMNS, qtext, not_null=("raw_text",))
        load.insert_file_ledger(cur, p.delivery_id, fr)
    stored = _time.perf_counter() - f0
    result.seconds = p.seconds + stored
    result.phases = {"read_check": p.seconds, "upsert": stored, "quarantine_ledger": 0.0}
    load.finish_ledger(cur, p.delivery_id, result)
    return result


def _reduce_to_winners(cur) -> None:
    """Every key delivered on more than one date keeps its winning row, whose first_extract_date
    becomes the key's earliest; then raw.complaints takes the newest version of each complaint
    (newest updated_at; versions are unique by (ack_no, updated_at) by now)."""
    for table, (key, order) in _DEDUP.items():
        cur.execute(f"""
            create temp table fix on commit drop as
            select rid, rn, first from (
                select t.ctid as rid, t.first_extract_date as cur_first,
                       row_number() over (partition by {key} order by {order}) as rn,
                       min(t.first_extract_date) over (partition by {key}) as first
                from {table} t where ({key}) in (select {key} from {table} group by {key} having count(*) > 1)) s
            where rn > 1 or first < cur_first""")
        cur.execute(f"delete from {table} t using fix where t.ctid = fix.rid and fix.rn > 1")
        cur.execute(f"update {table} t set first_extract_date = fix.first from fix where t.ctid = fix.rid "
                    "and fix.rn = 1")
        cur.execute("drop table fix")
    cols = load.RAW_COLUMNS["complaints"]
    picked = ", ".join("min(first_extract_date) over w" if c == "first_extract_date" else c for c in cols)
    cur.execute(f"""
        insert into raw.complaints ({', '.join(cols)})
        select distinct on (ack_no) {picked} from raw.complaint_versions
        window w as (partition by ack_no order by updated_at desc, extract_date desc, source_line desc
                     rows between unbounded preceding and unbounded following)
        order by ack_no, updated_at desc, extract_date desc, source_line desc""")
