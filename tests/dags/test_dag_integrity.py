"""Every DAG file imports cleanly and follows the project's rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPROVED_TAGS = {"ingest", "features", "training", "scoring", "alerts", "dashboards"}


@pytest.fixture(scope="module")
def dagbag():
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    assert dagbag.dags, "no DAG found in dags/"


def test_one_dag_per_file_named_after_it(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert Path(dag.fileloc).stem == dag_id


def test_tags_retries_catchup(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and set(dag.tags) <= APPROVED_TAGS, f"{dag_id}: tags {dag.tags}"
        assert dag.catchup is False, f"{dag_id}: catchup must be off (runs are driven by extracts, not dates)"
        for t in dag.tasks:
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"


def _cycle_through(dag) -> str | None:
    """A task on a cycle of the DAG's dependencies, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(task_id: str) -> str | None:
        if state.get(task_id) == 1:
            return task_id
        if state.get(task_id) == 2:
            return None
        state[task_id] = 1
        for down in dag.task_dict[task_id].downstream_task_ids:
            found = visit(down)
            if found:
                return found
        state[task_id] = 2
        return None

    return next((t for t in (visit(tid) for tid in dag.task_dict) if t), None)


def test_no_cycles(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert _cycle_through(dag) is None, f"{dag_id} has a cycle"


def test_ingest_dag_shape(dagbag):
    dag = dagbag.dags["ingest_extracts"]
    assert set(dag.task_dict) == {"wait_for_manifests", "discover_extracts", "load_extract", "summarise"}
    assert dag.task_dict["load_extract"].max_active_tis_per_dagrun == 1
    assert "wait_for_manifests" in dag.task_dict["discover_extracts"].upstream_task_ids
    assert {a.name for a in dag.task_dict["summarise"].outlets} == {"raw_extracts"}


def test_features_dag_publishes_after_the_daily_path(dagbag):
    dag = dagbag.dags["build_features"]
    ids = set(dag.task_dict)
    # The daily path is one `dbt build` (models, their tests and unit tests, cautious), the rest a
    # task per model.
    daily = dag.task_dict["dbt_features"]
    assert type(daily).__name__ == "DbtBuildLocalOperator" and daily.base_cmd == ["build"]
    assert daily.select == "+fct_cell_daily_features" and daily.indirect_selection == "cautious"
    # Its data tests read what the build can have changed; after publish, the same tests read every row.
    assert daily.vars == {"test_scope": "built"}
    audit = dag.task_dict["dbt_features_audit"]
    assert type(audit).__name__ == "DbtTestLocalOperator" and audit.base_cmd == ["test"]
    assert audit.select == daily.select and audit.indirect_selection == "cautious" and not audit.vars
    assert audit.upstream_task_ids == {"publish"}
    assert "dbt_marts.fct_cell_targets_run" in ids and "dbt_marts.fct_money_trail_run" in ids
    assert not any(t.startswith("dbt_marts.") and "daily_features" in t for t in ids)
    upstream = dag.task_dict["publish"].get_flat_relative_ids(upstream=True)
    downstream = dag.task_dict["publish"].get_flat_relative_ids(upstream=False)
    assert {"dbt_features", "register_cells"} <= upstream
    assert "register_cells" in daily.upstream_task_ids
    assert {t for t in ids if t.startswith("dbt_marts.")} <= downstream
    assert {a.name for a in dag.task_dict["publish"].outlets} == {"cell_features"}


def test_scoring_follows_the_features_and_new_champions_training_is_weekly(dagbag):
    score = dagbag.dags["score_hotspots"]
    condition = repr(score.timetable.asset_condition)
    assert "name='cell_features'" in condition and "name='model_registry'" in condition
    assert type(score.timetable.asset_condition).__name__ == "AssetAny"
    assert {a.name for a in score.task_dict["score"].outlets} == {"hotspot_forecast"}
    train = dagbag.dags["train_model"]
    assert train.timetable.expression == "0 2 * * 1"
    assert set(train.task_dict) == {"check_features", "evaluate", "register", "promote", "announce_champion"}
    # Training shows its steps as tasks: check_features -> evaluate -> register -> promote -> announce.
    chain = ["check_features", "evaluate", "register", "promote", "announce_champion"]
    for up, down in zip(chain, chain[1:], strict=False):
        assert train.task_dict[down].upstream_task_ids == {up}, (down, train.task_dict[down].upstream_task_ids)
    assert {a.name for a in train.task_dict["announce_champion"].outlets} == {"model_registry"}
    assert not any(train.task_dict[t].outlets for t in chain[:-1])


def test_asset_triggered_dags_resolve_their_warehouse_first(dagbag):
    for dag_id in ("build_features", "score_hotspots", "dispatch_alerts", "refresh_dashboards"):
        dag = dagbag.dags[dag_id]
        assert {"resolve_warehouse", "fan_out"} <= set(dag.task_dict), dag_id
        first = {t.task_id for t in dag.tasks if not t.upstream_task_ids}
        assert first == {"resolve_warehouse"}, f"{dag_id} starts with {first}"


def test_ingest_sensor_is_deferrable():
    from hotspots.orchestration import NewExtractSensor

    assert NewExtractSensor.execute is not NewExtractSensor.__mro__[1].execute
