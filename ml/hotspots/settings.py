"""Connection settings and paths: the one place they are read.

Everything comes from the environment (libpq's own variables), with the same
working defaults as the Makefile and `.env.example`.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(os.environ.get("HOTSPOTS_ROOT", Path(__file__).resolve().parents[2]))
CONFIG_DIR = ROOT / "config"
EXPECTATIONS_DIR = ROOT / "expectations"


@dataclass(frozen=True)
class PgSettings:
    host: str
    port: int
    user: str
    password: str
    warehouse: str

    def dsn(self, database: str | None = None) -> str:
        db = database or self.warehouse
        return f"host={self.host} port={self.port} dbname={db} user={self.user} password={self.password}"


def pg(warehouse: str | None = None) -> PgSettings:
    env = os.environ
    return PgSettings(
        host=env.get("PGHOST", "127.0.0.1"),
        port=int(env.get("PGPORT", "55432")),
        user=env.get("PGUSER", "hotspots"),
        password=env.get("PGPASSWORD") or owner_password(),
        warehouse=warehouse or env.get("WAREHOUSE", "hotspots"),
    )


def owner_password() -> str:
    """The cluster owner's password when PGPASSWORD is not set (the Makefile sets it): the one
    scripts/pg.sh generated into .local/secrets/pg_owner; a cluster created before that keeps its
    old 'hotspots' (scripts/pg.sh rotate-owner-password replaces it); '' when there is neither."""
    secret = LOCAL / "secrets" / "pg_owner"
    if secret.exists() and secret.read_text().strip():
        return secret.read_text().strip()
    return "hotspots" if (LOCAL / "pg" / "data" / "PG_VERSION").exists() else ""


def pii_key() -> bytes:
    """Key of the keyed hash that pseudonymises victim mobiles. Never defaulted: a
    silently shared default key would make the hashes reversible by dictionary."""
    key = os.environ.get("HOTSPOTS_PII_KEY", "")
    if len(key) < 16:
        raise RuntimeError("HOTSPOTS_PII_KEY is not set (16+ characters): the Makefile sets one per checkout")
    return key.encode()


@dataclass(frozen=True)
class IngestConfig:
    amount_ceiling_inr: float
    future_tolerance_minutes: int
    csv_field_size_limit: int


def ingest_config(path: Path | None = None) -> IngestConfig:
    data = yaml.safe_load((path or CONFIG_DIR / "ingest.yml").read_text())
    return IngestConfig(
        amount_ceiling_inr=float(data["amount_ceiling_inr"]),
        future_tolerance_minutes=int(data["future_tolerance_minutes"]),
        csv_field_size_limit=int(data["csv_field_size_limit"]),
    )


def mlflow_tracking_uri() -> str:
    """MLflow's tracking server (runs, registry and artifacts over HTTP): MLFLOW_TRACKING_URI, else
    the local one `make up` starts on MLFLOW_PORT."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"http://127.0.0.1:{os.environ.get('MLFLOW_PORT', '5000')}"


def mlflow_backend_store_uri() -> str:
    """The tracking server's own store (the cluster's `mlflow` database): for the server only,
    passed in its environment (MLFLOW_BACKEND_STORE_URI), never on its command line."""
    if os.environ.get("MLFLOW_BACKEND_STORE_URI"):
        return os.environ["MLFLOW_BACKEND_STORE_URI"]
    s = pg()
    return f"postgresql+psycopg2://{s.user}:{s.password}@{s.host}:{s.port}/mlflow"


def local_secret(path: Path, announce: str | None = None) -> str:
    """A secret kept in ``path`` (.local, mode 600), generated the first time (then announced)."""
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    value = new_password()
    _write_private(path, value + "\n")
    if announce:
        print(f"{announce}: {value} (kept in {path})")
    return value


def mlflow_credentials() -> tuple[str, str]:
    """The MLflow server's login (basic-auth app): MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD,
    else admin with the password generated into .local/mlflow/admin_password."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "admin"
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or local_secret(LOCAL / "mlflow" / "admin_password")
    return user, password


def mlflow_artifact_root() -> Path:
    """Where the tracking server keeps artifacts (--artifacts-destination): a local folder."""
    return Path(os.environ.get("HOTSPOTS_MLFLOW_ARTIFACTS", ROOT / ".local" / "mlflow" / "artifacts"))


def forecast_config(path: Path | None = None) -> dict:
    """Training, backtest and promotion settings (config/forecast.yml)."""
    return yaml.safe_load((path or CONFIG_DIR / "forecast.yml").read_text())


LOCAL = ROOT / ".local"
# Passwords that were defaults once: found in a passwords file, they are replaced.
WEAK_PASSWORDS = frozenset({"admin", "password", "hotspots", "airflow", "mlflow", ""})


def new_password() -> str:
    return secrets.token_urlsafe(18)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
    os.replace(tmp, path)


def airflow_passwords(path: str | Path | None = None, users: str | None = None, announce=print) -> dict[str, str]:
    """The Airflow UI's passwords (simple auth manager's passwords file, in .local): for every
    user of AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS (user:role), AIRFLOW_<USER>_PASSWORD from
    the environment, else the one in the file, else a generated one (printed once). A password
    that used to be a default (admin) is replaced. Returns {user: password}."""
    path = Path(path or os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
                or LOCAL / "airflow" / "passwords.json")
    users = users if users is not None else os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    try:
        current = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        current = {}
    out = {}
    for entry in filter(None, (u.strip() for u in users.split(","))):
        user = entry.split(":", 1)[0]
        env = os.environ.get(f"AIRFLOW_{user.upper()}_PASSWORD", "")
        if env:
            out[user] = env
        elif current.get(user, "") not in WEAK_PASSWORDS:
            out[user] = current[user]
        else:
            out[user] = new_password()
            announce(f"airflow: UI user {user}, password generated: {out[user]} (kept in {path})")
    if out != current:
        _write_private(path, json.dumps(out))
    return out
