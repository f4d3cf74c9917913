"""Scoring: the champion forecasts every candidate cell of the next forecast date for both
horizons, written to marts.hotspot_forecast (the latest forecast only) and
marts.hotspot_forecast_history (every issued date), with SHAP explanations of the top
cells in marts.hotspot_explanations.

Without a champion yet (a new warehouse, or no challenger has beaten the baselines) the
forecast comes from the prospective-hotspot kernel baseline, and model_version says so.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from hotspots import db, settings
from hotspots.errors import NotReady
from hotspots.forecast import backtest, data, explain, store, tracking
from hotspots.forecast.baselines import BASELINES, p_any_from_mu

FALLBACK = "kernel"


def _explanations(model, rows: pd.DataFrame, fc: pd.DataFrame, h: int, top: int, n_features: int) -> pd.DataFrame:
    ranked = store.rank(fc)
    best = ranked.nsmallest(top, "risk_rank")
    x = rows.set_index("h3_cell").loc[best["h3_cell"]].reset_index()
    contrib = model.contributions(x, h)
    ex = explain.top_contributions(contrib, model.features, x[model.features], top=n_features)
    ex["h3_cell"] = x["h3_cell"].to_numpy()[ex["row"].to_numpy()]
    ex["risk_rank"] = best["risk_rank"].to_numpy()[ex["row"].to_numpy()]
    ex["forecast_date"] = best["forecast_date"].iloc[0] if len(best) else pd.NaT
    ex["horizon_days"] = h
    return ex


def score(warehouse: str, forecast_date=None, log=print) -> dict:
    cfg = settings.forecast_config()
    t_load = time.perf_counter()
    model, version = tracking.load_champion(warehouse)
    load_s = time.perf_counter() - t_load
    conn = db.connect(warehouse)
    t0 = time.perf_counter()
    if forecast_date is None:
        with conn.cursor() as cur:
            cur.execute(f"select max(feature_date) from {data.FEATURES_TABLE}")
            forecast_date = cur.fetchone()[0]
        if forecast_date is None:
            raise NotReady("score: no features built in this warehouse yet")
    d = pd.Timestamp(forecast_date)
    rows = data.load_features(conn, d, d)
    if rows.empty:
        raise NotReady(f"score: no feature rows for {d.date()}")
    issued_at = pd.Timestamp.now(tz="UTC")
    parts = []
    if model is not None:
        for h in cfg["horizons"]:
            mu, p = model.predict(rows, h)
            parts.append(backtest.forecast_frame(rows, h, mu, p))
    else:
        version = f"baseline/{FALLBACK} (no champion in {tracking.model_name(warehouse)} yet)"
        arrived = data.load_arrived(conn, before=d)
        neighbours = data.load_neighbours(conn)
        history = data.load_features(conn, d - pd.Timedelta(days=120), d - pd.Timedelta(days=1))
        for h in cfg["horizons"]:
            b = BASELINES[FALLBACK]().fit(history, arrived, neighbours, h, d)
            mu = b.predict(rows, arrived, neighbours, h)
            parts.append(backtest.forecast_frame(rows, h, mu, p_any_from_mu(mu)))
    fc = pd.concat(parts, ignore_index=True)
    n = store.write_forecast(conn, "hotspot_forecast", fc, issued_at, version, replace_all=True)
    score_s = time.perf_counter() - t0
    store.write_forecast(conn, "hotspot_forecast_history", fc, issued_at, version)
    t1 = time.perf_counter()
    n_ex = 0
    if model is not None:
        sc = cfg["scoring"]
        ex = pd.concat([_explanations(model, rows, fc[fc["horizon_days"] == h], h, int(sc["explain_top"]),
                                      int(sc["explain_features"])) for h in cfg["horizons"]], ignore_index=True)
        ex["model_version"], ex["issued_at"] = version, issued_at.isoformat()
        n_ex = store.write_explanations(conn, ex)
    explain_s = time.perf_counter() - t1
    conn.close()
    out = {"forecast_date": str(d.date()), "rows": n, "cells": int(rows["h3_cell"].nunique()),
           "model_version": version, "load_model_s": round(load_s, 2), "score_s": round(score_s, 2),
           "explain_s": round(explain_s, 2), "explanations": n_ex,
           "expected_total_1d": float(np.round(fc.loc[fc.horizon_days == 1, "expected_withdrawals"].sum(), 1))}
    log(f"summary: forecast for {out['forecast_date']} by {version}: {n} rows ({out['cells']} cells x "
        f"{len(cfg['horizons'])} horizons) in {score_s:.2f} s (features read, predicted, written; model loaded "
        f"in {load_s:.1f} s); {n_ex} explanation lines in {explain_s:.2f} s")
    return out
