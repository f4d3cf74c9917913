"""Score the next day's hotspots with the champion model, after every feature build.

score: loads models:/hotspots_<warehouse>@champion from the MLflow registry, forecasts
every candidate cell for the next day and the next 7 days, replaces
marts.hotspot_forecast (the latest forecast; every issued date is kept in
marts.hotspot_forecast_history) and explains the top cells from LightGBM's own SHAP
values in marts.hotspot_explanations. Emits the hotspot_forecast Asset (alerts and
dashboards follow it).
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import Param, dag, task

from hotspots.alerts.failure import notify_failure
from hotspots.assets import CELL_FEATURES, HOTSPOT_FORECAST


@dag(
    dag_id="score_hotspots",
    schedule=[CELL_FEATURES],
    catchup=False,
    max_active_runs=1,
    tags=["scoring"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30), "on_failure_callback": notify_failure},
    params={"warehouse": Param(os.environ.get("WAREHOUSE", "hotspots"), type="string",
                               description="warehouse database")},
)
def score_hotspots():
    @task(outlets=[HOTSPOT_FORECAST])
    def score(params=None) -> dict:
        from hotspots.forecast.score import score as run

        return run(params["warehouse"])

    score()


score_hotspots()
