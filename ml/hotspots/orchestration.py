"""Scheduling plumbing shared by the DAGs: which warehouse a run is for, the asset events
that carry it, and the deferrable landing sensor.

Warehouse in asset events: every task that emits one of the pipeline's assets
(raw_extracts, cell_features, model_registry, hotspot_forecast) writes
``{"warehouse": name}`` into the event's ``extra``. A DAG started by asset events works on
the warehouse(s) named in its triggering events; a manual run (UI, ``airflow dags test``,
``make``) on its ``warehouse`` param. When one run was triggered by events of several
warehouses (two landings delivered at once), it works on the first and starts one run of
itself per other warehouse (conf ``{"warehouse": ...}``), so every warehouse is built.

Landing: the ingest DAG's folder comes from configuration, ``HOTSPOTS_LANDING`` (and the
warehouse it feeds, ``HOTSPOTS_LANDING_WAREHOUSE``, default ``WAREHOUSE``). The sensor waits
in the triggerer (no worker slot held) until a complete extract date (``_MANIFEST.json``
written) is in the folder that the warehouse's ledger has not seen.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk.bases.sensor import BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from hotspots.errors import BadRequest, NotReady

WAREHOUSE_KEY = "warehouse"
LANDING_SETTING = "HOTSPOTS_LANDING"
LANDING_WAREHOUSE_SETTING = "HOTSPOTS_LANDING_WAREHOUSE"


def default_warehouse() -> str:
    return os.environ.get("WAREHOUSE", "hotspots")


def warehouse_param(default: str | None = None, description: str = "warehouse database"):
    """The ``warehouse`` param every DAG has (one definition): default WAREHOUSE."""
    from airflow.sdk import Param

    return Param(default or default_warehouse(), type="string", description=description)


def landing_folder() -> str:
    """The configured landing folder ('' when unset)."""
    return os.environ.get(LANDING_SETTING, "").strip()


def landing_warehouse() -> str:
    """The warehouse the configured landing folder feeds."""
    return os.environ.get(LANDING_WAREHOUSE_SETTING, "").strip() or default_warehouse()


class LandingNotConfigured(BadRequest):
    pass


def check_landing(landing: str | None) -> Path:
    """The landing folder as a Path, or an error that names the setting to set."""
    if not landing:
        raise LandingNotConfigured(
            f"no landing folder: set {LANDING_SETTING}=/abs/dir in the environment of the Airflow scheduler, "
            "DAG processor and triggerer (.env), or pass {\"landing\": \"/abs/dir\"} in the run's conf")
    p = Path(landing)
    if not p.is_absolute():
        raise LandingNotConfigured(f"landing folder {landing!r} is not an absolute path: set {LANDING_SETTING} "
                                   "(or the run's conf \"landing\") to an absolute path")
    if not p.is_dir():
        raise LandingNotConfigured(f"landing folder {landing} does not exist: create it or set {LANDING_SETTING} "
                                   "(or the run's conf \"landing\") to the folder the producers deliver to")
    return p


def event_extra(warehouse: str, **more: Any) -> dict:
    return {WAREHOUSE_KEY: warehouse, **more}


def emit(outlet_events, asset, warehouse: str, **more: Any) -> None:
    """Writes the warehouse (and ``more``) into the extra of the event this task emits on ``asset``."""
    outlet_events[asset].extra = event_extra(warehouse, **more)


def warehouses_of_events(events: Iterable) -> list[str]:
    """The distinct warehouses named by asset events (in the order of the events)."""
    out: list[str] = []
    for e in sorted(events, key=lambda e: (str(getattr(e, "timestamp", "")), getattr(e, "id", 0) or 0)):
        wh = (getattr(e, "extra", None) or {}).get(WAREHOUSE_KEY)
        if wh and wh not in out:
            out.append(wh)
    return out


def resolve_warehouses(context) -> list[str]:
    """Which warehouse(s) this run is for: a conf's ``warehouse`` first (manual runs and the
    per-warehouse runs started below), else the warehouses named by the triggering asset
    events, else the ``warehouse`` param's default."""
    dag_run = context.get("dag_run")
    conf = (getattr(dag_run, "conf", None) or {}) if dag_run is not None else {}
    if conf.get(WAREHOUSE_KEY):
        return [conf[WAREHOUSE_KEY]]
    triggering = context.get("triggering_asset_events") or {}
    events = [e for asset in triggering for e in triggering[asset]]
    found = warehouses_of_events(events)
    if found:
        return found
    return [(context.get("params") or {}).get(WAREHOUSE_KEY) or default_warehouse()]


def warehouse_tasks(dag_id: str):
    """Tasks for a DAG's start: ``resolve_warehouse`` (the warehouse this run works on, in XCom
    key ``warehouse``: downstream tasks take ``["warehouse"]`` of the result) and ``fan_out`` (one run of the same DAG per
    other warehouse of the triggering events; skipped when there is none). Returns the
    resolve task's XComArg (``["warehouse"]`` for the name)."""
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.sdk import task

    @task(task_id="resolve_warehouse")
    def resolve(**context) -> list[dict]:
        whs = resolve_warehouses(context)
        print(f"progress: warehouse {whs[0]}" + (f"; one run each started for {', '.join(whs[1:])}" if whs[1:] else ""))
        context["ti"].xcom_push(key=WAREHOUSE_KEY, value=whs[0])
        dag_run = context.get("dag_run")
        if dag_run is not None and not getattr(dag_run, "note", None):
            from hotspots.airflow_api import name_run

            name_run(dag_run.dag_id, dag_run.run_id, whs[0])  # the UI's run list names the warehouse
        return [{WAREHOUSE_KEY: w} for w in whs[1:]]  # the confs of the runs for the other warehouses

    r = resolve()
    TriggerDagRunOperator.partial(task_id="fan_out", trigger_dag_id=dag_id).expand(conf=r)
    return r


WAREHOUSE_TEMPLATE = "{{ ti.xcom_pull(task_ids='resolve_warehouse', key='warehouse') }}"


# ---------------------------------------------------------------- the landing sensor

def new_dates(landing: str, known: dict[str, float]) -> tuple[list[str], list[str]]:
    """(complete dates the warehouse has not seen, dates still being written). ``known`` maps
    an extract date to the time (epoch seconds) its latest delivery started loading: a date
    whose _MANIFEST.json was written after that is a re-send, and new again."""
    from hotspots import contract
    from hotspots.ingest import load

    complete, pending = load.discover(Path(landing))
    fresh = [d for d in complete
             if d not in known or (Path(landing) / d / contract.MANIFEST).stat().st_mtime > known[d]]
    return fresh, pending


def known_dates(warehouse: str) -> dict[str, float]:
    """Extract dates the warehouse's ledger has seen (loaded or rejected), with the time their
    latest delivery started loading; {} for a new warehouse."""
    from hotspots import db

    with db.acting_as(db.INGEST_CONN_ID):  # the ingest DAG's sensor: the ingest role reads its ledger
        conn = db.connect(warehouse)
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('ingest.extract_ledger') is not null")
            if not cur.fetchone()[0]:
                return {}
            cur.execute("""select extract_date::text, extract(epoch from max(started_at))::float8
                           from ingest.extract_ledger group by 1""")
            return dict(cur.fetchall())
    finally:
        conn.close()


class NewExtractTrigger(BaseTrigger):
    """Runs in the triggerer: polls the landing folder (in a thread: file system calls) until a
    complete extract date the warehouse has not seen (``known``: see new_dates) is there."""

    def __init__(self, landing: str, known: dict[str, float], poll_seconds: float = 10.0):
        super().__init__()
        self.landing, self.known, self.poll_seconds = landing, dict(known), float(poll_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"landing": self.landing, "known": self.known, "poll_seconds": self.poll_seconds})

    async def run(self):
        while True:
            try:
                fresh, pending = await asyncio.to_thread(new_dates, self.landing, self.known)
            except FileNotFoundError as e:
                yield TriggerEvent({"status": "error", "message": f"{e}: set {LANDING_SETTING}"})
                return
            if fresh:
                yield TriggerEvent({"status": "new", "dates": fresh})
                return
            if pending:
                self.log.info("waiting: %s still being written (no _MANIFEST.json yet)", ", ".join(pending))
            await asyncio.sleep(self.poll_seconds)


class NewExtractSensor(BaseSensorOperator):
    """Deferrable: done once the landing folder holds a complete extract date the warehouse
    has not seen (scheduled runs; manual runs: any complete date; returns the dates); waits in the triggerer; fails, naming the setting,
    when no folder is configured or it does not exist; fails after ``timeout`` without a new
    extract (the data engineers are told: a producer stopped delivering)."""

    template_fields = ("landing", "warehouse")

    def __init__(self, *, landing: str, warehouse: str, poll_seconds: float = 10.0, **kw):
        super().__init__(**kw)
        self.landing, self.warehouse, self.poll_seconds = landing, warehouse, poll_seconds

    def execute(self, context):
        landing = str(check_landing(self.landing))
        # A scheduled run waits for a date the warehouse has not seen; a manual one (make, the
        # UI's trigger, airflow dags test) for any complete date: it re-ingests what is there.
        run_type = getattr(context.get("dag_run"), "run_type", None)
        only_new = str(getattr(run_type, "value", run_type)) == "scheduled"
        known = known_dates(self.warehouse) if only_new else {}
        fresh, _ = new_dates(landing, known)
        if fresh:
            return self._done(fresh)
        print(f"progress: waiting in the triggerer for a new extract date in {landing} "
              f"(warehouse {self.warehouse} has {len(known)})")
        self.defer(trigger=NewExtractTrigger(landing, known, self.poll_seconds), method_name="execute_complete",
                   timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context, event=None):
        if not event or event.get("status") != "new":
            raise LandingNotConfigured((event or {}).get("message", "landing sensor: no event"))
        return self._done(event["dates"])

    def _done(self, dates):
        print(f"progress: new extract dates {', '.join(dates)} for warehouse {self.warehouse}")
        return dates

    def poke(self, context):  # BaseSensorOperator's contract; execute() defers instead of poking
        return bool(new_dates(str(check_landing(self.landing)), known_dates(self.warehouse))[0])


# ---------------------------------------------------------------- training: is it due?

class NotEnoughFeatures(NotReady):
    """A manual training run on a warehouse without features (run ingest and build_features first)."""


def training_readiness(warehouse: str, scheduled: bool) -> tuple[str | None, dict]:
    """(reason to skip or None, feature summary) for train_model's check_features. Too short a
    history is skipped (scoring falls back to a baseline); a scheduled (weekly) run also skips a
    warehouse without features and one whose champion was trained on its latest extract already
    (nothing new to learn). A manual run without features is an error (NotEnoughFeatures)."""
    from hotspots import db, settings

    summary = db.feature_summary(warehouse)
    if not summary or not summary["rows"]:
        if scheduled:
            return f"no features in {warehouse} yet", summary or {}
        raise NotEnoughFeatures(f"no features in {warehouse}: run ingest_extracts and build_features first")
    cfg = settings.forecast_config()
    need = int(cfg["evaluation"]["days"]) + int(cfg["train"]["min_history_days"])
    days = (summary["last"] - summary["first"]).days
    if days < need:
        return (f"history too short: {days} days of features, {need} needed (evaluation window plus "
                f"{need - int(cfg['evaluation']['days'])} days to learn from)"), summary
    if scheduled:
        from hotspots.forecast import tracking

        seen = tracking.champion_last_extract(warehouse)
        last_extract = str(summary["last"] - timedelta(days=1))  # features run to the day after the last extract
        if seen is not None and seen >= last_extract:
            return f"the champion was trained on extracts up to {seen}: nothing new since", summary
    return None, summary


# ---------------------------------------------------------------- the daily deadline of the forecast

IST = "Asia/Kolkata"
DEADLINE_SETTING = "HOTSPOTS_FORECAST_DEADLINE"


def forecast_deadline(value: str | None = None) -> timedelta:
    """When the day's forecast must be out, after 00:00 IST: HOTSPOTS_FORECAST_DEADLINE as HH:MM
    (default 08:00). A bad value is an error that names the setting."""
    raw = (value if value is not None else os.environ.get(DEADLINE_SETTING, "")).strip() or "08:00"
    try:
        hours, minutes = (int(x) for x in raw.split(":"))
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError
    except ValueError:
        raise ValueError(f"{DEADLINE_SETTING}={raw!r}: expected HH:MM (IST), e.g. 08:00") from None
    return timedelta(hours=hours, minutes=minutes)


def format_deadline(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d} IST"


def ist_day(when) -> str:
    """The IST calendar day of a (timezone-aware) instant, as YYYY-MM-DD."""
    from zoneinfo import ZoneInfo

    return when.astimezone(ZoneInfo(IST)).date().isoformat()


def forecast_issued_on(warehouse: str, day: str) -> str | None:
    """When the latest forecast issued on IST ``day`` was issued, or None (none yet, or no forecast table)."""
    from hotspots import db

    conn = db.connect(warehouse)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select to_regclass('marts.hotspot_forecast') is not null")
            if not cur.fetchone()[0]:
                return None
            cur.execute("""select max(issued_at)::text from marts.hotspot_forecast
                           where (issued_at at time zone 'Asia/Kolkata')::date = %s::date""", (day,))
            return cur.fetchone()[0]
    finally:
        conn.close()
