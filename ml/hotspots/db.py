"""PostgreSQL connections to the warehouse (psycopg2, for COPY)."""

from __future__ import annotations

import psycopg2

from hotspots import settings


def connect(warehouse: str | None = None, database: str | None = None):
    """A psycopg2 connection to the warehouse (or another database of the cluster)."""
    s = settings.pg(warehouse)
    conn = psycopg2.connect(s.dsn(database), application_name="hotspots")
    return conn
