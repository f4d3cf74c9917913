"""The features DAG (dbt through Cosmos) after the ingest DAG, for real.

- features hold what hand computation over the raw tables gives;
- a daily incremental build gives the same rows as a full rebuild;
- the terminal registry locates withdrawals without coordinates at their terminal's
  position as known when the row first arrived (an independent pandas reading of the
  raw rows agrees), and a later extract never moves a row that had arrived before it;
- `dbt build --full-refresh` (models, data tests and unit tests) passes;
- the daily path's data tests (test_scope: built) read the rows a build can have changed, the
  full suite every row.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta

import pandas as pd
import psycopg2
import pytest

from tests.conftest import PRODUCER_B, ROOT, run_dag

pytestmark = pytest.mark.integration
FEATURE_TABLES = ("marts.fct_cell_daily_features", "intermediate.int_cell_withdrawal_windows",
                  "marts.fct_cell_targets", "intermediate.int_terminal_registry",
                  "intermediate.int_withdrawals_located", "intermediate.int_withdrawals_arrived_by_cell",
                  "intermediate.int_cell_pressure_daily")


def located_by_hand(sql) -> pd.DataFrame:
    """The location rule read straight from the raw rows, without dbt. The terminal's position:
    the cell most of its reports with coordinates fell in, counting only reports that had first
    arrived by the row's own first extract (ties: the cell seen first, then the smaller index).
    A fixed terminal (ATM, branch, shop till) is placed there whenever it has one; otherwise the
    row's own coordinates; else the terminal's position; else the PIN centroid."""
    w = pd.DataFrame(sql("""
        select w.withdrawal_id, nullif(trim(w.terminal_id), '') as terminal_id, w.channel, w.h3_cell as coord_cell,
               p.h3_cell as pin_cell, w.first_extract_date,
               (w.withdrawn_at at time zone 'Asia/Kolkata')::date as event_date
        from raw.withdrawals w left join ref.pincodes p on p.pincode = w.pincode"""),
        columns=["withdrawal_id", "terminal_id", "channel", "coord_cell", "pin_cell", "extract_date", "event_date"])
    reports = w[w["coord_cell"].notna() & w["terminal_id"].notna()]
    cells, by = [], []
    for row in w.itertuples():
        known = reports[(reports["terminal_id"] == row.terminal_id) & (reports["extract_date"] <= row.extract_date)]
        position = None
        if pd.notna(row.terminal_id) and len(known):
            stats = known.groupby("coord_cell").agg(n=("extract_date", "size"), first=("extract_date", "min"))
            stats = stats.reset_index().sort_values(["n", "first", "coord_cell"], ascending=[False, True, True])
            position = stats["coord_cell"].iloc[0]
        if position is not None and row.channel in ("ATM", "BRANCH", "POS_CASH"):
            cells.append(position)
            by.append("terminal")
        elif pd.notna(row.coord_cell):
            cells.append(row.coord_cell)
            by.append("coordinates")
        elif position is not None:
            cells.append(position)
            by.append("terminal")
        else:
            cells.append(row.pin_cell if pd.notna(row.pin_cell) else None)
            by.append("pincode" if pd.notna(row.pin_cell) else None)
    return w.assign(cell=cells, located_by=by)


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
    early = dict(sql("select withdrawal_id, h3_cell from intermediate.int_withdrawals_located"))

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

    # The terminal registry: producer-b reports a fifth of its withdrawals with a terminal but
    # no coordinates, and many of those terminals with coordinates elsewhere.
    hand = located_by_hand(sql)
    dbt_rows = pd.DataFrame(sql("select withdrawal_id, h3_cell, located_by from intermediate.int_withdrawals_located"),
                            columns=["withdrawal_id", "h3_cell", "located_by"])
    both = hand.merge(dbt_rows, on="withdrawal_id", how="outer", indicator=True)
    assert (both["_merge"] == "both").all()
    assert (both["cell"].fillna("-") == both["h3_cell"].fillna("-")).all(), both[both["cell"] != both["h3_cell"]]
    assert (both["located_by_x"].fillna("-") == both["located_by_y"].fillna("-")).all()
    counts = both["located_by_y"].value_counts()
    assert counts.get("terminal", 0) >= 50 and counts.get("pincode", 0) > 0, counts
    # A row that arrived in the first two extracts is where it was before the later ones came
    # (unless a later extract re-sent the row itself).
    resent = {r[0] for r in sql("select withdrawal_id from raw.withdrawals where extract_date > first_extract_date")}
    now = dict(zip(both["withdrawal_id"], both["h3_cell"], strict=True))
    moved = [k for k, cell in early.items() if k not in resent and now[k] != cell]
    assert not moved and len(early) > 200
    (n_terminals,), = sql("select count(*) from marts.dim_terminals where h3_cell is not null")
    assert n_terminals > 100

    # Hand computation over the raw tables: what had arrived before D, in windows ending D-1.
    w = hand.loc[hand["cell"].notna(), ["cell", "event_date", "extract_date"]]
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

    # The daily path's data tests (test_scope: built, dbt/macros/test_scope.sql) read the rows the
    # build can have changed; the full suite (the DAG's dbt_features_audit) reads every row.
    def failing(scope: str | None) -> set[str]:
        args = ["dbt", "test", "--select", "+fct_cell_daily_features", "--indirect-selection", "cautious",
                "--exclude", "test_type:unit", "--project-dir", str(ROOT / "dbt"),
                "--target-path", str(tmp_path / "dbt-target"), "--log-path", str(tmp_path / "dbt-logs")]
        p = subprocess.run(args + (["--vars", f"{{test_scope: {scope}}}"] if scope else []), env=env,
                           capture_output=True, text=True, timeout=900)
        results = json.loads((tmp_path / "dbt-target" / "run_results.json").read_text())["results"]
        assert len(results) > 30, p.stdout[-3000:]
        bad = {r["unique_id"].split(".")[2] for r in results if r["status"] != "pass"}
        assert (p.returncode != 0) == bool(bad), p.stdout[-3000:]
        return bad

    status = "accepted_values_stg_raw__transactions_status__COMPLETED__ON_HOLD__REVERSED"
    # A bad row from a delivery the features were built after: only the full suite reads it.
    sql("""update raw.transactions set status = 'BOGUS'
           where txn_id = (select txn_id from raw.transactions order by extract_date, txn_id limit 1)""")
    assert failing("built") == set()
    assert failing(None) == {status}
    # The same in a delivery loaded after the last build, and a feature row of the latest build
    # without its key: the daily path's tests read both.
    sql("""update ingest.extract_ledger set finished_at = now()
           where delivery_id = (select max(delivery_id) from ingest.extract_ledger where status = 'loaded')""")
    sql("""update raw.transactions set status = 'BOGUS'
           where txn_id = (select txn_id from raw.transactions where extract_date = (select max(extract_date)
                           from raw.transactions) order by txn_id limit 1)""")
    sql("""update marts.fct_cell_daily_features set cell_day_key = null
           where cell_day_key = (select min(cell_day_key) from marts.fct_cell_daily_features)""")
    assert failing("built") == {status, "not_null_fct_cell_daily_features_cell_day_key"}
