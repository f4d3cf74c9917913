"""Superset configuration for one machine (SUPERSET_CONFIG_PATH points here; scripts/superset.sh sets it).

Everything comes from the environment the Makefile exports: metadata in the local cluster's
`superset` database, the secret key generated into .local, no Celery (the compose deployment adds it in
deploy/superset_config.py), no external hosts in the
content security policy (nothing may be fetched from the internet), and the acknowledgement
page registered as a blueprint behind Superset's login.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

_pg = {k: os.environ.get(k, d) for k, d in
       (("PGHOST", "127.0.0.1"), ("PGPORT", "55432"), ("PGUSER", "hotspots"), ("PGPASSWORD", ""))}

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "SUPERSET_METADATA_URI",
    "postgresql+psycopg2://{PGUSER}:{PGPASSWORD}@{PGHOST}:{PGPORT}/superset".format(**_pg))
SQLALCHEMY_TRACK_MODIFICATIONS = False

# One machine, no Celery, no Redis: synchronous queries, in-process caches.
CELERY_CONFIG = None
RESULTS_BACKEND = None
# No view-level cache: Superset 6.1's etag_cache keys GET explore_json responses (the deck.gl
# multi-layer map fetches its layers that way) by URL only, so a response computed for one user
# would be served to another, bypassing row-level security. The data cache below is keyed by the
# query, the user's RLS clauses (security_manager.get_rls_cache_key) and the Jinja values the SQL
# used (current_username() in the map layers' scope), so it is per user and jurisdiction; on disk,
# so both gunicorn workers share it. Ten minutes: the data changes once a day (the dash_* tables).
CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "FileSystemCache", "CACHE_DEFAULT_TIMEOUT": 600, "CACHE_THRESHOLD": 2000,
                     "CACHE_DIR": os.path.join(os.environ.get("SUPERSET_LOCAL", str(HERE.parent / ".local" / "superset")),
                                               "cache", "data")}
FILTER_STATE_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 86400}
EXPLORE_FORM_DATA_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 86400}
THUMBNAIL_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
RATELIMIT_STORAGE_URI = "memory://"
GLOBAL_ASYNC_QUERIES = False

FEATURE_FLAGS = {
    "DASHBOARD_NATIVE_FILTERS": True,
    "DASHBOARD_CROSS_FILTERS": True,
    "DASHBOARD_RBAC": True,          # dashboards carry the roles that may open them
    "ENABLE_TEMPLATE_PROCESSING": True,
    "DRILL_TO_DETAIL": True,
    "DRILL_BY": True,
    "ALERT_REPORTS": False,
    "THUMBNAILS": False,
    "EMBEDDED_SUPERSET": False,
}

# Nothing reaches the internet: no telemetry pixel, no Mapbox, no public tile servers.
SCARF_ANALYTICS = False
MAPBOX_API_KEY = ""
_tiles = os.environ.get("SUPERSET_TILE_URL", "").strip()  # e.g. http://127.0.0.1:8090/{z}/{x}/{y}.png
_tile_hosts: list[str] = []
if _tiles:
    from urllib.parse import urlsplit

    _u = urlsplit(_tiles)
    _tile_hosts = [f"{_u.scheme}://{_u.netloc}"]
    DECKGL_BASE_MAP = [[f"tile://{_tiles}", "Local tiles"]]
else:
    # No tile server: deck.gl draws the layers on a blank background; the state and district
    # outlines from the warehouse give the context.
    DECKGL_BASE_MAP = [["tile://http://127.0.0.1:9/{z}/{x}/{y}.png", "None (offline)"]]

TALISMAN_ENABLED = True
TALISMAN_CONFIG = {
    "content_security_policy": {
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:", *_tile_hosts],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'", *_tile_hosts],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'", "data:"],
        "script-src": ["'self'", "'strict-dynamic'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": False,
}
CONTENT_SECURITY_POLICY_WARNING = False

WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None
SESSION_COOKIE_SAMESITE = "Lax"
ENABLE_PROXY_FIX = False
SQLLAB_CTAS_NO_LIMIT = False
ROW_LIMIT = 50000
SQL_MAX_ROW = 100000
SUPERSET_WEBSERVER_TIMEOUT = 120
PREVENT_UNSAFE_DB_CONNECTIONS = True
SQLLAB_TIMEOUT = 60
LOG_LEVEL = os.environ.get("SUPERSET_LOG_LEVEL", "WARNING")



def _multi_layer_without_features(app) -> None:
    """The deck.gl multi-layer chart (viz deck_multi) computes every layer's features server-side,
    but Superset 6.1's front end ignores them: it takes the layer list (`slices`) from the response
    and fetches each layer itself. So the chart returns only the layer list; each layer's rows come
    once, through the layer's own request (with its own RLS and data cache)."""
    from superset import viz

    def get_data(self, df):  # noqa: ARG001 - the multi-layer chart has no query of its own
        from superset.models.slice import Slice

        from superset import db

        slices = db.session.query(Slice).filter(Slice.id.in_(self.form_data.get("deck_slices") or [])).all()
        return {"features": {}, "mapboxApiKey": app.config["MAPBOX_API_KEY"],
                "slices": [slc.data for slc in slices if slc.data is not None]}

    viz.DeckGLMultiLayer.get_data = get_data


FLASK_APP_MUTATOR = _multi_layer_without_features

# The acknowledgement page: /hotspots/ack/ (behind Superset's login; jurisdiction from security.yml).
from hotspots_superset.ack import blueprint as _ack_blueprint  # noqa: E402

BLUEPRINTS = [_ack_blueprint]
