"""Types, repairs and checks the records of one extract file.

Order of work, each step documented in docs/ingest.md:
1. typing: numbers and timestamps are parsed; a value that does not parse
   quarantines its row (unparseable_number / unparseable_timestamp);
2. repairs that need the gazetteer or the PII key (codes in the wrong case,
   swapped or zero or foreign coordinates, PIN codes, mobiles);
3. the Great Expectations suite of the file (expectations/extracts_v1_*.json):
   every failing row gets the `meta.reason` of the first expectation it fails;
   expectations with `meta.action: repair` repair instead of quarantining;
4. duplicate keys inside the file: the first copy is kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd

from hotspots import contract, settings
from hotspots.ingest.pii import mobile_hash, normalise_mobile, safe_json, safe_text, scrub_mobiles  # noqa: F401
from hotspots.ingest.reader import RawFile, Reject

log = logging.getLogger(__name__)
IST = timezone(timedelta(hours=5, minutes=30))

NUMBERS = {
    "complaints": ("amount_lost_inr", "victim_lat", "victim_lon"),
    "transactions": ("layer", "amount_inr"),
    "withdrawals": ("lat", "lon", "amount_inr"),
}
TIMESTAMPS = {
    "complaints": ("reported_at", "incident_at", "updated_at"),
    "transactions": ("txn_at",),
    "withdrawals": ("withdrawn_at",),
}
CODES = {
    "complaints": {"category": contract.CATEGORIES, "status": contract.COMPLAINT_STATUSES},
    "transactions": {"status": contract.TXN_STATUSES, "to_ifsc": None},
    "withdrawals": {"channel": contract.CHANNELS},
}
COORDS = {"complaints": ("victim_lat", "victim_lon"), "withdrawals": ("lat", "lon")}
CELL_COLUMN = {"complaints": "victim_h3_cell", "withdrawals": "h3_cell"}
_OFFSET = re.compile(r"(?:Z|z|[+-]\d{2}(?::?\d{2})?)$")


@dataclass
class Checked:
    """Outcome of one file: rows to load (typed) and rows to quarantine."""

    rows: pd.DataFrame
    quarantine: list[Reject]
    repaired: int = 0


# ---------------------------------------------------------------- PII

# Descriptive text fields of loaded rows that no check constrains to a format: a mobile
# written in them is replaced by its hash. Keys, account tokens and terminal ids are
# identifiers (tokens by contract) and are kept as delivered; every other field is
# typed or checked against a format or code set, so a number in it quarantines the row.
FREE_TEXT = {"complaints": ("victim_pincode", "victim_state", "victim_district"), "transactions": (),
             "withdrawals": ("pincode",)}


# ---------------------------------------------------------------- typing


def parse_timestamps(raw: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(UTC timestamps, unparseable mask, no-offset mask). No offset is read as IST."""
    s = raw.astype("string").str.strip()
    present = s.notna()
    has_offset = s.str.contains(_OFFSET, na=False)
    parsed = pd.to_datetime(s.where(has_offset), format="ISO8601", utc=True, errors="coerce")
    naive = present & ~has_offset
    if naive.any():
        local = pd.to_datetime(s.where(naive), format="ISO8601", errors="coerce")
        local = local.dt.tz_localize(IST) if local.dt.tz is None else local
        parsed = parsed.where(~naive, local.dt.tz_convert("UTC"))
    # Years outside a sane window are typos, not fraud from 1970 or 2099.
    sane = parsed.dt.year.between(2000, 2100)
    bad = present & (parsed.isna() | ~sane.fillna(False))
    return parsed.where(~bad), bad, naive & ~bad


def parse_numbers(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    s = raw.astype("string").str.strip()
    num = pd.to_numeric(s, errors="coerce")
    bad = s.notna() & (num.isna() | ~np.isfinite(num.astype(float)))
    return num.astype(float).where(~bad), bad


# ---------------------------------------------------------------- gazetteer look-ups


@lru_cache(maxsize=1)
def _pin_districts() -> dict[str, frozenset[str]]:
    from hotspots.geo import gazetteer

    df = gazetteer._all_offices()
    pairs = df.loc[df["district"] != "", ["pincode", "district"]].drop_duplicates()
    out: dict[str, set[str]] = {}
    for pin, district in zip(pairs["pincode"], pairs["district"], strict=True):
        out.setdefault(pin, set()).add(district)
    return {pin: frozenset(d) for pin, d in out.items()}


@lru_cache(maxsize=1)
def _pin_states() -> dict[str, str]:
    from hotspots.geo import gazetteer

    d = gazetteer.pin_directory()
    return dict(zip(d["pincode"], d["state"], strict=False))


def _repair_coords(df: pd.DataFrame, lat_c: str, lon_c: str, flags: defaultdict[int, list[str]]) -> None:
    from hotspots.geo import gazetteer

    lat, lon = df[lat_c].to_numpy(dtype=float), df[lon_c].to_numpy(dtype=float)
    one_missing = np.isfinite(lat) ^ np.isfinite(lon)
    both = np.isfinite(lat) & np.isfinite(lon)
    zero = both & (np.abs(lat) < 1e-9) & (np.abs(lon) < 1e-9)
    inside = gazetteer.in_india(lat, lon)
    maybe = both & ~zero & ~inside  # only these can be swapped
    swapped = maybe.copy()
    swapped[maybe] = gazetteer.in_india(lon[maybe], lat[maybe])
    outside = (both & ~zero & ~inside & ~swapped) | one_missing
    for i in np.flatnonzero(zero):
        flags[i].append(contract.R_COORDS_ZERO)
    for i in np.flatnonzero(swapped):
        flags[i].append(contract.R_COORDS_SWAPPED)
    for i in np.flatnonzero(outside):
        flags[i].append(contract.R_COORDS_OUTSIDE_INDIA)
    new_lat = np.where(swapped, lon, np.where(zero | outside, np.nan, lat))
    new_lon = np.where(swapped, lat, np.where(zero | outside, np.nan, lon))
    df[lat_c], df[lon_c] = new_lat, new_lon


def _repair_codes(df: pd.DataFrame, entity: str, flags: defaultdict[int, list[str]]) -> None:
    for col, codes in CODES[entity].items():
        s = df[col]
        # Decided once per distinct value (a code column holds a handful): the ones whose upper
        # case differs (and, with a code set, is a code) are replaced by it.
        distinct = pd.unique(s[s.notna()])
        known = None if codes is None else set(codes)
        upper = {v: u for v, u in zip(distinct, pd.Series(distinct, dtype=object).str.upper(), strict=True)
                 if u != v and (known is None or u in known)}
        if not upper:
            continue
        changed = np.flatnonzero(s.isin(list(upper)).to_numpy())
        for i in changed:
            flags[i].append(contract.R_CODE_CASE)
        values = s.to_numpy(dtype=object, copy=True)
        values[changed] = [upper[v] for v in values[changed]]
        df[col] = pd.Series(values, index=s.index, dtype=object)


def _repair_victim_pin(df: pd.DataFrame, flags: defaultdict[int, list[str]]) -> None:
    for i, (pin, st, dist) in enumerate(zip(df["victim_pincode"], df["victim_state"], df["victim_district"], strict=False)):
        if pin is None or pin != pin:  # missing (None or NaN)
            continue
        flag = _victim_pin_flag(pin, st, dist)
        if flag:
            flags[i].append(flag)


@lru_cache(maxsize=1 << 18)
def _victim_pin_flag(pin: str, st: str | None, dist: str | None) -> str | None:
    """The repair flag of one (PIN, typed state, typed district), or None: a pure function of
    the three values and the directory, cached (the same PIN and names recur day after day)."""
    if pin not in _pin_states():
        return contract.R_UNKNOWN_PINCODE
    return None if _state_ok(pin, st) and _district_ok(pin, dist) else contract.R_PINCODE_REGION_MISMATCH


# Each half of the test cached on its own pair: a PIN recurs with far fewer typed states, and
# fewer typed districts, than (state, district) combinations.
@lru_cache(maxsize=1 << 17)
def _state_ok(pin: str, st: str | None) -> bool:
    from hotspots.geo.gazetteer import name_key

    return not st or pd.isna(st) or name_key(st) == name_key(_pin_states()[pin])


@lru_cache(maxsize=1 << 17)
def _district_ok(pin: str, dist: str | None) -> bool:
    from hotspots.geo.gazetteer import district_matches

    return not dist or pd.isna(dist) or any(district_matches(dist, d) for d in _pin_districts().get(pin, ()))


def _repair_terminal_pin(df: pd.DataFrame, flags: defaultdict[int, list[str]]) -> None:
    states = _pin_states()
    for i, pin in enumerate(df["pincode"]):
        if pin is not None and pin == pin and pin not in states:  # present (not None, not NaN)
            flags[i].append(contract.R_UNKNOWN_PINCODE)


def _repair_mobiles(df: pd.DataFrame, flags: defaultdict[int, list[str]], key: bytes) -> None:
    hashes = []
    for i, v in enumerate(df["victim_mobile"]):
        if v is None or v != v:  # missing (None or NaN)
            hashes.append(None)
            continue
        m = _plain_mobile(v) or normalise_mobile(v)
        if m is None:
            flags[i].append(contract.R_MOBILE_INVALID)
            hashes.append(None)
        else:
            hashes.append(mobile_hash(m, key))
    df["victim_mobile_hash"] = pd.Series(hashes, index=df.index, dtype="object")
    df.drop(columns=["victim_mobile"], inplace=True)


_PLAIN_MOBILE = re.compile(r"[6-9][0-9]{9}")


def _plain_mobile(v: str) -> str | None:
    """The common writing (ten ASCII digits, nothing else) without normalise_mobile's
    per-character work; anything else goes through normalise_mobile (same result)."""
    return v if len(v) == 10 and _PLAIN_MOBILE.fullmatch(v) else None


def _scrub_column(s: pd.Series, key: bytes) -> pd.Series:
    """scrub_mobiles on every present value, once per distinct value; missing values stay as they are."""
    present = s.notna()
    if not present.any():
        return s
    scrubbed = {v: w for v in pd.unique(s[present]) if (w := scrub_mobiles(v, key)) != v}
    if not scrubbed:  # most columns: no value holds a mobile
        return s
    return s.where(~s.isin(list(scrubbed)), s.map(scrubbed))


# ---------------------------------------------------------------- Great Expectations


@lru_cache(maxsize=None)
def load_suite_json(entity: str) -> dict:
    return json.loads((settings.EXPECTATIONS_DIR / f"extracts_v1_{entity}.json").read_text())


def run_suite(entity: str, frame: pd.DataFrame, parameters: dict) -> list[tuple[dict, list[int]]]:
    """Validates the frame with the entity's suite; per expectation, its meta and failing _line values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        doc = load_suite_json(entity)
        context = _gx_context()
        suite = gx.ExpectationSuite(
            name=doc["name"],
            expectations=[
                ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta", {})).to_domain_obj()
                for e in doc["expectations"]
            ],
        )
        # A data source per file, deleted afterwards: its execution engine caches every batch's
        # dataframe and every resolved metric, and deleting only the asset would keep them all.
        source_name = f"extracts_{entity}_{id(frame)}"
        asset = context.data_sources.add_pandas(source_name).add_dataframe_asset(entity)
        try:
            batch = asset.add_batch_definition_whole_dataframe("file").get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(
                suite,
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["_line"]},
                expectation_parameters=parameters,
            )
        finally:
            context.data_sources.delete(source_name)
    out = []
    for r in result.results:
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {r.expectation_config.type} failed to run: "
                               f"{r.exception_info.get('exception_message')}")
        lines = [int(x["_line"]) for x in (r.result.get("unexpected_index_list") or [])]
        out.append((dict(r.expectation_config.meta or {}) | {"type": r.expectation_config.type,
                                                             "kwargs": _columns_of(r.expectation_config.kwargs)},
                    lines))
    return out


class _NotVectorised(Exception):
    """An expectation (or keyword) the vectorised evaluator does not implement: GE runs the suite."""


def _bound(v, parameters: dict):
    return parameters[v["$PARAMETER"]] if isinstance(v, dict) and "$PARAMETER" in v else v


def _compare(col: pd.Series, lo, hi, strict_min, strict_max) -> pd.Series:
    """GE's between for native dtypes (ColumnValuesBetween._pandas_vectorized, ColumnValueLengthsBetween)."""
    if lo is None and hi is None:
        raise ValueError("min_value and max_value cannot both be None")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError("min_value cannot be greater than max_value")
    ok = pd.Series(True, index=col.index)
    if lo is not None:
        ok &= (col > lo) if strict_min else (col >= lo)
    if hi is not None:
        ok &= (col < hi) if strict_max else (col <= hi)
    return ok


def _unexpected(frame: pd.DataFrame, etype: str, kw: dict, seen: dict | None = None) -> np.ndarray:
    """Rows an expectation finds unexpected, computed as Great Expectations' pandas engine does
    (the same pandas operations; a map expectation skips missing values, except not-null).
    seen: per column, what an earlier expectation on it computed (its present values, as text)."""
    allowed = {"expect_column_values_to_not_be_null": {"column"},
               "expect_column_values_to_match_regex": {"column", "regex"},
               "expect_column_values_to_be_in_set": {"column", "value_set"},
               "expect_column_values_to_be_between": {"column", "min_value", "max_value", "strict_min", "strict_max"},
               "expect_column_value_lengths_to_be_between": {"column", "min_value", "max_value", "strict_min",
                                                             "strict_max"},
               "expect_column_pair_values_a_to_be_greater_than_b": {"column_A", "column_B", "or_equal",
                                                                    "ignore_row_if"}}
    if etype not in allowed or set(kw) - allowed[etype]:
        raise _NotVectorised(etype)
    if etype == "expect_column_pair_values_a_to_be_greater_than_b":
        if kw.get("ignore_row_if", "both_values_are_missing") != "either_value_is_missing":
            raise _NotVectorised(etype)
        a, b = frame[kw["column_A"]], frame[kw["column_B"]]
        both = (a.notnull() & b.notnull()).to_numpy()
        ok = (a[both] >= b[both]) if kw.get("or_equal") else (a[both] > b[both])
        out = np.zeros(len(frame), dtype=bool)
        out[both] = ~ok.to_numpy(dtype=bool)
        return out
    seen = {} if seen is None else seen
    if kw["column"] not in seen:
        col = frame[kw["column"]]
        present = col.notnull().to_numpy()
        seen[kw["column"]] = {"present": present, "v": col[present]}
    known = seen[kw["column"]]
    present, v = known["present"], known["v"]
    if etype == "expect_column_values_to_not_be_null":
        return ~present

    def text() -> pd.Series:
        if "text" not in known:
            known["text"] = v.astype(str)
        return known["text"]

    if etype == "expect_column_values_to_match_regex":
        ok = text().str.contains(kw["regex"])
    elif etype == "expect_column_values_to_be_in_set":
        ok = v.isin(kw["value_set"]) if kw.get("value_set") is not None else pd.Series(True, index=v.index)
    elif etype == "expect_column_value_lengths_to_be_between":
        ok = _compare(text().str.len(), kw.get("min_value"), kw.get("max_value"), kw.get("strict_min"),
                      kw.get("strict_max"))
    else:
        if not (v.dtype in [int, float] or isinstance(v.dtype, pd.DatetimeTZDtype)):
            raise _NotVectorised(f"{etype} on {v.dtype}")
        ok = _compare(v, kw.get("min_value"), kw.get("max_value"), kw.get("strict_min"), kw.get("strict_max"))
    out = np.zeros(len(frame), dtype=bool)
    out[present] = ~ok.to_numpy(dtype=bool)
    return out


def evaluate_suite(entity: str, frame: pd.DataFrame, parameters: dict) -> list[tuple[dict, list[int]]]:
    """The entity's suite (expectations/extracts_v1_<entity>.json, the one place the rules are
    declared), evaluated on whole columns at once with the same pandas operations Great
    Expectations' pandas engine uses, without its per-expectation machinery (about 1.5 s per
    file whatever its size). Same result as run_suite, which it falls back to for an expectation
    type or keyword it does not implement, or always when HOTSPOTS_INGEST_GX=1.
    tests/ingest/test_suite_equivalence.py checks both agree."""
    if os.environ.get("HOTSPOTS_INGEST_GX") == "1":
        return run_suite(entity, frame, parameters)
    doc = load_suite_json(entity)
    lines = frame["_line"].to_numpy()
    out = []
    # Great Expectations evaluates (and reports) a suite grouped by column, each column's group
    # where its first expectation stands, expectations without a `column` as one more group
    # (Validator.process_expectations_for_validation); the order decides which reason a row gets.
    groups: dict[str, list[dict]] = {}
    for e in doc["expectations"]:
        col = e["kwargs"].get("column")
        groups.setdefault(col if isinstance(col, str) else "\0nocolumn", []).append(e)
    seen: dict = {}
    try:
        for e in (e for g in groups.values() for e in g):
            kw = {k: _bound(v, parameters) for k, v in e["kwargs"].items()}
            bad = _unexpected(frame, e["type"], kw, seen)
            out.append((dict(e.get("meta") or {}) | {"type": e["type"], "kwargs": _columns_of(e["kwargs"])},
                        [int(x) for x in lines[bad]]))
    except _NotVectorised:
        return run_suite(entity, frame, parameters)
    return out


def _columns_of(kwargs: dict) -> list[str]:
    return [v for k, v in kwargs.items() if k in ("column", "column_A", "column_B")]


@lru_cache(maxsize=1)
def _gx_context():
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - progress bars are cosmetic
        pass
    return context


# ---------------------------------------------------------------- the file


def extract_end(extract_date: date) -> datetime:
    """End of the extract's IST business day, as an aware UTC datetime."""
    return datetime.combine(extract_date + timedelta(days=1), time(0), IST).astimezone(timezone.utc)


def _without(n: int, reasons: dict[int, list]) -> np.ndarray:
    """True for the row positions with no failed check."""
    ok = np.ones(n, dtype=bool)
    ok[list(reasons)] = False
    return ok


def _stripped(values: tuple[str, ...]) -> pd.Series:
    """The column's values stripped (str.strip, mapped in C), empty ones missing."""
    stripped = list(map(str.strip, values))
    out = pd.Series(stripped, dtype="object")
    if "" in stripped:  # a C scan; most columns hold no empty field
        out[np.equal(out.to_numpy(), "")] = None
    return out


def check_file(raw: RawFile, extract_date: date, cfg: settings.IngestConfig, key: bytes) -> Checked:
    entity = raw.entity
    cols = contract.COLUMNS[entity]
    quarantine: list[Reject] = []
    for r in raw.rejects:
        quarantine.append(Reject(r.line_no, r.reason, safe_text(r.raw_text, key), safe_json(r.details, key)))
    # Fields stripped, empty ones missing.
    columns = list(zip(*raw.records, strict=True)) if raw.records else [()] * len(cols)
    df = pd.DataFrame({c: _stripped(col) for c, col in zip(cols, columns, strict=True)}, columns=list(cols))
    df["_line"] = np.asarray(raw.lines, dtype=np.int64)
    df["_raw"] = raw.raw
    n = len(df)
    # Per row position, only for the rows that have any: failed checks, and repairs made.
    reasons: defaultdict[int, list[dict]] = defaultdict(list)
    flags: defaultdict[int, list[str]] = defaultdict(list)

    # 1. typing (the layer's text is kept: its format check needs the text, the load the integer)
    if entity == "transactions":
        df["layer_text"] = df["layer"]
    for c in NUMBERS[entity]:
        df[c], bad = parse_numbers(df[c])
        for i in np.flatnonzero(bad.to_numpy()):
            reasons[i].append({"reason": contract.Q_UNPARSEABLE_NUMBER, "columns": [c]})
    for c in TIMESTAMPS[entity]:
        df[c], bad, naive = parse_timestamps(df[c])
        for i in np.flatnonzero(bad.to_numpy()):
            reasons[i].append({"reason": contract.Q_UNPARSEABLE_TIMESTAMP, "columns": [c]})
        for i in np.flatnonzero(naive.to_numpy()):
            flags[i].append(contract.R_TIMESTAMP_NO_OFFSET)

    # 2. repairs that need more than a table check
    _repair_codes(df, entity, flags)
    if entity in COORDS:
        from hotspots.geo.gazetteer import h3_cells

        _repair_coords(df, *COORDS[entity], flags)
        df[CELL_COLUMN[entity]] = h3_cells(df[COORDS[entity][0]], df[COORDS[entity][1]])
    for c in FREE_TEXT[entity]:
        df[c] = _scrub_column(df[c], key)
    if entity == "complaints":
        _repair_victim_pin(df, flags)
        _repair_mobiles(df, flags, key)
    if entity == "withdrawals":
        _repair_terminal_pin(df, flags)

    # 3. the Great Expectations suite, on the rows that typed cleanly
    typed_ok = _without(n, reasons)
    frame = df.loc[typed_ok].drop(columns=["_raw"])
    if entity == "transactions":
        frame = frame.assign(layer=frame["layer_text"]).drop(columns=["layer_text"])
    pos_of_line = pd.Series(np.arange(n), index=df["_line"].to_numpy())
    if len(frame):
        params = {"amount_ceiling_inr": cfg.amount_ceiling_inr,
                  "extract_end": pd.Timestamp(extract_end(extract_date) +
                                              timedelta(minutes=cfg.future_tolerance_minutes))}
        for meta, lines in evaluate_suite(entity, frame, params):
            for i in pos_of_line.loc[lines].tolist() if lines else ():
                if meta.get("action") == "repair":
                    flags[i].append(meta["reason"])
                    for c in meta.get("null_columns", []):
                        df.at[df.index[i], c] = pd.NaT if c in TIMESTAMPS[entity] else None
                else:
                    reasons[i].append({"reason": meta["reason"], "columns": meta["kwargs"],
                                       "expectation": meta["type"]})

    # 4. duplicate keys inside the file, among rows that passed
    ok = _without(n, reasons)
    key_cols = list(contract.FILE_KEYS[entity])
    dup = df.loc[ok].duplicated(subset=key_cols, keep="first")
    for i in np.flatnonzero(ok)[dup.to_numpy()]:
        reasons[i].append({"reason": contract.Q_DUPLICATE_KEY, "columns": key_cols})

    raw_texts, line_nos = df["_raw"].to_numpy(), df["_line"].to_numpy()
    for i in sorted(reasons):
        quarantine.append(Reject(int(line_nos[i]), reasons[i][0]["reason"], safe_text(raw_texts[i], key),
                                 safe_json({"checks": reasons[i], "repairs": flags.get(i, [])}, key)))
    ok = _without(n, reasons)
    dq_flags = [[] for _ in range(n)]
    for i, f in flags.items():
        dq_flags[i] = sorted(set(f))
    df["dq_flags"] = dq_flags
    rows = df.loc[ok].drop(columns=["_raw"] + (["layer_text"] if entity == "transactions" else []))
    if entity == "transactions":
        rows["layer"] = rows["layer"].astype("int64")
    repaired = sum(1 for i in flags if ok[i])
    quarantine.sort(key=lambda r: r.line_no)
    return Checked(rows.reset_index(drop=True), quarantine, repaired)

