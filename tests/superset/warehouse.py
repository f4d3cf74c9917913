"""A small warehouse with a real forecast for the Superset tests, built through the pipeline's own
code without Airflow (the integration tests of the other layers run the DAGs): simulate a short
history, ingest it, register cells, dbt, train and promote, score, and a short backtest so the
health dashboard has metrics. Run alone: `python -m tests.superset.warehouse NAME` under `make`'s
environment. About 2-3 minutes at the default size on 2 cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START, DAYS, SCALE, SEED = "2026-01-01", 60, 0.03, 11


def _dbt(args: list[str], warehouse: str, target: Path) -> None:
    env = dict(os.environ, WAREHOUSE=warehouse, DBT_PROFILES_DIR=str(ROOT / "dbt"))
    p = subprocess.run(["dbt", *args, "--project-dir", str(ROOT / "dbt"), "--target-path", str(target),
                        "--log-path", str(target / "logs")], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(args)} failed:\n{p.stdout[-4000:]}{p.stderr[-2000:]}")


def build(warehouse: str, base: Path, log=print) -> dict:
    """Builds the warehouse `warehouse` (created if missing) from a simulation under `base`."""
    from hotspots import db
    from hotspots.cli import ingest, init_warehouse
    from hotspots.forecast.backtest import run as backtest
    from hotspots.forecast.score import score
    from hotspots.forecast.train import train
    from hotspots.geo.cells import register_cells
    from hotspots.simulate import simulate

    t0 = time.perf_counter()
    landing = base / "extracts"
    if not (base / ".complete").exists():
        simulate(landing, START, DAYS, SCALE, SEED, truth=base / "truth", progress=False)
        (base / ".complete").touch()
    subprocess.run([str(ROOT / "scripts" / "pg.sh"), "ensure-db", warehouse, "postgis"], check=True,
                   capture_output=True)
    init_warehouse(warehouse)
    ingest(landing, warehouse)
    conn = db.connect(warehouse)
    register_cells(conn)
    conn.commit()
    conn.close()
    target = base / "dbt-target"
    _dbt(["seed"], warehouse, target)
    _dbt(["run"], warehouse, target)
    log(f"warehouse: {warehouse} features built in {time.perf_counter() - t0:.0f} s")
    train(warehouse, str(landing), log=lambda *a: None)
    score(warehouse, log=lambda *a: None)
    import pandas as pd

    end = pd.Timestamp(START) + pd.Timedelta(days=DAYS - 1)
    backtest(warehouse, end - pd.Timedelta(days=2), end, str(landing))
    log(f"warehouse: {warehouse} forecast ready in {time.perf_counter() - t0:.0f} s")
    return {"warehouse": warehouse, "landing": landing}


if __name__ == "__main__":
    build(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / ".local" / "superset-test" / "sim")
