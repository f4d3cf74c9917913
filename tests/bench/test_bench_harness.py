"""`make bench` cannot rot: the harness runs end to end at a tiny scale (10 days at scale 0.005)
into a throwaway warehouse, and its report names every stage it ran with a positive wall time,
rows per second and peak memory, lists the ones it skipped, and has a line for every target of
issue 12. Training, scoring and alerts are skipped (--no-forecast: they need the MLflow server
and are covered by the forecasting and alerts tests); timings are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import ROOT, _require_make_env, drop_db

pytestmark = pytest.mark.integration

RAN = ["ingest", "cells", "dbt_seed", "dbt_full", "ingest_day", "dbt_incremental", "dbt_other_marts"]
SKIPPED = ["train", "score", "score_day", "alerts", "airflow_ingest", "airflow_features", "airflow_score",
           "airflow_alerts", "superset"]


def test_bench_quick_small_scale_reports_every_stage_and_target(tmp_path):
    _require_make_env()
    from hotspots.bench import STAGES, TARGETS

    wh = f"h12b_bench_{uuid.uuid4().hex[:8]}"
    report = tmp_path / "benchmarks.md"
    docs = ROOT / "docs" / "benchmarks.md"
    docs_before = docs.stat().st_mtime_ns if docs.exists() else None
    try:
        p = subprocess.run([sys.executable, "-m", "hotspots.bench", "--quick", "--scale", "0.005", "--days", "10",
                            "--no-forecast", "--warehouse", wh, "--workdir", str(tmp_path / "work"),
                            "--report", str(report)], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ), cwd=ROOT)
    finally:
        drop_db(wh)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    figures = json.loads((tmp_path / "work" / "results.jsonl").read_text().splitlines()[-1])
    stages = figures["stages"]
    assert sorted(stages) == sorted(RAN)
    for name in RAN:
        s = stages[name]
        assert s["wall_s"] > 0 and s["rows"] > 0 and s["rows_per_s"] > 0, s
        assert 0 < s["peak_rss_gib"] < 24, s    # a resident set, not a figure carried over from the parent
    assert figures["ingest_copy_ratio"] > 0 and figures["copy_rows"] > 0
    assert figures["database_bytes"] > 0
    assert figures["machine"]["cpus"] >= 1 and "loadavg_end" in figures["machine"]
    assert figures["machine"]["postgresql"][:2].isdigit()

    text = report.read_text()
    assert "not full size" in text
    rows = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| ") and ln.count("|") == 7}
    assert set(STAGES) <= set(rows)
    for name in RAN:
        cells = [c.strip() for c in rows[name].split("|")[3:7]]
        assert all(c not in ("", "-", "skipped") for c in cells), rows[name]
    for name in SKIPPED:
        assert "| skipped |" in rows[name]
    target_lines = [ln for ln in text.split("## Targets")[1].splitlines() if ln.startswith("- **")]
    assert len(target_lines) == len(TARGETS)
    for (key, desc, *_), line in zip(TARGETS, target_lines, strict=True):
        assert desc in line and any(f"**{s}**" in line for s in ("met", "NOT met", "not measured")), (key, line)
    # the measured ones carry their figure; the ones needing the skipped stages say which
    assert "dbt full rebuild < 5 min: " in text and "(stages train not run)" in text
    # docs/ only ever holds full-size figures; the harness's files stay in its workdir
    assert (docs.stat().st_mtime_ns if docs.exists() else None) == docs_before
    assert (tmp_path / "work" / "s0.005-d10-seed11" / ".complete").exists()


def test_growth_table_flags_a_stage_growing_faster_than_its_data():
    from hotspots.bench import growth_table

    def run(rows, ingest_s, dbt_s):
        return {"ingest_rows": rows, "stages": {"ingest": {"wall_s": ingest_s}, "dbt_full": {"wall_s": dbt_s}}}

    results = {(0.25, 10): run(1000, 10.0, 10.0), (0.5, 10): run(2000, 20.0, 40.0), (1.0, 10): run(4000, 40.0, 160.0),
               (1.0, 5): run(2000, 20.0, 40.0)}
    table = growth_table(results, [(0.25, 10), (0.5, 10), (1.0, 10)], [(1.0, 5), (1.0, 10)])
    volume, history = table.split("History")

    def rows(part):
        return {ln.split("|")[1].strip(): ln for ln in part.splitlines() if ln.startswith("| ") and "---" not in ln}

    for part, ratios in ((volume, ("4.00 (4.00)", "16.00 (4.00)")), (history, ("2.00 (2.00)", "4.00 (2.00)"))):
        lines = rows(part)
        assert "faster than linear" not in lines["ingest"] and ratios[0] in lines["ingest"]
        assert "faster than linear" in lines["dbt_full"] and ratios[1] in lines["dbt_full"]


@pytest.mark.parametrize("flag", ["ingest_only", "dbt_only", "forecast_only", "alerts_only", "no_forecast"])
def test_a_full_size_run_that_skips_stages_never_replaces_the_full_runs_table(tmp_path, monkeypatch, flag):
    import argparse

    from hotspots import bench

    monkeypatch.setattr(bench, "render", lambda figures, growth_table="": "table\n")
    a = argparse.Namespace(report=None, quick=False, scale=1.0, days=730, workdir=tmp_path, **{flag: True})
    path = bench.report({}, a)
    assert path == tmp_path / f"benchmarks-{flag.replace('_', '-')}.md"
    assert path.read_text() == "table\n"
