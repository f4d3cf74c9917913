"""PostgreSQL connections to the warehouse (psycopg2, for COPY), and the warehouse's roles.

Inside an Airflow task the server, port, login and password come from the Airflow connection
``hotspots_warehouse`` (AIRFLOW_CONN_HOTSPOTS_WAREHOUSE, set by the Makefile from the same PG*
settings, or any secrets backend), read through the postgres provider's PostgresHook; the run
picks the database (its warehouse: hotspots.orchestration.resolve_warehouse). Outside Airflow
(CLI, tests) they come from libpq's variables (settings.pg). The driver is psycopg2 either way:
the provider's own get_conn() returns a psycopg (3) connection under SQLAlchemy 2, and the
ingest's COPY code is psycopg2's.
"""

from __future__ import annotations

import logging
import os

import psycopg2

from hotspots import settings

ROLES_SQL = settings.ROOT / "scripts" / "warehouse-roles.sql"
INGEST_ROLE, DBT_ROLE, READER_ROLE = "hotspots_ingest", "hotspots_dbt", "hotspots_reader"
CONN_ID = "hotspots_warehouse"

log = logging.getLogger(__name__)


def in_airflow_task() -> bool:
    """True while an Airflow task runs (the task runner exports its context as AIRFLOW_CTX_*)."""
    return bool(os.environ.get("AIRFLOW_CTX_DAG_ID"))


def airflow_connection():
    """The warehouse's Airflow connection (through PostgresHook), or None when none is defined."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    try:
        return PostgresHook(postgres_conn_id=CONN_ID).connection
    except Exception as e:  # noqa: BLE001 - AirflowNotFoundException and the like: fall back, say so
        log.warning("no Airflow connection %s (%s): using the PG* environment", CONN_ID, e)
        return None


def connect(warehouse: str | None = None, database: str | None = None):
    """A psycopg2 connection to the warehouse (or another database of the cluster)."""
    s = settings.pg(warehouse)
    dbname = database or s.warehouse
    c = airflow_connection() if in_airflow_task() else None
    if c is not None:
        return psycopg2.connect(host=c.host, port=c.port or 5432, user=c.login, password=c.password,
                                dbname=dbname, application_name="hotspots")
    return psycopg2.connect(host=s.host, port=s.port, user=s.user, password=s.password, dbname=dbname,
                            application_name="hotspots")


def ensure_roles(conn) -> None:
    """The least-privilege roles and their grants in the connected warehouse (idempotent; run by
    its owner): hotspots_ingest writes raw and ingest, hotspots_dbt staging, intermediate, marts
    (and ref, dbt's seeds), hotspots_reader reads marts and alerts only. The same SQL that
    ``scripts/pg.sh ensure-db NAME postgis`` runs (scripts/warehouse-roles.sql)."""
    with conn, conn.cursor() as cur:
        cur.execute("set local client_min_messages = warning")
        cur.execute(ROLES_SQL.read_text())


def feature_summary(warehouse: str | None = None) -> dict | None:
    """What the feature mart holds: rows, candidate cells, first and last feature date (None when
    the mart was never built). One query for build_features' publish, train_model's check and the
    CLI's report."""
    conn = connect(warehouse)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select to_regclass('marts.fct_cell_daily_features') is not null")
            if not cur.fetchone()[0]:
                return None
            cur.execute("""select count(*), count(distinct h3_cell), min(feature_date), max(feature_date)
                           from marts.fct_cell_daily_features""")
            rows, cells, first, last = cur.fetchone()
    finally:
        conn.close()
    return {"rows": rows, "cells": cells, "first": first, "last": last}


def refresh_dashboard_tables(warehouse: str) -> list[tuple] | None:
    """Rebuilds the dashboards' precomputed tables (marts.refresh_dashboard_tables() and the
    outlines, created by Superset's provisioning: superset/views.sql). Returns (table, rows,
    seconds) per table, or None when Superset was never provisioned on the warehouse."""
    conn = connect(warehouse)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select to_regprocedure('marts.refresh_dashboard_tables()') is not null")
            if not cur.fetchone()[0]:
                return None
            cur.execute("select * from marts.refresh_dashboard_tables()")
            rows = cur.fetchall()
            cur.execute("select marts.refresh_dashboard_outlines()")
    finally:
        conn.close()
    return rows
