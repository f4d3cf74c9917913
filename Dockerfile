# Pipeline image (Airflow 3.3, dbt 1.10, the hotspots package) for docker-compose.yml.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 DO_NOT_TRACK=true SCARF_NO_ANALYTICS=true \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False DBT_SEND_ANONYMOUS_USAGE_STATS=False GX_ANALYTICS_ENABLED=False \
    HOTSPOTS_ROOT=/opt/hotspots AIRFLOW_HOME=/opt/airflow AIRFLOW__CORE__DAGS_FOLDER=/opt/hotspots/dags
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/hotspots
COPY requirements/pipeline.lock requirements/pipeline.lock
RUN pip install -r requirements/pipeline.lock
COPY pyproject.toml ./
COPY ml ml
RUN pip install --no-deps -e .
COPY dags dags
COPY dbt dbt
COPY expectations expectations
COPY config config
RUN useradd --create-home --uid 50000 airflow && mkdir -p /opt/airflow && chown -R airflow /opt/airflow /opt/hotspots
USER airflow
