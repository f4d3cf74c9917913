"""Build the H3 feature warehouse with dbt (through Cosmos) after each ingest.

register_cells (H3 geometry, parents, neighbours: no H3 in PostgreSQL here) ->
dbt task group (staging -> intermediate -> marts, one task per model; then every test,
unit tests and relationships across models included, in one task) ->
publish (emits the cell_features Asset). Triggered by the raw_extracts Asset.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Param, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

from hotspots.assets import CELL_FEATURES, RAW_EXTRACTS

DBT_DIR = Path(os.environ.get("HOTSPOTS_ROOT", Path(__file__).resolve().parents[1])) / "dbt"


@dag(
    dag_id="build_features",
    schedule=[RAW_EXTRACTS],
    catchup=False,
    max_active_runs=1,
    tags=["features"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params={"warehouse": Param(os.environ.get("WAREHOUSE", "hotspots"), type="string",
                               description="warehouse database")},
)
def build_features():
    @task
    def register_cells(params=None) -> int:
        from hotspots import db
        from hotspots.geo.cells import register_cells as register

        conn = db.connect(params["warehouse"])
        try:
            n = register(conn)
        finally:
            conn.close()
        print(f"progress: {n} new H3 cells registered")
        return n

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(dbt_project_path=DBT_DIR),
        profile_config=ProfileConfig(profile_name="hotspots", target_name="warehouse",
                                     profiles_yml_filepath=DBT_DIR / "profiles.yml"),
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL,
                                         invocation_mode=InvocationMode.DBT_RUNNER),
        render_config=RenderConfig(load_method=LoadMode.DBT_LS, select=["path:models", "path:seeds"],
                                   test_behavior=TestBehavior.AFTER_ALL, emit_datasets=False),
        operator_args={"env": {"WAREHOUSE": "{{ params.warehouse }}"}, "append_env": True, "install_deps": False},
    )

    @task(outlets=[CELL_FEATURES])
    def publish(params=None) -> dict:
        from hotspots import db

        conn = db.connect(params["warehouse"])
        with conn, conn.cursor() as cur:
            cur.execute("""select count(*), count(distinct h3_cell), min(feature_date), max(feature_date)
                           from marts.fct_cell_daily_features""")
            rows, cells, first, last = cur.fetchone()
        conn.close()
        print(f"summary: features {rows} rows, {cells} cells, feature dates {first} .. {last}")
        return {"rows": rows, "cells": cells, "first": str(first), "last": str(last)}

    register_cells() >> dbt >> publish()


build_features()
