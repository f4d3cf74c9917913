"""The first load of an empty warehouse, all dates at once (hotspots.ingest.bulk), stores exactly
what loading the same dates one by one stores: every raw table row for row (winning versions,
first arrivals, lines, flags), the quarantine, the ledgers' counts and reasons. On dates neither
producer shaped for it: the simulator's with dirt, producer-b's, keys re-sent on later dates
(changed and unchanged), complaint versions re-sent, and rejected deliveries."""

from __future__ import annotations

import csv
import gzip
import io
import os
import shutil
import subprocess
import sys

import pytest

from hotspots.ingest import bulk, load
from hotspots.simulate import simulate
from tests.conftest import PRODUCER_B, ROOT, create_db, drop_db, runner
from tests.integration.test_ingest_simulated import rewrite

pytestmark = pytest.mark.integration

RAW = ("raw.complaints", "raw.complaint_versions", "raw.transactions", "raw.withdrawals")


def contents(run) -> dict:
    """Everything the loads wrote that does not depend on when or in which order they ran:
    delivery ids and timings left out."""
    out = {t: run(f"select t::text from {t} t order by 1") for t in RAW}
    out["quarantine"] = run("""select extract_date, entity, file_name, line_no, q.reason, details::text, raw_text,
                                      el.status, el.fingerprint
                               from ingest.quarantine q join ingest.extract_ledger el using (delivery_id, extract_date)
                               order by 1, 3, 4""")
    out["extract_ledger"] = run("""select extract_date, fingerprint, status, reason, rows_read, rows_loaded,
                                          rows_quarantined, rows_repaired, quarantine_reasons::text
                                   from ingest.extract_ledger order by 1, 2, 3""")
    out["file_ledger"] = run("""select el.extract_date, fl.file_name, fl.entity, fl.sha256, fl.rows_manifest,
                                       fl.rows_read, fl.rows_loaded, fl.rows_quarantined, fl.rows_repaired,
                                       fl.quarantine_reasons::text
                                from ingest.file_ledger fl join ingest.extract_ledger el using (delivery_id)
                                order by 1, 2""")
    return out


def _landing(tmp_path):
    """Twelve simulated dates with dirt and producer-b's four, with re-sends and rejections."""
    sim = tmp_path / "sim"
    simulate(sim / "extracts", "2026-01-20", 12, 0.03, seed=5, truth=sim / "truth", dirty_rate=0.03,
             progress=False)
    landing = tmp_path / "landing"
    shutil.copytree(sim / "extracts", landing)
    for d in PRODUCER_B.iterdir():
        if d.is_dir():
            shutil.copytree(d, landing / d.name)
    dates = sorted(p.name for p in landing.iterdir())
    tx = {d: next((landing / d).glob("transactions.csv*")).name for d in dates}
    cp = {d: next((landing / d).glob("complaints.csv*")).name for d in dates}

    # Transfers of the second date delivered again on the sixth: half of them with another amount.
    def rows_of(d, name):
        raw = (landing / d / name).read_bytes()
        text = (gzip.decompress(raw) if name.endswith(".gz") else raw).decode("utf-8", "surrogateescape")
        return list(csv.reader(io.StringIO(text)))

    early = rows_of(dates[1], tx[dates[1]])
    h = early[0]
    resent = [list(r) for r in early[1:40] if len(r) == len(h)]
    for i, r in enumerate(resent):
        if i % 2:
            r[h.index("amount_inr")] = "777.00"
    rewrite(landing / dates[5], tx[dates[5]], lambda rows: rows + [r[:] for r in resent if len(r) == len(rows[0])])
    # The same transfers once more, unchanged, on the eighth (a re-send keeps the first arrival).
    rewrite(landing / dates[7], tx[dates[7]], lambda rows: rows + [r[:] for r in resent if len(r) == len(rows[0])])
    # Complaint versions of the third date re-sent on the ninth, with another amount lost.
    versions = rows_of(dates[2], cp[dates[2]])
    hc = versions[0]
    again = [list(r) for r in versions[1:30] if len(r) == len(hc)]
    for r in again:
        r[hc.index("amount_lost_inr")] = "1234.00"
    rewrite(landing / dates[8], cp[dates[8]], lambda rows: rows + again)
    # A delivery whose file disagrees with its manifest (rejected whole) and one with a broken manifest.
    victim = landing / dates[4] / tx[dates[4]]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    (landing / dates[10] / "_MANIFEST.json").write_text("{not json")
    return landing, dates


def test_bulk_first_load_stores_what_date_by_date_stores(tmp_path):
    landing, dates = _landing(tmp_path)
    one_by_one, at_once = "test_bulk_seq", "test_bulk_all"
    for name in (one_by_one, at_once):
        drop_db(name)
        create_db(name)
    try:
        for d in dates:
            load.load_extract(landing, d, one_by_one)
        with runner(one_by_one) as run:
            expected = contents(run)
        # The fixture exercises what it should: keys on more than one date, a re-sent version,
        # both rejections, quarantined rows.
        assert sum(r[2] == "rejected" for r in expected["extract_ledger"]) == 2
        with runner(one_by_one) as run:
            assert run("select count(*) from raw.transactions where first_extract_date < extract_date")[0][0] >= 39
            assert run("select count(*) from raw.complaint_versions where first_extract_date < extract_date")[0][0] > 0
            assert run("select count(*) from raw.transactions where amount_inr = 777")[0][0] > 0
        assert len(expected["quarantine"]) > 10

        done = bulk.load_all(landing, dates, at_once)
        assert done is not None and [r.extract_date for r in done["results"]] == dates
        assert {r.status for r in done["results"]} == {"loaded", "rejected"}
        with runner(at_once) as run:
            got = contents(run)
            # The indexes and keys are back, exactly as schema.sql made them.
            indexes = run("select indexname, indexdef from pg_indexes where schemaname = 'raw' order by 1")
        for part in expected:
            assert got[part] == expected[part], part
        with runner(one_by_one) as run:
            assert indexes == run("select indexname, indexdef from pg_indexes where schemaname = 'raw' order by 1")

        # Once the raw tables hold rows, the bulk path stands aside (date by date takes over), and a
        # re-run of the same landing changes nothing.
        assert bulk.load_all(landing, dates, at_once) is None
        for d in dates:
            assert load.load_extract(landing, d, at_once).status in ("unchanged", "rejected")
        with runner(at_once) as run:
            assert contents(run) == got
    finally:
        drop_db(one_by_one)
        drop_db(at_once)


def test_cli_loads_an_empty_warehouse_at_once_and_falls_back_when_it_holds_rows(warehouse, tmp_path):
    landing = tmp_path / "landing"
    simulate(landing, "2026-03-01", bulk.MIN_DATES, 0.01, seed=2, truth=tmp_path / "truth", progress=False)
    cli = [sys.executable, "-m", "hotspots.cli"]
    out = subprocess.run([*cli, "--warehouse", warehouse, "ingest", "--landing", str(landing)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "all dates at once" in out.stdout
    assert out.stdout.count(" loaded read=") == bulk.MIN_DATES
    out = subprocess.run([*cli, "--warehouse", warehouse, "ingest", "--landing", str(landing)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "all dates at once" not in out.stdout
    assert out.stdout.count(" unchanged read=") == bulk.MIN_DATES


def test_a_failed_first_load_keeps_nothing_and_the_dates_load_one_by_one(warehouse, tmp_path):
    """The ingest's own role may not drop the raw tables' indexes (it does not own them): the
    first load fails, rolls back whole, and the command loads the dates one by one instead."""
    landing = tmp_path / "landing"
    simulate(landing, "2026-04-01", bulk.MIN_DATES, 0.01, seed=4, truth=tmp_path / "truth", progress=False)
    cli = [sys.executable, "-m", "hotspots.cli", "--warehouse", warehouse]
    subprocess.run([*cli, "init-warehouse"], check=True, capture_output=True)
    password = os.environ.get("HOTSPOTS_INGEST_PASSWORD") or \
        (ROOT / ".local" / "secrets" / "hotspots_ingest").read_text().strip()
    env = {**os.environ, "PGUSER": "hotspots_ingest", "PGPASSWORD": password}
    code = ("import sys\nfrom pathlib import Path\nfrom hotspots.cli import ingest\n"
            "sys.exit(ingest(Path(sys.argv[1]), sys.argv[2]))")
    out = subprocess.run([sys.executable, "-c", code, str(landing), warehouse], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "at once failed, nothing kept (InsufficientPrivilege" in out.stderr
    assert out.stdout.count(" loaded read=") == bulk.MIN_DATES
    with runner(warehouse) as run:
        # One ledger row per date: the failed first load left none of its own.
        assert run("select count(*), count(distinct extract_date) from ingest.extract_ledger")[0] == \
            (bulk.MIN_DATES, bulk.MIN_DATES)
        assert run("select count(*) from raw.transactions")[0][0] > 0
        assert run("select count(*) from pg_indexes where schemaname = 'raw'")[0][0] == 12
