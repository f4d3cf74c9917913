"""PostgreSQL connections to the warehouse (psycopg2, for COPY), and the warehouse's roles."""

from __future__ import annotations

import psycopg2

from hotspots import settings

ROLES_SQL = settings.ROOT / "scripts" / "warehouse-roles.sql"
INGEST_ROLE, DBT_ROLE, READER_ROLE = "hotspots_ingest", "hotspots_dbt", "hotspots_reader"


def connect(warehouse: str | None = None, database: str | None = None):
    """A psycopg2 connection to the warehouse (or another database of the cluster)."""
    s = settings.pg(warehouse)
    conn = psycopg2.connect(s.dsn(database), application_name="hotspots")
    return conn


def ensure_roles(conn) -> None:
    """The least-privilege roles and their grants in the connected warehouse (idempotent; run by
    its owner): hotspots_ingest writes raw and ingest, hotspots_dbt staging, intermediate, marts
    (and ref, dbt's seeds), hotspots_reader reads marts and alerts only. The same SQL that
    ``scripts/pg.sh ensure-db NAME postgis`` runs (scripts/warehouse-roles.sql)."""
    with conn, conn.cursor() as cur:
        cur.execute("set local client_min_messages = warning")
        cur.execute(ROLES_SQL.read_text())
