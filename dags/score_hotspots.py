"""Score the next day's hotspots with the champion model, after every feature build and
every promotion of a new champion (cell_features | model_registry), for the warehouse the
triggering event names (hotspots.orchestration), or the warehouse param on a manual run.

score: loads models:/hotspots_<warehouse>@champion from the MLflow registry, forecasts
every candidate cell for the next day and the next 7 days, replaces
marts.hotspot_forecast (the latest forecast; every issued date is kept in
marts.hotspot_forecast_history) and explains the top cells from LightGBM's own SHAP
values in marts.hotspot_explanations. Emits the hotspot_forecast Asset (alerts and
dashboards follow it).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from hotspots import orchestration
from hotspots.alerts.failure import notify_failure
from hotspots.assets import CELL_FEATURES, HOTSPOT_FORECAST, MODEL_REGISTRY


@dag(
    dag_id="score_hotspots",
    schedule=CELL_FEATURES | MODEL_REGISTRY,
    catchup=False,
    max_active_runs=1,
    tags=["scoring"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30), "on_failure_callback": notify_failure},
    params={"warehouse": orchestration.warehouse_param()},
)
def score_hotspots():
    warehouse = orchestration.warehouse_tasks("score_hotspots")["warehouse"]

    @task(outlets=[HOTSPOT_FORECAST])
    def score(warehouse: str, outlet_events=None) -> dict:
        from hotspots.forecast.score import score as run

        out = run(warehouse)
        orchestration.emit(outlet_events, HOTSPOT_FORECAST, warehouse)
        return out

    score(warehouse)


score_hotspots()
