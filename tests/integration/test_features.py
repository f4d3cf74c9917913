"""The features DAG (dbt through Cosmos) after the ingest DAG, for real.

- features hold what hand computation over the raw tables gives;
- a daily incremental build gives the same rows as a full rebuild;
- `dbt build --full-refresh` (models, data tests and unit tests) passes.
"""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta

import pandas as pd
import psycopg2
import pytest

from tests.conftest import PRODUCER_B, ROOT, run_dag

pytestmark = pytest.mark.integration
FEATURE_TABLES = ("marts.fct_cell_daily_features", "intermediate.int_cell_withdrawal_windows",
                  "marts.fct_cell_targets")


def table(warehouse, name):
    conn = psycopg2.connect(dbname=warehouse)
    df = pd.read_sql(f"select * from {name}", conn)
    conn.close()
    df = df.drop(columns=[c for c in ("built_at",) if c in df.columns])
    return df.sort_values(list(df.columns[:3])).reset_index(drop=True)


def test_incremental_equals_full_and_hand_computed_values(warehouse, sql, tmp_path):
    dates = sorted(p.name for p in PRODUCER_B.iterdir() if p.is_dir())
    landing = tmp_path / "landing"
    landing.mkdir()
    for d in dates[:2]:
        (landing / d).symlink_to(PRODUCER_B / d)
    run_dag("ingest_extracts", {"landing": str(landing), "warehouse": warehouse})
    out = run_dag("build_features", {"warehouse": warehouse})
    assert "summary: features" in out
    first_max = sql("select max(feature_date) from marts.fct_cell_daily_features")[0][0]

    for d in dates[2:]:
        (landing / d).symlink_to(PRODUCER_B / d)
    run_dag("ingest_extracts", {"landing": str(landing), "warehouse": warehouse})
    run_dag("build_features", {"warehouse": warehouse})
    last_max = sql("select max(feature_date) from marts.fct_cell_daily_features")[0][0]
    assert last_max == first_max + timedelta(days=2)
    incremental = {t: table(warehouse, t) for t in FEATURE_TABLES}
    assert len(incremental["marts.fct_cell_daily_features"]) > 100

    env = dict(os.environ, WAREHOUSE=warehouse, DBT_PROFILES_DIR=str(ROOT / "dbt"))
    p = subprocess.run(["dbt", "build", "--full-refresh", "--project-dir", str(ROOT / "dbt"),
                        "--target-path", str(tmp_path / "dbt-target"), "--log-path", str(tmp_path / "dbt-logs")],
                       env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-4000:]
    assert "ERROR=0" in p.stdout and "unit_test" not in p.stdout.split("Done.")[-1].lower().replace("error=0", "")
    for t in FEATURE_TABLES:
        pd.testing.assert_frame_equal(incremental[t], table(warehouse, t), check_dtype=False, obj=t)

    # Hand computation over the raw tables: what had arrived before D, in windows ending D-1.
    w = pd.DataFrame(sql("""
        select coalesce(w.h3_cell, p.h3_cell) as cell,
               (w.withdrawn_at at time zone 'Asia/Kolkata')::date as event_date, w.first_extract_date
        from raw.withdrawals w left join ref.pincodes p on p.pincode = w.pincode
        where coalesce(w.h3_cell, p.h3_cell) is not null"""), columns=["cell", "event_date", "extract_date"])
    feats = incremental["marts.fct_cell_daily_features"]
    busiest = w["cell"].value_counts().index[:3]
    checked = 0
    for cell in busiest:
        for D in sorted(feats.loc[feats["h3_cell"] == cell, "feature_date"]):
            seen = w[(w["cell"] == cell) & (w["extract_date"] < D) & (w["event_date"] < D)]
            row = feats[(feats["h3_cell"] == cell) & (feats["feature_date"] == D)].iloc[0]
            assert row["wd_7d"] == (seen["event_date"] >= D - timedelta(days=7)).sum(), (cell, D)
            assert row["wd_90d"] == (seen["event_date"] >= D - timedelta(days=90)).sum(), (cell, D)
            assert row["wd_1d"] == (seen["event_date"] == D - timedelta(days=1)).sum(), (cell, D)
            checked += 1
    assert checked >= 3
    # Nothing that arrived on or after D is in D's features: the latest extract adds no feature to its own day.
    late = sql("""select count(*) from marts.fct_cell_daily_features f
                  where f.feature_date <= (select min(first_extract_date) from raw.withdrawals) and f.wd_90d > 0""")[0][0]
    assert late == 0
