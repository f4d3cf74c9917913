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
from hotspots.errors import NotReady
from hotspots.forecast import backtest, tracking
from hotspots.forecast.data import feature_columns, truth_path
from hotspots.forecast.model import from_config


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v if not isinstance(v, list) else ",".join(map(str, v))
    return out


def _plot(per_date: pd.DataFrame, metric: str):
    """The backtest per forecast date and method; the y axis spans the values (not 0..1), so the
    differences between methods show. Returns the figure (logged with mlflow.log_figure)."""
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
        lo, hi = g[metric].min(), g[metric].max()
        if pd.notna(lo) and pd.notna(hi):
            pad = max((hi - lo) * 0.08, 0.005)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def _importance_plot(imp: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = imp.groupby("feature")["gain"].sum().sort_values().tail(20)
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.barh(g.index, g.values / g.values.sum())
    ax.set_title("Share of total gain (all boosters)")
    fig.tight_layout()
    return fig


def _log_figure(mlflow, fig, path: str) -> None:
    import matplotlib.pyplot as plt

    try:
        mlflow.log_figure(fig, path)
    finally:
        plt.close(fig)


def _run_description(warehouse: str, origin, metric: str, truth: bool) -> str:
    return (f"Challenger for `{warehouse}` at origin {origin.date()}: evaluated on {metric} "
            f"({'simulator truth' if truth else 'realised withdrawals'}) against the baselines and the champion, "
            "then fitted on the whole history and registered; tag promotion.decision says whether it became "
            f"`{tracking.CHAMPION}`. Per-origin metrics: evaluation/per_origin_metrics.json.")


# Overall metrics logged as metric keys (the rest of the summary is the table evaluation/backtest_summary.json).
OVERALL_KEYS = ("pei_200", "pei_truth_200", "capture_rate_200", "poisson_deviance", "brier")


def _signature(final, features: pd.DataFrame, origin):
    """(input example, signature) of the registered model: five candidate cells of the last
    feature date, and the model's own predictions for them (mu_h, p_h per horizon)."""
    from mlflow.models import infer_signature

    last = features[features["feature_date"] == features["feature_date"].max()]
    example = last[final.features].head(5).astype("float64").reset_index(drop=True)
    out = pd.DataFrame({f"{k}_{h}": v for h in final.horizons
                        for k, v in zip(("mu", "p"), final.predict(example, h), strict=True)})
    return example, infer_signature(example, out)


def _describe(client, warehouse: str, name: str, version: str, origin, metric: str, decision: dict) -> None:
    """Descriptions the registry UI shows: the registered model's, and this version's."""
    client.update_registered_model(name, description=(
        f"Cash-out hotspot model of warehouse `{warehouse}`: per H3 cell, the expected withdrawals (mu_h) and "
        "the probability of any (p_h) for each horizon h in days, from the cell's daily features. "
        f"Alias `{tracking.CHAMPION}`: the version the scoring DAG uses; a version gets it only past every baseline "
        "and the champion by the configured margin (DAG train_model)."))
    verdict = ("promoted to champion" if decision["promoted"]
               else "not promoted: " + ("; ".join(decision["blocked_by"]) or "promotion disabled"))
    scores = ", ".join(f"{m} {v:.4f}" for m, v in decision["scores"].items())
    client.update_model_version(name, version, description=(
        f"Trained at origin {origin.date()} (features up to the day before). {metric}: {scores}. {verdict}."))


def train(warehouse: str, landing: str | None = None, overrides: dict | None = None, promote: bool = True,
          log=print, run_key: str | None = None) -> dict:
    """Train, evaluate, log, register and maybe promote: evaluate(), register(), then gate(), the
    three steps train_model runs as tasks. ``overrides`` replace entries of config/forecast.yml's
    ``train`` section (e.g. a deliberately weak challenger in tests). ``run_key`` (Airflow's
    dag_id/run_id): a retry of the same run resumes the MLflow run an earlier try started, logs
    no second model and registers no second version."""
    decision = evaluate(warehouse, landing, overrides, log=log, run_key=run_key)
    return gate(warehouse, register(warehouse, decision, log=log), promote=promote, log=log)


def _logged_model_uri(run_id: str) -> str | None:
    """The model an earlier try of this MLflow run logged (models:/<id>), or None."""
    import mlflow

    found = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list")
    return f"models:/{found[0].model_id}" if found else None


def evaluate(warehouse: str, landing: str | None = None, overrides: dict | None = None, log=print,
             run_key: str | None = None) -> dict:
    """The rolling-origin evaluation against the baselines and the champion, the final fit, and
    everything logged to the MLflow run (the model with its signature and input example, not yet
    registered). Returns the gate's verdict (``promote``: it beats them all) with the run and model."""
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
        raise NotReady(f"train: {warehouse} has features from {first_feature} only; evaluation from {ev_start.date()} "
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
    resumed = tracking.find_run(warehouse, run_key) if run_key else None
    with (mlflow.start_run(run_id=resumed) if resumed else mlflow.start_run(run_name=f"train {origin.date()}")) as run, \
            tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if run_key:
            mlflow.set_tag(tracking.RUN_KEY_TAG, run_key)
        if resumed:
            log(f"progress: resuming MLflow run {resumed} of an earlier try of {run_key}")
        mlflow.set_tag(tracking.DESCRIPTION_TAG, _run_description(warehouse, origin, metric, truth is not None))
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
        # Per origin: one table (every method, horizon and metric); as step metrics only the model's
        # own headline figures, so the run's charts stay few. Overall: the gate's metrics per method.
        step_days = int(cfg["evaluation"]["origin_step_days"])
        per_date["origin"] = ((per_date["forecast_date"] - ev_start).dt.days // step_days).astype(int)
        per_origin = list(dict.fromkeys([metric, "pei_200", "capture_rate_200", "poisson_deviance", "brier"]))
        by_origin = (per_date.groupby(["method", "horizon_days", "origin"])[[m for m in per_origin if m in per_date]]
                     .mean().reset_index())
        by_origin.insert(3, "origin_date", (ev_start + pd.to_timedelta(by_origin["origin"] * step_days, unit="D"))
                         .dt.strftime("%Y-%m-%d"))
        mlflow.log_table(by_origin, "evaluation/per_origin_metrics.json")
        for row in by_origin[by_origin["method"] == backtest.MODEL].itertuples(index=False):
            mlflow.log_metrics({f"model.h{row.horizon_days}.{m}": float(getattr(row, m))
                                for m in dict.fromkeys([metric, "pei_200"])
                                if m in by_origin and pd.notna(getattr(row, m))}, step=int(row.origin))
        overall = {}
        for row in summ.itertuples(index=False):
            for c in dict.fromkeys([metric, *OVERALL_KEYS]):
                if c in summ.columns and pd.notna(getattr(row, c)):
                    overall[f"overall.{row.method}.h{row.horizon_days}.{c}"] = float(getattr(row, c))
        mlflow.log_metrics({**overall, "eval_seconds": eval_s, "fit_seconds": fit_s})
        mlflow.log_table(summ, "evaluation/backtest_summary.json")
        summ.to_csv(tmp / "backtest_summary.csv", index=False)
        model_fc = {backtest.MODEL: forecasts[backtest.MODEL]}
        backtest.summary(backtest.evaluate(model_fc, inputs, truth, ks=sorted(set(cfg["ks"]) | {k}), by="district"),
                         by="district").to_csv(tmp / "district_metrics.csv", index=False)
        per_date.to_csv(tmp / "backtest_per_date.csv", index=False)
        _log_figure(mlflow, _plot(per_date, metric), "evaluation/backtest.png")
        imp = final.importance()
        imp.to_csv(tmp / "feature_importance.csv", index=False)
        _log_figure(mlflow, _importance_plot(imp), "evaluation/feature_importance.png")
        for f in ("backtest_summary.csv", "district_metrics.csv", "backtest_per_date.csv", "feature_importance.csv"):
            mlflow.log_artifact(str(tmp / f), artifact_path="evaluation")
        model_uri = _logged_model_uri(run.info.run_id) if resumed else None
        if model_uri is None:
            folder = final.save(tmp / "model")
            example, signature = _signature(final, inputs.features, origin)
            from hotspots.forecast.pyfunc import HotspotPyfunc

            model_uri = mlflow.pyfunc.log_model(name="model", python_model=HotspotPyfunc(),
                                                artifacts={"model": str(folder)},
                                                code_paths=[str(Path(__file__).resolve().parents[1])],
                                                signature=signature, input_example=example).model_uri
        else:
            log(f"progress: the model {model_uri} was logged by an earlier try: not logged again")
        decision.update({"champion_before": champion_id, "refresh": refresh, "run_id": run.info.run_id,
                         "model_uri": model_uri, "metric": metric, "origin": str(origin.date())})
    conn.close()
    for line in backtest.format_summary(summ).splitlines():
        log(f"evaluation: {line}")
    for line in backtest.target_check(summ, metric):
        log(f"target: {line}")
    log(f"progress: evaluated at origin {origin.date()} (evaluation {eval_s:.1f} s, final fit {fit_s:.1f} s); "
        f"{metric} " + ", ".join(f"{m} {v:.4f}" for m, v in decision["scores"].items()))
    decision["scores"] = {k: round(float(v), 6) for k, v in decision["scores"].items()}
    decision["promote"] = bool(decision["promote"])
    decision["fit_seconds"], decision["eval_seconds"] = round(fit_s, 1), round(eval_s, 1)
    return decision


def register(warehouse: str, decision: dict, log=print) -> dict:
    """Registers the evaluated model as the next version of the warehouse's model (once: a retry
    finds the version its run registered). Returns the decision with ``challenger`` name/version."""
    mlflow = tracking.setup(warehouse)
    name = tracking.model_name(warehouse)
    version = tracking.registered_version(warehouse, decision["run_id"])
    if version is None:
        version = str(mlflow.register_model(decision["model_uri"], name).version)
        log(f"progress: registered {name}/{version}")
    else:
        log(f"progress: {name}/{version} was registered by an earlier try: not registered again")
    return {**decision, "challenger": f"{name}/{version}", "version": str(version)}


def gate(warehouse: str, decision: dict, promote: bool = True, log=print) -> dict:
    """The promotion gate: the champion alias moves to the challenger only if it beat the champion
    and every baseline (``decision["promote"]``) and promotion is allowed; the decision is recorded
    on the run, the version (tag, description) and in evaluation/promotion.json."""
    mlflow = tracking.setup(warehouse)
    client = mlflow.MlflowClient()
    name, version, run_id = tracking.model_name(warehouse), decision["version"], decision["run_id"]
    decision = {**decision, "promoted": bool(decision["promote"] and promote)}
    if decision["promoted"]:
        client.set_registered_model_alias(name, tracking.CHAMPION, version)
    client.log_dict(run_id, decision, "evaluation/promotion.json")
    client.set_tag(run_id, "promotion.decision", "promoted" if decision["promoted"] else "not promoted")
    client.set_tag(run_id, "promotion.blocked_by", "; ".join(decision["blocked_by"])[:4000] or "-")
    client.set_model_version_tag(name, version, "promotion", "promoted" if decision["promoted"] else "not promoted")
    _describe(client, warehouse, name, version, pd.Timestamp(decision["origin"]), decision["metric"], decision)
    verdict = "promoted to champion" if decision["promoted"] else "not promoted: " + "; ".join(decision["blocked_by"])
    log(f"summary: trained {decision['challenger']} at origin {decision['origin']} (evaluation "
        f"{decision['eval_seconds']:.1f} s, final fit {decision['fit_seconds']:.1f} s); {decision['metric']} "
        + ", ".join(f"{m} {v:.4f}" for m, v in decision["scores"].items()) + f"; {verdict}")
    return decision

