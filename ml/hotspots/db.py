"""PostgreSQL connections to the warehouse (psycopg2, for COPY), and the warehouse's roles.

Inside an Airflow task the server, port, login and password come from an Airflow connection
(AIRFLOW_CONN_<ID>, set by the Makefile, or any secrets backend), read through the postgres
provider's PostgresHook; the run picks the database (its warehouse:
hotspots.orchestration.resolve_warehouse). Which connection: the task's role (``acting_as``,
docs/architecture.md, Database roles): ``hotspots_warehouse`` is the owner (DDL, grants,
training, scoring, alerts), ``hotspots_ingest`` the ingest role (raw and ingest),
``hotspots_dbt`` dbt's (staging, intermediate, marts, ref's seeds and cells). Outside Airflow
(CLI, tests) they come from libpq's variables (settings.pg): the operator, as the owner. The
driver is psycopg2 either way: the provider's own get_conn() returns a psycopg (3) connection
under SQLAlchemy 2, and the ingest's COPY code is psycopg2's.
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2

from hotspots import settings

ROLES_SQL = settings.ROOT / "scripts" / "warehouse-roles.sql"
INGEST_ROLE, DBT_ROLE, READER_ROLE = "hotspots_ingest", "hotspots_dbt", "hotspots_reader"
# Airflow connection ids: the owner's, and one per least-privilege role with a login.
CONN_ID = "hotspots_warehouse"
INGEST_CONN_ID, DBT_CONN_ID = INGEST_ROLE, DBT_ROLE
# dbt's schemas: every relation in them is dbt's (owned by hotspots_dbt, which rebuilds them).
DBT_SCHEMAS = ("staging", "intermediate")

log = logging.getLogger(__name__)
_conn_id: contextvars.ContextVar[str] = contextvars.ContextVar("hotspots_conn_id", default=CONN_ID)


@contextmanager
def acting_as(conn_id: str) -> Iterator[None]:
    """Inside an Airflow task, connect() uses the connection ``conn_id`` (a role's login) while
    this block runs; outside Airflow it changes nothing (the PG* environment: the operator)."""
    token = _conn_id.set(conn_id)
    try:
        yield
    finally:
        _conn_id.reset(token)


def in_airflow_task() -> bool:
    """True while an Airflow task runs (the task runner exports its context as AIRFLOW_CTX_*)."""
    return bool(os.environ.get("AIRFLOW_CTX_DAG_ID"))


def airflow_connection(conn_id: str | None = None):
    """An Airflow connection (through PostgresHook): ``conn_id``, else the one ``acting_as``
    chose, else the owner's. A role's connection that is not defined falls back on the owner's,
    with a warning in the task log (a deployment without the roles' logins keeps working, loudly);
    None when not even the owner's is defined (then the PG* environment)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn_id = conn_id or _conn_id.get()
    try:
        return PostgresHook(postgres_conn_id=conn_id).connection
    except Exception as e:  # noqa: BLE001 - AirflowNotFoundException and the like: fall back, say so
        if conn_id != CONN_ID:
            log.warning("no Airflow connection %s (%s): connecting as the owner (%s) instead; define "
                        "AIRFLOW_CONN_%s for least privilege", conn_id, e, CONN_ID, conn_id.upper())
            return airflow_connection(CONN_ID)
        log.warning("no Airflow connection %s (%s): using the PG* environment", CONN_ID, e)
        return None


def dbt_conn_id() -> str:
    """The connection Cosmos' profile mapping uses for dbt (read when the DAG is parsed):
    hotspots_dbt, else (not defined: warned) the owner's."""
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(DBT_CONN_ID)
        return DBT_CONN_ID
    except Exception as e:  # noqa: BLE001 - AirflowNotFoundException and the like
        log.warning("no Airflow connection %s (%s): dbt connects as the owner (%s); define AIRFLOW_CONN_%s "
                    "for least privilege", DBT_CONN_ID, e, CONN_ID, DBT_CONN_ID.upper())
        return CONN_ID


def connect(warehouse: str | None = None, database: str | None = None):
    """A psycopg2 connection to the warehouse (or another database of the cluster)."""
    s = settings.pg(warehouse)
    dbname = database or s.warehouse
    c = airflow_connection() if in_airflow_task() else None  # the task's role (acting_as)
    if c is not None:
        return psycopg2.connect(host=c.host, port=c.port or 5432, user=c.login, password=c.password,
                                dbname=dbname, application_name="hotspots")
    return psycopg2.connect(host=s.host, port=s.port, user=s.user, password=s.password, dbname=dbname,
                            application_name="hotspots")


def ensure_roles(conn) -> None:
    """The least-privilege roles and their grants in the connected warehouse (idempotent; run by
    its owner): hotspots_ingest writes raw and ingest, hotspots_dbt staging, intermediate, marts
    (and ref, dbt's seeds), hotspots_reader reads marts and alerts only. The same SQL that
    ``scripts/pg.sh ensure-db NAME postgis`` runs (scripts/warehouse-roles.sql). Then dbt's
    relations that an older dbt run made as the owner are handed to hotspots_dbt (dbt replaces
    a table or view it rebuilds: only its owner may).

    Two transactions: the grants commit before any handover. In one, the grants' updates of
    pg_class rows were held while ALTER ... OWNER waited for a table's lock, and an autovacuum
    ANALYZE of that table, waiting to update its pg_class row, closed a deadlock (seen failing
    ingest_extracts' first task on a freshly built warehouse)."""
    with conn, conn.cursor() as cur:
        cur.execute("set local client_min_messages = warning")
        cur.execute(ROLES_SQL.read_text())
    with conn, conn.cursor() as cur:
        for schema, name in owned_dbt_relations(cur):
            cur.execute(f'alter table "{schema}"."{name}" owner to {DBT_ROLE}')  # views too (alter table works)
            log.info("roles: %s.%s now owned by %s", schema, name, DBT_ROLE)


def dbt_relations() -> dict[str, set[str]]:
    """The relations dbt builds outside its own schemas, by schema: marts' models and ref's seeds
    (the project's model and seed files; no aliases in this project)."""
    root = settings.ROOT / "dbt"
    return {"marts": {p.stem for p in (root / "models" / "marts").rglob("*.sql")},
            "ref": {p.stem for p in (root / "seeds").glob("*.csv")}}


def owned_dbt_relations(cur) -> list[tuple[str, str]]:
    """dbt's relations (tables, views, incremental models) in the warehouse not owned by hotspots_dbt."""
    other = dbt_relations()
    cur.execute("""select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where c.relkind in ('r', 'v', 'm', 'p') and pg_get_userbyid(c.relowner) <> %s
                     and (n.nspname = any(%s) or (n.nspname = 'marts' and c.relname = any(%s))
                          or (n.nspname = 'ref' and c.relname = any(%s)))
                   order by 1, 2""",
                (DBT_ROLE, list(DBT_SCHEMAS), sorted(other["marts"]), sorted(other["ref"])))
    return cur.fetchall()


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


# COPY's text format: backslash, newline, carriage return and tab escaped; \N is NULL. Replaced
# one after the other (str.replace runs in C; str.translate with a table looks up every
# character: 2.5 s for a national outbox's 43 MB against a few hundredths).
_COPY_ESCAPES = (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def _copy_text(v: str) -> str:
    for char, escaped in _COPY_ESCAPES:
        if char in v:
            v = v.replace(char, escaped)
    return v


def _array_literal(values) -> str:
    """A PostgreSQL array literal of text elements, each quoted (commas, braces, quotes and
    backslashes inside an element stay in it)."""
    return "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _copy_field(v) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, list | tuple):
        v = _array_literal(v)
    elif hasattr(v, "isoformat"):
        v = v.isoformat()
    return _copy_text(str(v))


def copy_rows(cur, table: str, columns: list[str], rows) -> None:
    """COPY Python rows (tuples in ``columns``' order) into ``table``: None is NULL, lists are
    text arrays, dates and datetimes their ISO text, everything else its str(). One round trip
    and no statement to parse per row, unlike a multi-row INSERT."""
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join(map(_copy_field, row)))
        buf.write("\n")
    buf.seek(0)
    cur.copy_expert(f"copy {table} ({', '.join(columns)}) from stdin", buf)
