"""The dashboards' precomputed tables after every scoring run (Asset hotspot_forecast).

Superset's charts read small indexed tables in marts (dash_*: banks per cell, money-trail flows,
daily series per district, terminals per cell, outlines) instead of aggregating raw rows per
request; marts.refresh_dashboard_tables() (superset/views.sql, created by Superset's provisioning)
rebuilds them in one transaction. Skipped when Superset was never provisioned on the warehouse. Runs for the warehouse the triggering
hotspot_forecast event names (hotspots.orchestration).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from hotspots import orchestration
from hotspots.alerts.failure import notify_failure
from hotspots.assets import HOTSPOT_FORECAST


@dag(
    dag_id="refresh_dashboards",
    schedule=[HOTSPOT_FORECAST],
    catchup=False,
    max_active_runs=1,
    tags=["dashboards"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30), "on_failure_callback": notify_failure},
    params={"warehouse": orchestration.warehouse_param()},
)
def refresh_dashboards():
    warehouse = orchestration.warehouse_tasks("refresh_dashboards")["warehouse"]

    @task(execution_timeout=timedelta(minutes=30))
    def refresh(warehouse: str) -> dict:
        from hotspots import db

        rows = db.refresh_dashboard_tables(warehouse)
        if rows is None:
            print("refresh_dashboards: Superset not provisioned on this warehouse, nothing to refresh")
            return {}
        for name, n, secs in rows:
            print(f"refresh_dashboards: marts.{name}: {n} rows in {secs} s")
        return {name: n for name, n, _ in rows}

    refresh(warehouse)


refresh_dashboards()
