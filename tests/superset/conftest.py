"""The Superset stack for the tests: a warehouse with a real forecast and real alert decisions, a
Superset of its own (metadata database, read-only role, port, .local folder) provisioned by
scripts/superset.sh from superset/, served by gunicorn; everything removed afterwards.

SUPERSET_TEST_WAREHOUSE=name reuses an existing warehouse (kept) instead of building one."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

import psycopg2
import pytest
import yaml

from tests.conftest import ROOT, _require_make_env, drop_db
from tests.conftest import query as q

ARTIFACTS = ROOT / ".local" / "artifacts" / "superset"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def test_warehouse(tmp_path_factory):
    _require_make_env()
    reuse = os.environ.get("SUPERSET_TEST_WAREHOUSE")
    if reuse:
        yield reuse
        return
    from tests.superset.warehouse import build

    wh = f"test_ss_{uuid.uuid4().hex[:8]}"
    try:
        build(wh, tmp_path_factory.mktemp("superset-sim"))
        yield wh
    finally:
        _forget_models(wh)
        drop_db(wh)


def _forget_models(warehouse: str) -> None:
    try:
        from mlflow import MlflowClient

        from hotspots.forecast import tracking

        tracking.setup(warehouse)
        c = MlflowClient()
        c.delete_registered_model(tracking.model_name(warehouse))
        exp = c.get_experiment_by_name(tracking.experiment_name(warehouse))
        if exp is not None:
            c.delete_experiment(exp.experiment_id)
    except Exception:  # noqa: BLE001 - nothing registered
        pass


@pytest.fixture(scope="session")
def jurisdiction(test_warehouse):
    """The district with most forecast cells (and its state), another district, and the bank whose
    accounts fed most cells: the test users' jurisdictions, taken from the data."""
    wh = test_warehouse
    (state, district), = q(wh, """select state, district from marts.hotspot_forecast where horizon_days = 1
                                  group by 1, 2 order by count(*) desc, 1, 2 limit 1""")
    (other_state, other_district), = q(wh, """select state, district from marts.hotspot_forecast
                                              where horizon_days = 1 and district <> %s
                                              group by 1, 2 order by count(*) desc, 1, 2 limit 1""", (district,))
    return {"state": state, "district": district, "other_state": other_state, "other_district": other_district}


@pytest.fixture(scope="session")
def alerts_decided(test_warehouse, jurisdiction, tmp_path_factory):
    """Real alert decisions (the alerts layer's own decide step) for a national desk, the test
    district and a bank liaison; nothing is sent."""
    from hotspots.alerts import dispatch

    wh = test_warehouse
    (bank,), = q(wh, "select bank from marts.v_cell_banks group by 1 order by count(*) desc, 1 limit 1") \
        if q(wh, "select to_regclass('marts.v_cell_banks')")[0][0] else [("SBIN",)]
    hook = [{"name": "hook", "url": "json://127.0.0.1:9/none"}]
    rec = {"recipients": [
        {"name": "t-national", "jurisdiction": {"level": "national"}, "language": "en", "channels": hook},
        {"name": "t-district", "jurisdiction": {"level": "district", "state": jurisdiction["state"],
                                                "district": jurisdiction["district"]},
         "language": "en", "channels": hook},
        {"name": "t-bank", "jurisdiction": {"level": "bank", "bank": bank}, "language": "en", "channels": hook}],
        "engineers": []}
    path = tmp_path_factory.mktemp("alerts") / "recipients.yml"
    path.write_text(yaml.safe_dump(rec))
    if not q(wh, "select to_regclass('alerts.alerts')")[0][0] or not q(wh, "select count(*) from alerts.alerts")[0][0]:
        dispatch.decide(wh, recipients=str(path), log=lambda *a: None)
    return {"bank": bank}


@pytest.fixture(scope="session")
def superset_stack(test_warehouse, jurisdiction, alerts_decided, tmp_path_factory):
    """Provisioned Superset serving the test warehouse; yields its settings and environment."""
    _require_make_env()
    tag = uuid.uuid4().hex[:8]
    local = tmp_path_factory.mktemp("superset-local")
    j = jurisdiction
    sec = yaml.safe_load((ROOT / "superset" / "security.yml").read_text())
    sec["users"] = [
        {"username": "t_ncc", "kind": "national_centre"},
        {"username": "t_analyst", "kind": "analyst"},
        {"username": "t_state", "kind": "state_officer", "state": j["state"]},
        {"username": "t_district", "kind": "district_officer", "state": j["state"], "district": j["district"]},
        {"username": "t_other", "kind": "district_officer", "state": j["other_state"],
         "district": j["other_district"]},
        {"username": "t_bank", "kind": "bank_liaison", "bank": alerts_decided["bank"]},
    ]
    sec_path = local / "security.yml"
    sec_path.write_text(yaml.safe_dump(sec, sort_keys=False))
    port = _free_port()
    env = dict(os.environ, WAREHOUSE=test_warehouse, SUPERSET_PORT=str(port), SUPERSET_LOCAL=str(local),
               SUPERSET_METADATA_DB=f"test_ssmeta_{tag}", SUPERSET_READER_ROLE=f"test_reader_{tag}",
               SUPERSET_SECURITY_FILE=str(sec_path), SUPERSET_WORKERS="1")
    sh = str(ROOT / "scripts" / "superset.sh")

    def run(*args, check=True):
        p = subprocess.run([sh, *args], env=env, capture_output=True, text=True, timeout=900)
        if check and p.returncode != 0:
            pytest.fail(f"superset.sh {' '.join(args)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
        return p

    stack = {"env": env, "run": run, "port": port, "base": f"http://127.0.0.1:{port}", "local": local,
             "warehouse": test_warehouse, "reader": env["SUPERSET_READER_ROLE"], "security": sec,
             "jurisdiction": j, "bank": alerts_decided["bank"], "provision_outputs": []}
    try:
        stack["provision_outputs"].append(run("provision").stdout)
        run("start")
        stack["passwords"] = {p.name: p.read_text().strip() for p in (local / "passwords").iterdir()}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        yield stack
    finally:
        run("stop", check=False)
        drop_db(env["SUPERSET_METADATA_DB"])
        for db, sql in ((test_warehouse, f"drop owned by {env['SUPERSET_READER_ROLE']}"),
                        ("postgres", f"drop role if exists {env['SUPERSET_READER_ROLE']}")):
            try:
                conn = psycopg2.connect(dbname=db)
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(sql)
                conn.close()
            except psycopg2.Error:
                pass  # the warehouse is gone already (dropped with its grants)


@pytest.fixture(scope="session")
def client(superset_stack):
    from tests.superset.client import Superset

    def login(user: str) -> Superset:
        return Superset(superset_stack["base"], user, superset_stack["passwords"][user])

    return login


def superset_python(stack, code: str) -> str:
    """Runs Python inside .venv-superset with the stack's configuration (app context ready)."""
    env = dict(stack["env"], SUPERSET_CONFIG_PATH=str(ROOT / "superset" / "superset_config.py"),
               SUPERSET_METADATA_URI=(f"postgresql+psycopg2://{os.environ['PGUSER']}:{os.environ['PGPASSWORD']}@"
                                      f"{os.environ['PGHOST']}:{os.environ['PGPORT']}/"
                                      f"{stack['env']['SUPERSET_METADATA_DB']}"),
               SUPERSET_SECRET_KEY=(Path(stack["local"]) / "secret_key").read_text(),
               PYTHONPATH=str(ROOT / "superset"))
    p = subprocess.run([str(ROOT / ".venv-superset" / "bin" / "python"), "-c", code], env=env,
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        pytest.fail(f"superset python failed:\n{p.stderr[-4000:]}")
    return p.stdout
