"""Ingest complaint extracts (contract extracts/v1) from a landing folder into the warehouse.

wait_for_manifests -> discover_extracts -> load_extract (one mapped task per extract
date found by the sensor, one at a time; versions resolve by updated_at and extract date, so the order of
the dates does not matter) -> summarise (emits the raw_extracts Asset, its extra naming
the warehouse: the downstream DAGs build that warehouse).
The logic lives in `hotspots.ingest`; this file only wires it.

Scheduling: with HOTSPOTS_LANDING set (the folder producers deliver to; it feeds the
warehouse HOTSPOTS_LANDING_WAREHOUSE, default WAREHOUSE) the DAG runs continuously, one run
at a time: wait_for_manifests is deferrable and waits in the triggerer until a complete
extract date the warehouse has not seen lands. Without it the DAG runs only when triggered
(conf {"landing": ..., "warehouse": ...}); a manual run waits only for any complete date.

Database roles: discover_extracts prepares the warehouse as its owner (hotspots_warehouse);
the sensor and load_extract connect as hotspots_ingest (docs/architecture.md, Database roles).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from hotspots import db, orchestration
from hotspots.alerts.failure import notify_failure
from hotspots.assets import RAW_EXTRACTS


@dag(
    dag_id="ingest_extracts",
    schedule="@continuous" if orchestration.landing_folder() else None,
    # A start in the past: @continuous takes a run's logical date from its interval's start, and
    # without start_date the first interval is empty, so every later run would repeat its date.
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["ingest"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "on_failure_callback": notify_failure},
    params={
        "landing": Param(orchestration.landing_folder(), type="string",
                         description="absolute path of the landing folder (default: HOTSPOTS_LANDING)"),
        "warehouse": orchestration.warehouse_param(
            orchestration.landing_warehouse(), "warehouse database (default: HOTSPOTS_LANDING_WAREHOUSE, else WAREHOUSE)"),
    },
)
def ingest_extracts():
    wait_for_manifests = orchestration.NewExtractSensor(
        task_id="wait_for_manifests", landing="{{ params.landing }}", warehouse="{{ params.warehouse }}",
        poll_seconds=10, timeout=26 * 3600)

    @task
    def discover_extracts(sensed: list[str], params=None, dag_run=None) -> list[str]:
        """The complete dates the sensor found (a scheduled run: the ones the warehouse has not seen)."""
        from pathlib import Path

        from hotspots.airflow_api import name_run
        from hotspots.cli import init_warehouse
        from hotspots.ingest import load

        if dag_run is not None and not getattr(dag_run, "note", None):
            name_run(dag_run.dag_id, dag_run.run_id, params["warehouse"])
        init_warehouse(params["warehouse"])  # the owner: schemas, tables, grants (load_extract may not)
        complete, _ = load.discover(Path(params["landing"]))
        dates = [d for d in complete if d in set(sensed)]
        print(f"progress: {len(complete)} complete extract dates in {params['landing']}, {len(dates)} to load")
        return dates

    @task(max_active_tis_per_dagrun=1, map_index_template="{{ extract_date }}")
    def load_extract(extract_date: str, params=None) -> dict:
        from pathlib import Path

        from airflow.sdk import get_current_context

        from hotspots.ingest import load

        get_current_context()["extract_date"] = extract_date  # the mapped instance's label in the UI
        with db.acting_as(db.INGEST_CONN_ID):  # the ingest role: writes raw and ingest, reads ref
            r = load.load_extract(Path(params["landing"]), extract_date, params["warehouse"])
        print(f"ingest: {extract_date} {r.status} read={r.rows_read} loaded={r.rows_loaded} "
              f"quarantined={r.rows_quarantined} repaired={r.rows_repaired} {r.seconds:.1f}s"
              + (f" reason: {r.reason}" if r.reason else ""))
        return {"extract_date": extract_date, "status": r.status, "reason": r.reason,
                "rows_read": r.rows_read, "rows_loaded": r.rows_loaded, "rows_quarantined": r.rows_quarantined}

    @task(outlets=[RAW_EXTRACTS])
    def summarise(results, params=None, outlet_events=None) -> dict:
        results = list(results)
        by_status: dict[str, int] = {}
        for r in results:
            by_status[r["status"]] = by_status.get(r["status"], 0) + 1
        totals = {k: sum(r[k] for r in results) for k in ("rows_read", "rows_loaded", "rows_quarantined")}
        print(f"summary: {len(results)} extract dates {by_status}; rows read {totals['rows_read']}, "
              f"loaded {totals['rows_loaded']}, quarantined {totals['rows_quarantined']}")
        for r in results:
            if r["status"] == "rejected":
                print(f"summary: REJECTED {r['extract_date']}: {r['reason']}")
        orchestration.emit(outlet_events, RAW_EXTRACTS, params["warehouse"],
                           extract_dates=sorted(r["extract_date"] for r in results if r["status"] == "loaded"))
        return {"by_status": by_status, **totals}

    dates = discover_extracts(wait_for_manifests.output)
    summarise(load_extract.expand(extract_date=dates))


ingest_extracts()
