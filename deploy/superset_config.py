"""Superset configuration of docker-compose.yml: the repository's (superset/superset_config.py, the
one scripts/superset.sh uses natively) with Celery added for the superset-worker service.

SUPERSET_CONFIG_PATH points here in the Superset image (Dockerfile.superset). Everything else,
metadata URI, secret key, caches, security policy, feature flags, the acknowledgement page, is the
native configuration, loaded unchanged; only Celery's broker and result store are added
(SUPERSET_CELERY_BROKER_URL, Redis).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_BASE = Path(os.environ.get("SUPERSET_BASE_CONFIG", Path(__file__).resolve().parents[1] / "superset" / "superset_config.py"))
_spec = importlib.util.spec_from_file_location("hotspots_superset_base_config", _BASE)
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)
globals().update({k: v for k, v in vars(_base).items() if k.isupper()})

_BROKER = os.environ["SUPERSET_CELERY_BROKER_URL"]


class CeleryConfig:  # noqa: D101 - Superset reads the attributes
    broker_url = _BROKER
    result_backend = _BROKER
    imports = ("superset.sql_lab", "superset.tasks.scheduler", "superset.tasks.thumbnails", "superset.tasks.cache")
    worker_prefetch_multiplier = 1
    task_acks_late = True


CELERY_CONFIG = CeleryConfig
