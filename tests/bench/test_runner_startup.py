"""The day under Airflow counts its tasks without Airflow's own start-up: the seconds between
`airflow dags test` starting its first task and that task's runner reporting it started."""

from __future__ import annotations

from hotspots.bench import runner_startup_s

OUTPUT = """\
2026-12-02T12:32:07.071817Z [info     ] DAG bundles loaded: dags-folder
2026-12-02T12:32:07.474824Z [info     ] [DAG TEST] running task <TaskInstance: build_features.resolve_warehouse manual>
progress: a line of the task's own, without a time
2026-12-02T12:32:12.814094Z [info     ] Task started                   [airflow.api_fastapi.execution_api.routes]
2026-12-02T12:32:13.009825Z [info     ] [DAG TEST] running task <TaskInstance: build_features.register_cells manual>
2026-12-02T12:32:13.031042Z [info     ] Task started                   [airflow.api_fastapi.execution_api.routes]
"""


def test_the_first_tasks_runner_start_up_is_measured_from_the_output():
    assert abs(runner_startup_s(OUTPUT) - 5.33927) < 1e-6


def test_no_start_up_is_subtracted_when_the_lines_are_missing():
    assert runner_startup_s("") == 0.0
    assert runner_startup_s(OUTPUT.split("progress")[0]) == 0.0  # running, never started
    started_only = "\n".join(ln for ln in OUTPUT.splitlines() if "Task started" in ln)
    assert runner_startup_s(started_only) == 0.0
