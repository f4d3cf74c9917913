"""MLflow: the tracking store and model registry in the cluster's `mlflow` database,
artifacts in a local folder. One experiment and one registered model per warehouse, so
two warehouses never share a champion."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from hotspots import settings

CHAMPION = "champion"


def model_name(warehouse: str) -> str:
    return f"hotspots_{warehouse}"


def experiment_name(warehouse: str) -> str:
    return f"hotspots/{warehouse}"


def setup(warehouse: str):
    """Point MLflow at the store; create the experiment (with a local artifact folder)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri())
    mlflow.set_registry_uri(settings.mlflow_tracking_uri())
    name = experiment_name(warehouse)
    if mlflow.get_experiment_by_name(name) is None:
        root = settings.mlflow_artifact_root() / warehouse
        root.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(name, artifact_location=root.resolve().as_uri())
    mlflow.set_experiment(name)
    return mlflow


RUN_KEY_TAG = "hotspots.run_key"


def find_run(warehouse: str, run_key: str) -> str | None:
    """The MLflow run an earlier try of the same pipeline run (``run_key``: Airflow's
    dag_id/run_id) started, or None: a retried training resumes it instead of starting another."""
    import mlflow

    setup(warehouse)
    exp = mlflow.get_experiment_by_name(experiment_name(warehouse))
    runs = mlflow.MlflowClient().search_runs([exp.experiment_id], f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
                                             max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def registered_version(warehouse: str, run_id: str) -> str | None:
    """The version of the warehouse's registered model that came from ``run_id``, or None."""
    from mlflow import MlflowClient

    versions = MlflowClient().search_model_versions(f"name='{model_name(warehouse)}' and run_id='{run_id}'")
    return str(min(int(v.version) for v in versions)) if versions else None


def champion_version(warehouse: str):
    """The registered version behind the champion alias, or None."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    setup(warehouse)
    try:
        return MlflowClient().get_model_version_by_alias(model_name(warehouse), CHAMPION)
    except MlflowException:
        return None


def load_champion(warehouse: str):
    """(HotspotModel, "name/version") of the champion, or (None, None)."""
    v = champion_version(warehouse)
    if v is None:
        return None, None
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(f"models:/{model_name(warehouse)}@{CHAMPION}")
    return pyfunc.unwrap_python_model().model, f"{model_name(warehouse)}/{v.version}"


def data_version(conn) -> dict:
    """What a model was trained on: the extracts loaded (a digest of their fingerprints),
    the dbt project's models (a digest of their SQL) and the code's commit."""
    with conn.cursor() as cur:
        cur.execute("""select count(*), max(extract_date)::text,
                              md5(string_agg(extract_date::text || fingerprint, ',' order by extract_date))
                       from ingest.extract_ledger where status = 'loaded'""")
        n, last, digest = cur.fetchone()
    h = hashlib.sha256()
    for p in sorted((settings.ROOT / "dbt").rglob("*.sql")) + sorted((settings.ROOT / "dbt").rglob("*.yml")):
        if "target" in p.parts or "logs" in p.parts:
            continue
        h.update(p.relative_to(settings.ROOT).as_posix().encode())
        h.update(p.read_bytes())
    try:
        commit = subprocess.run(["git", "-C", str(settings.ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    return {"extracts_loaded": str(n), "last_extract_date": str(last), "extracts_digest": str(digest),
            "dbt_models_digest": h.hexdigest()[:16], "code_commit": commit}


def artifact_dir(run_id: str) -> Path:
    return settings.ROOT / ".local" / "mlflow" / "staging" / run_id
