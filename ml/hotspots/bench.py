"""Benchmarks that print figures (`make bench`): ingest throughput and the dbt feature build.

At national scale (SCALE=1.0) over a long history: simulate (reused when already
there), ingest all extract dates but the last, build the features from scratch
(the full rebuild), then ingest the last date and build incrementally (the daily
run). Prints wall times, rows, and the cost of each dbt model from run_results.json.
Figures are printed and appended to .local/bench/results.jsonl, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from hotspots import db, settings


def _sh(cmd: list[str], env: dict | None = None) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"bench: {' '.join(cmd[:3])} failed")
    return p.stdout


def _dbt(args: list[str], warehouse: str, target: Path) -> tuple[float, list[dict]]:
    dbt_dir = settings.ROOT / "dbt"
    env = dict(os.environ, WAREHOUSE=warehouse, DBT_PROFILES_DIR=str(dbt_dir))
    t0 = time.perf_counter()
    _sh(["dbt", *args, "--project-dir", str(dbt_dir), "--target-path", str(target), "--log-path",
         str(target / "logs")], env)
    secs = time.perf_counter() - t0
    results = json.loads((target / "run_results.json").read_text())["results"]
    return secs, [{"node": r["unique_id"].split(".")[-1], "seconds": round(r["execution_time"], 2),
                   "rows": (r.get("adapter_response") or {}).get("rows_affected")} for r in results]


def _print_models(title: str, models: list[dict]) -> None:
    print(f"  {title}: cost per model (slowest first)")
    for m in sorted(models, key=lambda m: -m["seconds"])[:12]:
        print(f"    {m['node']:45s} {m['seconds']:8.2f} s  rows {m['rows']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--start", default="2024-11-01")
    p.add_argument("--warehouse", default="bench")
    p.add_argument("--dbt-only", action="store_true",
                   help="reuse the warehouse as loaded by an earlier bench; time the dbt builds only "
                        "(the newest extract date is marked as just delivered)")
    p.add_argument("--forecast-only", action="store_true",
                   help="reuse the warehouse as built by an earlier bench; time training and scoring only")
    p.add_argument("--no-forecast", action="store_true", help="stop after the dbt builds")
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
    if a.quality and a.variants:
        return quality_variants(a)
    if a.quality:
        quality(a)
        return 0

    from hotspots.alerts.bench import bench_alerts
    from hotspots.cli import init_warehouse
    from hotspots.geo.cells import register_cells
    from hotspots.ingest import load
    from hotspots.simulate import simulate

    if a.alerts_only:  # a scored warehouse is all it needs
        _save({"at": datetime.now(timezone.utc).isoformat(), "alerts": bench_alerts(a.warehouse)})
        return 0
    base = settings.ROOT / ".local" / "bench" / f"s{a.scale}-d{a.days}-seed{a.seed}"
    landing, marker = base / "extracts", base / ".complete"
    figures: dict = {"at": datetime.now(timezone.utc).isoformat(), "days": a.days, "scale": a.scale}
    if not marker.exists():
        shutil.rmtree(base, ignore_errors=True)
        t0 = time.perf_counter()
        summary = simulate(landing, a.start, a.days, a.scale, a.seed, truth=base / "truth", progress=True)
        figures["simulate_s"] = round(time.perf_counter() - t0, 1)
        print(f"bench: simulated {a.days} days at scale {a.scale} in {figures['simulate_s']} s: {summary}")
        marker.touch()
    if a.forecast_only:
        forecast_figures(a.warehouse, landing, figures)
        figures["alerts"] = bench_alerts(a.warehouse)
        _save(figures)
        return 0
    dates, _ = load.discover(landing)
    held_back = dates[-1]
    partial = base / "landing-but-last"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for d in dates[:-1]:
        (partial / d).symlink_to(landing / d)

    if a.dbt_only:
        init_warehouse(a.warehouse)
        conn = db.connect(a.warehouse)
    else:
        conn = _ingest_all_but_last(a, partial, figures)
        if a.ingest_only:
            conn.close()
            _save(figures)
            return 0
    t0 = time.perf_counter()
    cells = register_cells(conn)
    figures["register_cells_s"] = round(time.perf_counter() - t0, 1)
    target = settings.ROOT / ".local" / "bench" / "dbt-target"
    _dbt(["seed"], a.warehouse, target)
    figures["full_build_s"], full = _dbt(["run", "--full-refresh"], a.warehouse, target)
    print(f"bench: {cells} cells registered in {figures['register_cells_s']} s; "
          f"dbt full rebuild {figures['full_build_s']:.1f} s (target < 600 s)")
    _print_models("full rebuild", full)

    if a.dbt_only:
        with conn, conn.cursor() as cur:
            cur.execute("""update ingest.extract_ledger set finished_at = now()
                           where extract_date = (select max(extract_date) from ingest.extract_ledger)""")
    else:
        (partial / held_back).symlink_to(landing / held_back)
        load.load_extract(partial, held_back, a.warehouse)
    # The daily path: what the forecast waits for (the features and everything they read).
    t0 = time.perf_counter()
    register_cells(conn)
    _, inc = _dbt(["run", "--select", "+fct_cell_daily_features"], a.warehouse, target)
    figures["incremental_build_s"] = round(time.perf_counter() - t0, 1)
    print(f"bench: daily incremental feature build (one new extract date: cells + dbt run of "
          f"+fct_cell_daily_features) {figures['incremental_build_s']:.1f} s (target < 30 s)")
    _print_models("daily feature path", inc)
    figures["other_marts_s"], rest = _dbt(["run", "--exclude", "+fct_cell_daily_features"], a.warehouse, target)
    print(f"bench: the other marts after it (targets, cells, districts, money trail) "
          f"{figures['other_marts_s']:.1f} s")
    _print_models("other marts", rest)
    with conn.cursor() as cur:
        for t in ("raw.withdrawals", "marts.dim_cells", "marts.fct_cell_daily_features", "marts.fct_cell_targets"):
            cur.execute(f"select count(*) from {t}")
            figures[f"rows_{t}"] = cur.fetchone()[0]
            print(f"  rows {t:34s} {figures[f'rows_{t}']:>12}")
    conn.close()
    if not a.no_forecast:
        forecast_figures(a.warehouse, landing, figures)
        figures["alerts"] = bench_alerts(a.warehouse)
        figures["superset"] = bench_superset(a.warehouse)
    _save(figures)
    return 0


def bench_superset(warehouse: str) -> dict:
    """Dashboard render times in headless Chromium, slowest query named (superset/hotspots_superset/bench.py)."""
    out = settings.ROOT / ".local" / "bench" / "superset.json"
    env = dict(os.environ, WAREHOUSE=warehouse, SUPERSET_PORT=os.environ.get("BENCH_SUPERSET_PORT", "8098"))
    subprocess.run([str(settings.ROOT / "scripts" / "superset.sh"), "bench-serve", "--floor", "--json", str(out)], env=env,
                   check=True)
    return json.loads(out.read_text())


def _save(figures: dict) -> None:
    out = settings.ROOT / ".local" / "bench" / "results.jsonl"
    with out.open("a") as f:
        f.write(json.dumps(figures, default=float) + "\n")
    print(f"bench: figures appended to {out}")


def _measured(code: str) -> dict:
    """Runs Python code in a fresh process; returns its result (a dict the code assigns to
    ``result``), wall seconds and the process's peak resident memory."""
    wrapper = (code + "\nimport json, resource\n"
               "result['peak_rss_gib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20\n"
               "print('BENCH ' + json.dumps(result, default=str))\n")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(("progress:", "target:", "evaluation:", "summary:"))]
    for ln in lines:
        print(f"  {ln}")
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit("bench: forecasting step failed")
    result = json.loads(next(ln for ln in p.stdout.splitlines() if ln.startswith("BENCH "))[6:])
    result["wall_s"] = round(wall, 1)
    return result


def forecast_figures(warehouse: str, landing: Path, figures: dict) -> None:
    """Training (rolling evaluation + final fit + MLflow) and scoring at this scale, with peak memory."""
    train = _measured(f"from hotspots.forecast.train import train\n"
                      f"result = train({warehouse!r}, {str(landing)!r})")
    figures.update({"train_wall_s": train["wall_s"], "train_fit_s": train["fit_seconds"],
                    "train_eval_s": train["eval_seconds"], "train_peak_rss_gib": round(train["peak_rss_gib"], 2),
                    "train_scores": train["scores"], "train_promoted": train["promoted"]})
    print(f"bench: training {train['wall_s']} s in all (rolling evaluation of model and baselines "
          f"{train['eval_seconds']} s, final fit {train['fit_seconds']} s; target < 300 s), "
          f"peak memory {train['peak_rss_gib']:.2f} GiB (target < 8)")
    score = _measured(f"from hotspots.forecast.score import score\nresult = score({warehouse!r})")
    figures.update({"score_s": score["score_s"], "explain_s": score["explain_s"], "score_rows": score["rows"],
                    "score_load_model_s": score["load_model_s"], "score_peak_rss_gib": round(score["peak_rss_gib"], 2)})
    print(f"bench: scoring {score['cells']} candidate cells x 2 horizons: {score['score_s']} s to read, predict "
          f"and write (target < 5 s); model load {score['load_model_s']} s; SHAP explanations of the top cells "
          f"{score['explain_s']} s; peak memory {score['peak_rss_gib']:.2f} GiB")


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
            cur.execute("drop schema if exists raw, ingest, staging, intermediate, marts cascade")
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


def _ingest_all_but_last(a, partial: Path, figures: dict):
    from hotspots.cli import init_warehouse
    from hotspots.ingest.bench import side_by_side

    _sh([str(settings.ROOT / "scripts" / "pg.sh"), "ensure-db", a.warehouse, "postgis"])
    conn = db.connect(a.warehouse)
    with conn, conn.cursor() as cur:
        cur.execute("drop schema if exists raw, ingest, staging, intermediate, marts cascade")
        cur.execute("delete from ref.h3_neighbours where true" if _has(cur, "ref.h3_neighbours") else "select 1")
        cur.execute("delete from ref.h3_cells where true" if _has(cur, "ref.h3_cells") else "select 1")
    conn.close()
    init_warehouse(a.warehouse)

    # Side by side: each date's ingest, then a plain COPY of the same rows (ratio, growth: hotspots.ingest.bench).
    side_by_side(partial, a.warehouse, partial.parent / "copy-reference", figures)
    return db.connect(a.warehouse)


def _has(cur, table: str) -> bool:
    cur.execute("select to_regclass(%s) is not null", (table,))
    return cur.fetchone()[0]


if __name__ == "__main__":
    sys.exit(main())
