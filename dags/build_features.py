"""Build the H3 feature warehouse with dbt (through Cosmos) after each ingest.

register_cells (H3 geometry, parents, neighbours: no H3 in PostgreSQL here) ->
dbt_features (the daily path: one Cosmos `dbt build` of fct_cell_daily_features and everything
it reads, each model's tests and unit tests right after it, a failure stopping what depends on
it; the forecast waits on this path, and one dbt invocation costs a second where a task per model
cost a second each; its data tests read the rows the build can have changed: dbt var
test_scope=built, dbt/macros/test_scope.sql) -> publish (emits the cell_features Asset:
forecasting can start) -> dbt_features_audit (the same path's data tests on every row) and
dbt_marts (targets, cells, districts, money trail: one task per model, then every remaining
test, relationships across both groups included). Triggered by raw_extracts,
for the warehouse its events name (resolve_warehouse; hotspots.orchestration), or the
warehouse param on a manual run. Every task connects as hotspots_dbt (Cosmos' profile mapping
from that Airflow connection; docs/architecture.md, Database roles).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior, TestIndirectSelection
from cosmos.operators.local import DbtBuildLocalOperator, DbtTestLocalOperator
from cosmos.profiles import PostgresUserPasswordProfileMapping

from hotspots import db, orchestration
from hotspots.alerts.failure import notify_failure
from hotspots.assets import CELL_FEATURES, RAW_EXTRACTS

DAILY_PATH = "+fct_cell_daily_features"
DBT_DIR = Path(os.environ.get("HOTSPOTS_ROOT", Path(__file__).resolve().parents[1])) / "dbt"
DBT_CONN_ID = db.dbt_conn_id()  # hotspots_dbt (the owner's, with a warning, where it is not defined)


@dag(
    dag_id="build_features",
    schedule=[RAW_EXTRACTS],
    catchup=False,
    max_active_runs=1,
    tags=["features"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30), "on_failure_callback": notify_failure},
    params={"warehouse": orchestration.warehouse_param()},
)
def build_features():
    warehouse = orchestration.warehouse_tasks("build_features")["warehouse"]

    @task
    def register_cells(warehouse: str) -> int:
        from hotspots import db
        from hotspots.geo.cells import register_cells as register

        with db.acting_as(db.DBT_CONN_ID):  # writes ref's cell tables, reads raw: dbt's role
            conn = db.connect(warehouse)
        try:
            n = register(conn)
        finally:
            conn.close()
        print(f"progress: {n} new H3 cells registered")
        return n

    # dbt's Airflow connection (hotspots_dbt: server, port, login, password); the database is the
    # run's warehouse, read by dbt from WAREHOUSE (templated below) when it runs.
    profile = ProfileConfig(profile_name="hotspots", target_name="warehouse",
                            profile_mapping=PostgresUserPasswordProfileMapping(
                                conn_id=DBT_CONN_ID,
                                profile_args={"dbname": "{{ env_var('WAREHOUSE') }}", "schema": "dbt", "threads": 2}))
    dbt_env = {"env": {"WAREHOUSE": orchestration.WAREHOUSE_TEMPLATE}, "append_env": True, "install_deps": False}

    # The daily path in one dbt invocation: `dbt build` runs each model's tests (and unit tests) as
    # soon as it is built and skips what depends on a failure; its tests only where all their models
    # are in it (cautious). The task's log and dbt's run_results name each model's outcome. Its data
    # tests read the rows this build can have changed (test_scope: built): over two national years
    # a unique test of every transfer ever loaded would cost more than the day's whole build.
    features = DbtBuildLocalOperator(task_id="dbt_features", project_dir=str(DBT_DIR), profile_config=profile,
                                     select=DAILY_PATH, indirect_selection=TestIndirectSelection.CAUTIOUS.value,
                                     vars={"test_scope": "built"},
                                     invocation_mode=InvocationMode.DBT_RUNNER, emit_datasets=False, **dbt_env)

    # After publish, off the forecast's path: the same data tests on every row (the unit tests
    # ran in the build), so nothing the scope leaves out goes unchecked for longer than a day's run.
    audit = DbtTestLocalOperator(task_id="dbt_features_audit", project_dir=str(DBT_DIR), profile_config=profile,
                                 select=DAILY_PATH, exclude="test_type:unit",
                                 indirect_selection=TestIndirectSelection.CAUTIOUS.value,
                                 invocation_mode=InvocationMode.DBT_RUNNER, emit_datasets=False, **dbt_env)

    # Then the rest, one task per model: tests touching any of its models (eager), so tests across
    # both parts run here.
    marts = DbtTaskGroup(
        group_id="dbt_marts",
        project_config=ProjectConfig(dbt_project_path=DBT_DIR),
        profile_config=profile,
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL,
                                         invocation_mode=InvocationMode.DBT_RUNNER,
                                         test_indirect_selection=TestIndirectSelection.EAGER),
        render_config=RenderConfig(load_method=LoadMode.DBT_LS, test_behavior=TestBehavior.AFTER_ALL,
                                   emit_datasets=False, select=["path:models", "path:seeds"], exclude=[DAILY_PATH]),
        operator_args=dbt_env,
    )

    @task(outlets=[CELL_FEATURES])
    def publish(warehouse: str, outlet_events=None) -> dict:
        with db.acting_as(db.DBT_CONN_ID):
            f = db.feature_summary(warehouse)
        print(f"summary: features {f['rows']} rows, {f['cells']} cells, feature dates {f['first']} .. {f['last']}")
        orchestration.emit(outlet_events, CELL_FEATURES, warehouse, last_feature_date=str(f["last"]))
        return {"rows": f["rows"], "cells": f["cells"], "first": str(f["first"]), "last": str(f["last"])}

    published = register_cells(warehouse) >> features >> publish(warehouse)
    published >> [audit, marts]


build_features()
