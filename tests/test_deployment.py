"""docker-compose.yml is the production deployment; no Docker engine runs here, so it is checked statically."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_files_exist():
    c = compose()
    assert {"postgis", "airflow-init", "airflow-api", "airflow-scheduler", "airflow-dag-processor",
            "mlflow"} <= set(c["services"])
    assert (ROOT / "Dockerfile").is_file()
    for svc in c["services"].values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), src


def test_no_secret_in_clear_and_ports_on_loopback():
    text = (ROOT / "docker-compose.yml").read_text()
    for key in ("PASSWORD", "PII_KEY", "JWT_SECRET"):
        for m in re.finditer(rf"{key}[A-Z_]*:\s*(\S+)", text):
            assert m.group(1).startswith("${"), m.group(0)
    for svc in compose()["services"].values():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


def test_dockerfile_installs_the_pinned_lock():
    text = (ROOT / "Dockerfile").read_text()
    assert "requirements/pipeline.lock" in text and "pip install -r requirements/pipeline.lock" in text
    for d in ("dags", "dbt", "expectations", "config", "ml"):
        assert f"COPY {d} {d}" in text


def test_mlflow_store_is_the_mlflow_database_and_pipeline_uses_it():
    c = compose()
    cmd = c["services"]["mlflow"]["command"]
    store = cmd[cmd.index("--backend-store-uri") + 1]
    assert store.endswith("@postgis:5432/mlflow") and "${POSTGRES_PASSWORD}" in store
    for name in ("airflow-scheduler", "airflow-api"):
        env = c["services"][name]["environment"]
        assert env["MLFLOW_TRACKING_URI"] == store
        assert any(v.startswith("mlflow-artifacts:") for v in c["services"][name]["volumes"])
    assert "mlflow" in (ROOT / "scripts" / "docker-initdb.sql").read_text()
