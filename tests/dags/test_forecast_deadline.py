"""The daily deadline of the forecast (issue 13): the DAG carries an Airflow 3 DeadlineAlert at the
configured time after 00:00 IST; its callback tells the engineers for real (a local SMTP sink);
the sensor's check finds a forecast issued that IST day in a real warehouse."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from hotspots import orchestration as o


def test_the_deadline_setting_and_its_errors():
    assert o.forecast_deadline("") == timedelta(hours=8)
    assert o.forecast_deadline("09:30") == timedelta(hours=9, minutes=30)
    assert o.format_deadline(timedelta(hours=9, minutes=30)) == "09:30 IST"
    for bad in ("25:00", "8", "nine"):
        with pytest.raises(ValueError, match="HOTSPOTS_FORECAST_DEADLINE"):
            o.forecast_deadline(bad)
    # 20:00 UTC is already the next day in India.
    assert o.ist_day(datetime(2026, 3, 1, 20, 0, tzinfo=timezone.utc)) == "2026-03-02"


def test_the_dag_has_a_daily_deadline_alert(monkeypatch):
    monkeypatch.setenv("HOTSPOTS_FORECAST_DEADLINE", "07:45")
    from airflow.dag_processing.dagbag import DagBag

    from tests.dags.test_dag_integrity import ROOT

    bag = DagBag(dag_folder=str(ROOT / "dags" / "forecast_deadline.py"))
    assert bag.import_errors == {}
    dag = bag.dags["forecast_deadline"]
    (alert,) = dag.deadline
    assert alert.interval == timedelta(hours=7, minutes=45)
    assert type(alert.reference).__name__ == "DagRunLogicalDateDeadline"
    assert alert.callback.path == "hotspots.alerts.failure.notify_deadline_missed"
    assert alert.callback.kwargs["deadline"] == "07:45 IST"
    assert dag.timetable.summary.startswith("0 0 * * *")
    assert str(dag.timetable._timezone.name) == "Asia/Kolkata"


@pytest.mark.integration
def test_the_deadline_tells_the_engineers_and_the_check_sees_the_day(warehouse, sql, monkeypatch):
    from hotspots.alerts import failure
    from tests.alerts.receivers import SMTPSink

    sql("create schema if not exists marts")
    sql("create table marts.hotspot_forecast (h3_cell text, issued_at timestamptz)")
    assert o.forecast_issued_on(warehouse, "2026-03-02") is None
    sql("insert into marts.hotspot_forecast values ('x', '2026-03-01 20:30+00')")  # 02:00 IST on the 2nd
    assert o.forecast_issued_on(warehouse, "2026-03-02") is not None
    assert o.forecast_issued_on(warehouse, "2026-03-01") is None

    sink = SMTPSink().start()
    monkeypatch.setenv("ALERTS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ALERTS_SMTP_PORT", str(sink.port))
    try:
        asyncio.run(failure.notify_deadline_missed({"dag_run": {"run_id": "scheduled__2026-03-03"}},
                                                   warehouse=warehouse, deadline="08:00 IST"))
        assert len(sink.messages) == 1
        msg = sink.messages[0]["msg"]
        assert warehouse in msg["Subject"] and "08:00 IST" in msg["Subject"]
        assert "2026-03-01 20:30" in msg.get_content() or "2026-03-02 02:00" in msg.get_content()
    finally:
        sink.stop()
