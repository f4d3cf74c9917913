"""The alerts schema (schema.sql) and small helpers on it."""

from __future__ import annotations

from pathlib import Path

SCHEMA_SQL = Path(__file__).with_name("schema.sql")


def ensure_schema(conn) -> None:
    """Creates schema `alerts` and its tables when missing (idempotent, serialised)."""
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('hotspots.alerts.ensure_schema'))")
        cur.execute(SCHEMA_SQL.read_text())
    conn.commit()
