#!/usr/bin/env bash
# docker-compose.yml's airflow-init (one-shot, in the pipeline image): Airflow's metadata migrated,
# the UI's passwords file written (AIRFLOW_ADMIN_PASSWORD), the warehouse's schemas and grants
# (hotspots.cli init-warehouse, as make warehouse), and the least-privilege roles' logins from
# HOTSPOTS_INGEST_PASSWORD / HOTSPOTS_DBT_PASSWORD (what scripts/pg.sh does natively). The passwords
# travel in the environment and as SQL literals over the connection, never on a command line.
set -euo pipefail
echo "init: migrating Airflow's metadata database"
airflow db migrate >/tmp/migrate.log 2>&1 || { tail -30 /tmp/migrate.log; exit 1; }
python -c "from hotspots.settings import airflow_passwords; airflow_passwords()"
echo "init: warehouse $WAREHOUSE"
python -m hotspots.cli init-warehouse
python - <<'PY'
import os

import psycopg2
from psycopg2 import sql

conn = psycopg2.connect(dbname="postgres")
conn.autocommit = True
with conn.cursor() as cur:
    for role in ("hotspots_ingest", "hotspots_dbt"):
        password = os.environ[f"{role.upper()}_PASSWORD"]
        cur.execute(sql.SQL("alter role {} with login nosuperuser nocreatedb nocreaterole password {}")
                    .format(sql.Identifier(role), sql.Literal(password)))
        print(f"init: role {role} can log in")
conn.close()
PY
