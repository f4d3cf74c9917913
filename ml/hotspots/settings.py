"""Connection settings and paths: the one place they are read.

Everything comes from the environment (libpq's own variables), with the same
working defaults as the Makefile and `.env.example`.
"""

from __future__ import annotations

import os
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
        password=env.get("PGPASSWORD", "hotspots"),
        warehouse=warehouse or env.get("WAREHOUSE", "hotspots"),
    )


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
    """MLflow's tracking store and model registry: the `mlflow` database of the cluster."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    s = pg()
    return f"postgresql+psycopg2://{s.user}:{s.password}@{s.host}:{s.port}/mlflow"


def mlflow_artifact_root() -> Path:
    """Where run artifacts (models, plots, tables) are written: a local folder."""
    return Path(os.environ.get("HOTSPOTS_MLFLOW_ARTIFACTS", ROOT / ".local" / "mlflow" / "artifacts"))


def forecast_config(path: Path | None = None) -> dict:
    """Training, backtest and promotion settings (config/forecast.yml)."""
    return yaml.safe_load((path or CONFIG_DIR / "forecast.yml").read_text())
