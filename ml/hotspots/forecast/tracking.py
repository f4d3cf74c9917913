"""MLflow through its tracking server (`mlflow server --serve-artifacts`, basic-auth app): runs,
the model registry and artifacts all go over HTTP, so a worker needs no database URI and no
shared folder. One experiment and one registered model per warehouse, so two warehouses never
share a champion. The server's address is MLFLOW_TRACKING_URI, its login MLFLOW_TRACKING_USERNAME
/ MLFLOW_TRACKING_PASSWORD (settings.mlflow_credentials: generated into .local, never in a
repository file)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from hotspots import settings

CHAMPION = "champion"
# What MLflow 3's UI opens an experiment on: classic model training runs, not the GenAI screens.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"  # the description the UI shows for experiments and runs


def model_name(warehouse: str) -> str:
    return f"hotspots_{warehouse}"


def experiment_name(warehouse: str) -> str:
    return f"hotspots/{warehouse}"


def experiment_description(warehouse: str) -> str:
    return (f"Training runs of the cash-out hotspot model for warehouse `{warehouse}` (DAG train_model): a "
            "rolling-origin evaluation of the challenger against the baselines (persistence, prospective "
            "kernel, lag-feature GBM) and the champion, the final fit, registration as "
            f"`{model_name(warehouse)}` and the promotion gate (alias `{CHAMPION}`). Per-origin metrics: "
            "the table evaluation/per_origin_metrics.json; plots under evaluation/.")


def configure():
    """Point the MLflow client at the tracking server, with its login; returns the mlflow module."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    user, password = settings.mlflow_credentials()
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", user)
    os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", password)
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri())
    return mlflow


def setup(warehouse: str):
    """The warehouse's experiment (created on the server, artifacts served by it), made active."""
    mlflow = configure()
    from mlflow.exceptions import MlflowException

    name = experiment_name(warehouse)
    exp = mlflow.get_experiment_by_name(name)
    tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, DESCRIPTION_TAG: experiment_description(warehouse),
            "warehouse": warehouse}
    if exp is None:
        try:
            mlflow.create_experiment(name, tags=tags)
        except MlflowException:  # created at the same moment by another task
            if mlflow.get_experiment_by_name(name) is None:
                raise
    else:
        client = mlflow.MlflowClient()
        for k, v in tags.items():
            if exp.tags.get(k) != v:
                client.set_experiment_tag(exp.experiment_id, k, v)
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


def champion_last_extract(warehouse: str) -> str | None:
    """The last extract date the champion was trained on (its run's data.last_extract_date), or None."""
    v = champion_version(warehouse)
    if v is None:
        return None
    from mlflow import MlflowClient

    return MlflowClient().get_run(v.run_id).data.tags.get("data.last_extract_date")


def champion_alias(warehouse: str) -> str | None:
    """The version number behind the champion alias, or None when there is none: one request to the
    server's REST API, without importing mlflow (seconds of a scoring task's start-up)."""
    import base64
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    user, password = settings.mlflow_credentials()
    query = urllib.parse.urlencode({"name": model_name(warehouse), "alias": CHAMPION})
    req = urllib.request.Request(f"{settings.mlflow_tracking_uri().rstrip('/')}/api/2.0/mlflow/registered-models/"
                                 f"alias?{query}",
                                 headers={"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode())
                                          .decode()})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return str(json.load(resp)["model_version"]["version"])
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        # No registered model yet (404), or no champion alias on it (400, "alias ... not found").
        if exc.code == 404 or (exc.code == 400 and "not found" in body):
            return None
        raise


def model_cache_dir() -> Path:
    """Where registered versions are kept once downloaded: a version never changes once registered,
    so each is fetched from the server once per machine (HOTSPOTS_MODEL_CACHE, else .local/model-cache),
    under a folder per tracking server."""
    root = Path(os.environ.get("HOTSPOTS_MODEL_CACHE") or settings.ROOT / ".local" / "model-cache")
    return root / hashlib.sha256(settings.mlflow_tracking_uri().encode()).hexdigest()[:12]


def load_version(warehouse: str, version: str):
    """HotspotModel of a registered version, from the local cache, filled from the server on a miss."""
    from hotspots.forecast.model import HotspotModel

    folder = model_cache_dir() / model_name(warehouse) / str(version)
    if not (folder / "model.json").is_file():
        import tempfile

        mlflow = configure()
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_name(warehouse)}/{version}",
                                                dst_path=tmp)
            try:  # another task may have filled it meanwhile: theirs is the same version
                os.replace(Path(tmp) / "artifacts" / "model", folder)
            except OSError:
                if not (folder / "model.json").is_file():
                    raise
    return HotspotModel.load(folder)


def load_champion(warehouse: str):
    """(HotspotModel, "name/version") of the champion, or (None, None)."""
    version = champion_alias(warehouse)
    if version is None:
        return None, None
    return load_version(warehouse, version), f"{model_name(warehouse)}/{version}"


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
