"""Least-privilege database roles (issue 13), checked by trying: on a warehouse made the way
`make warehouse` makes one (scripts/pg.sh ensure-db NAME postgis, then init-warehouse), the
dashboards' role cannot read raw or ingest, the ingest role cannot write marts, and each role can
do its own job. Logins use the generated passwords (.local/secrets), as a component would."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg2
import pytest
import yaml
from psycopg2 import errors

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def _login(warehouse: str, role: str):
    pw = os.environ.get(f"HOTSPOTS_{role.removeprefix('hotspots_').upper()}_PASSWORD") or \
        (ROOT / ".local" / "secrets" / role).read_text().strip()
    conn = psycopg2.connect(dbname=warehouse, user=role, password=pw)
    conn.autocommit = True
    return conn


def _as_role(warehouse: str, role: str):
    """The owner's connection acting as ``role`` (SET ROLE: the role's privileges, no password)."""
    conn = psycopg2.connect(dbname=warehouse)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"set role {role}")
    return conn


def _denied(conn, query: str) -> bool:
    with conn.cursor() as cur:
        try:
            cur.execute(query)
        except errors.InsufficientPrivilege:
            return True
    return False


@pytest.fixture()
def built(warehouse, sql):
    """The test warehouse after init-warehouse (raw, ingest, ref, alerts tables) and a table in
    each of dbt's schemas, created by the owner as dbt would (after the grants were given)."""
    p = subprocess.run([sys.executable, "-m", "hotspots.cli", "--warehouse", warehouse, "init-warehouse"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    for schema in ("staging", "intermediate", "marts"):
        sql(f"create table {schema}.t_dbt (n int)")
        sql(f"insert into {schema}.t_dbt values (1)")
    sql("insert into raw.complaints (ack_no) select 'x' where false")  # the table exists
    return warehouse


def test_the_dashboard_role_reads_marts_and_alerts_only(built):
    conn = _as_role(built, "hotspots_reader")
    try:
        for query in ("select count(*) from raw.complaints", "select count(*) from raw.withdrawals",
                      "select count(*) from ingest.extract_ledger", "select count(*) from ref.post_offices",
                      "select count(*) from staging.t_dbt", "select count(*) from intermediate.t_dbt"):
            assert _denied(conn, query), query
        for query in ("select count(*) from marts.t_dbt", "select count(*) from alerts.alerts"):
            assert not _denied(conn, query), query
        assert _denied(conn, "insert into marts.t_dbt values (2)")
        assert _denied(conn, "create table marts.t_reader (n int)")
    finally:
        conn.close()


def test_the_ingest_role_writes_raw_and_ingest_only(built):
    conn = _login(built, "hotspots_ingest")
    try:
        with conn.cursor() as cur:
            cur.execute("select current_user")
            assert cur.fetchone() == ("hotspots_ingest",)
        for query in ("insert into marts.t_dbt values (2)", "delete from marts.t_dbt",
                      "create table marts.t_ingest (n int)", "insert into staging.t_dbt values (2)",
                      "select count(*) from marts.t_dbt", "select count(*) from alerts.alerts"):
            assert _denied(conn, query), query
        # Its own job: the ledger and the raw tables, reading the gazetteer.
        assert not _denied(conn, "select count(*) from ref.post_offices")
        assert not _denied(conn, "delete from raw.complaints where false")
        assert not _denied(conn, "update ingest.extract_ledger set status = status where false")
    finally:
        conn.close()


def test_the_dbt_role_builds_its_schemas_and_only_reads_the_raw_ones(built):
    conn = _login(built, "hotspots_dbt")
    try:
        for query in ("delete from raw.complaints where false", "create table raw.t (n int)",
                      "update ingest.extract_ledger set status = status where false",
                      "select count(*) from alerts.alerts"):
            assert _denied(conn, query), query
        assert not _denied(conn, "select count(*) from raw.complaints")
        for schema in ("staging", "intermediate", "marts"):
            assert not _denied(conn, f"insert into {schema}.t_dbt values (2)")
            assert not _denied(conn, f"create table {schema}.t_own (n int)")
    finally:
        conn.close()
    # What dbt creates itself, the dashboards can read (default privileges for hotspots_dbt).
    reader = _as_role(built, "hotspots_reader")
    try:
        assert not _denied(reader, "select count(*) from marts.t_own")
        assert _denied(reader, "select count(*) from staging.t_own")
    finally:
        reader.close()


def test_the_grants_cover_every_warehouse_and_survive_a_rerun(built):
    """init-warehouse's own tables were created after pg.sh gave the grants: default privileges
    reached them; running the roles' SQL again (db.ensure_roles) changes nothing."""
    from hotspots import db

    conn = db.connect(built)
    try:
        db.ensure_roles(conn)
        db.ensure_roles(conn)
    finally:
        conn.close()
    reader = _as_role(built, "hotspots_reader")
    try:
        assert _denied(reader, "select count(*) from raw.complaints")
        assert not _denied(reader, "select count(*) from alerts.alerts")
    finally:
        reader.close()


def test_docker_compose_creates_the_same_roles():
    """docker compose runs scripts/warehouse-roles.sql itself in the warehouse's first start, after the
    metadata databases (the postgis image runs /docker-entrypoint-initdb.d/*.sql in name order)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = [v.split(":")[:2] for v in compose["services"]["postgis"]["volumes"] if v.startswith("./")]
    init = sorted((target, src) for src, target in mounts if target.startswith("/docker-entrypoint-initdb.d/"))
    assert [src for _, src in init] == ["./scripts/docker-initdb.sql", "./scripts/warehouse-roles.sql"]
