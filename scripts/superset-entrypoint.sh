#!/usr/bin/env bash
# Entrypoint of the Superset image (Dockerfile.superset, docker-compose.yml's superset, superset-worker
# and superset-init), the container's counterpart of scripts/superset.sh:
#   setup                 the metadata database (created if missing), `superset db upgrade`, `superset init`
#   provision [ARGS]      views and read-only role in WAREHOUSE, dashboards, roles, RLS, users (docs/dashboards.md)
#   anything else         run as given (gunicorn, celery, superset ...)
set -euo pipefail
case "${1:-}" in
  setup)
    python - <<'PY'
import os
from urllib.parse import urlsplit

import psycopg2

name = urlsplit(os.environ["SUPERSET_METADATA_URI"]).path.lstrip("/")
conn = psycopg2.connect(dbname="postgres")
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("select 1 from pg_database where datname = %s", (name,))
    if not cur.fetchone():
        cur.execute(f'create database "{name}"')
        print(f"superset: created metadata database {name}")
conn.close()
PY
    superset db upgrade
    superset init
    ;;
  provision) shift; exec python -m hotspots_superset.provision "$@" ;;
  *) exec "$@" ;;
esac
