"""The ingest DAG on simulated extracts with dirt, checked row by row against the
simulator's own log of the dirt it injected (truth/dirt.csv.gz)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess

import pandas as pd
import pytest

from hotspots.simulate import simulate
from tests.conftest import run_dag

pytestmark = pytest.mark.integration
DATA_TABLES = ("raw.complaints", "raw.complaint_versions", "raw.transactions", "raw.withdrawals",
               "ingest.quarantine")


def snapshot(sql, tables=DATA_TABLES + ("ingest.extract_ledger", "ingest.file_ledger")):
    return {t: sql(f"select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {t} t")[0]
            for t in tables}


def rewrite(folder, name, transform):
    """Rewrites one file of an extract through transform(rows) and its manifest entry."""
    path = folder / name
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if name.endswith(".gz") else raw).decode("utf-8", "surrogateescape")
    rows = list(csv.reader(io.StringIO(text)))
    rows = transform(rows)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    data = buf.getvalue().encode("utf-8", "surrogateescape")
    data = gzip.compress(data, mtime=0) if name.endswith(".gz") else data
    path.write_bytes(data)
    man = json.loads((folder / "_MANIFEST.json").read_text())
    man["files"][name] = {"rows": len(rows) - 1, "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "_MANIFEST.json").write_text(json.dumps(man))


def test_simulated_dirt_is_accounted_exactly(warehouse, sql, tmp_path):
    extracts, truth = tmp_path / "sim" / "extracts", tmp_path / "sim" / "truth"
    simulate(extracts, "2026-01-01", 6, 0.03, seed=3, truth=truth, dirty_rate=0.03, progress=False)
    dates = sorted(p.name for p in extracts.iterdir())
    dirt = pd.read_csv(truth / "dirt.csv.gz", dtype=str)

    # 1. The first two dates: some transfers and withdrawals arrive before their complaint.
    early = tmp_path / "early"
    early.mkdir()
    for d in dates[:2]:
        (early / d).symlink_to(extracts / d)
    run_dag("ingest_extracts", {"landing": str(early), "warehouse": warehouse})
    unlinked_before = {r[0] for r in sql("select txn_id from ingest.unlinked_transactions")}
    assert unlinked_before

    # 2. Everything.
    out = run_dag("ingest_extracts", {"landing": str(extracts), "warehouse": warehouse})
    assert "{'unchanged': 2, 'loaded': 4}" in out or "{'loaded': 4, 'unchanged': 2}" in out
    kept = {r[0] for r in sql("select txn_id from raw.transactions where txn_id = any(%s)", (list(unlinked_before),))}
    assert kept == unlinked_before, "early transfers must be kept"
    still = {r[0] for r in sql("select txn_id from ingest.unlinked_transactions")}
    assert unlinked_before - still, "complaints that arrived later must link the early transfers"

    # Every quarantined row is exactly a row the simulator made dirty, with the reason it expects.
    expected_q = {(r.extract_date, r.file, int(r.line_no)): r.expected.split(":", 1)[1]
                  for r in dirt.itertuples() if r.expected.startswith("quarantine:")}
    actual_q = {(str(d), f, n): reason for d, f, n, reason in
                sql("select extract_date, file_name, line_no, reason from ingest.quarantine")}
    assert actual_q == expected_q
    # Every row loaded with a repair flag is a row the simulator dirtied that way, and vice versa.
    expected_r = {(r.extract_date, r.file, int(r.line_no)): [r.expected.split(":", 1)[1]]
                  for r in dirt.itertuples() if r.expected.startswith("repair:")}
    actual_r = {}
    for table in ("raw.complaint_versions", "raw.transactions", "raw.withdrawals"):
        for d, f, n, flags in sql(f"select extract_date, source_file, source_line, dq_flags from {table} "
                                  "where dq_flags <> '{}'"):
            actual_r[(str(d), f, n)] = flags
    assert actual_r == expected_r
    # The ledger accounts for every data row of every file.
    for d in dates:
        man = json.loads((extracts / d / "_MANIFEST.json").read_text())
        for name, spec in man["files"].items():
            (read, loaded, quarantined), = sql("""select fl.rows_read, fl.rows_loaded, fl.rows_quarantined
                from ingest.file_ledger fl join ingest.extract_ledger el using (delivery_id)
                where el.extract_date = %s and fl.file_name = %s and el.status = 'loaded'""", (d, name))
            assert read == spec["rows"] and loaded + quarantined == read
            n_q = sum(1 for k in expected_q if k[0] == d and k[1] == name)
            assert quarantined == n_q

    # No clear mobile number in any table or log.
    mobiles = set()
    for d in dates:
        path = next((extracts / d).glob("complaints.csv*"))
        text = (gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes())
        for row in csv.DictReader(io.StringIO(text.decode("utf-8", "replace"))):
            m = (row.get("victim_mobile") or "").strip()
            if len(m) == 10 and m.isdigit():
                mobiles.add(m)
    assert len(mobiles) > 100
    dump = subprocess.run(["pg_dump", "--data-only", "-d", warehouse], capture_output=True, text=True,
                          check=True).stdout
    assert sql("select count(*) from raw.complaints where victim_mobile_hash is not null")[0][0] > 100
    logs = ""
    for root, _, files in os.walk(os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]):
        for f in files:
            logs += open(os.path.join(root, f), errors="replace").read()
    for m in mobiles:
        assert m not in dump and m not in logs and m not in out

    # 3. A re-run changes nothing.
    before = snapshot(sql)
    out = run_dag("ingest_extracts", {"landing": str(extracts), "warehouse": warehouse})
    assert "{'unchanged': 6}" in out
    assert snapshot(sql) == before

    # 4. A corrupted file rejects its extract date whole; nothing else changes.
    second = tmp_path / "second"
    shutil.copytree(extracts, second)
    victim = next((second / dates[3]).glob("transactions.csv*"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    out = run_dag("ingest_extracts", {"landing": str(second), "warehouse": warehouse})
    assert f"REJECTED {dates[3]}" in out
    (status, reason), = sql("""select status, reason from ingest.extract_ledger where extract_date = %s
                               order by delivery_id desc limit 1""", (dates[3],))
    assert status == "rejected" and "sha256" in reason
    assert {t: v for t, v in snapshot(sql, DATA_TABLES).items()} == {t: before[t] for t in DATA_TABLES}

    # 5. A corrected re-send of a date upserts by key: one amount changes, no row is duplicated.
    shutil.rmtree(second / dates[3])
    shutil.copytree(extracts / dates[3], second / dates[3])
    quarantined_lines = {k[2] for k in expected_q if k[0] == dates[4] and k[1].startswith("transactions")}
    tx_name = next((second / dates[4]).glob("transactions.csv*")).name
    changed = {}

    def bump(rows):
        h = rows[0]
        for i, r in enumerate(rows[1:], start=2):
            if i not in quarantined_lines and len(r) == len(h) and not changed:
                r[h.index("amount_inr")] = "4242.42"
                changed["txn_id"] = r[h.index("txn_id")]
        return rows

    rewrite(second / dates[4], tx_name, bump)
    counts = {t: sql(f"select count(*) from {t}")[0][0] for t in DATA_TABLES}
    out = run_dag("ingest_extracts", {"landing": str(second), "warehouse": warehouse})
    # dates[3] loads again (its last delivery was the rejected one), dates[4] is the corrected one.
    assert "'loaded': 2" in out
    assert sql("select amount_inr::float from raw.transactions where txn_id = %s", (changed["txn_id"],))[0][0] == \
        pytest.approx(4242.42)
    assert {t: sql(f"select count(*) from {t}")[0][0] for t in DATA_TABLES} == counts
