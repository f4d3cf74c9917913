"""The forecast deadline seen firing under the real scheduler (issue 13): a test Airflow (its own
home and metadata database; API server, scheduler, DAG processor, triggerer; LocalExecutor) with
only forecast_deadline in its DAG folder, the deadline one minute after 00:00 IST
(HOTSPOTS_FORECAST_DEADLINE=00:01), for a test warehouse that has no forecast. The DAG is unpaused
and nothing else is done: the scheduler has to start today's run, find its deadline missed, the
triggerer run the DeadlineAlert's callback, and the engineers' mail arrive at a real SMTP receiver."""

from __future__ import annotations

import shutil
import time
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from hotspots import orchestration as o
from tests.airflow_services import AirflowServices, airflow_env, wait_for
from tests.alerts.receivers import SMTPSink, free_port
from tests.conftest import ROOT, _require_make_env, create_db, drop_db
from tests.conftest import query as q

pytestmark = pytest.mark.integration


def test_a_missed_deadline_tells_the_engineers_under_the_scheduler(tmp_path):
    import subprocess

    from hotspots.settings import airflow_passwords

    _require_make_env()
    tag = uuid.uuid4().hex[:8]
    wh, meta = f"test_deadline_{tag}", f"test_deadline_airflow_{tag}"
    create_db(wh)
    subprocess.run([str(ROOT / "scripts" / "pg.sh"), "ensure-db", meta], check=True, capture_output=True)
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "dags" / "forecast_deadline.py", dags)
    home = tmp_path / "airflow"
    home.mkdir()
    airflow_passwords(home / "passwords.json", "admin:admin", announce=lambda _: None)
    smtp = SMTPSink().start()
    port = str(free_port())
    env = airflow_env(
        home, meta, port,
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__PARALLELISM="2",
        HOTSPOTS_FORECAST_DEADLINE="00:01",
        HOTSPOTS_LANDING_WAREHOUSE=wh,
        WAREHOUSE=wh,
        ALERTS_SMTP_HOST="127.0.0.1",
        ALERTS_SMTP_PORT=str(smtp.port),
    )
    env.pop("HOTSPOTS_LANDING", None)
    af = AirflowServices(tmp_path, env)
    try:
        t0 = time.perf_counter()
        af.cli("db", "migrate")
        print(f"deadline: metadata database migrated in {time.perf_counter() - t0:.1f} s")
        af.start()

        def wait(what, check, timeout):
            return wait_for(what, check, af, timeout, every=2, logs=("scheduler", "triggerer"))

        wait("the DAG to be parsed", lambda: q(meta, "select 1 from dag where dag_id = 'forecast_deadline'"), 180)
        af.cli("dags", "unpause", "forecast_deadline")
        t1 = time.perf_counter()
        # Unpaused, the scheduler starts today's run (00:00 IST); its deadline, the logical date plus
        # the configured minute, is already past (unless the test runs in that very minute: it waits).
        run_id, logical, deadline_time = wait(
            "the scheduled run and its deadline",
            lambda: q(meta, """select r.run_id, r.logical_date, d.deadline_time from deadline d
                               join dag_run r on r.id = d.dagrun_id where r.run_type = 'scheduled'"""), 120)[0]
        assert deadline_time == logical + timedelta(minutes=1)
        assert o.ist_day(logical) == o.ist_day(datetime.now(timezone.utc)) and \
            logical.astimezone(ZoneInfo(o.IST)).strftime("%H:%M") == "00:00", logical

        wait("the engineers' mail", lambda: list(smtp.messages), 180)
        print(f"deadline: notice delivered {time.perf_counter() - t1:.1f} s after the DAG was unpaused")
        time.sleep(10)  # a second notice for the same deadline would have come by now
        msgs = list(smtp.messages)
        assert len(msgs) == 1, [m["msg"]["Subject"] for m in msgs]
        assert msgs[0]["to"] == ["data-eng@localhost"]  # the engineers (alerts/recipients.yml)
        msg = msgs[0]["msg"]
        assert wh in msg["Subject"] and "00:01 IST" in msg["Subject"], msg["Subject"]
        assert "Latest forecast issued: none" in msg.get_content()
        # The scheduler marked the deadline missed, the triggerer ran its callback once.
        assert q(meta, "select missed from deadline") == [(True,)]
        assert q(meta, "select state from callback") == [("success",)]
        # The run itself is still waiting for a forecast: the deadline fired while it ran.
        assert q(meta, "select state from dag_run where run_id = %s", (run_id,))[0][0] in ("running", "queued")
        # The notice names the run it watched (the callback's context is the REST API's dag run:
        # its id is dag_run_id).
        assert f"Watching run: forecast_deadline {run_id}" in msg.get_content(), (
        "the notice must name the run: hotspots.alerts.failure.notify_deadline_missed reads the run id as "
        "context['dag_run']['dag_run_id'] (the REST API's name)\n" + msg.get_content())
    finally:
        af.stop()
        smtp.stop()
        drop_db(meta)
        drop_db(wh)
