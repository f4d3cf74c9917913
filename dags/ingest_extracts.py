"""Ingest complaint extracts (contract extracts/v1) from a landing folder into the warehouse.

wait_for_manifests -> discover_extracts -> load_extract (one mapped task per extract
date, one at a time; versions resolve by updated_at and extract date, so the order of
the dates does not matter) -> summarise (emits the raw_extracts Asset).
The logic lives in `hotspots.ingest`; this file only wires it.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import Param, dag, task

from hotspots.alerts.failure import notify_failure
from hotspots.assets import RAW_EXTRACTS


@dag(
    dag_id="ingest_extracts",
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    tags=["ingest"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "on_failure_callback": notify_failure},
    params={
        "landing": Param(os.environ.get("HOTSPOTS_LANDING", ""), type="string",
                         description="absolute path of the landing folder"),
        "warehouse": Param(os.environ.get("WAREHOUSE", "hotspots"), type="string",
                           description="warehouse database"),
    },
)
def ingest_extracts():
    @task.sensor(poke_interval=10, timeout=3600, mode="poke", soft_fail=True)
    def wait_for_manifests(params=None):
        """Done once the landing folder holds at least one complete extract (_MANIFEST.json)."""
        from pathlib import Path

        from airflow.sdk import PokeReturnValue

        from hotspots.ingest import load

        complete, pending = load.discover(Path(params["landing"]))
        for d in pending:
            print(f"progress: {d} waiting (no _MANIFEST.json yet)")
        return PokeReturnValue(is_done=bool(complete), xcom_value=len(complete))

    @task
    def discover_extracts(params=None) -> list[str]:
        from pathlib import Path

        from hotspots.cli import init_warehouse
        from hotspots.ingest import load

        init_warehouse(params["warehouse"])
        complete, _ = load.discover(Path(params["landing"]))
        print(f"progress: {len(complete)} complete extract dates in {params['landing']}")
        return complete

    @task(max_active_tis_per_dagrun=1)
    def load_extract(extract_date: str, params=None) -> dict:
        from pathlib import Path

        from hotspots.ingest import load

        r = load.load_extract(Path(params["landing"]), extract_date, params["warehouse"])
        print(f"ingest: {extract_date} {r.status} read={r.rows_read} loaded={r.rows_loaded} "
              f"quarantined={r.rows_quarantined} repaired={r.rows_repaired} {r.seconds:.1f}s"
              + (f" reason: {r.reason}" if r.reason else ""))
        return {"extract_date": extract_date, "status": r.status, "reason": r.reason,
                "rows_read": r.rows_read, "rows_loaded": r.rows_loaded, "rows_quarantined": r.rows_quarantined}

    @task(outlets=[RAW_EXTRACTS])
    def summarise(results) -> dict:
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
        return {"by_status": by_status, **totals}

    dates = discover_extracts()
    wait_for_manifests() >> dates
    summarise(load_extract.expand(extract_date=dates))


ingest_extracts()
