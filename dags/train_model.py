"""Train the hotspot model (weekly, and on demand from the UI or `make train`).

check_features (enough history?) -> train: a rolling-origin evaluation of the challenger,
the baselines (persistence, prospective-hotspot kernel, lag-feature GBM) and the current
champion over the last weeks, the final fit, everything logged to MLflow (parameters,
features, metrics per origin and overall, the backtest plot, feature importance, the
data version), registration, and the promotion gate: the champion alias moves only if
the challenger beats the champion and every baseline by the configured margin.
A retry of train resumes the MLflow run of its earlier try and registers no second version.
announce_champion emits the model_registry Asset (extra: the warehouse) only when the champion
moved, so scoring runs again with the new champion; it is skipped otherwise.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from hotspots import orchestration
from hotspots.alerts.failure import notify_failure
from hotspots.assets import MODEL_REGISTRY


@dag(
    dag_id="train_model",
    schedule="0 2 * * 1",  # Mondays 02:00 UTC; also triggered on demand
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["training"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2), "on_failure_callback": notify_failure},
    params={
        "warehouse": Param(os.environ.get("WAREHOUSE", "hotspots"), type="string", description="warehouse database"),
        "landing": Param("", type="string", description="landing folder; its ../truth is used for evaluation "
                         "when present (simulated histories)"),
        "promote": Param(True, type="boolean", description="allow the gate to move the champion alias"),
    },
)
def train_model():
    @task
    def check_features(params=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from hotspots import db, settings

        conn = db.connect(params["warehouse"])
        with conn, conn.cursor() as cur:
            cur.execute("select count(*), min(feature_date), max(feature_date) from marts.fct_cell_daily_features")
            rows, first, last = cur.fetchone()
        conn.close()
        if not rows:
            raise ValueError(f"no features in {params['warehouse']}: run ingest_extracts and build_features first")
        print(f"progress: features {rows} rows, {first} .. {last}")
        need = int(settings.forecast_config()["evaluation"]["days"]) + 28
        if (last - first).days < need:
            # Too short a history to train and evaluate honestly: skip (scoring falls back to a baseline).
            print(f"summary: training skipped: {(last - first).days} days of features, {need} needed "
                  "(evaluation window plus 28 days to learn from)")
            raise AirflowSkipException(f"history too short: {(last - first).days} < {need} days")
        return {"rows": rows, "first": str(first), "last": str(last)}

    @task(execution_timeout=timedelta(hours=2))
    def train(features: dict, params=None, dag_run=None) -> dict:
        from hotspots.forecast.train import train as run

        return run(params["warehouse"], params["landing"] or None, promote=params["promote"],
                   run_key=f"{dag_run.dag_id}/{dag_run.run_id}" if dag_run else None)

    @task(outlets=[MODEL_REGISTRY])
    def announce_champion(decision: dict, params=None, outlet_events=None) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        if not decision.get("promoted"):
            raise AirflowSkipException(f"{decision.get('challenger')} not promoted: the champion did not change")
        orchestration.emit(outlet_events, MODEL_REGISTRY, params["warehouse"], champion=decision["challenger"])
        print(f"summary: new champion {decision['challenger']} announced (model_registry): scoring follows")
        return decision["challenger"]

    announce_champion(train(check_features()))


train_model()
