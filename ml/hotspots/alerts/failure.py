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


def notify_failure(context) -> None:
    """on_failure_callback: one notice per failed task (after its last try) to the engineers."""
    try:
        from hotspots.alerts import config
        from hotspots.alerts.deliver import close_idle_smtp, send_one

        recipients = config.load_recipients(check_places=False)
        subject, body = failure_message(context)
        try:
            for eng in recipients.engineers:
                for ch in eng.channels_for("failure"):
                    ok, error = send_one(ch.url, subject, body, "text", f"failure-{subject}", [], 15)
                    if not ok:
                        log.warning("failure notice to %s/%s not delivered: %s", eng.name, ch.name, error)
        finally:
            close_idle_smtp()
    except Exception:  # noqa: BLE001 - never mask the task's failure
        log.exception("failure notice could not be sent")
