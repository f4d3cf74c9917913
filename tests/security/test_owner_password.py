"""No default password for the local cluster (issue 13): a cluster created from now on gets a
generated owner password (.local/secrets/pg_owner), the Makefile uses it; a cluster created before
keeps its old one, said once, until `scripts/pg.sh rotate-owner-password`. Each test runs the real
scripts/pg.sh (and the Makefile) in a scratch checkout with a cluster of its own on a free port."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import psycopg2
import pytest

from tests.alerts.receivers import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture()
def checkout():
    """A scratch checkout (Makefile, scripts, config) the postgres system user can enter (pytest's
    own temporary folders are private to the user running the tests)."""
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="hotspots-pw-"))
    base.chmod(0o755)
    root = base / "checkout"
    root.mkdir()
    shutil.copy(ROOT / "Makefile", root)
    for d in ("scripts", "config"):
        shutil.copytree(ROOT / d, root / d)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "HOTSPOTS_", "AIRFLOW_CONN_"))}
    env.update(PGPORT=str(free_port()), PGHOST="127.0.0.1")
    yield root, env
    subprocess.run([str(root / "scripts" / "pg.sh"), "stop"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(base, ignore_errors=True)


def pg_sh(root, env, *args, password=None):
    e = dict(env, **({"PGPASSWORD": password} if password is not None else {}))
    p = subprocess.run([str(root / "scripts" / "pg.sh"), *args], env=e, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def can_login(env, password) -> bool:
    try:
        psycopg2.connect(host="127.0.0.1", port=env["PGPORT"], user="hotspots", password=password,
                         dbname="postgres", connect_timeout=10).close()
        return True
    except psycopg2.OperationalError as e:
        assert "password authentication failed" in str(e), e
        return False


def test_a_new_cluster_gets_a_generated_owner_password_and_the_makefile_uses_it(checkout):
    root, env = checkout
    password = pg_sh(root, env, "owner-password").stdout.strip()
    secret = root / ".local" / "secrets" / "pg_owner"
    assert password == secret.read_text().strip() and len(password) >= 24 and password != "hotspots"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert pg_sh(root, env, "owner-password").stdout.strip() == password  # stable
    # The Makefile: PGPASSWORD and the owner's Airflow connection, the roles' connections theirs.
    p = subprocess.run(["make", "-s", "--eval", "h13conn: ; @printenv PGPASSWORD AIRFLOW_CONN_HOTSPOTS_WAREHOUSE "
                        "AIRFLOW_CONN_HOTSPOTS_INGEST AIRFLOW_CONN_HOTSPOTS_DBT", "h13conn"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    pgpassword, owner_conn, ingest_conn, dbt_conn = p.stdout.splitlines()
    assert pgpassword == password and f'"password": "{password}"' in owner_conn
    for conn, role in ((ingest_conn, "hotspots_ingest"), (dbt_conn, "hotspots_dbt")):
        assert f'"login": "{role}"' in conn
        assert f'"password": "{(root / ".local" / "secrets" / role).read_text().strip()}"' in conn
    # The cluster pg.sh creates takes it, and not the old default.
    pg_sh(root, env, "start", password=password)
    assert can_login(env, password)
    assert not can_login(env, "hotspots")


def test_an_older_cluster_keeps_its_password_until_rotated(checkout):
    root, env = checkout
    pg_sh(root, env, "start", password="hotspots")  # as an older checkout created it
    shutil.rmtree(root / ".local" / "secrets", ignore_errors=True)
    first = pg_sh(root, env, "owner-password")
    assert first.stdout.strip() == "hotspots" and "rotate-owner-password" in first.stderr
    again = pg_sh(root, env, "owner-password")
    assert again.stdout.strip() == "hotspots" and again.stderr == ""  # said once
    assert can_login(env, "hotspots")

    out = pg_sh(root, env, "rotate-owner-password").stdout
    new = (root / ".local" / "secrets" / "pg_owner").read_text().strip()
    assert "pg_owner" in out and new != "hotspots"
    assert pg_sh(root, env, "owner-password").stdout.strip() == new
    assert can_login(env, new)
    assert not can_login(env, "hotspots")
