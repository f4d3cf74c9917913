"""The data-aware chain under the real scheduler (issue 13), and a retried training.

A test Airflow (its own AIRFLOW_HOME and metadata database, so the developer's Airflow is
untouched): API server (the execution API tasks talk to) on a free port, scheduler, DAG
processor and triggerer, LocalExecutor on the local cluster. ingest_extracts is configured
with HOTSPOTS_LANDING (a test landing folder) feeding HOTSPOTS_LANDING_WAREHOUSE (a test
warehouse); WAREHOUSE, the default every other DAG would fall back on, is a decoy database:
a run that lost the warehouse on its way would land there. A history is built first without
Airflow (ingest, cells, dbt: the DAGs are tested elsewhere); then one new extract date is
delivered into the landing folder and nothing else is done: ingest, features, scoring and
alerts have to run by themselves, for the test warehouse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.airflow_services import AirflowServices, airflow_env, wait_for
from tests.alerts.receivers import SMTPSink, free_port
from tests.conftest import ROOT, _require_make_env, create_db, drop_db
from tests.conftest import query as q

pytestmark = pytest.mark.integration

START, DAYS, SCALE, SEED = "2026-01-01", 62, 0.01, 5
CHAIN = ("ingest_extracts", "build_features", "score_hotspots", "dispatch_alerts")
CHAIN_WAIT_S = 1500


def db_exists(name: str) -> bool:
    return bool(q("postgres", "select 1 from pg_database where datname = %s", (name,)))


def _prebuild(wh: str, landing: Path, work: Path) -> None:
    """The history, without Airflow: ingest, H3 cells, dbt seed and run."""
    env = dict(os.environ, WAREHOUSE=wh, DBT_PROFILES_DIR=str(ROOT / "dbt"))
    dbt = ["dbt", "--quiet", "{}", "--project-dir", str(ROOT / "dbt"), "--target-path", str(work / "dbt"),
           "--log-path", str(work / "dbt")]
    for cmd in ([sys.executable, "-m", "hotspots.cli", "--warehouse", wh, "ingest", "--landing", str(landing)],
                [sys.executable, "-c", "from hotspots import db; from hotspots.geo.cells import register_cells; "
                 f"register_cells(db.connect({wh!r}))"],
                [c.replace("{}", "seed") for c in dbt], [c.replace("{}", "run") for c in dbt]):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
        assert p.returncode == 0, f"{cmd[:5]} failed:\n{(p.stdout + p.stderr)[-4000:]}"
        print(f"history: {' '.join(cmd[1:5])} {time.perf_counter() - t0:.1f} s")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    _require_make_env()
    from hotspots.simulate import simulate

    base = tmp_path_factory.mktemp("sched")
    t0 = time.perf_counter()
    full = base / "simulated" / "extracts"
    simulate(full, START, DAYS, SCALE, SEED, progress=False)
    dates = sorted(p.name for p in full.iterdir() if p.is_dir())
    landing = base / "landing" / "extracts"
    landing.mkdir(parents=True)
    shutil.copytree(full.parent / "truth", landing.parent / "truth")
    for d in dates[:-1]:
        shutil.copytree(full / d, landing / d)
    print(f"history: simulated {len(dates)} days in {time.perf_counter() - t0:.1f} s")

    tag = uuid.uuid4().hex[:8]
    wh, decoy, meta = f"sched_wh_{tag}", f"sched_decoy_{tag}", f"sched_airflow_{tag}"
    for name in (wh, decoy):
        create_db(name)
    subprocess.run([str(ROOT / "scripts" / "pg.sh"), "ensure-db", meta], check=True, capture_output=True)
    smtp = SMTPSink().start()
    home = base / "airflow"
    home.mkdir()
    from hotspots.settings import airflow_passwords

    password = airflow_passwords(home / "passwords.json", "admin:admin", announce=lambda _: None)["admin"]
    port = str(free_port())
    env = airflow_env(
        home, meta, port,
        AIRFLOW__CORE__PARALLELISM="3",
        # Cosmos runs `dbt ls` twice while parsing build_features; with a cold cache on 2 busy
        # cores that exceeds Airflow's 30 s import timeout (the Makefile raises it the same way).
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="180",
        AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT="240",
        AIRFLOW__COSMOS__CACHE_DIR=str(base / "cosmos"),
        HOTSPOTS_LANDING=str(landing),
        HOTSPOTS_LANDING_WAREHOUSE=wh,
        WAREHOUSE=decoy,
        ALERTS_SMTP_HOST="127.0.0.1",
        ALERTS_SMTP_PORT=str(smtp.port),
    )
    af = AirflowServices(base, env)
    try:
        t1 = time.perf_counter()
        af.cli("db", "migrate")
        print(f"airflow: metadata database migrated in {time.perf_counter() - t1:.1f} s")
        _prebuild(wh, landing, base)
        af.start()
        yield {"wh": wh, "decoy": decoy, "meta": meta, "landing": landing, "full": full, "new": dates[-1],
               "airflow": af, "smtp": smtp, "base": base, "password": password}
    finally:
        af.stop()
        smtp.stop()
        from tests.integration.test_forecasting import _forget_models

        _forget_models(wh)
        for name in (wh, decoy, meta):
            drop_db(name)


def _runs(meta: str) -> list[tuple]:
    return q(meta, """select dag_id, run_id, run_type, state, start_date, end_date from dag_run
                      order by start_date nulls last""")


def _failed_tasks(meta: str) -> list[tuple]:
    return q(meta, """select dag_id, task_id, map_index, run_id, try_number from task_instance
                      where state = 'failed'""")


def _task_log(home: Path, dag_id: str, task_id: str) -> str:
    logs = sorted((home / "logs").glob(f"dag_id={dag_id}/**/task_id={task_id}/**/*.log"))
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs[-2:])


def test_a_new_extract_runs_the_chain_by_itself_for_its_warehouse(chain):
    wh, decoy, meta, af = chain["wh"], chain["decoy"], chain["meta"], chain["airflow"]
    home = Path(af.env["AIRFLOW_HOME"])
    default_before = (q("hotspots", "select count(*), max(finished_at) from ingest.extract_ledger")
                      if db_exists("hotspots") else None)
    before = q(wh, "select max(feature_date) from marts.fct_cell_daily_features")[0][0]
    assert q(wh, "select count(*) from ingest.extract_ledger where extract_date = %s", (chain["new"],)) == [(0,)]

    t0 = time.perf_counter()
    wait_for("the DAGs to be parsed", lambda: len(q(meta, "select dag_id from dag where dag_id = any(%s)",
                                                   (list(CHAIN),))) == len(CHAIN), af, 300)
    af.cli("dags", "unpause", "--treat-dag-id-as-regex", "-y", "^(" + "|".join(CHAIN) + ")$")
    print(f"chain: DAGs parsed and unpaused in {time.perf_counter() - t0:.1f} s")

    # The continuous ingest run's sensor finds nothing new and waits in the triggerer.
    def deferred():
        return q(meta, """select ti.state, t.classpath from task_instance ti left join trigger t on t.id = ti.trigger_id
                          where ti.dag_id = 'ingest_extracts' and ti.task_id = 'wait_for_manifests'
                          and ti.state = 'deferred'""")
    state, classpath = wait_for("the landing sensor to defer", deferred, af, 300)[0]
    assert classpath == "hotspots.orchestration.NewExtractTrigger"
    print(f"chain: sensor deferred to the triggerer after {time.perf_counter() - t0:.1f} s")

    # A producer delivers one new extract date (written aside, then moved in: the manifest is there at once).
    t_deliver = time.perf_counter()
    new = chain["new"]
    shutil.copytree(chain["full"] / new, chain["landing"] / f".incoming-{new}")
    os.rename(chain["landing"] / f".incoming-{new}", chain["landing"] / new)

    def chain_done():
        failed = _failed_tasks(meta)
        if failed:
            d, t = failed[0][0], failed[0][1]
            pytest.fail(f"task failed: {failed}\n{_task_log(home, d, t)}")
        ok = {r[0] for r in _runs(meta) if r[3] == "success"}
        return {"build_features", "score_hotspots", "dispatch_alerts"} <= ok and "ingest_extracts" in ok
    wait_for("ingest -> features -> scoring -> alerts", chain_done, af, CHAIN_WAIT_S, every=5)
    print(f"chain: new extract {new} to alerts sent in {time.perf_counter() - t_deliver:.1f} s")
    for r in _runs(meta):
        took = (r[5] - r[4]).total_seconds() if r[4] and r[5] else None
        print(f"chain: run {r[0]} {r[2]} {r[3]}" + (f" {took:.0f} s" if took is not None else ""))

    runs = _runs(meta)
    # Every run was the scheduler's own: a scheduled ingest, then asset-triggered ones.
    assert {r[2] for r in runs if r[0] == "ingest_extracts"} == {"scheduled"}
    for dag_id in ("build_features", "score_hotspots", "dispatch_alerts"):
        assert {r[2] for r in runs if r[0] == dag_id} == {"asset_triggered"}, (dag_id, runs)
    # ... each for the test warehouse, named by the triggering asset events.
    resolved = q(meta, """select dag_id, value #>> '{}' from xcom
                          where task_id = 'resolve_warehouse' and key = 'warehouse'""")
    assert {d for d, _ in resolved} == {"build_features", "score_hotspots", "dispatch_alerts"}
    assert {v for _, v in resolved} == {wh}, resolved
    extras = q(meta, """select a.name, e.extra from asset_event e join asset a on a.id = e.asset_id""")
    assert {n for n, _ in extras} >= {"raw_extracts", "cell_features", "hotspot_forecast"}
    for name, extra in extras:
        extra = json.loads(extra) if isinstance(extra, str) else extra
        assert extra.get("warehouse") == wh, (name, extra)

    # The test warehouse: the new date loaded, features built past it, the forecast for the day after it.
    assert q(wh, "select status from ingest.extract_ledger where extract_date = %s", (new,)) == [("loaded",)]
    after = q(wh, "select max(feature_date) from marts.fct_cell_daily_features")[0][0]
    assert after > before
    forecast = q(wh, "select forecast_date, count(*) from marts.hotspot_forecast group by 1")
    assert forecast == [(after, forecast[0][1])] and forecast[0][1] > 0
    assert after == date.fromisoformat(new) + timedelta(days=1), (after, new)
    assert q(wh, "select count(*) from alerts.runs")[0][0] >= 1
    # The decoy default warehouse was never touched (no table created: its schemas and grants are
    # pg.sh's, made with the database), nor `hotspots`.
    assert q(decoy, """select count(*) from pg_tables
                        where schemaname in ('raw', 'ingest', 'ref', 'staging', 'intermediate', 'marts', 'alerts')""") == [(0,)]
    if default_before is not None:
        assert q("hotspots", "select count(*), max(finished_at) from ingest.extract_ledger") == default_before

    # What the UI shows, read through the REST API it reads: every run names its warehouse (note),
    # the mapped load_extract is labelled by its extract date, and a task log of each run is there.
    from hotspots.airflow_api import Client

    api = Client(base=af.env["AIRFLOW__API__BASE_URL"], password=chain["password"])
    for dag_id, run_id, *_ in [r for r in runs if r[3] == "success"]:
        run = api.run(dag_id, run_id)
        assert run.get("note") == f"warehouse {wh}", (dag_id, run_id, run.get("note"))
        tis = [ti for ti in api.task_instances(dag_id, run_id) if ti["state"] == "success" and ti.get("try_number")]
        assert tis, (dag_id, run_id)
        ti = next((t for t in tis if t["task_id"] in ("summarise", "publish", "score", "deliver")), tis[0])
        text = api.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti.get("map_index", -1))
        assert ti["task_id"] in text or "summary:" in text or "progress:" in text, (dag_id, ti["task_id"], text[:500])
        if dag_id == "ingest_extracts":
            mapped = [t for t in tis if t["task_id"] == "load_extract"]
            assert [t.get("rendered_map_index") for t in mapped] == [new], mapped
            assert f"ingest: {new} loaded" in api.task_log(dag_id, run_id, "load_extract", mapped[0]["try_number"], 0)

    # The next continuous ingest run is waiting again, in the triggerer.
    wait_for("the next ingest run to wait for the next date", deferred, af, 300)


def test_retried_training_resumes_its_run_and_registers_one_version(chain, monkeypatch):
    """A failure in the last step of train (after registration) and the task's retry: the
    retry resumes the same MLflow run and registers nothing more (the DAG's run_key)."""
    import mlflow

    from hotspots.forecast import tracking
    from hotspots.forecast.train import train

    wh = chain["wh"]
    landing = str(chain["landing"])
    key = f"train_model/manual__{uuid.uuid4().hex[:8]}"
    real = mlflow.MlflowClient.set_model_version_tag
    calls = {"n": 0}

    def fail_once(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected: the worker died after registering")
        return real(self, *a, **kw)

    monkeypatch.setattr(mlflow.MlflowClient, "set_model_version_tag", fail_once)
    fast = {"rounds": 40}
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="injected"):
        train(wh, landing, overrides=fast, run_key=key)
    first = tracking.find_run(wh, key)
    assert first is not None
    version = tracking.registered_version(wh, first)
    assert version is not None
    decision = train(wh, landing, overrides=fast, run_key=key)
    print(f"train retry: two tries in {time.perf_counter() - t0:.1f} s")

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(tracking.experiment_name(wh))
    runs = client.search_runs([exp.experiment_id], f"tags.`{tracking.RUN_KEY_TAG}` = '{key}'")
    assert [r.info.run_id for r in runs] == [first] and decision["run_id"] == first
    assert runs[0].info.status == "FINISHED"
    versions = client.search_model_versions(f"name='{tracking.model_name(wh)}'")
    assert [str(v.version) for v in versions if v.run_id == first] == [version]
    assert decision["challenger"] == f"{tracking.model_name(wh)}/{version}"

    # What the MLflow UI shows (through the tracking server): descriptions, the registered model's
    # signature and input example, per-origin metrics as one table, a few metric keys.
    name = tracking.model_name(wh)
    assert "origin" in client.get_model_version(name, version).description
    assert wh in client.get_registered_model(name).description
    assert tracking.DESCRIPTION_TAG in runs[0].data.tags
    assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.EXPERIMENT_KIND
    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    assert info.signature is not None and info.saved_input_example_info is not None
    assert {"mu_1", "p_1"} <= {c.name for c in info.signature.outputs.inputs}
    files = {f.path for f in client.list_artifacts(first, "evaluation")}
    assert {"evaluation/per_origin_metrics.json", "evaluation/backtest.png"} <= files
    assert len(runs[0].data.metrics) < 80, sorted(runs[0].data.metrics)
