# Pipeline image (Airflow 3.3 with the Celery executor, dbt 1.10, MLflow, the hotspots package) for
# docker-compose.yml: API server, scheduler, DAG processor, triggerer, workers, MLflow server, init
# and the staging mail catcher. Runtime dependencies only (requirements/pipeline-runtime.lock: no
# tests, no linters), every file checked against its hash; regenerate with `make lock-hashes`.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOTSPOTS_ROOT=/opt/hotspots AIRFLOW_HOME=/opt/airflow AIRFLOW__CORE__DAGS_FOLDER=/opt/hotspots/dags \
    HOTSPOTS_MLFLOW_ARTIFACTS=/mlflow/artifacts
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/hotspots
COPY requirements/pipeline-runtime.lock requirements/pipeline-runtime.lock
RUN pip install --require-hashes --only-binary=:all: -r requirements/pipeline-runtime.lock
# The hotspots package is pure Python: imported from the source tree (PYTHONPATH), nothing to build,
# so nothing unhashed is fetched (`python -m hotspots.cli` is the command line).
ENV PYTHONPATH=/opt/hotspots/ml
COPY pyproject.toml ./
COPY ml ml
COPY dags dags
COPY dbt dbt
COPY expectations expectations
COPY config config
COPY alerts alerts
COPY scripts/compose-init.sh scripts/compose-init.sh
RUN useradd --create-home --uid 50000 airflow \
    && mkdir -p /opt/airflow/logs /opt/airflow/auth /mlflow/artifacts /mlflow/auth /mail \
    && chown -R airflow /opt/airflow /opt/hotspots /mlflow /mail
USER airflow
