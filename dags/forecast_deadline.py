"""The daily deadline of the forecast (Airflow 3's deadline alerts).

One run a day at 00:00 IST for the warehouse the landing folder feeds (HOTSPOTS_LANDING_WAREHOUSE,
else WAREHOUSE): wait_for_forecast waits (rescheduled, no worker slot held between checks) until a
forecast issued that day is in marts.hotspot_forecast. The run's DeadlineAlert fires when the run
is not done by HOTSPOTS_FORECAST_DEADLINE (IST, default 08:00): the triggerer tells the data
engineers (engineers in alerts/recipients.yml) that the day's forecast is not out, and where to look.
The rules live in hotspots.orchestration; this file only wires them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference
from airflow.timetables.trigger import CronTriggerTimetable

from hotspots import orchestration
from hotspots.alerts.failure import notify_deadline_missed, notify_failure

DEADLINE = orchestration.forecast_deadline()  # timedelta after 00:00 IST


@dag(
    dag_id="forecast_deadline",
    schedule=CronTriggerTimetable("0 0 * * *", timezone=orchestration.IST),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=2,
    tags=["alerts"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5), "on_failure_callback": notify_failure},
    params={"warehouse": orchestration.warehouse_param(orchestration.landing_warehouse(),
                                                       "the warehouse whose daily forecast is watched")},
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=DEADLINE,
        callback=AsyncCallback(notify_deadline_missed,
                               kwargs={"warehouse": orchestration.landing_warehouse(),
                                       "deadline": orchestration.format_deadline(DEADLINE)}),
    ),
)
def forecast_deadline():
    @task.sensor(poke_interval=300, timeout=int(timedelta(hours=23).total_seconds()), mode="reschedule")
    def wait_for_forecast(params=None, data_interval_end=None, logical_date=None):
        from airflow.sdk.bases.sensor import PokeReturnValue

        day = orchestration.ist_day(logical_date or data_interval_end)
        issued = orchestration.forecast_issued_on(params["warehouse"], day)
        if issued:
            print(f"summary: forecast for {params['warehouse']} issued {issued} (day {day})")
        return PokeReturnValue(is_done=bool(issued), xcom_value=issued)

    wait_for_forecast()


forecast_deadline()
