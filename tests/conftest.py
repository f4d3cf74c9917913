"""Shared fixtures. Integration tests need the environment `make test` sets up
(the local PostgreSQL cluster, Airflow's home and settings): run them through make."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PRODUCER_B = SHARED / "samples" / "producer-b"


def _require_make_env():
    for var in ("AIRFLOW_HOME", "HOTSPOTS_PII_KEY", "PGPORT"):
        if not os.environ.get(var):
            pytest.fail(f"{var} is not set: run the suite with `make test`")


def create_db(name: str) -> None:
    """Creates a PostGIS database in the local cluster (harmless if it exists)."""
    subprocess.run([str(ROOT / "scripts" / "pg.sh"), "ensure-db", name, "postgis"], check=True,
                   capture_output=True)


def drop_db(name: str) -> None:
    """Drops a database of the local cluster, closing its connections."""
    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"drop database if exists {name} with (force)")
    conn.close()


@pytest.fixture()
def warehouse():
    """A fresh, empty warehouse database for one test, dropped afterwards."""
    _require_make_env()
    name = f"test_{uuid.uuid4().hex[:10]}"
    create_db(name)
    yield name
    drop_db(name)


def query(dbname: str, text: str, args=None, **conn_kw):
    """Runs one statement in a database of the test cluster, on a connection of its own (conn_kw:
    another login, for example); all rows."""
    conn = psycopg2.connect(dbname=dbname, **conn_kw)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(text, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@contextmanager
def runner(dbname: str):
    """A function running statements (autocommit) on one connection to `dbname`, closed afterwards."""
    conn = psycopg2.connect(dbname=dbname)
    conn.autocommit = True

    def run(text, args=None):
        with conn.cursor() as cur:
            cur.execute(text, args)
            return cur.fetchall() if cur.description else None

    try:
        yield run
    finally:
        conn.close()


@pytest.fixture()
def sql(warehouse):
    """Runs a query in the test's warehouse and returns all rows."""
    with runner(warehouse) as run:
        yield run


def run_dag(dag_id: str, conf: dict) -> str:
    """Runs a DAG for real with `airflow dags test`; returns its output, fails the test on failure."""
    import json

    _require_make_env()
    p = subprocess.run(["airflow", "dags", "test", dag_id, "-c", json.dumps(conf)], capture_output=True,
                       text=True, timeout=1800)
    out = p.stdout + p.stderr
    if p.returncode != 0:
        pytest.fail(f"airflow dags test {dag_id} failed ({p.returncode}):\n{out[-6000:]}")
    return out


class MlflowServer:
    """A real MLflow tracking server for the tests: the basic-auth app (login required) with its own
    user store and admin password, artifacts served from a temporary folder, the store the cluster's
    mlflow database (MLFLOW_BACKEND_STORE_URI, in its environment only). Clients reach it with
    MLFLOW_TRACKING_URI / _USERNAME / _PASSWORD, set in this process's environment so the DAG runs
    (`airflow dags test`) and services the tests start inherit them."""

    def __init__(self, base: Path):
        import secrets
        import socket

        self.base = base
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.user, self.password = "admin", secrets.token_urlsafe(18)
        self.proc = None

    def start(self, timeout: float = 240.0) -> MlflowServer:
        import time
        import urllib.request

        from hotspots import settings

        ini = self.base / "basic_auth.ini"
        ini.write_text("[mlflow]\ndefault_permission = READ\n"
                       f"database_uri = sqlite:///{self.base / 'basic_auth.db'}\n"
                       f"admin_username = {self.user}\n"
                       "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                       "auth_cache_ttl_seconds = 300\n")
        env = dict(os.environ, MLFLOW_BACKEND_STORE_URI=settings.mlflow_backend_store_uri(),
                   MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_AUTH_ADMIN_PASSWORD=self.password,
                   MLFLOW_FLASK_SERVER_SECRET_KEY=uuid.uuid4().hex, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self.log = open(self.base / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server", "--app-name", "basic-auth",
             "--serve-artifacts", "--artifacts-destination", str(self.base / "artifacts"),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{(self.base / 'server.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2)
                return self
            except OSError:
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer in {timeout:.0f} s")

    def client_env(self) -> dict:
        return {"MLFLOW_TRACKING_URI": self.url, "MLFLOW_TRACKING_USERNAME": self.user,
                "MLFLOW_TRACKING_PASSWORD": self.password}

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """The session's MLflow tracking server (started once, on first use), clients pointed at it."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    saved = {k: os.environ.get(k) for k in server.client_env()}
    os.environ.update(server.client_env())
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _mlflow_for_integration_tests(request):
    """Integration tests train, register and score through the tracking server, as production
    does: when the session runs any, the MLflow server starts (once); unit-only runs skip it."""
    if any(item.get_closest_marker("integration") for item in request.session.items):
        request.getfixturevalue("mlflow_server")
    yield
