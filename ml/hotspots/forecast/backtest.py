"""Rolling-origin evaluation of the model, the baselines and the champion.

Origins every ``origin_step_days`` from START. At each origin O every method is fitted
from extracts dated before O only (features of dates before O, labels as known at O),
then forecasts the days O .. O+step-1 (up to END), each from its own day's features
(extracts dated before that day). So a forecast for day D never depends on an extract
dated D or later: the leak test in tests/integration pins it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hotspots.errors import BadRequest, NotReady
from hotspots.forecast import data, metrics
from hotspots.forecast.baselines import configured, p_any_from_mu
from hotspots.forecast.model import HotspotModel, fit_workers, from_config, runtime_params

MODEL = "model"


@dataclass
class Inputs:
    features: pd.DataFrame
    arrived: pd.DataFrame
    neighbours: pd.DataFrame
    last_extract: pd.Timestamp
    places: pd.Series | None = None  # h3_cell -> "STATE / DISTRICT" of every registered cell

    @classmethod
    def load(cls, conn) -> Inputs:
        dates = data.extract_dates(conn)
        if len(dates) == 0:
            raise NotReady("no extract has been loaded into this warehouse: ingest first")
        return cls(features=data.load_features(conn), arrived=data.load_arrived(conn),
                   neighbours=data.load_neighbours(conn), last_extract=dates.max(), places=data.load_places(conn))


def forecast_frame(rows: pd.DataFrame, h: int, mu: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"h3_cell": rows["h3_cell"].to_numpy(), "forecast_date": rows["feature_date"].to_numpy(),
                         "horizon_days": h, "expected_withdrawals": np.asarray(mu, dtype=float),
                         "p_any": np.asarray(p, dtype=float)})


def rolling(inputs: Inputs, start, end, cfg: dict, baselines=None, champion: HotspotModel | None = None,
            model_factory: Callable[[list[str]], HotspotModel] | None = None,
            log: Callable[[str], None] = print) -> dict[str, pd.DataFrame]:
    """Forecasts of every method for every feature date in [start, end]. The champion, when
    given, is compared as a recipe: refitted at each origin like the challenger, so that
    neither has seen the days it forecasts."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    step = int(cfg["evaluation"]["origin_step_days"])
    horizons = list(cfg["horizons"])
    baselines = list(cfg["evaluation"]["baselines"] if baselines is None else baselines)
    f = inputs.features
    feats = data.feature_columns(f)
    factory = model_factory or (lambda cols: from_config(cfg, cols))
    out: dict[str, list[pd.DataFrame]] = {m: [] for m in [MODEL, *baselines] + (["champion"] if champion else [])}
    for origin in pd.date_range(start, end, freq=f"{step}D"):
        test = f[(f["feature_date"] >= origin) & (f["feature_date"] < origin + pd.Timedelta(days=step))
                 & (f["feature_date"] <= end)]
        train = f[f["feature_date"] < origin]
        if test.empty:
            continue
        t0 = time.perf_counter()
        model = factory(feats).fit(train, inputs.arrived, origin)
        champion_refit = (champion.clone(runtime_params(cfg), fit_workers(cfg)).fit(train, inputs.arrived, origin)
                          if champion is not None else None)
        fitted = _fit_baselines(baselines, horizons, cfg, train, inputs, origin)
        for h in horizons:
            out[MODEL].append(forecast_frame(test, h, *model.predict(test, h)))
            if champion_refit is not None:
                out["champion"].append(forecast_frame(test, h, *champion_refit.predict(test, h)))
            for name in baselines:
                mu = fitted[name, h].predict(test, inputs.arrived, inputs.neighbours, h)
                out[name].append(forecast_frame(test, h, mu, p_any_from_mu(mu)))
        log(f"progress: origin {origin.date()}: {len(test)} cell-days forecast by {len(out)} methods "
            f"in {time.perf_counter() - t0:.1f} s (settle {model.card['settle_days']} days)")
    empty = pd.DataFrame(columns=["h3_cell", "forecast_date", "horizon_days", "expected_withdrawals", "p_any"])
    return {m: (pd.concat(v, ignore_index=True) if v else empty) for m, v in out.items()}


def _fit_baselines(baselines: list[str], horizons: list[int], cfg: dict, train: pd.DataFrame, inputs: Inputs,
                   origin) -> dict:
    """Every (baseline, horizon) fitted at one origin, ``train.fit_workers`` at a time (threads:
    LightGBM's training, most of lag_gbm's fit, releases Python's lock; each fit reads the shared
    frames and writes only its own). Each fit is the one a sequential loop makes: the same
    inputs, seeds and trees (lag_gbm is deterministic, one thread each as the model's boosters)."""
    jobs = [(name, h) for h in horizons for name in baselines]

    def fit(job):
        name, h = job
        return configured(name, cfg).fit(train, inputs.arrived, inputs.neighbours, h, origin)

    workers = min(fit_workers(cfg), len(jobs))
    if workers <= 1:
        return {job: fit(job) for job in jobs}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="baseline-fit") as pool:
        return dict(zip(jobs, pool.map(fit, jobs), strict=True))


# Reference rankings that read the simulator's truth: not forecasters (they see what no
# extract holds), but the ceilings a forecaster is measured against. The window's own
# intensity ranks the candidates as well as they can be ranked; the last day's and the
# last week's true intensity are what a forecaster would reach if it knew the recent past
# exactly, free of Poisson noise and of reporting delay (yesterday's withdrawals are in no
# extract dated before the forecast day).
CLAIRVOYANT = {"oracle": (0, None), "truth_last_day": (-1, 1), "truth_last_7_days": (-7, 7)}


def clairvoyant(features: pd.DataFrame, truth_file, start, end, horizons=(1, 7)) -> dict[str, pd.DataFrame]:
    """Forecast frames for the candidates of [start, end] ranked by the simulator's truth
    (see CLAIRVOYANT: offset of the first truth day read, and how many days; None = the window)."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    daily = data.read_truth(truth_file).rename(columns={"date": "event_date", "expected_withdrawals": "n_withdrawals"})
    test = features[(features["feature_date"] >= start) & (features["feature_date"] <= end)]

    out = {}
    for name, (offset, days) in CLAIRVOYANT.items():
        frames = []
        for h in horizons:
            mu = data.window_sums(test, daily, h if days is None else days, start_offset=offset)
            frames.append(forecast_frame(test, h, mu, p_any_from_mu(mu)))
        out[name] = pd.concat(frames, ignore_index=True)
    return out


def evaluate(forecasts: dict[str, pd.DataFrame], inputs: Inputs, truth_file=None, ks=(50, 200, 1000),
             by: str | None = None) -> pd.DataFrame:
    """Per-date metrics of every method (column ``method``). Realised counts are the
    withdrawals known now; a (date, horizon) whose window reaches past the last extract is
    evaluated against the truth only when there is one, and otherwise left out."""
    frames = [v for v in forecasts.values() if len(v)]
    if not frames:
        return pd.DataFrame()
    first = min(v["forecast_date"].min() for v in frames)
    last = max(v["forecast_date"].max() for v in frames)
    horizons = sorted({int(h) for v in frames for h in v["horizon_days"].unique()})
    realised = data.realised_windows(inputs.arrived, first, last, horizons)
    truth = data.load_truth(truth_file, first, last, horizons) if truth_file else None
    groups = None
    if by:
        groups = inputs.places if by == "district" and inputs.places is not None else (
            inputs.features.drop_duplicates("h3_cell").set_index("h3_cell")[by])
    out = []
    for method, fc in forecasts.items():
        if fc.empty:
            continue
        window_end = fc["forecast_date"] + pd.to_timedelta(fc["horizon_days"].astype(int) - 1, unit="D")
        fc = fc[window_end <= inputs.last_extract] if truth is None else fc
        if by:
            fc = fc.assign(**{by: fc["h3_cell"].map(groups)})
        ev = metrics.evaluate(fc, realised, ks=ks, truth=truth, by=by, groups=groups)
        ev.insert(0, "method", method)
        out.append(ev)
    return pd.concat(out, ignore_index=True)


def summary(per_date: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    parts = []
    for method, g in per_date.groupby("method", sort=False):
        s = metrics.summarise(g.drop(columns=["method"]), by=by)
        s.insert(0, "method", method)
        parts.append(s)
    return pd.concat(parts, ignore_index=True)


def gate_k(cfg: dict, features: pd.DataFrame, dates=None) -> int:
    """The K of the gate: ``primary_k``, unless that is more than half of the candidate cells
    of a typical day (then every method flags nearly everything and the metric cannot tell
    them apart): a tenth of the candidates then, at least 5."""
    f = features if dates is None else features[features["feature_date"].isin(dates)]
    typical = float(f.groupby("feature_date").size().median()) if len(f) else 0.0
    k = int(cfg["evaluation"]["primary_k"])
    return k if k <= 0.5 * typical else max(5, round(0.1 * typical))


def primary_metric(cfg: dict, with_truth: bool, k: int | None = None) -> str:
    k = int(cfg["evaluation"]["primary_k"]) if k is None else k
    return f"{cfg['promotion']['metric']}_truth_{k}" if with_truth else f"{cfg['promotion']['metric']}_{k}"


def scores(summ: pd.DataFrame, metric: str) -> dict[str, float]:
    """Each method's primary metric, averaged over horizons (each horizon averaged over dates)."""
    return {m: float(g[metric].mean()) for m, g in summ.groupby("method", sort=False)}


def gate(summ: pd.DataFrame, metric: str, margin: float) -> dict:
    """Promote the model only if, on ``metric`` averaged over the horizons, it beats the
    champion (when there is one) and every baseline by ``margin``, and on no horizon is it
    worse than any of them by more than ``margin``."""
    s = scores(summ, metric)
    rivals = [m for m in s if m != MODEL]
    per_h = {int(h): dict(zip(g["method"], g[metric], strict=True)) for h, g in summ.groupby("horizon_days")}
    reasons = []
    for r in rivals:
        if not s.get(MODEL, np.nan) >= s[r] + margin:
            reasons.append(f"{r}: model {s.get(MODEL, np.nan):.4f} vs {s[r]:.4f} (needs +{margin})")
        for h, vals in per_h.items():
            if not vals.get(MODEL, np.nan) >= vals.get(r, np.nan) - margin:
                reasons.append(f"{r} at horizon {h}: model {vals.get(MODEL, np.nan):.4f} vs {vals.get(r, np.nan):.4f}")
    return {"metric": metric, "margin": margin, "scores": s, "per_horizon": per_h,
            "promote": not reasons and MODEL in s, "blocked_by": reasons}


def target_check(summ: pd.DataFrame, metric: str) -> list[str]:
    """The issue's bar: PEI_model >= PEI_best_baseline + 0.5 x (1 - PEI_best_baseline), per horizon."""
    lines = []
    for h, g in summ.groupby("horizon_days"):
        vals = dict(zip(g["method"], g[metric], strict=True))
        base = {m: v for m, v in vals.items() if m not in (MODEL, "champion")}
        if MODEL not in vals or not base:
            continue
        best_name = max(base, key=base.get)
        need = base[best_name] + 0.5 * (1 - base[best_name])
        verdict = "reached" if vals[MODEL] >= need else "NOT reached"
        lines.append(f"horizon {h}: {metric} model {vals[MODEL]:.4f}, best baseline {best_name} "
                     f"{base[best_name]:.4f}, target {need:.4f}: {verdict}")
    return lines


def format_summary(summ: pd.DataFrame) -> str:
    cols = ["method", "horizon_days", "n_dates"] + [c for c in summ.columns if c.startswith(
        ("capture_rate_", "pai_", "pei_"))] + ["poisson_deviance", "brier"]
    cols = [c for c in cols if c in summ.columns]
    return summ[cols].sort_values(["horizon_days", "method"]).to_string(index=False, float_format=lambda v: f"{v:.4f}")


def run(warehouse: str, start, end, landing: str | None = None, log: Callable[[str], None] = print) -> pd.DataFrame:
    """`make backtest`: forecasts for every day in [start, end] into marts.backtest_forecast,
    the baselines into marts.backtest_baselines, per-date metrics into marts.backtest_metrics."""
    from hotspots import db, settings
    from hotspots.forecast import store, tracking

    cfg = settings.forecast_config()
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    conn = db.connect(warehouse)
    inputs = Inputs.load(conn)
    dates = inputs.features["feature_date"]
    if end < start:
        raise BadRequest(f"backtest: END {end.date()} is before START {start.date()}")
    if dates.empty or end > dates.max():
        raise BadRequest(f"backtest: features reach {dates.max().date() if len(dates) else 'nothing'}; "
                         f"END {end.date()} is after the day after the last extract")
    min_history = int(cfg["train"]["min_history_days"])
    if start - dates.min() < pd.Timedelta(days=min_history):
        raise BadRequest(f"backtest: features start {dates.min().date()}; START must leave at least {min_history} "
                         "days of history to train on")
    truth = data.truth_path(landing)
    k = gate_k(cfg, inputs.features, pd.date_range(start, end))
    ks = sorted(set(cfg["ks"]) | {k})
    forecasts = rolling(inputs, start, end, cfg, log=log)
    fc = forecasts.pop(MODEL)
    # Issued at the start of the forecast day in IST, after the previous day's extract.
    fc["issued_at"] = (fc["forecast_date"].dt.tz_localize("Asia/Kolkata")).map(pd.Timestamp.isoformat)
    store.ensure_tables(conn)
    with conn, conn.cursor() as cur:
        cur.execute("delete from forecast.backtest_forecast where forecast_date between %s and %s",
                    (start.date(), end.date()))
    n = store.write_forecast(conn, "backtest_forecast", fc, None,
                             f"{tracking.model_name(warehouse)}/backtest (refit every "
                             f"{cfg['evaluation']['origin_step_days']} days)")
    base = pd.concat([v.assign(method=m) for m, v in forecasts.items()], ignore_index=True)
    store.write_baselines(conn, base, (start.date(), end.date()))
    per_date = evaluate({MODEL: fc, **forecasts}, inputs, truth, ks=ks)
    store.write_metrics(conn, per_date, (start.date(), end.date()))
    by_district = summary(evaluate({MODEL: fc}, inputs, truth, ks=ks, by="district"), by="district")
    store.write_district_metrics(conn, by_district)
    summ = summary(per_date)
    conn.close()
    metric = primary_metric(cfg, truth is not None, k)
    for line in format_summary(summ).splitlines():
        log(f"evaluation: {line}")
    for line in target_check(summ, metric):
        log(f"target: {line}")
    log(f"summary: backtest {start.date()} .. {end.date()}: {n} rows in marts.backtest_forecast; metrics against "
        + ("the simulator's truth and " if truth else "") + "the realised withdrawals in marts.backtest_metrics")
    return summ
