"""Shared fixtures. Integration tests need the environment `make test` sets up
(the local PostgreSQL cluster, Airflow's home and settings): run them through make."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PRODUCER_B = SHARED / "samples" / "producer-b"


def _require_make_env():
    for var in ("AIRFLOW_HOME", "HOTSPOTS_PII_KEY", "PGPORT"):
        if not os.environ.get(var):
            pytest.fail(f"{var} is not set: run the suite with `make test`")


def create_db(name: str) -> None:
    """Creates a PostGIS database in the local cluster (harmless if it exists)."""
    subprocess.run([str(ROOT / "scripts" / "pg.sh"), "ensure-db", name, "postgis"], check=True,
                   capture_output=True)


def drop_db(name: str) -> None:
    """Drops a database of the local cluster, closing its connections."""
    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"drop database if exists {name} with (force)")
    conn.close()


@pytest.fixture()
def warehouse():
    """A fresh, empty warehouse database for one test, dropped afterwards."""
    _require_make_env()
    name = f"test_{uuid.uuid4().hex[:10]}"
    create_db(name)
    yield name
    drop_db(name)


@pytest.fixture()
def sql(warehouse):
    """Runs a query in the test's warehouse and returns all rows."""
    conn = psycopg2.connect(dbname=warehouse)
    conn.autocommit = True

    def run(query, args=None):
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else None

    yield run
    conn.close()


def run_dag(dag_id: str, conf: dict) -> str:
    """Runs a DAG for real with `airflow dags test`; returns its output, fails the test on failure."""
    import json

    _require_make_env()
    p = subprocess.run(["airflow", "dags", "test", dag_id, "-c", json.dumps(conf)], capture_output=True,
                       text=True, timeout=1800)
    out = p.stdout + p.stderr
    if p.returncode != 0:
        pytest.fail(f"airflow dags test {dag_id} failed ({p.returncode}):\n{out[-6000:]}")
    return out
