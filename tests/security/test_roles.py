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

from tests.conftest import ROOT, runner

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


# ---------------------------------------------------------------- the DAGs' connections use the roles

CONNS = {"hotspots_warehouse": None, "hotspots_ingest": "hotspots_ingest", "hotspots_dbt": "hotspots_dbt"}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A warehouse made as `make warehouse` makes one, and 12 simulated extract dates to load."""
    from hotspots.simulate import simulate
    from tests.conftest import _require_make_env, create_db, drop_db

    _require_make_env()
    base = tmp_path_factory.mktemp("roles")
    landing = base / "landing" / "extracts"
    simulate(landing, "2026-01-01", 12, 0.01, 3, progress=False)
    name = f"test_roles_{os.getpid()}"
    create_db(name)
    try:
        p = subprocess.run([sys.executable, "-m", "hotspots.cli", "--warehouse", name, "init-warehouse"],
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
        yield {"wh": name, "landing": landing, "base": base}
    finally:
        drop_db(name)


def test_each_dag_connection_logs_in_as_its_role(small, monkeypatch):
    """The Airflow connections the Makefile defines (AIRFLOW_CONN_HOTSPOTS_*), read through
    PostgresHook, and db.connect inside a task (acting_as, as the DAGs call it): who is connected."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from hotspots import db

    owner = os.environ["PGUSER"]
    for conn_id, role in CONNS.items():
        assert os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"), f"the Makefile defines no connection {conn_id}"
        hook = PostgresHook(postgres_conn_id=conn_id, database=small["wh"])
        assert hook.get_first("select current_user, current_database()") == (role or owner, small["wh"])
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "test_roles")  # as inside a task
    for conn_id, role in CONNS.items():
        with db.acting_as(conn_id):
            conn = db.connect(small["wh"])
        try:
            with conn.cursor() as cur:
                cur.execute("select current_user")
                assert cur.fetchone() == (role or owner,), conn_id
        finally:
            conn.close()


def test_the_ingest_dag_loads_as_the_ingest_role(small, sql_small):
    """ingest_extracts for real (airflow dags test): every ledger row and raw row written by
    hotspots_ingest (a trigger the owner adds records current_user), the warehouse prepared by the owner."""
    from tests.conftest import run_dag

    sql_small("""create table ingest.t_writer (who text, what text);
                 create function ingest.t_record() returns trigger language plpgsql as
                 $$ begin insert into ingest.t_writer values (current_user, tg_table_name); return null; end $$;
                 create trigger t_record after insert on ingest.extract_ledger
                     for each statement execute function ingest.t_record();
                 create trigger t_record after insert on raw.withdrawals
                     for each statement execute function ingest.t_record();""")
    run_dag("ingest_extracts", {"landing": str(small["landing"]), "warehouse": small["wh"]})
    assert sql_small("select count(*) from ingest.extract_ledger where status = 'loaded'") == [(12,)]
    assert sql_small("select distinct who, what from ingest.t_writer order by 2") == [
        ("hotspots_ingest", "extract_ledger"), ("hotspots_ingest", "withdrawals")]


def test_dbt_builds_everything_as_its_role_with_the_dags_profile(small, sql_small, monkeypatch):
    """build_features' own profile (Cosmos' mapping from the hotspots_dbt connection, taken from the
    parsed DAG) builds the whole project: seeds into ref, incremental models twice, views, tests;
    every relation dbt made is hotspots_dbt's, and the dashboards' role reads the marts it made."""
    from airflow.dag_processing.dagbag import DagBag

    from hotspots import db
    from hotspots.geo.cells import register_cells

    if sql_small("select count(*) from ingest.extract_ledger") == [(0,)]:  # run alone: load as the CLI does
        p = subprocess.run([sys.executable, "-m", "hotspots.cli", "--warehouse", small["wh"], "ingest",
                            "--landing", str(small["landing"])], capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "build_features")
    with db.acting_as(db.DBT_CONN_ID):  # as the DAG's register_cells
        conn = db.connect(small["wh"])
    try:
        assert register_cells(conn) > 0
    finally:
        conn.close()

    bag = DagBag(dag_folder=str(ROOT / "dags" / "build_features.py"))
    assert bag.import_errors == {}
    dbt_tasks = [t for t in bag.dags["build_features"].tasks if getattr(t, "profile_config", None)]
    assert dbt_tasks
    assert {t.profile_config.profile_mapping.conn_id for t in dbt_tasks} == {"hotspots_dbt"}
    profile = dbt_tasks[0].profile_config
    with profile.ensure_profile() as (path, env):
        rendered = yaml.safe_load(path.read_text())
        assert rendered["hotspots"]["outputs"]["warehouse"]["user"] == "hotspots_dbt"
        dbt_env = dict(os.environ, **env, WAREHOUSE=small["wh"])
        for _ in range(2):  # the second build: incremental models and tables replaced by their owner
            p = subprocess.run(
                ["dbt", "build", "--project-dir", str(ROOT / "dbt"), "--profiles-dir", str(path.parent),
                 "--target-path", str(small["base"] / "dbt"), "--log-path", str(small["base"] / "dbt")],
                env=dbt_env, capture_output=True, text=True, timeout=900)
            assert p.returncode == 0, (p.stdout + p.stderr)[-5000:]
    owners = sql_small("""select n.nspname, pg_get_userbyid(c.relowner), count(*) from pg_class c
                          join pg_namespace n on n.oid = c.relnamespace
                          where c.relkind in ('r', 'v') and n.nspname in ('staging', 'intermediate')
                          group by 1, 2 order by 1""")
    assert [(s, o) for s, o, _ in owners] == [("intermediate", "hotspots_dbt"), ("staging", "hotspots_dbt")]
    with psycopg2.connect(dbname=small["wh"]) as conn, conn.cursor() as cur:
        assert db.owned_dbt_relations(cur) == []  # marts' models and ref's seed too
        cur.execute("select count(*) from marts.fct_cell_daily_features")
        assert cur.fetchone()[0] > 0
    reader = _as_role(small["wh"], "hotspots_reader")
    try:
        assert not _denied(reader, "select count(*) from marts.fct_cell_daily_features")
        assert _denied(reader, "select count(*) from staging.stg_raw__withdrawals")
    finally:
        reader.close()


def test_dbt_relations_an_owner_made_are_handed_to_the_dbt_role(built, sql):
    """A warehouse whose dbt models were built by the owner (before the roles): ensure_roles
    (init-warehouse) gives dbt's relations to hotspots_dbt and leaves everything else the owner's."""
    from hotspots import db

    sql("create table marts.fct_cell_targets (n int)")          # a dbt model's name
    sql("create view marts.v_not_dbt as select 1 as n")         # a dashboard view: not dbt's
    sql("create table ref.holidays (d date)")                   # dbt's seed
    conn = db.connect(built)
    try:
        with conn.cursor() as cur:
            before = db.owned_dbt_relations(cur)
        conn.rollback()
        assert {("marts", "fct_cell_targets"), ("ref", "holidays"), ("staging", "t_dbt"),
                ("intermediate", "t_dbt")} <= set(before)
        db.ensure_roles(conn)
        with conn.cursor() as cur:
            assert db.owned_dbt_relations(cur) == []
    finally:
        conn.close()
    owner = sql("""select c.relname, pg_get_userbyid(c.relowner) from pg_class c join pg_namespace n
                   on n.oid = c.relnamespace where n.nspname in ('marts', 'ref') and c.relkind in ('r', 'v')""")
    owner = dict(owner)
    assert owner["fct_cell_targets"] == owner["holidays"] == "hotspots_dbt"
    assert owner["v_not_dbt"] == owner["pincodes"] == os.environ["PGUSER"]
    assert owner["t_dbt"] == os.environ["PGUSER"]  # marts.t_dbt: not a dbt model's name
    # Still writable by dbt and readable by the dashboards after the re-grant.
    dbt = _login(built, "hotspots_dbt")
    try:
        assert not _denied(dbt, "insert into marts.fct_cell_targets values (1)")
        assert not _denied(dbt, "drop table marts.fct_cell_targets")
    finally:
        dbt.close()


@pytest.fixture()
def sql_small(small):
    with runner(small["wh"]) as run:
        yield run
