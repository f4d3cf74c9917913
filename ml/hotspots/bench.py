"""Benchmarks that print figures (`make bench`): every stage of the pipeline, one table.

`python -m hotspots.bench` (defaults: scale 1.0, 730 days, seed 11): simulate (reused when
already there), ingest all extract dates but the last with a plain COPY of the same rows side
by side (hotspots.ingest.bench), build the features from scratch (the full rebuild), train and
score, then the daily path: ingest the last date, the incremental build, scoring and one day's
alerts; the dashboards' render times last. Every stage runs in its own process: its wall time
and its peak resident memory (the process and what it waited for; PostgreSQL's own backends are
not counted) are measured the same way for all. At the end one table: the machine, each stage
(wall time, rows, rows per second, peak memory), the COPY reference and the ingest ratio, the
database size on disk, and every target of issue 12 met / NOT met with its figure; for a missed
target the why and what was tried come from docs/benchmarks-notes.md (hand-written, kept across
regenerations). A full-size run of every stage writes the table to docs/benchmarks.md (one that skips stages,
--ingest-only and the like, writes .local/bench/benchmarks-ingest-only.md and so on); `--quick` (BENCH_QUICK=1:
scale 0.02, 70 days, no dashboards) writes .local/bench/benchmarks-quick.md, so docs/ only ever
holds full-size figures. `--growth` runs the harness at three volumes (scale s/4, s/2, s) and two
history lengths (days d/2, d) and prints each stage's cost ratio against its data ratio.
Figures are printed and appended to results.jsonl, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from hotspots import db, settings

# The quick mode's days: training needs evaluation.days (28) after min_history_days (28) and the
# 7-day horizon's labels (config/forecast.yml).
QUICK = {"scale": 0.02, "days": 70}
NOTES = settings.ROOT / "docs" / "benchmarks-notes.md"
# The stages in the order of the table; the backfill's and the national day's, for their targets.
STAGES = ["ingest", "cells", "dbt_seed", "dbt_full", "train", "score",
          "ingest_day", "dbt_incremental", "dbt_other_marts", "score_day", "alerts",
          "airflow_ingest", "airflow_features", "airflow_score", "airflow_alerts", "superset"]
BACKFILL = ["ingest", "cells", "dbt_seed", "dbt_full", "train", "score"]
ONE_DAY = ["ingest_day", "dbt_incremental", "score_day", "alerts"]
# The same day's chain as production runs it, one `airflow dags test` per DAG (--airflow-day).
AIRFLOW_DAY = [("airflow_ingest", "ingest_extracts"), ("airflow_features", "build_features"),
               ("airflow_score", "score_hotspots"), ("airflow_alerts", "dispatch_alerts")]
DESCRIBE = {
    "ingest": "ingest of every date but the last (all validation rules), COPY reference beside it",
    "cells": "register the H3 cells the withdrawals reached",
    "dbt_seed": "dbt seed",
    "dbt_full": "dbt run --full-refresh (all models)",
    "dbt_other_marts": "one new extract date: dbt run of the marts off the feature path",
    "train": "train_model: rolling evaluation of model and baselines, final fit, MLflow",
    "score": "scoring after the backfill",
    "ingest_day": "one new extract date: ingest",
    "dbt_incremental": "one new extract date: cells + dbt run +fct_cell_daily_features (incremental)",
    "score_day": "one new extract date: scoring",
    "alerts": "one day's alerts: decide and deliver (local SMTP and webhook receivers)",
    "airflow_ingest": "another new extract date under Airflow: `airflow dags test ingest_extracts`",
    "airflow_features": "`airflow dags test build_features` (cells, the daily path in one Cosmos `dbt build` "
                        "with its tests on the rows it changed, publish; then the same tests on every row, the "
                        "other marts, a task per model, and every remaining test)",
    "airflow_score": "`airflow dags test score_hotspots`",
    "airflow_alerts": "`airflow dags test dispatch_alerts` (local SMTP and webhook receivers)",
    "superset": "dashboards rendered in headless Chromium",
}
# Issue 12's targets: key, text, how the figure is read from the stages and figures, limit, unit.
TARGETS = [
    ("ingest_ratio", "ingest rows/s >= 0.5 x plain COPY rows/s", ">=", 0.5, ""),
    ("backfill", "two-year national backfill < 20 min", "<", 1200, "s"),
    ("training", "training run < 5 min", "<", 300, "s"),
    ("one_day", "one national day end to end < 60 s (ingest, incremental build, scoring, alerts: "
                "each stage in its own process, without Airflow)", "<", 60, "s"),
    ("one_day_airflow", "one national day under Airflow < 60 s excluding Airflow's start-up (`airflow dags test` "
                        "of each DAG; first task's start to last task's end, the features to their publish task, "
                        "less the in-process task runner's start-up before the first task's own code)",
     "<", 60, "s"),
    ("one_day_airflow_all", "one national day under Airflow < 2 min in all (the four `airflow dags test` "
                            "processes, start-up included; the features to their publish task)", "<", 120, "s"),
    ("dbt_full", "dbt full rebuild < 5 min", "<", 300, "s"),
    ("dbt_incremental", "daily incremental build < 15 s", "<", 15, "s"),
    ("peak_memory", "peak memory of every stage < 8 GiB", "<", 8, "GiB"),
]


def _hwm_gib(pid: int | str) -> float:
    """VmHWM (the peak resident set of the process's own memory map) of a process, in GiB."""
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return 0.0


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return out


class _PeakWatch:
    """Polls the peak resident set (VmHWM) of a process and its descendants while they run; the
    largest single process's is the stage's peak. (getrusage's ru_maxrss would not do: Linux
    carries the parent's resident set at fork over into the child's figure, so every child of
    a harness that simulated first would show at least the harness's own size.)"""

    def __init__(self, pid: int, every: float = 0.2):
        import threading

        self.pid, self.every, self.peak, self._stop = pid, every, 0.0, threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop.is_set():
            for p in _tree(self.pid):
                self.peak = max(self.peak, _hwm_gib(p))
            self._stop.wait(self.every)

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.peak


def _run(cmd: list[str], env: dict | None = None, show: tuple[str, ...] = ()) -> dict:
    """Runs a command; returns its wall seconds, its peak resident memory in GiB (the largest
    VmHWM of the process and its descendants, polled while they run) and its stdout. Lines
    starting with one of ``show`` are printed as they come."""
    err = tempfile.TemporaryFile(mode="w+")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    watch = _PeakWatch(p.pid)
    out = []
    for line in p.stdout:
        out.append(line)
        if show and line.startswith(show):
            print(f"  {line.rstrip()}", flush=True)
    p.wait()
    wall = time.perf_counter() - t0
    peak = watch.stop()
    stdout = "".join(out)
    if p.returncode != 0:
        err.seek(0)
        sys.stderr.write(stdout[-3000:] + err.read()[-3000:])
        raise SystemExit(f"bench: {' '.join(cmd[:3])} failed ({p.returncode})")
    err.close()
    return {"wall_s": wall, "peak_rss_gib": peak, "stdout": stdout}


def _sh(cmd: list[str], env: dict | None = None) -> str:
    return _run(cmd, env)["stdout"]


def _dbt_exe() -> str:
    exe = Path(sys.executable).parent / "dbt"
    return str(exe) if exe.exists() else "dbt"


def _dbt_measured(args: list[str], warehouse: str, target: Path) -> tuple[dict, list[dict]]:
    dbt_dir = settings.ROOT / "dbt"
    env = dict(os.environ, WAREHOUSE=warehouse, DBT_PROFILES_DIR=str(dbt_dir))
    r = _run([_dbt_exe(), *args, "--project-dir", str(dbt_dir), "--target-path", str(target), "--log-path",
              str(target / "logs")], env)
    results = json.loads((target / "run_results.json").read_text())["results"]
    return r, [{"node": r["unique_id"].split(".")[-1], "seconds": round(r["execution_time"], 2),
                "rows": (r.get("adapter_response") or {}).get("rows_affected")} for r in results]


def _dbt(args: list[str], warehouse: str, target: Path) -> tuple[float, list[dict]]:
    r, models = _dbt_measured(args, warehouse, target)
    return r["wall_s"], models


def _print_models(title: str, models: list[dict]) -> None:
    print(f"  {title}: cost per model (slowest first)")
    for m in sorted(models, key=lambda m: -m["seconds"])[:12]:
        print(f"    {m['node']:45s} {m['seconds']:8.2f} s  rows {m['rows']}")


_SHOW = ("progress:", "target:", "evaluation:", "summary:", "bench:", "bench alerts:")


def _measured(code: str) -> dict:
    """Runs Python code in a fresh process; returns its result (a dict the code assigns to
    ``result``), wall seconds and the process's peak resident memory."""
    r = _run([sys.executable, "-c", code + "\nimport json\nfrom hotspots.bench import _hwm_gib\n"
              "result['_hwm'] = _hwm_gib('self')\nprint('BENCH ' + json.dumps(result, default=str))\n"],
             show=_SHOW)
    result = json.loads(next(ln for ln in r["stdout"].splitlines() if ln.startswith("BENCH "))[6:])
    result["wall_s"] = round(r["wall_s"], 1)
    result["peak_rss_gib"] = round(max(r["peak_rss_gib"], result.pop("_hwm")), 3)
    return result


def _stage(figures: dict, name: str, wall_s: float, rows: int | None, peak_rss_gib: float, **extra) -> dict:
    st = {"stage": name, "wall_s": round(wall_s, 2), "rows": rows, "peak_rss_gib": round(peak_rss_gib, 3),
          "rows_per_s": round(rows / wall_s, 1) if rows and wall_s > 0 else None, **extra}
    figures.setdefault("stages", {})[name] = st
    return st


def _rows_affected(models: list[dict]) -> int:
    return sum(max(0, int(m["rows"] or 0)) for m in models)  # views: -1


def machine() -> dict:
    mem = None
    try:
        for ln in Path("/proc/meminfo").read_text().splitlines():
            if ln.startswith("MemTotal:"):
                mem = round(int(ln.split()[1]) / 2**20, 1)
    except OSError:
        pass
    out = {"cpus": os.cpu_count(), "memory_gib": mem, "platform": platform.platform(),
           "python": platform.python_version(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        conn = db.connect("postgres")  # the cluster's own database: the warehouse may not exist yet
        with conn.cursor() as cur:
            cur.execute("show server_version")
            out["postgresql"] = cur.fetchone()[0]
        conn.close()
    except Exception as e:  # noqa: BLE001 - the machine's description must not stop the bench
        out["postgresql"] = f"unknown ({type(e).__name__})"
    return out


def _database_size(warehouse: str) -> int:
    conn = db.connect(warehouse)
    with conn.cursor() as cur:
        cur.execute("select pg_database_size(current_database())")
        size = cur.fetchone()[0]
    conn.close()
    return size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--days", type=int, default=None, help="default 730 (70 with --quick)")
    p.add_argument("--scale", type=float, default=None, help="default 1.0 (0.02 with --quick)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--start", default="2024-11-01")
    p.add_argument("--warehouse", default="bench")
    p.add_argument("--quick", action="store_true",
                   help="development mode (BENCH_QUICK=1): scale 0.02, 70 days unless given, no dashboards; "
                        "the table goes to .local/bench/benchmarks-quick.md, never to docs/")
    p.add_argument("--workdir", type=Path, default=settings.ROOT / ".local" / "bench",
                   help="simulated extracts (cached), dbt target, results.jsonl")
    p.add_argument("--report", type=Path, default=None,
                   help="where the table goes (default: docs/benchmarks.md for a full-size run of every "
                        "stage, scale 1.0 over 730 days or more; .local/bench/benchmarks-quick.md for --quick; "
                        ".local/bench/benchmarks-ingest-only.md and the like for a run that skips stages; "
                        ".local/bench/benchmarks-s<scale>-d<days>.md otherwise)")
    p.add_argument("--growth", action="store_true",
                   help="also run the harness at scale s/4 and s/2 over the same days and at scale s over "
                        "half the days (warehouses <warehouse>_g*, dropped after), and print each stage's cost "
                        "ratio against its data ratio")
    p.add_argument("--dbt-only", action="store_true",
                   help="reuse the warehouse as loaded by an earlier bench; time the dbt builds only "
                        "(the newest extract date is marked as just delivered)")
    p.add_argument("--forecast-only", action="store_true",
                   help="reuse the warehouse as built by an earlier bench; time training and scoring only")
    p.add_argument("--no-forecast", action="store_true",
                   help="stop after the dbt builds (no training, scoring, alerts or dashboards)")
    p.add_argument("--no-alerts", action="store_true", help="skip the alerts stage")
    p.add_argument("--airflow-day", action="store_true",
                   help="hold back two dates: the first goes through the stages without Airflow, the second "
                        "through the DAGs as production runs them (`airflow dags test` of ingest_extracts, "
                        "build_features, score_hotspots, dispatch_alerts; needs make airflow-init)")
    p.add_argument("--no-superset", action="store_true", help="skip the dashboards' render times")
    p.add_argument("--ingest-only", action="store_true",
                   help="stop after the ingest and its COPY reference (with BENCH_DAYS=10: a few minutes)")
    p.add_argument("--alerts-only", action="store_true",
                   help="reuse the scored bench warehouse; time deciding and dispatching one day's alerts only")
    p.add_argument("--quality", action="store_true",
                   help="model quality instead: the backtest of the last --backtest-days after the rest "
                        "(default scenario: 240 days at scale 0.1, 60-day backtest after 180 days)")
    p.add_argument("--backtest-days", type=int, default=60)
    p.add_argument("--label", default="", help="names a variant scenario's folder and warehouse")
    p.add_argument("--variant", default="default",
                   help="the simulator's scenario variant for --quality (hotspots.simulate.VARIANTS)")
    p.add_argument("--variants", default="",
                   help="comma-separated variants for --quality, each from its own seed (seed + its position), "
                        "one table at the end; 'all' for every variant")
    a = p.parse_args(argv)
    a.days = a.days or (QUICK["days"] if a.quick else 730)
    a.scale = a.scale or (QUICK["scale"] if a.quick else 1.0)
    if a.quick:
        a.no_superset = True
    a.workdir.mkdir(parents=True, exist_ok=True)
    if a.quality and a.variants:
        return quality_variants(a)
    if a.quality:
        quality(a)
        return 0
    if a.alerts_only:  # a scored warehouse is all it needs
        figures = {"at": datetime.now(timezone.utc).isoformat()}
        r = _measured(f"from hotspots.alerts.bench import bench_alerts\nresult = bench_alerts({a.warehouse!r})")
        figures["alerts"] = r
        _save(figures, a.workdir)
        return 0
    if a.growth:
        return growth(a)
    figures = run(a)
    report(figures, a)
    return 0


def run(a) -> dict:
    """One run of the harness; returns its figures (``stages``: name -> wall_s, rows, rows_per_s,
    peak_rss_gib), appended to results.jsonl."""
    from hotspots.ingest import load
    from hotspots.simulate import simulate

    base = a.workdir / f"s{a.scale}-d{a.days}-seed{a.seed}"
    landing, marker = base / "extracts", base / ".complete"
    figures: dict = {"at": datetime.now(timezone.utc).isoformat(), "days": a.days, "scale": a.scale,
                     "seed": a.seed, "quick": bool(a.quick), "warehouse": a.warehouse,
                     "machine": machine(), "stages": {}}
    if not marker.exists():
        shutil.rmtree(base, ignore_errors=True)
        t0 = time.perf_counter()
        summary = simulate(landing, a.start, a.days, a.scale, a.seed, truth=base / "truth", progress=True)
        figures["simulate_s"] = round(time.perf_counter() - t0, 1)
        print(f"bench: simulated {a.days} days at scale {a.scale} in {figures['simulate_s']} s: {summary}")
        marker.touch()
    target = a.workdir / "dbt-target"
    if a.forecast_only:
        _forecast(a, landing, figures, "train", "score")
        _finish(figures, a)
        return figures
    dates, _ = load.discover(landing)
    airflow_day = a.airflow_day and not (a.dbt_only or a.no_forecast or a.ingest_only)
    held_back, airflow_date = (dates[-2], dates[-1]) if airflow_day else (dates[-1], None)
    partial = base / "landing-but-last"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for d in dates[:dates.index(held_back)]:
        (partial / d).symlink_to(landing / d)

    if a.dbt_only:
        from hotspots.cli import init_warehouse

        init_warehouse(a.warehouse)
    else:
        _ingest_all_but_last(a, partial, figures)
        if a.ingest_only:
            _finish(figures, a)
            return figures
    r = _measured(f"from hotspots import db\nfrom hotspots.geo.cells import register_cells\n"
                  f"conn = db.connect({a.warehouse!r})\nresult = {{'cells': register_cells(conn)}}\nconn.close()")
    _stage(figures, "cells", r["wall_s"], r["cells"], r["peak_rss_gib"])
    r, seeds = _dbt_measured(["seed"], a.warehouse, target)
    _stage(figures, "dbt_seed", r["wall_s"], _rows_affected(seeds), r["peak_rss_gib"])
    r, full = _dbt_measured(["run", "--full-refresh"], a.warehouse, target)
    _stage(figures, "dbt_full", r["wall_s"], _rows_affected(full), r["peak_rss_gib"])
    print(f"bench: {figures['stages']['cells']['rows']} cells registered; dbt full rebuild "
          f"{figures['stages']['dbt_full']['wall_s']:.1f} s (target < 300 s)")
    _print_models("full rebuild", full)
    figures["dbt_full_models"] = full
    _count_rows(a.warehouse, figures)
    if not a.no_forecast and not a.dbt_only:
        _forecast(a, landing, figures, "train", "score")

    if a.dbt_only:
        conn = db.connect(a.warehouse)
        with conn, conn.cursor() as cur:
            cur.execute("""update ingest.extract_ledger set finished_at = now()
                           where extract_date = (select max(extract_date) from ingest.extract_ledger)""")
        conn.close()
    else:
        (partial / held_back).symlink_to(landing / held_back)
        r = _measured(f"from hotspots.ingest import load\n"
                      f"d = load.load_extract({str(partial)!r}, {held_back!r}, {a.warehouse!r})\n"
                      f"result = {{'status': d.status, 'rows': d.rows_read, 'seconds': d.seconds}}")
        _stage(figures, "ingest_day", r["wall_s"], r["rows"], r["peak_rss_gib"], status=r["status"],
               in_process_s=round(r["seconds"], 2))
    # The daily path: what the forecast waits for (the features and everything they read).
    r = _measured(f"from hotspots import db\nfrom hotspots.geo.cells import register_cells\n"
                  f"conn = db.connect({a.warehouse!r})\nresult = {{'cells': register_cells(conn)}}\nconn.close()")
    r2, inc = _dbt_measured(["run", "--select", "+fct_cell_daily_features"], a.warehouse, target)
    _stage(figures, "dbt_incremental", r["wall_s"] + r2["wall_s"], _rows_affected(inc),
           max(r["peak_rss_gib"], r2["peak_rss_gib"]))
    print(f"bench: daily incremental feature build (one new extract date: cells + dbt run of "
          f"+fct_cell_daily_features) {figures['stages']['dbt_incremental']['wall_s']:.1f} s (target < 15 s)")
    _print_models("daily feature path", inc)
    r, rest = _dbt_measured(["run", "--exclude", "+fct_cell_daily_features"], a.warehouse, target)
    _stage(figures, "dbt_other_marts", r["wall_s"], _rows_affected(rest), r["peak_rss_gib"])
    print(f"bench: the other marts after it (targets, cells, districts, money trail) {r['wall_s']:.1f} s")
    _print_models("other marts", rest)
    if not a.no_forecast and not a.dbt_only:
        _forecast(a, landing, figures, None, "score_day")
        if not a.no_alerts:
            r = _measured(f"from hotspots.alerts.bench import bench_alerts\n"
                          f"result = bench_alerts({a.warehouse!r})")
            _stage(figures, "alerts", r["wall_s"], r["sent"], r["peak_rss_gib"])
            figures["alerts"] = {k: v for k, v in r.items() if k not in ("wall_s", "peak_rss_gib")}
        if airflow_day:
            _airflow_day(a, base / "landing-airflow-day", landing / airflow_date, figures)
        if not a.no_superset:
            r = bench_superset(a.warehouse, a.workdir)
            _stage(figures, "superset", r.pop("wall_s"), None, r.pop("peak_rss_gib"))
            figures["superset"] = r
    _finish(figures, a)
    return figures


def _airflow_day(a, day_landing: Path, extract: Path, figures: dict) -> None:
    """One more new extract date through the DAGs, each with `airflow dags test` as `make ingest`,
    `make features`, `make score` and `make alerts` run them (the scheduler would start each on
    the previous one's Asset event). The landing holds that date only; the alerts go to local
    receivers. Per DAG: the process's wall time (Airflow's start-up and DAG parsing included) and,
    from the metadata database, its tasks' span (first start to last end). The features count to
    their publish task, which emits the Asset scoring starts on (the other marts build after it)."""
    from hotspots.alerts.bench import Receivers

    shutil.rmtree(day_landing, ignore_errors=True)
    day_landing.mkdir(parents=True)
    (day_landing / extract.name).symlink_to(extract)
    w = a.warehouse
    print(f"bench: one more national day under Airflow: {extract.name}")
    day = {"date": extract.name, "dags": {}}
    with Receivers(w) as rec:
        confs = {"ingest_extracts": {"landing": str(day_landing), "warehouse": w},
                 "build_features": {"warehouse": w}, "score_hotspots": {"warehouse": w},
                 "dispatch_alerts": {"warehouse": w, "recipients": str(rec.recipients_file),
                                     "rules": str(rec.rules_file)}}
        for stage, dag in AIRFLOW_DAY:
            r = _run(["airflow", "dags", "test", dag, "-c", json.dumps(confs[dag])], show=_SHOW)
            (day_landing / f"{dag}.log").write_text(r["stdout"])  # the run's whole output, to read afterwards
            spans = _task_spans(dag)
            retried = sorted(k for k, t in spans.items() if t["tries"] > 1)
            if retried:  # a retry waits its retry_delay: the span then holds a failure, not the work
                print(f"bench: WARNING {dag} under Airflow retried {retried}; its output: {day_landing / (dag + '.log')}")
            failed = sorted(k for k, t in spans.items() if t["state"] != "success")
            if failed:
                raise SystemExit(f"bench: {dag} under Airflow: tasks not successful: {failed}")
            spans = {k: t for k, t in spans.items() if t["start"] and t["end"]}  # skipped ones never ran
            first = min(t["start"] for t in spans.values())
            end = (spans["publish"]["end"] if dag == "build_features"
                   else max(t["end"] for t in spans.values()))
            tasks_s = (end - first).total_seconds()
            startup = runner_startup_s(r["stdout"])  # Airflow's own, inside the first task's span
            # The process's start-up (before its first task) and, for the features, the marts after publish.
            counted = r["wall_s"] - (max(t["end"] for t in spans.values()) - end).total_seconds()
            _stage(figures, stage, r["wall_s"], None, r["peak_rss_gib"], tasks_s=round(tasks_s, 1),
                   counted_s=round(counted, 1), tasks=len(spans), runner_startup_s=round(startup, 1))
            day["dags"][dag] = {"wall_s": round(r["wall_s"], 1), "tasks_s": round(tasks_s, 1),
                                "runner_startup_s": round(startup, 1), "work_s": round(tasks_s - startup, 1),
                                "counted_s": round(counted, 1), "tasks": len(spans), "retried": retried,
                                "slowest": sorted(((k, round((t["end"] - t["start"]).total_seconds(), 1))
                                                   for k, t in spans.items()), key=lambda x: -x[1])[:5]}
            print(f"bench: {dag} under Airflow: {r['wall_s']:.1f} s in all, its {len(spans)} tasks "
                  f"{tasks_s:.1f} s" + (" to publish" if dag == "build_features" else "")
                  + f" (of which the task runner's start-up {startup:.1f} s)")
        day["emails_kept"] = rec.emails_kept()
        day["webhooks_received"] = rec.http.count
    for k in ("tasks_s", "runner_startup_s", "work_s", "counted_s"):
        day[k] = round(sum(d[k] for d in day["dags"].values()), 1)
    day["all_s"] = day.pop("counted_s")
    figures["airflow_day"] = day
    print(f"bench: one national day under Airflow: {day['work_s']} s of tasks without the task runner's "
          f"start-up (target < 60 s; {day['tasks_s']} s with it), "
          f"{day['all_s']} s with each DAG's start-up (target < 120 s); {day['emails_kept']} emails and "
          f"{day['webhooks_received']} webhooks received")


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z? ")


def runner_startup_s(output: str) -> float:
    """Seconds from `airflow dags test`'s "[DAG TEST] running task" of its first task to that
    task's "Task started" (the in-process execution API and task runner starting: Airflow's
    own start-up, inside the first task's span in the metadata database); 0 when either line
    is missing."""
    running = started = None
    for line in output.splitlines():
        m = _LOG_TIME.match(line)
        if not m:
            continue
        if running is None and "[DAG TEST] running task" in line:
            running = datetime.fromisoformat(m.group(1))
        elif running is not None and "Task started" in line:
            started = datetime.fromisoformat(m.group(1))
            break
    return max((started - running).total_seconds(), 0.0) if running and started else 0.0


def _task_spans(dag_id: str) -> dict[str, dict]:
    """Start, end, state and tries of each task instance of the DAG's latest run in the Airflow
    metadata database (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN); a mapped task's instances as one span."""
    from urllib.parse import unquote, urlsplit

    import psycopg2

    u = urlsplit(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    conn = psycopg2.connect(host=u.hostname, port=u.port, user=unquote(u.username or ""),
                            password=unquote(u.password or ""), dbname=u.path.lstrip("/"))
    try:
        with conn.cursor() as cur:
            cur.execute("""select ti.task_id, min(ti.start_date), max(ti.end_date),
                                  case when bool_and(ti.state in ('success', 'skipped')) then 'success' else 'failed' end,
                                  max(ti.try_number)
                           from task_instance ti
                           where ti.dag_id = %s and ti.run_id = (select run_id from dag_run where dag_id = %s
                                                                 order by id desc limit 1)
                           group by 1""", (dag_id, dag_id))
            rows = cur.fetchall()
    finally:
        conn.close()
    if not rows:
        raise SystemExit(f"bench: no task instances of {dag_id} in the Airflow metadata database")
    return {t: {"start": s, "end": e, "state": st, "tries": tries or 0} for t, s, e, st, tries in rows}


def _count_rows(warehouse: str, figures: dict) -> None:
    conn = db.connect(warehouse)
    with conn.cursor() as cur:
        for t in ("raw.withdrawals", "marts.dim_cells", "marts.fct_cell_daily_features", "marts.fct_cell_targets"):
            cur.execute(f"select count(*) from {t}")
            figures[f"rows_{t}"] = cur.fetchone()[0]
            print(f"  rows {t:34s} {figures[f'rows_{t}']:>12}")
    conn.close()


def _finish(figures: dict, a) -> None:
    figures["database_bytes"] = _database_size(a.warehouse)
    figures["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    _save(figures, a.workdir)


def bench_superset(warehouse: str, workdir: Path) -> dict:
    """Dashboard render times in headless Chromium, slowest query named (superset/hotspots_superset/bench.py)."""
    out = workdir / "superset.json"
    env = dict(os.environ, WAREHOUSE=warehouse, SUPERSET_PORT=os.environ.get("BENCH_SUPERSET_PORT", "8098"))
    r = _run([str(settings.ROOT / "scripts" / "superset.sh"), "bench-serve", "--floor", "--json", str(out)], env,
             show=("bench", "superset"))
    return {**json.loads(out.read_text()), "wall_s": r["wall_s"], "peak_rss_gib": r["peak_rss_gib"]}


def _save(figures: dict, workdir: Path | None = None) -> None:
    out = (workdir or settings.ROOT / ".local" / "bench") / "results.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(figures, default=float) + "\n")
    print(f"bench: figures appended to {out}")


def _forecast(a, landing: Path, figures: dict, train_stage: str | None, score_stage: str) -> None:
    """Training (rolling evaluation + final fit + MLflow) and scoring, each in its own process."""
    if train_stage:
        train = _measured(f"from hotspots.forecast.train import train\n"
                          f"result = train({a.warehouse!r}, {str(landing)!r})")
        _stage(figures, train_stage, train["wall_s"], figures.get("rows_marts.fct_cell_daily_features"),
               train["peak_rss_gib"], fit_s=train.get("fit_seconds"), eval_s=train.get("eval_seconds"))
        figures.update({"train_scores": train.get("scores"), "train_promoted": train.get("promoted")})
        print(f"bench: training {train['wall_s']} s in all (rolling evaluation of model and baselines "
              f"{train.get('eval_seconds')} s, final fit {train.get('fit_seconds')} s; target < 300 s), "
              f"peak memory {train['peak_rss_gib']:.2f} GiB (target < 8)")
    score = _measured(f"from hotspots.forecast.score import score\nresult = score({a.warehouse!r})")
    _stage(figures, score_stage, score["wall_s"], score.get("rows"), score["peak_rss_gib"],
           score_s=score.get("score_s"), explain_s=score.get("explain_s"), load_model_s=score.get("load_model_s"))
    print(f"bench: scoring {score.get('cells')} candidate cells x 2 horizons: {score['wall_s']} s in all "
          f"({score.get('score_s')} s to read, predict and write; model load {score.get('load_model_s')} s; "
          f"SHAP explanations {score.get('explain_s')} s); peak memory {score['peak_rss_gib']:.2f} GiB")


def _ingest_all_but_last(a, partial: Path, figures: dict) -> None:
    from hotspots.cli import init_warehouse

    _sh([str(settings.ROOT / "scripts" / "pg.sh"), "ensure-db", a.warehouse, "postgis"])
    conn = db.connect(a.warehouse)
    with conn, conn.cursor() as cur:
        cur.execute("drop schema if exists raw, ingest, staging, intermediate, marts, forecast, alerts, bench_copy cascade")
        cur.execute("delete from ref.h3_neighbours where true" if _has(cur, "ref.h3_neighbours") else "select 1")
        cur.execute("delete from ref.h3_cells where true" if _has(cur, "ref.h3_cells") else "select 1")
    conn.close()
    init_warehouse(a.warehouse)
    # Side by side: each date's ingest, then a plain COPY of the same rows (ratio, growth: hotspots.ingest.bench),
    # in its own process; the COPY reference's time is inside the stage's wall time, so the stage's rows/s is
    # the ingest's own figure (rows over the ingest's seconds), printed beside the wall time.
    r = _measured(f"from pathlib import Path\nfrom hotspots.ingest.bench import side_by_side\nresult = {{}}\n"
                  f"side_by_side(Path({str(partial)!r}), {a.warehouse!r}, Path({str(partial.parent / 'copy-reference')!r}),"
                  f" result)")
    ing = {k: v for k, v in r.items() if k not in ("wall_s", "peak_rss_gib")}
    figures.update(ing)
    # All at once, the worker processes run beside the main one: their peaks are added to its own.
    once = ing.get("ingest_at_once")
    peak = r["peak_rss_gib"] + (once["workers"] * once["worker_peak_gib"] if once else 0)
    st = _stage(figures, "ingest", ing["ingest_s"], ing["ingest_rows"], peak,
                process_wall_s=r["wall_s"], dates=ing["ingest_dates"])
    st["rows_per_s"] = ing["ingest_rows_per_s"]


def _notes() -> dict[str, str]:
    """docs/benchmarks-notes.md: one '## <target key>' section per target, hand-written."""
    if not NOTES.exists():
        return {}
    out, key = {}, None
    for line in NOTES.read_text().splitlines():
        m = re.match(r"^## +(\S+)", line)
        if m:
            key = m.group(1)
            out[key] = []
        elif key:
            out[key].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def targets(figures: dict) -> list[dict]:
    """Issue 12's targets against this run's figures: met, NOT met, or not measured (and why)."""
    st = figures.get("stages", {})

    def total(names):
        missing = [n for n in names if n not in st]
        return (None, f"stages {', '.join(missing)} not run") if missing else \
            (sum(st[n]["wall_s"] for n in names), "")

    vals = {
        "ingest_ratio": (figures.get("ingest_copy_ratio"), "" if "ingest_copy_ratio" in figures else "ingest not run"),
        "backfill": total(BACKFILL),
        "training": total(["train"]),
        "one_day": total(ONE_DAY),
        "one_day_airflow": ((figures["airflow_day"]["work_s"], "") if "airflow_day" in figures
                            else (None, "run with --airflow-day")),
        "one_day_airflow_all": ((figures["airflow_day"]["all_s"], "") if "airflow_day" in figures
                                else (None, "run with --airflow-day")),
        "dbt_full": total(["dbt_full"]),
        "dbt_incremental": total(["dbt_incremental"]),
        "peak_memory": ((max(s["peak_rss_gib"] for s in st.values()), "") if st else (None, "no stage run")),
    }
    out = []
    for key, text, op, limit, unit in TARGETS:
        value, why = vals[key]
        if value is None:
            status = "not measured"
        else:
            ok = value >= limit if op == ">=" else value < limit
            status = "met" if ok else "NOT met"
        where = ""
        if key == "peak_memory" and st:
            where = max(st.values(), key=lambda s: s["peak_rss_gib"])["stage"]
        out.append({"target": key, "text": text, "value": value, "limit": limit, "op": op, "unit": unit,
                    "status": status, "why_not_measured": why, "stage": where})
    return out


def _fmt(v, nd=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}"


def render(figures: dict, growth_table: str = "") -> str:
    m = figures.get("machine", {})
    full = figures.get("scale", 0) >= 1.0 and figures.get("days", 0) >= 730
    st = figures.get("stages", {})
    lines = ["# Benchmarks", "",
             "Generated by `make bench` (`python -m hotspots.bench`); do not edit by hand: the why and what was "
             "tried for a missed target come from [benchmarks-notes.md](benchmarks-notes.md).", "",
             f"Run {figures.get('at', '?')[:19]} UTC: scale {figures.get('scale')}, {figures.get('days')} days, "
             f"seed {figures.get('seed')}, warehouse `{figures.get('warehouse')}`"
             + ("" if full else " - **not full size: the targets are for scale 1.0 over 730 days**"), "",
             "## Machine", "",
             f"- {m.get('cpus')} cores, {m.get('memory_gib')} GiB memory, PostgreSQL {m.get('postgresql')}, "
             f"Python {m.get('python')}, {m.get('platform')}",
             f"- load average (1, 5, 15 min) at the start {m.get('loadavg_start')}, at the end {m.get('loadavg_end')}",
             f"- database size on disk: {_fmt((figures.get('database_bytes') or 0) / 2**30, 2)} GiB", "",
             "## Stages", "",
             "Each stage in its own process; peak memory is that process's resident set (with the children it "
             "waited for; PostgreSQL's backends are not counted). Rows: ingest = rows read; dbt = rows the models "
             "wrote; training = feature rows; scoring = forecast rows; alerts = messages sent.", "",
             "| stage | what | wall s | rows | rows/s | peak GiB |", "|---|---|---:|---:|---:|---:|"]
    for name in STAGES:
        if name in st:
            s = st[name]
            lines.append(f"| {name} | {DESCRIBE[name]} | {_fmt(s['wall_s'])} | {_fmt(s['rows'])} | "
                         f"{_fmt(s['rows_per_s'], 0)} | {_fmt(s['peak_rss_gib'], 2)} |")
        else:
            lines.append(f"| {name} | {DESCRIBE[name]} | skipped | - | - | - |")
    if "ingest_copy_ratio" in figures:
        lines += ["", "## Ingest beside a plain COPY (same run, same rows, same table shape)", "",
                  f"- ingest: {_fmt(figures['ingest_rows'])} rows in {_fmt(figures['ingest_s'])} s = "
                  f"{_fmt(figures['ingest_rows_per_s'])} rows/s over {figures['ingest_dates']} dates "
                  f"({figures['ingest_s'] / max(1, figures['ingest_dates']):.2f} s per date)",
                  f"- plain COPY: {_fmt(figures['copy_rows'])} rows in {_fmt(figures['copy_s'])} s = "
                  f"{_fmt(figures['copy_rows_per_s'])} rows/s",
                  f"- **ratio ingest / COPY = {figures['ingest_copy_ratio']:.3f}** (target >= 0.5)"]
        once = figures.get("ingest_at_once")
        if once:
            lines += [f"- the ingest was the warehouse's first load, all dates at once (`hotspots.ingest.bulk`, "
                      f"{once['workers']} worker processes checking, each at most "
                      f"{_fmt(once['worker_peak_gib'], 2)} GiB): " +
                      ", ".join(f"{k} {_fmt(v)} s" for k, v in once["phases"].items())]
        g = figures.get("ingest_growth")
        if g:
            lines += ["", f"Ingest cost per 1,000 rows against the history already loaded ({g.get('_span', '')}):",
                      "", "| phase | young s/1k rows | old s/1k rows | old / young |", "|---|---:|---:|---:|"]
            lines += [f"| {k[:-2]} | {v['young']} | {v['old']} | {v['ratio']} |" for k, v in g.items()
                      if not k.startswith("_")]
    notes = _notes()
    lines += ["", "## Targets (issue 12)", ""]
    for t in targets(figures):
        fig = "-" if t["value"] is None else f"{_fmt(t['value'], 3 if t['target'] == 'ingest_ratio' else 1)} {t['unit']}"
        extra = f" ({t['why_not_measured']})" if t["why_not_measured"] else ""
        extra += f" (stage {t['stage']})" if t["stage"] else ""
        size = "" if full or t["value"] is None else \
            f" (at scale {figures.get('scale')} over {figures.get('days')} days, not the target's size)"
        lines.append(f"- **{t['status']}**: {t['text']}: {fig.strip()}{extra}{size}")
        if t["status"] != "met" and notes.get(t["target"]):
            lines += ["", "  " + notes[t["target"]].replace("\n", "\n  "), ""]
    if growth_table:
        lines += ["", "## Growth", "", growth_table]
    return "\n".join(lines).rstrip() + "\n"


def _partial(a) -> str:
    """The name of a run that skips stages (--ingest-only and the like), or ""."""
    for flag in ("ingest_only", "dbt_only", "forecast_only", "alerts_only", "no_forecast"):
        if getattr(a, flag, False):
            return flag.replace("_", "-")
    return ""


def report(figures: dict, a, growth_table: str = "") -> Path:
    text = render(figures, growth_table)
    if a.report:
        path = a.report
    elif a.quick:
        path = a.workdir / "benchmarks-quick.md"
    elif _partial(a):  # never over the full run's table
        path = a.workdir / f"benchmarks-{_partial(a)}.md"
    elif a.scale >= 1.0 and a.days >= 730:
        path = settings.ROOT / "docs" / "benchmarks.md"
    else:
        path = a.workdir / f"benchmarks-s{a.scale}-d{a.days}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print("\n" + text)
    print(f"bench: table written to {path}")
    return path


def _drop_database(name: str) -> None:
    conn = db.connect(database="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
    conn.close()


def growth(a) -> int:
    """The harness at three volumes (scale s/4, s/2, s over the same days) and two history lengths
    (s over d/2 and d days): each stage's cost ratio against its data ratio (rows read by the
    ingest), flagged when the cost grows faster than the data (by more than a quarter and a
    second: below that, noise). The main report is the (s, d) run's, with the growth appended."""
    s, d = a.scale, a.days
    runs = [("volume", s / 4, d), ("volume", s / 2, d), ("history", s, d // 2), ("both", s, d)]
    results = {}
    for i, (_, scale, days) in enumerate(runs):
        last = i == len(runs) - 1
        ra = argparse.Namespace(**{**vars(a), "scale": scale, "days": days, "growth": False,
                                   "warehouse": a.warehouse if last else f"{a.warehouse}_g{i}",
                                   "no_superset": a.no_superset or not last, "no_alerts": a.no_alerts or not last,
                                   "airflow_day": a.airflow_day and last,
                                   # training needs QUICK["days"] of history (its evaluation window)
                                   "no_forecast": a.no_forecast or days < QUICK["days"]})
        if days < QUICK["days"] and not a.no_forecast:
            print(f"bench: growth run at {days} days: too short a history for training, stops after dbt")
        print(f"\nbench: growth run {i + 1}/{len(runs)}: scale {scale}, {days} days (warehouse {ra.warehouse})")
        results[(scale, days)] = run(ra)
        if not last:
            _drop_database(ra.warehouse)
    table = growth_table(results, [(s / 4, d), (s / 2, d), (s, d)], [(s, d // 2), (s, d)])
    print("\n" + table)
    _save({"at": datetime.now(timezone.utc).isoformat(), "growth": table,
           "runs": {f"s{k[0]:g}-d{k[1]}": {n: v["wall_s"] for n, v in r.get("stages", {}).items()}
                    for k, r in results.items()}}, a.workdir)
    report(results[(s, d)], a, table)
    return 0


def growth_table(results: dict, volumes: list[tuple], histories: list[tuple]) -> str:
    def data(key):
        return results[key].get("ingest_rows") or 0

    lines = []
    for title, keys in (("Volume (same days, growing scale)", volumes), ("History (same scale, more days)", histories)):
        base = keys[0]
        head = " | ".join(f"s{k[0]:g} d{k[1]} s" for k in keys)
        ratios = " | ".join(f"s{k[0]:g} d{k[1]} cost (data) ratio" for k in keys[1:])
        lines += [f"{title}: each stage's wall time and its cost ratio against the smallest run, with the data "
                  f"ratio (rows read by the ingest) in brackets; **faster than linear** when, from the smallest to the "
                  f"largest run, the cost grows more than 1.25 x the data and by more than a second. At small scales "
                  f"the processes' start-up dominates and the machine's load is noise.", "",
                  f"| stage | {head} | {ratios} | |", "|---" * (len(keys) * 2 + 1) + "|"]
        for name in STAGES:
            st = [results[k].get("stages", {}).get(name) for k in keys]
            if not all(st):
                continue
            cells, flag = [], ""
            for k, x in zip(keys[1:], st[1:], strict=True):
                cr = x["wall_s"] / st[0]["wall_s"] if st[0]["wall_s"] else float("nan")
                dr = data(k) / data(base) if data(base) else float("nan")
                cells.append(f"{cr:.2f} ({dr:.2f})")
                # judged on the largest run against the smallest (the middle one: a shape, noisier)
                if k == keys[-1] and cr > 1.25 * dr and x["wall_s"] - st[0]["wall_s"] * dr > 1.0:
                    flag = "**faster than linear**"
            lines.append(f"| {name} | " + " | ".join(f"{x['wall_s']:.1f}" for x in st) + " | "
                         + " | ".join(cells) + f" | {flag} |")
        lines.append("")
    g = results[histories[-1]].get("ingest_growth")
    if g:
        lines += [f"Ingest per-date cost against the history already loaded ({g.get('_span', '')}), "
                  f"longest run: " + ", ".join(f"{k[:-2]} old/young {v['ratio']}" for k, v in g.items()
                                                if not k.startswith("_")), ""]
    return "\n".join(lines)


def quality(a) -> pd.DataFrame:
    """One scenario's backtest: simulate, ingest, build features, then a rolling-origin
    backtest of the last ``backtest_days`` with the simulator's truth. Returns its summary."""
    from hotspots.cli import ingest, init_warehouse
    from hotspots.forecast.backtest import run
    from hotspots.geo.cells import register_cells
    from hotspots.simulate import simulate

    variant = getattr(a, "variant", "default") or "default"
    label = a.label or ("" if variant == "default" else f"_{variant}")
    base = settings.ROOT / ".local" / "bench" / f"quality{label}-s{a.scale}-d{a.days}-seed{a.seed}"
    landing, marker = base / "extracts", base / ".complete"
    wh = f"{a.warehouse}_quality{label}"
    if not marker.exists():
        shutil.rmtree(base, ignore_errors=True)
        simulate(landing, a.start, a.days, a.scale, a.seed, truth=base / "truth", progress=False, variant=variant)
        marker.touch()
        _sh([str(settings.ROOT / "scripts" / "pg.sh"), "ensure-db", wh, "postgis"])
        conn = db.connect(wh)
        with conn, conn.cursor() as cur:
            cur.execute("drop schema if exists raw, ingest, staging, intermediate, marts, forecast cascade")
            for t in ("ref.h3_neighbours", "ref.h3_cells"):
                cur.execute(f"delete from {t} where true" if _has(cur, t) else "select 1")
        conn.close()
    _sh([str(settings.ROOT / "scripts" / "pg.sh"), "ensure-db", wh, "postgis"])
    init_warehouse(wh)
    ingest(landing, wh)
    conn = db.connect(wh)
    register_cells(conn)
    conn.close()
    target = settings.ROOT / ".local" / "bench" / f"dbt-target-quality{label}"
    _dbt(["seed"], wh, target)
    _dbt(["run"], wh, target)
    _print_locations(wh)
    end = pd.Timestamp(a.start) + pd.Timedelta(days=a.days - 1)
    start = end - pd.Timedelta(days=a.backtest_days - 1)
    print(f"bench: quality backtest {start.date()} .. {end.date()} after {(start - pd.Timestamp(a.start)).days} "
          f"days of history (variant {variant}, scale {a.scale}, seed {a.seed})")
    t0 = time.perf_counter()
    summ = run(wh, start, end, str(landing))
    summ = pd.concat([summ, _clairvoyant_summary(wh, start, end, landing)], ignore_index=True)
    figures = {"at": datetime.now(timezone.utc).isoformat(), "quality": True, "variant": variant,
               "seed": a.seed, "days": a.days, "scale": a.scale,
               "backtest_s": round(time.perf_counter() - t0, 1),
               "summary": summ.to_dict(orient="records")}
    _save(figures)
    return summ


def _clairvoyant_summary(warehouse: str, start, end, landing: Path) -> pd.DataFrame:
    """The ceilings beside the methods: candidates ranked by the truth itself (backtest.CLAIRVOYANT)."""
    from hotspots.forecast import backtest, data

    conn = db.connect(warehouse)
    inputs = backtest.Inputs.load(conn)
    conn.close()
    truth = data.truth_path(landing)
    k = backtest.gate_k(settings.forecast_config(), inputs.features, pd.date_range(start, end))
    frames = backtest.clairvoyant(inputs.features, truth, start, end)
    return backtest.summary(backtest.evaluate(frames, inputs, truth, ks=sorted({50, 200, 1000, k})))


def _print_locations(warehouse: str) -> None:
    """How the scenario's withdrawals were located (the registry's share of the work)."""
    conn = db.connect(warehouse)
    with conn.cursor() as cur:
        cur.execute("""select located_by, count(*), round(100.0 * count(*) / sum(count(*)) over (), 1)
                       from intermediate.int_withdrawals_located group by 1 order by 2 desc""")
        print("bench: withdrawals located by " + ", ".join(f"{by or 'nothing'} {n} ({pct} %)"
                                                         for by, n, pct in cur.fetchall()))
    conn.close()


def quality_variants(a) -> int:
    """`make bench-quality`: the backtest on several scenario variants, each from its own seed,
    and one table of PEI at the gate's K against the truth, per method and horizon, with the
    issue's target (best baseline + half the distance to 1) and whether the model reaches it."""
    from hotspots.forecast.backtest import CLAIRVOYANT, MODEL, primary_metric
    from hotspots.simulate import VARIANTS

    names = list(VARIANTS) if a.variants == "all" else [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"bench: unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    cfg = settings.forecast_config()
    rows = []
    for i, name in enumerate(names):
        va = argparse.Namespace(**{**vars(a), "variant": name, "seed": a.seed + i, "label": ""})
        summ = quality(va)
        metric = primary_metric(cfg, True)
        if metric not in summ.columns:   # the gate's K was lowered for a small candidate set
            metric = next(c for c in summ.columns if c.startswith("pei_truth_"))
        for h, g in summ.groupby("horizon_days"):
            vals = dict(zip(g["method"], g[metric], strict=True))
            base = {m: v for m, v in vals.items() if m not in (MODEL, "champion", *CLAIRVOYANT)}
            best = max(base, key=base.get)
            need = base[best] + 0.5 * (1 - base[best])
            week = vals.get("truth_last_7_days", float("nan"))
            rows.append({"variant": name, "seed": va.seed, "horizon": int(h), "metric": metric,
                         **{m: round(v, 4) for m, v in vals.items()}, "best_baseline": best,
                         "target": round(need, 4), "reached": vals.get(MODEL, 0) >= need,
                         "closed": round((vals.get(MODEL, 0) - base[best]) / max(1e-9, 1 - base[best]), 3),
                         # the same distance measured to a forecaster that knew last week's true intensity
                         "closed_to_week": round((vals.get(MODEL, 0) - base[best]) / max(1e-9, week - base[best]), 3)})
    table = pd.DataFrame(rows)
    print("\nbench: quality on every variant (PEI against the simulator's truth, mean over the backtest dates; "
          "closed = share of the distance from the best baseline to 1 the model closes, target 0.5; "
          "oracle, truth_last_day, truth_last_7_days = the candidates ranked by the truth of the window, of the "
          "day before, of the week before: ceilings, not forecasters; closed_to_week = the distance closed "
          "towards truth_last_7_days)")
    print(table.to_string(index=False))
    _save({"at": datetime.now(timezone.utc).isoformat(), "quality_variants": rows})
    return 0


def _has(cur, table: str) -> bool:
    cur.execute("select to_regclass(%s) is not null", (table,))
    return cur.fetchone()[0]


if __name__ == "__main__":
    sys.exit(main())
