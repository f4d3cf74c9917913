"""The extract simulator: determinism, contract shape, dirt as logged, truth consistency, realism."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hotspots import contract as C
from hotspots.geo.gazetteer import district_matches, in_india, name_key, pin_directory
from hotspots.simulate import simulate
from hotspots.simulate.dirt import DIRT_CLASSES, RESEND

ROOT = Path(__file__).resolve().parents[2]
CHECK_EXTRACTS = ROOT.parent / "shared" / "tools" / "check_extracts.py"
TS_COLUMNS = {"complaints": ("reported_at", "incident_at", "updated_at"), "transactions": ("txn_at",),
              "withdrawals": ("withdrawn_at",)}
AMOUNT = {"complaints": "amount_lost_inr", "transactions": "amount_inr", "withdrawals": "amount_inr"}
CODES = {"category": C.CATEGORIES, "channel": C.CHANNELS}


# ---------------------------------------------------------------- fixtures and readers
@pytest.fixture(scope="module")
def dirty_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("dirty")
    summary = simulate(base / "landing", "2025-01-01", 30, 0.03, seed=11, dirty_rate=0.02, progress=False)
    return base / "landing", base / "truth", summary


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("clean")
    summary = simulate(base / "landing", "2025-06-01", 12, 0.03, seed=5, dirty_rate=0.0, progress=False)
    return base / "landing", base / "truth", summary


def raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def extract_files(landing: Path):
    """(date, entity, file path) for every data file of every extract date."""
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        manifest = json.loads((folder / C.MANIFEST).read_text())
        for name in sorted(manifest["files"]):
            yield folder.name, name.split(".")[0], folder / name


def file_lines(path: Path) -> list[bytes]:
    data = raw_bytes(path)
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def frame(header: bytes, lines: list[bytes]) -> pd.DataFrame:
    text = b"\n".join([header, *lines]).decode("utf-8")
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def ts(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.replace("", None), format="ISO8601", utc=True)


def day_end(date: str) -> pd.Timestamp:
    return pd.Timestamp(f"{date}T23:59:59+05:30")


def dirt_log(truth: Path) -> pd.DataFrame:
    return pd.read_csv(truth / "dirt.csv.gz", dtype=str, keep_default_na=False)


def clean_frames(landing: Path, truth: Path):
    """Per file: the rows the dirt log does not mention, parsed."""
    dirt = dirt_log(truth)
    logged = set(zip(dirt["extract_date"], dirt["file"], dirt["line_no"].astype(int), strict=True))
    for date, entity, path in extract_files(landing):
        lines = file_lines(path)
        keep = [line for n, line in enumerate(lines[1:], start=2) if (date, path.name, n) not in logged]
        yield date, entity, frame(lines[0], keep)


def strict_problems(entity: str, df: pd.DataFrame, date: str) -> dict[str, int]:
    """What a strict reader would flag or quarantine; a clean row must raise nothing."""
    pins = pin_directory().set_index("pincode")
    bad: dict[str, int] = {}

    def flag(name, mask):
        n = int(np.asarray(mask).sum())
        if n:
            bad[name] = bad.get(name, 0) + n

    assert tuple(df.columns) == C.COLUMNS[entity]
    for col in TS_COLUMNS[entity]:
        parsed = ts(df[col])
        flag(f"{col} after extract date", (parsed > day_end(date)).fillna(False))
        flag(f"{col} offset", (df[col] != "") & ~df[col].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\+05:30|Z|\+00:00)"))
    amount = pd.to_numeric(df[AMOUNT[entity]])
    flag("amount range", (amount <= 0) | (amount >= 1e8))
    if entity == "complaints":
        flag("ack_no", ~df["ack_no"].str.fullmatch(r"\d{14}"))
        flag("category", ~df["category"].isin(C.CATEGORIES))
        flag("status", ~df["status"].isin(C.COMPLAINT_STATUSES))
        flag("unknown pin", ~df["victim_pincode"].isin(pins.index))
        known = pins.reindex(df["victim_pincode"])
        flag("state", [name_key(a) != name_key(b) for a, b in zip(df["victim_state"], known["state"], strict=True)])
        flag("district", [not district_matches(a, b) for a, b in zip(df["victim_district"], known["district"], strict=True)])
        has = df["victim_lat"] != ""
        flag("coords", ~in_india(pd.to_numeric(df["victim_lat"][has]).to_numpy(),
                                 pd.to_numeric(df["victim_lon"][has]).to_numpy()))
        flag("mobile", (df["victim_mobile"] != "") & ~df["victim_mobile"].str.fullmatch(r"[6-9]\d{9}"))
        flag("incident after reported", (ts(df["incident_at"]) > ts(df["reported_at"])).fillna(False))
        flag("duplicate key", df.duplicated(["ack_no", "updated_at"]))
    elif entity == "transactions":
        flag("status", ~df["status"].isin(C.TXN_STATUSES))
        flag("ifsc", ~df["to_ifsc"].str.fullmatch(r"[A-Z]{4}0[A-Z0-9]{6}"))
        flag("layer", pd.to_numeric(df["layer"]) < 1)
        flag("ack_no", ~df["ack_no"].str.fullmatch(r"\d{14}"))
        flag("duplicate key", df.duplicated(["txn_id"]))
    else:
        flag("channel", ~df["channel"].isin(C.CHANNELS))
        flag("unknown pin", (df["pincode"] != "") & ~df["pincode"].isin(pins.index))
        has = df["lat"] != ""
        flag("coords", ~in_india(pd.to_numeric(df["lat"][has]).to_numpy(), pd.to_numeric(df["lon"][has]).to_numpy()))
        flag("no location", (df["lat"] == "") & (df["pincode"] == ""))
        flag("ack_no", (df["ack_no"] != "") & ~df["ack_no"].str.fullmatch(r"\d{14}"))
        flag("duplicate key", df.duplicated(["withdrawal_id"]))
    return bad


# ---------------------------------------------------------------- determinism
def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate(tmp_path / name / "landing", "2025-02-01", 5, 0.02, seed=seed, progress=False)
    a, b, c = (_digest(tmp_path / n) for n in "abc")
    assert len(a) == 4 + 5 * 4  # 4 truth files, 5 dates x (3 data files + manifest)
    assert a == b
    manifests = [k for k in a if k.endswith(C.MANIFEST)]
    assert any(a[k] != c.get(k) for k in manifests)


# ---------------------------------------------------------------- contract shape
def test_folders_manifest_and_headers_follow_the_contract(dirty_run):
    landing, _, summary = dirty_run
    folders = sorted(p.name for p in landing.iterdir())
    assert folders == [str(d.date()) for d in pd.date_range("2025-01-01", periods=30)]
    plain = 0
    for folder in landing.iterdir():
        manifest = json.loads((folder / C.MANIFEST).read_text())
        assert list(manifest) == ["contract", "extract_date", "files"]
        assert manifest["contract"] == C.CONTRACT and manifest["extract_date"] == folder.name
        assert sorted(p.name for p in folder.iterdir()) == sorted([C.MANIFEST, *manifest["files"]])
        for entity in C.ENTITIES:
            names = [n for n in manifest["files"] if n in C.file_candidates(entity)]
            assert len(names) == 1
            data = (folder / names[0]).read_bytes()
            assert manifest["files"][names[0]]["sha256"] == hashlib.sha256(data).hexdigest()
            if names[0].endswith(".gz"):
                assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0"  # gzip, mtime 0
            else:
                plain += 1
            lines = file_lines(folder / names[0])
            assert lines[0].decode() == ",".join(C.COLUMNS[entity])
            assert manifest["files"][names[0]]["rows"] == len(lines) - 1
            rows = list(csv.reader(io.StringIO(raw_bytes(folder / names[0]).decode("utf-8", "replace"))))
            assert len(rows) == len(lines)  # no multi-line fields
    assert plain > 0  # some dates come as plain CSV
    assert summary["complaints"] > 0 and summary["transactions"] > summary["complaints"] * 0.9


def test_clean_rows_are_strictly_clean(dirty_run):
    landing, truth, _ = dirty_run
    problems: dict[str, int] = {}
    for date, entity, df in clean_frames(landing, truth):
        for k, v in strict_problems(entity, df, date).items():
            problems[f"{entity}: {k}"] = problems.get(f"{entity}: {k}", 0) + v
    assert problems == {}


def test_zero_dirty_rate_gives_perfectly_clean_extracts(clean_run):
    landing, truth, summary = clean_run
    assert len(dirt_log(truth)) == 0 and summary["dirty_rows"] == 0 and summary["resent_rows"] == 0
    for date, entity, path in extract_files(landing):
        lines = file_lines(path)
        assert strict_problems(entity, frame(lines[0], lines[1:]), date) == {}


def test_field_shares_are_realistic(clean_run):
    landing, _, _ = clean_run
    frames = {e: [] for e in C.ENTITIES}
    for _, entity, path in extract_files(landing):
        lines = file_lines(path)
        frames[entity].append(frame(lines[0], lines[1:]))
    c, w = pd.concat(frames["complaints"]), pd.concat(frames["withdrawals"])
    assert 0.5 < (c["victim_lat"] != "").mean() < 0.7
    assert 0.78 < (c["victim_mobile"] != "").mean() < 0.92
    assert 0.25 < (w["ack_no"] != "").mean() < 0.45
    assert 0.03 < (w["lat"] == "").mean() < 0.2
    assert w["channel"].value_counts().index[0] == "ATM"
    utc = c["reported_at"].str.endswith("Z") | c["reported_at"].str.endswith("+00:00")
    assert 0.02 < utc.mean() < 0.09
    assert c["victim_state"].str.isupper().mean() < 0.7  # Title Case and upper case both occur
    assert (c.groupby("ack_no")["status"].nunique() > 1).any()  # status versions of one complaint


# ---------------------------------------------------------------- dirt
def test_dirt_rate_and_every_class_appears(dirty_run):
    landing, truth, summary = dirty_run
    dirt = dirt_log(truth)
    rows = summary["complaints"] + summary["transactions"] + summary["withdrawals"]
    dirty = (dirt["dirt_class"] != RESEND.name).sum()
    assert 0.015 < dirty / rows < 0.025
    assert 0.005 < (dirt["dirt_class"] == RESEND.name).sum() / rows < 0.015
    for entity in C.ENTITIES:
        seen = set(dirt.loc[dirt["file"].str.startswith(entity), "dirt_class"])
        expected = {d.name for d in DIRT_CLASSES if entity in d.entities} | {RESEND.name}
        assert seen == expected, entity
    prefixes = dirt["expected"].str.split(":").str[0]
    assert set(prefixes) == {"quarantine", "repair", "loaded"}
    reasons = dirt["expected"].str.split(":").str[1].dropna()
    assert set(reasons) <= set(C.QUARANTINE_REASONS) | set(C.REPAIR_FLAGS)
    assert not dirt.duplicated(["extract_date", "file", "line_no"]).any()  # one class per row


def _fields(line: bytes) -> list[str]:
    return next(csv.reader([line.decode("utf-8", "replace")]))


def _num(value: str):
    try:
        return float(value)
    except ValueError:
        return None


def _parses(value: str) -> bool:
    try:
        pd.Timestamp(value)
        return bool(re.match(r"\d{4}-\d\d-\d\dT", value))
    except (ValueError, OverflowError):
        return False


def test_dirt_log_points_at_rows_dirty_as_stated(dirty_run):
    landing, truth, _ = dirty_run
    dirt = dirt_log(truth)
    pins = pin_directory().set_index("pincode")
    files = {(d, p.name): (e, file_lines(p)) for d, e, p in extract_files(landing)}
    earlier: dict[str, set[bytes]] = {e: set() for e in C.ENTITIES}
    checked = 0
    for (date, name), (entity, lines) in sorted(files.items()):
        cols = C.COLUMNS[entity]
        for rec in dirt[(dirt["extract_date"] == date) & (dirt["file"] == name)].itertuples():
            n, cls = int(rec.line_no), rec.dirt_class
            line = lines[n - 1]
            f = _fields(line)
            assert f[0] == rec.key, (date, name, n)
            row = dict(zip(cols, f, strict=False))
            if cls == "malformed_row":
                assert len(f) != len(cols)
            elif cls == "invalid_encoding":
                with pytest.raises(UnicodeDecodeError):
                    line.decode("utf-8")
            elif cls == "duplicate_key_in_file":
                assert line in lines[1 : n - 1]
            elif cls == RESEND.name:
                assert line in earlier[entity]
            else:
                assert len(f) == len(cols)
                check_row(cls, entity, row, date, pins)
            checked += 1
        earlier[entity].update(lines[1:])
    assert checked == len(dirt)


def check_row(cls: str, entity: str, row: dict, date: str, pins: pd.DataFrame) -> None:
    amount = row[AMOUNT[entity]]
    lat, lon = {"complaints": ("victim_lat", "victim_lon"), "withdrawals": ("lat", "lon")}.get(entity, ("", ""))
    if cls == "unparseable_number":
        assert _num(amount) is None
    elif cls == "unparseable_timestamp":
        assert not all(_parses(row[c]) for c in TS_COLUMNS[entity] if row[c])
    elif cls == "future_timestamp":
        event = {"complaints": "reported_at", "transactions": "txn_at", "withdrawals": "withdrawn_at"}[entity]
        assert pd.Timestamp(row[event]) > day_end(date)
    elif cls == "incident_after_reported":
        assert pd.Timestamp(row["reported_at"]) < pd.Timestamp(row["incident_at"]) <= day_end(date)
    elif cls == "negative_amount":
        assert amount.startswith("-") and float(amount) < 0
    elif cls == "amount_above_ceiling":
        assert float(amount) >= 1e10
    elif cls == "coords_zero":
        assert float(row[lat]) == 0 and float(row[lon]) == 0
    elif cls == "coords_swapped":
        a, b = float(row[lat]), float(row[lon])
        assert in_india([b], [a])[0] and not in_india([a], [b])[0]
    elif cls == "coords_outside_india":
        a, b = float(row[lat]), float(row[lon])
        assert not in_india([a, b], [b, a]).any() and (a, b) != (0, 0)
    elif cls == "unknown_pincode":
        pin = row[{"complaints": "victim_pincode", "withdrawals": "pincode"}[entity]]
        assert re.fullmatch(r"\d{6}", pin) and pin not in pins.index
    elif cls == "pincode_region_mismatch":
        assert name_key(row["victim_state"]) != name_key(pins.loc[row["victim_pincode"], "state"])
    elif cls in ("unknown_code", "code_case"):
        sets = {"category": C.CATEGORIES, "status": C.COMPLAINT_STATUSES if entity == "complaints"
                else C.TXN_STATUSES, "channel": C.CHANNELS}
        odd = [c for c in sets if c in row and row[c] not in sets[c]]
        assert len(odd) == 1
        value, allowed = row[odd[0]], sets[odd[0]]
        assert (value.upper() in allowed) == (cls == "code_case")
    elif cls == "mobile_invalid":
        assert not re.fullmatch(r"\d{10}", row["victim_mobile"])
    else:
        raise AssertionError(f"unchecked dirt class {cls}")


# ---------------------------------------------------------------- timing of reports
def test_no_row_is_after_its_extract_date_unless_logged_as_future(dirty_run):
    landing, truth, _ = dirty_run
    for date, entity, df in clean_frames(landing, truth):
        for col in TS_COLUMNS[entity]:
            assert not (ts(df[col]) > day_end(date)).any(), (date, entity, col)
    dirt = dirt_log(truth)
    assert (dirt["dirt_class"] == "future_timestamp").sum() > 0


def test_reporting_delays(dirty_run):
    landing, truth, _ = dirty_run
    w = pd.read_csv(truth / "withdrawals.csv.gz", dtype=str, keep_default_na=False)
    reported = w[w["fate"] == "reported"]
    delay = (pd.to_datetime(reported["extract_date"]) - pd.to_datetime(reported["withdrawn_at"].str[:10])).dt.days
    assert delay.between(1, 10).all()
    assert 0.1 < (w["fate"] == "never").mean() < 0.2
    first_complaint, first_txn = {}, {}
    for date, entity, df in clean_frames(landing, truth):
        target = first_complaint if entity == "complaints" else first_txn if entity == "transactions" else None
        if target is not None:
            for ack in df["ack_no"]:
                target.setdefault(ack, date)
            if entity == "transactions":
                lag = (pd.Timestamp(date) - ts(df["txn_at"]).dt.tz_convert("Asia/Kolkata").dt.tz_localize(None)
                       .dt.normalize()).dt.days
                assert lag.between(0, 5).all()
    early = [a for a, d in first_txn.items() if a in first_complaint and d < first_complaint[a]]
    assert early  # some money trails arrive before their complaint


# ---------------------------------------------------------------- truth
def test_truth_is_beside_landing_and_never_inside(dirty_run, tmp_path):
    landing, truth, _ = dirty_run
    assert truth == landing.parent / "truth"
    assert sorted(p.name for p in truth.iterdir()) == ["dirt.csv.gz", "intensity.csv.gz", "rings.csv.gz",
                                                       "withdrawals.csv.gz"]
    assert not any(p.name.startswith(("intensity", "dirt", "rings")) for p in landing.rglob("*"))
    with pytest.raises(ValueError):
        simulate(tmp_path / "l", "2025-01-01", 1, 0.01, seed=1, truth=tmp_path / "l" / "truth", progress=False)


def test_truth_intensity_is_the_expected_value_of_realised_withdrawals(dirty_run):
    _, truth, summary = dirty_run
    it = pd.read_csv(truth / "intensity.csv.gz")
    w = pd.read_csv(truth / "withdrawals.csv.gz", dtype=str, keep_default_na=False)
    assert list(it.columns) == ["h3_cell", "date", "expected_withdrawals"]
    assert (it["expected_withdrawals"] > 0).all() and not it.duplicated(["h3_cell", "date"]).any()
    total = it["expected_withdrawals"].sum()
    assert abs(len(w) - total) < max(4 * np.sqrt(total), 0.03 * total)
    # Per day too, and every realised withdrawal lies in a cell with positive intensity that day.
    w["date"] = w["withdrawn_at"].str[:10]
    per_day = w.groupby("date").size().reindex(it.groupby("date")["expected_withdrawals"].sum().index, fill_value=0)
    z = (per_day - it.groupby("date")["expected_withdrawals"].sum()) / np.sqrt(it.groupby("date")["expected_withdrawals"].sum())
    assert (z.abs() < 5).all()
    cells = set(zip(it["h3_cell"], it["date"], strict=True))
    assert all(k in cells for k in zip(w["h3_cell"], w["date"], strict=True))
    assert summary["withdrawals_realised"] == len(w)


# ---------------------------------------------------------------- realism
def test_withdrawals_concentrate_near_ring_bases(dirty_run):
    _, truth, _ = dirty_run
    w = pd.read_csv(truth / "withdrawals.csv.gz", dtype=str, keep_default_na=False)
    rings = pd.read_csv(truth / "rings.csv.gz", keep_default_na=False)
    counts = w["h3_cell"].value_counts()
    # The 1% of India's cash-point cells with most withdrawals hold them all; among the cells that
    # see any, a tenth hold more than 40%.
    from hotspots.simulate.core import _world

    cash_cells = len(_world(11).cells)
    assert len(counts) < 0.01 * cash_cells
    assert counts.iloc[: max(1, len(counts) // 10)].sum() > 0.4 * len(w)
    w["date"] = w["withdrawn_at"].str[:10]
    m = w.merge(rings[["ring_id", "date", "base_lat", "base_lon"]], on=["ring_id", "date"])
    km = np.hypot((m["lat"].astype(float) - m["base_lat"]) * 111.2,
                  (m["lon"].astype(float) - m["base_lon"]) * 111.2 * np.cos(np.radians(m["base_lat"])))
    assert len(m) == len(w)
    assert (km < 15.5).mean() > 0.85 and (km < 70).mean() > 0.99
    hot = {"JAMTARA", "DEOGHAR", "NUH", "BHARATPUR", "ALWAR", "MATHURA"}
    ring_district = rings.drop_duplicates("ring_id").set_index("ring_id")["district"]
    assert w["ring_id"].map(ring_district).isin(hot).mean() > 0.3


def test_mule_accounts_keep_their_cash_out_cells(dirty_run):
    """The leading signal: an account that cashed out in a cell comes back to it or near it."""
    import h3

    _, truth, _ = dirty_run
    w = pd.read_csv(truth / "withdrawals.csv.gz", dtype=str, keep_default_na=False).sort_values("withdrawn_at")
    prev = w.groupby("account")["h3_cell"].shift()
    pairs = w.assign(prev=prev).dropna(subset=["prev"])
    near = [h3.grid_distance(a, b) <= 20 if a[:3] == b[:3] else False for a, b in zip(pairs["h3_cell"], pairs["prev"], strict=True)]
    assert np.mean(near) > 0.85
    same = (pairs["h3_cell"] == pairs["prev"]).mean()
    assert same > 0.3


def test_rings_move_get_raided_and_mules_churn(tmp_path):
    summary = simulate(tmp_path / "landing", "2025-01-01", 120, 0.01, seed=21, dirty_rate=0.0, progress=False)
    rings = pd.read_csv(tmp_path / "truth" / "rings.csv.gz", keep_default_na=False)
    events = rings["event"].str.split().str[0].value_counts()
    assert events.get("disrupted", 0) >= 2 and events.get("relocated", 0) >= 2 and events.get("emerged", 0) >= 1
    assert summary["ring_disrupted"] == events.get("disrupted", 0)
    w = pd.read_csv(tmp_path / "truth" / "withdrawals.csv.gz", dtype=str, keep_default_na=False)
    first = set(w.loc[w["withdrawn_at"] < "2025-01-15", "account"])
    last = set(w.loc[w["withdrawn_at"] >= "2025-04-15", "account"])
    assert len(first & last) < 0.3 * len(last)
    # Weekly rhythm: Sundays see fewer withdrawals than the average weekday.
    day = pd.to_datetime(w["withdrawn_at"].str[:10])
    per_day = day.value_counts().sort_index()
    assert per_day[per_day.index.dayofweek == 6].mean() < per_day[per_day.index.dayofweek < 6].mean()


# ---------------------------------------------------------------- tools and CLI
@pytest.mark.skipif(not CHECK_EXTRACTS.exists(), reason="shared/tools/check_extracts.py not beside the repo")
def test_shared_contract_checker_accepts_the_landing(dirty_run):
    landing, _, _ = dirty_run
    p = subprocess.run([sys.executable, str(CHECK_EXTRACTS), str(landing)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().splitlines()[-1].startswith("OK: 30 extract dates")


def test_cli_writes_extracts_and_summary(tmp_path):
    out = tmp_path / "landing"
    p = subprocess.run([sys.executable, "-m", "hotspots.simulate", "--out", str(out), "--start", "2025-03-01",
                        "--days", "3", "--scale", "0.01", "--seed", "2", "--truth", str(tmp_path / "t"),
                        "--dirty-rate", "0.05"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "complaints=" in p.stderr.splitlines()[-1]
    assert sorted(x.name for x in out.iterdir()) == ["2025-03-01", "2025-03-02", "2025-03-03"]
    assert (tmp_path / "t" / "intensity.csv.gz").exists() and not (tmp_path / "truth").exists()
