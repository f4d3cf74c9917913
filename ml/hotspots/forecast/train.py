"""Training: rolling-origin evaluation, the final fit, MLflow logging, registration and the
promotion gate.

The origin is the next forecast date (the day after the last extract). The evaluation
window is the ``evaluation.days`` before it; inside it the challenger recipe, every
baseline and the current champion forecast the same cell-days (the challenger and the
baselines refitted at each origin from what had arrived before it). The challenger is
registered always, and gets the champion alias only if it beats the champion and every
baseline by the configured margin on each horizon. A champion that was trained on part
of the window has an in-sample advantage there: the gate is then conservative.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from hotspots import db, settings
from hotspots.forecast import backtest, tracking
from hotspots.forecast.data import feature_columns, truth_path
from hotspots.forecast.model import HotspotPyfunc, from_config


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v if not isinstance(v, list) else ",".join(map(str, v))
    return out


def _plot(per_date: pd.DataFrame, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizons = sorted(per_date["horizon_days"].unique())
    fig, axes = plt.subplots(len(horizons), 1, figsize=(10, 3.2 * len(horizons)), squeeze=False)
    for ax, h in zip(axes[:, 0], horizons, strict=True):
        g = per_date[per_date["horizon_days"] == h]
        for method, m in g.groupby("method"):
            m = m.sort_values("forecast_date")
            ax.plot(m["forecast_date"], m[metric], label=method, lw=2.2 if method == backtest.MODEL else 1.2)
        ax.set_title(f"{metric} per forecast date, horizon {h} day(s)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _importance_plot(imp: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = imp.groupby("feature")["gain"].sum().sort_values().tail(20)
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.barh(g.index, g.values / g.values.sum())
    ax.set_title("Share of total gain (all boosters)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def train(warehouse: str, landing: str | None = None, overrides: dict | None = None, promote: bool = True,
          log=print, run_key: str | None = None) -> dict:
    """Train, evaluate, log, register and maybe promote. ``overrides`` replace entries of
    config/forecast.yml's ``train`` section (e.g. a deliberately weak challenger in tests).
    ``run_key`` (Airflow's dag_id/run_id): a retry of the same run resumes the MLflow run an
    earlier try started and registers no second version."""
    cfg = settings.forecast_config()
    for k, v in (overrides or {}).items():
        cfg["train"][k] = v
    conn = db.connect(warehouse)
    inputs = backtest.Inputs.load(conn)
    feats = list(cfg["train"].get("features") or feature_columns(inputs.features))
    origin = inputs.last_extract + pd.Timedelta(days=1)
    ev_days = int(cfg["evaluation"]["days"])
    ev_start, ev_end = origin - pd.Timedelta(days=ev_days), origin - pd.Timedelta(days=1)
    first_feature = inputs.features["feature_date"].min()
    min_history = int(cfg["train"]["min_history_days"])
    if pd.isna(first_feature) or ev_start - first_feature < pd.Timedelta(days=min_history):
        raise SystemExit(f"train: {warehouse} has features from {first_feature} only; evaluation from {ev_start.date()} "
                         f"needs at least {min_history} days of history before it")
    truth = truth_path(landing)
    champion, champion_id = tracking.load_champion(warehouse)
    if champion is not None and set(champion.features) - set(inputs.features.columns):
        log(f"progress: champion {champion_id} needs features the warehouse lacks; it cannot be compared")
        champion = None
    mlflow = tracking.setup(warehouse)
    challenger_recipe = from_config(cfg, feats).recipe()
    refresh = champion is not None and champion.recipe() == challenger_recipe
    if refresh:
        # The same recipe on newer data: it has to beat the baselines, not a copy of itself.
        log(f"progress: challenger has the recipe of champion {champion_id}: a refresh on newer data")

    t0 = time.perf_counter()
    forecasts = backtest.rolling(inputs, ev_start, ev_end, cfg, champion=None if refresh else champion,
                                         model_factory=lambda cols: from_config(cfg, feats), log=log)
    k = backtest.gate_k(cfg, inputs.features, pd.date_range(ev_start, ev_end))
    per_date = backtest.evaluate(forecasts, inputs, truth, ks=sorted(set(cfg["ks"]) | {k}))
    summ = backtest.summary(per_date)
    eval_s = time.perf_counter() - t0
    metric = backtest.primary_metric(cfg, truth is not None, k)
    decision = backtest.gate(summ, metric, float(cfg["promotion"]["margin"]))

    t1 = time.perf_counter()
    final = from_config(cfg, feats).fit(inputs.features, inputs.arrived, origin)
    fit_s = time.perf_counter() - t1
    name = tracking.model_name(warehouse)
    resumed = tracking.find_run(warehouse, run_key) if run_key else None
    with (mlflow.start_run(run_id=resumed) if resumed else mlflow.start_run(run_name=f"train {origin.date()}")) as run, \
            tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if run_key:
            mlflow.set_tag(tracking.RUN_KEY_TAG, run_key)
        if resumed:
            log(f"progress: resuming MLflow run {resumed} of an earlier try of {run_key}")
        mlflow.log_params({k: v for k, v in _flat({"train": cfg["train"], "evaluation": cfg["evaluation"],
                                                    "promotion": cfg["promotion"]}).items()
                           if k != "train.features"})
        mlflow.log_params({"origin": str(origin.date()), "settle_days": final.card["settle_days"],
                           "n_features": len(feats), "evaluation_metric": metric,
                           "truth": "simulator truth" if truth else "realised withdrawals"})
        mlflow.set_tags({f"data.{k}": v for k, v in tracking.data_version(conn).items()})
        mlflow.set_tag("warehouse", warehouse)
        (tmp / "features.json").write_text(json.dumps(feats, indent=1))
        mlflow.log_artifact(str(tmp / "features.json"))
        # Metrics per origin (step = origin number) and overall.
        step_days = int(cfg["evaluation"]["origin_step_days"])
        per_date["origin"] = ((per_date["forecast_date"] - ev_start).dt.days // step_days).astype(int)
        per_origin = list(dict.fromkeys([metric, "pei_200", "capture_rate_200", "poisson_deviance", "brier"]))
        for (method, h, o), g in per_date.groupby(["method", "horizon_days", "origin"]):
            mlflow.log_metrics({f"{method}.h{h}.{m}": float(g[m].mean()) for m in per_origin
                                if m in g and g[m].notna().any()}, step=int(o))
        for row in summ.itertuples(index=False):
            for c in summ.columns:
                if c not in ("method", "horizon_days") and pd.notna(getattr(row, c)):
                    mlflow.log_metric(f"overall.{row.method}.h{row.horizon_days}.{c}", float(getattr(row, c)))
        mlflow.log_metrics({"eval_seconds": eval_s, "fit_seconds": fit_s})
        summ.to_csv(tmp / "backtest_summary.csv", index=False)
        model_fc = {backtest.MODEL: forecasts[backtest.MODEL]}
        backtest.summary(backtest.evaluate(model_fc, inputs, truth, ks=sorted(set(cfg["ks"]) | {k}), by="district"),
                         by="district").to_csv(tmp / "district_metrics.csv", index=False)
        per_date.to_csv(tmp / "backtest_per_date.csv", index=False)
        _plot(per_date, metric, tmp / "backtest.png")
        imp = final.importance()
        imp.to_csv(tmp / "feature_importance.csv", index=False)
        _importance_plot(imp, tmp / "feature_importance.png")
        for f in ("backtest_summary.csv", "district_metrics.csv", "backtest_per_date.csv", "backtest.png", "feature_importance.csv",
                  "feature_importance.png"):
            mlflow.log_artifact(str(tmp / f), artifact_path="evaluation")
        version = tracking.registered_version(warehouse, run.info.run_id) if resumed else None
        if version is None:
            folder = final.save(tmp / "model")
            info = mlflow.pyfunc.log_model(name="model", python_model=HotspotPyfunc(),
                                           artifacts={"model": str(folder)}, registered_model_name=name,
                                           code_paths=[str(Path(__file__).resolve().parents[1])])
            version = info.registered_model_version
        else:
            log(f"progress: {name}/{version} was registered by an earlier try: not registered again")
        decision.update({"champion_before": champion_id, "challenger": f"{name}/{version}", "refresh": refresh,
                         "promoted": bool(decision["promote"] and promote)})
        if decision["promoted"]:
            mlflow.MlflowClient().set_registered_model_alias(name, tracking.CHAMPION, str(version))
        mlflow.log_dict(decision, "evaluation/promotion.json")
        mlflow.set_tags({"promotion.decision": "promoted" if decision["promoted"] else "not promoted",
                         "promotion.blocked_by": "; ".join(decision["blocked_by"])[:4000] or "-"})
        client = mlflow.MlflowClient()
        client.set_model_version_tag(name, str(version), "promotion",
                                     "promoted" if decision["promoted"] else "not promoted")
        decision["run_id"] = run.info.run_id
    conn.close()
    for line in backtest.format_summary(summ).splitlines():
        log(f"evaluation: {line}")
    for line in backtest.target_check(summ, metric):
        log(f"target: {line}")
    verdict = "promoted to champion" if decision["promoted"] else "not promoted: " + "; ".join(decision["blocked_by"])
    log(f"summary: trained {decision['challenger']} at origin {origin.date()} (evaluation {eval_s:.1f} s, "
        f"final fit {fit_s:.1f} s); {metric} " + ", ".join(f"{m} {v:.4f}" for m, v in decision["scores"].items())
        + f"; {verdict}")
    decision["scores"] = {k: round(v, 6) for k, v in decision["scores"].items()}
    decision["fit_seconds"], decision["eval_seconds"] = round(fit_s, 1), round(eval_s, 1)
    return decision

