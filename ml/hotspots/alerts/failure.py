"""The pipeline's own failures: one ``on_failure_callback`` for every DAG's default_args.

It tells the data engineers (``engineers`` in alerts/recipients.yml) which DAG and task
failed, in which warehouse, on which try, and where the log is. It never raises: a
notification problem must not hide the task's own failure.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def failure_message(context) -> tuple[str, str]:
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    params = context.get("params") or {}
    warehouse = params.get("warehouse") or os.environ.get("WAREHOUSE", "hotspots")
    try_number = getattr(ti, "try_number", "?")
    run_id = getattr(ti, "run_id", None) or getattr(context.get("dag_run"), "run_id", "?")
    log_url = getattr(ti, "log_url", None)
    logs = os.environ.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER", "$AIRFLOW_HOME/logs")
    where = (f"{logs}/dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log")
    error = context.get("exception")
    subject = f"[Hotspots pipeline] {dag_id}.{task_id} failed (warehouse {warehouse}, try {try_number})"
    body = "\n".join([
        f"DAG: {dag_id}", f"Task: {task_id}", f"Run: {run_id}", f"Warehouse: {warehouse}", f"Try: {try_number}",
        f"Error: {type(error).__name__}: {error}" if error else "Error: (see the log)",
        f"Log: {where}", *([f"Log in the UI: {log_url}"] if log_url else []),
    ])
    return subject, body


def _send_to_engineers(subject: str, body: str, kind: str = "failure") -> int:
    """Sends one text notice to every engineer's channels for ``kind``; returns how many went out."""
    from hotspots.alerts import config
    from hotspots.alerts.deliver import close_idle_smtp, send_one

    recipients = config.load_recipients(check_places=False)
    sent = 0
    try:
        for eng in recipients.engineers:
            for ch in eng.channels_for(kind):
                ok, error = send_one(ch.url, subject, body, "text", f"{kind}-{subject}", [], 15)
                sent += bool(ok)
                if not ok:
                    log.warning("%s notice to %s/%s not delivered: %s", kind, eng.name, ch.name, error)
    finally:
        close_idle_smtp()
    return sent


def deadline_message(warehouse: str, deadline: str, dag_id: str = "forecast_deadline", run_id: str = "?",
                     latest: str | None = None) -> tuple[str, str]:
    subject = f"[Hotspots pipeline] the day's forecast for {warehouse} is not out by {deadline}"
    body = "\n".join([
        f"Warehouse: {warehouse}", f"Deadline: {deadline} (HOTSPOTS_FORECAST_DEADLINE)",
        f"Latest forecast issued: {latest or 'none'}",
        "The chain is ingest_extracts -> build_features -> score_hotspots: look for a run that failed, is still "
        "running, or never started (no new extract date in the landing folder?).",
        f"Watching run: {dag_id} {run_id}",
    ])
    return subject, body


async def notify_deadline_missed(context=None, warehouse: str = "", deadline: str = "", **_) -> None:
    """DeadlineAlert callback (runs in the triggerer): the day's forecast was not out in time.
    Never raises (a notice problem is logged)."""
    import asyncio

    try:
        dag_run = (context or {}).get("dag_run") or {}
        # The scheduler passes the run as the REST API models it (dag_run_id); a task context as a DagRun.
        run_id = ((dag_run.get("dag_run_id") or dag_run.get("run_id") or "?") if isinstance(dag_run, dict)
                  else getattr(dag_run, "run_id", "?"))
        from hotspots import db

        def latest() -> str | None:
            try:
                with db.connect(warehouse) as conn, conn.cursor() as cur:
                    cur.execute("select max(issued_at)::text from marts.hotspot_forecast")
                    return cur.fetchone()[0]
            except Exception:  # noqa: BLE001 - no forecast table yet
                return None

        subject, body = deadline_message(warehouse, deadline, run_id=run_id, latest=await asyncio.to_thread(latest))
        await asyncio.to_thread(_send_to_engineers, subject, body)
        log.warning("%s", subject)
    except Exception:  # noqa: BLE001 - never raise from a callback
        log.exception("deadline notice could not be sent")


def notify_failure(context) -> None:
    """on_failure_callback: one notice per failed task (after its last try) to the engineers."""
    try:
        _send_to_engineers(*failure_message(context))
    except Exception:  # noqa: BLE001 - never mask the task's failure
        log.exception("failure notice could not be sent")
