"""docker-compose.yml's own commands, run here without Docker: the MLflow service's command line (as
written in the compose file, its container paths moved to a temporary folder) and the Superset
image's entrypoint with deploy/superset_config.py. What tests/test_deployment.py checks statically,
these run: a login is required, the pipeline's Host header (mlflow:5000) is answered and another
is refused, no secret is on a command line, Superset's metadata is set up and it serves."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from base64 import b64encode
from pathlib import Path

import pytest
import yaml

from tests.alerts.receivers import free_port
from tests.conftest import ROOT, _require_make_env, drop_db

pytestmark = pytest.mark.integration


def _status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if _status(url) == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"{url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _pg_uri(db: str) -> str:
    e = os.environ
    return f"postgresql+psycopg2://{e['PGUSER']}:{e['PGPASSWORD']}@{e['PGHOST']}:{e['PGPORT']}/{db}"


def test_the_mlflow_service_command_requires_a_login_and_answers_the_pipeline(tmp_path):
    _require_make_env()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    svc = compose["services"]["mlflow"]
    assert svc["command"][:2] == ["bash", "-c"]
    port = free_port()
    script = (svc["command"][2].replace("sqlite:////mlflow/", f"sqlite:///{tmp_path}/")
              .replace("/mlflow/", f"{tmp_path}/").replace("--host 0.0.0.0 --port 5000", f"--host 127.0.0.1 --port {port}"))
    assert "/mlflow/" not in script and str(port) in script
    (tmp_path / "auth").mkdir()
    (tmp_path / "artifacts").mkdir()
    db = f"h15_mlflow_{uuid.uuid4().hex[:8]}"
    subprocess.run([str(ROOT / "scripts" / "pg.sh"), "ensure-db", db], check=True, capture_output=True)
    password = secrets.token_hex(16)
    env = dict(os.environ)
    for key, value in svc["environment"].items():  # the service's environment, its values for here
        env[key] = str(value)
    env.update(MLFLOW_BACKEND_STORE_URI=_pg_uri(db), MLFLOW_AUTH_CONFIG_PATH=str(tmp_path / "auth" / "basic_auth.ini"),
               MLFLOW_AUTH_ADMIN_PASSWORD=password, MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    assert env["MLFLOW_SERVER_ALLOWED_HOSTS"] == svc["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"]
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", script], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/health", proc, log, 180)
        api = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        auth = {"Authorization": "Basic " + b64encode(f"admin:{password}".encode()).decode()}
        assert _status(api) == 401
        assert _status(api, auth) == 200
        assert _status(api, {**auth, "Host": "mlflow:5000"}) == 200       # the pipeline's address
        assert _status(api, {**auth, "Host": "localhost:5000"}) == 200    # the published UI
        assert _status(api, {**auth, "Host": "evil.example"}) == 403      # DNS rebinding refused
        assert (tmp_path / "auth" / "basic_auth.ini").stat().st_mode & 0o077 == 0
        cmdlines = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
        mine = [line for line in cmdlines.splitlines() if f"--port {port}" in line]
        assert mine and not [line for line in mine if password in line or os.environ["PGPASSWORD"] in line]
    finally:
        _stop(proc)
        drop_db(db)


def test_the_superset_image_entrypoint_sets_up_and_serves(tmp_path):
    _require_make_env()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    venv = ROOT / ".venv-superset" / "bin"
    db = f"h15_superset_{uuid.uuid4().hex[:8]}"
    # The image's environment (Dockerfile.superset's ENV, paths of this checkout) and the service's.
    dockerfile = (ROOT / "Dockerfile.superset").read_text()
    assert "SUPERSET_CONFIG_PATH=/app/deploy/superset_config.py" in dockerfile
    env = dict(os.environ, PATH=f"{venv}:{os.environ['PATH']}",
               SUPERSET_CONFIG_PATH=str(ROOT / "deploy" / "superset_config.py"), PYTHONPATH=str(ROOT / "superset"),
               SUPERSET_LOCAL=str(tmp_path), FLASK_APP="superset", SCARF_ANALYTICS="false",
               SUPERSET_LOG_LEVEL="WARNING", SUPERSET_SECRET_KEY=secrets.token_hex(24),
               SUPERSET_METADATA_URI=_pg_uri(db), SUPERSET_CELERY_BROKER_URL="redis://:x@127.0.0.1:9/1")
    entry = str(ROOT / "scripts" / "superset-entrypoint.sh")
    try:
        t0 = time.perf_counter()
        p = subprocess.run([entry, *compose["services"]["superset-init"]["command"]], env=env, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
        assert f"created metadata database {db}" in p.stdout
        print(f"superset-init: setup in {time.perf_counter() - t0:.1f} s")
        # The Celery settings the worker gets come from the compose configuration.
        probe = subprocess.run([str(venv / "python"), "-c", "import os, importlib.util as u; "
                                "s = u.spec_from_file_location('c', os.environ['SUPERSET_CONFIG_PATH']); "
                                "m = u.module_from_spec(s); s.loader.exec_module(m); "
                                "print(m.CELERY_CONFIG.broker_url, m.SECRET_KEY == os.environ['SUPERSET_SECRET_KEY'], "
                                "m.TALISMAN_ENABLED)"], env=env, capture_output=True, text=True, timeout=120)
        assert probe.stdout.split() == ["redis://:x@127.0.0.1:9/1", "True", "True"], probe.stderr[-2000:]
        # gunicorn with the service's flags, on a free loopback port instead of 0.0.0.0:8088, one worker.
        cmd = list(compose["services"]["superset"]["command"])
        port = free_port()
        cmd[cmd.index("--bind") + 1] = f"127.0.0.1:{port}"
        cmd[cmd.index("--workers") + 1] = "1"
        log = tmp_path / "gunicorn.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([entry, *cmd], env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            _wait(f"http://127.0.0.1:{port}/health", proc, log, 180)
            assert _status(f"http://127.0.0.1:{port}/login/") == 200
        finally:
            _stop(proc)
    finally:
        drop_db(db)
