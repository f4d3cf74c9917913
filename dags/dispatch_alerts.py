"""Alerts through Apprise after every scoring run (Asset hotspot_forecast).

decide: validates alerts/recipients.yml and config/alerts.yml, decides which hotspots
deserve an alert for whom (tiers, routing, repeats, silences, daily caps, escalation of
unacknowledged alerts) and writes the outbox in the same transaction (schema alerts).
deliver: sends what is due in the outbox through Apprise, with retries and backoff, dead
letters, every attempt recorded. Re-runs send nothing twice (docs/alerts.md).
Runs for the warehouse the triggering hotspot_forecast event names (hotspots.orchestration),
or the warehouse param on a manual run.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from hotspots import orchestration
from hotspots.alerts.failure import notify_failure
from hotspots.assets import HOTSPOT_FORECAST


@dag(
    dag_id="dispatch_alerts",
    schedule=[HOTSPOT_FORECAST],
    catchup=False,
    max_active_runs=1,
    tags=["alerts"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10), "on_failure_callback": notify_failure},
    params={
        "warehouse": orchestration.warehouse_param(),
        "recipients": Param("", type="string", description="recipients file (default alerts/recipients.yml)"),
        "rules": Param("", type="string", description="rules file (default config/alerts.yml)"),
        "now": Param("", type="string", description="the decision's clock, ISO time (default: the run's start)"),
    },
)
def dispatch_alerts():
    warehouse = orchestration.warehouse_tasks("dispatch_alerts")["warehouse"]

    @task
    def decide(warehouse: str, params=None, dag_run=None) -> dict:
        from hotspots.alerts.dispatch import decide as run

        now = params["now"] or (dag_run.start_date.isoformat() if dag_run and dag_run.start_date else None)
        return run(warehouse, params["recipients"] or None, params["rules"] or None, now=now,
                   run_id=dag_run.run_id if dag_run else None)

    @task(execution_timeout=timedelta(minutes=30))
    def deliver(warehouse: str, params=None) -> dict:
        from hotspots.alerts.dispatch import deliver as run

        return run(warehouse, params["recipients"] or None, params["rules"] or None)

    decide(warehouse) >> deliver(warehouse)


dispatch_alerts()
