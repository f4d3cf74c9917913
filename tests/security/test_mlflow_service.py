"""MLflow as a service (issue 13): the tracking server the tests share (tests/conftest.py, the
same command `make up` runs) asks for a login, keeps no password on any process's command line,
and serves the artifacts itself, so a client needs neither the database nor a shared folder."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _get(server, path: str, auth: tuple[str, str] | None):
    req = urllib.request.Request(server.url + path)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_ui_and_api_ask_for_a_login(mlflow_server):
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert _get(mlflow_server, path, None)[0] == 401
    assert _get(mlflow_server, path, (mlflow_server.user, "wrong-" + uuid.uuid4().hex))[0] == 401
    assert _get(mlflow_server, path, (mlflow_server.user, mlflow_server.password))[0] == 200
    assert _get(mlflow_server, "/", None)[0] == 401  # the UI too


def test_no_password_on_a_command_line(mlflow_server):
    from hotspots import settings

    store = settings.mlflow_backend_store_uri()
    db_password = os.environ.get("PGPASSWORD", "")
    group = os.getpgid(mlflow_server.proc.pid)
    lines = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) != group:
                continue
            lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ProcessLookupError):
            continue
    assert any("mlflow" in line and "server" in line for line in lines), lines
    for line in lines:
        assert mlflow_server.password not in line and store not in line
        assert not db_password or f":{db_password}@" not in line, line


def test_artifacts_go_through_the_server(mlflow_server, tmp_path):
    from mlflow import MlflowClient

    from hotspots.forecast import tracking

    wh = f"test_mlsvc_{uuid.uuid4().hex[:8]}"
    mlflow = tracking.setup(wh)
    client = MlflowClient()
    exp = client.get_experiment_by_name(tracking.experiment_name(wh))
    try:
        assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location
        assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
        assert wh in exp.tags[tracking.DESCRIPTION_TAG]
        with mlflow.start_run() as run:
            mlflow.log_dict({"hello": wh}, "check/hello.json")
        stored = list((mlflow_server.base / "artifacts").rglob("hello.json"))
        assert len(stored) == 1 and json.loads(stored[0].read_text()) == {"hello": wh}
        back = client.download_artifacts(run.info.run_id, "check/hello.json", str(tmp_path))
        assert json.loads(Path(back).read_text()) == {"hello": wh}
        # A second setup (another task) finds the experiment and changes nothing.
        tracking.setup(wh)
        assert client.get_experiment_by_name(tracking.experiment_name(wh)).experiment_id == exp.experiment_id
    finally:
        client.delete_experiment(exp.experiment_id)
