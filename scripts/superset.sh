#!/usr/bin/env bash
# Superset on one machine, in its own virtualenv (.venv-superset), metadata in the local cluster.
#   superset.sh setup       metadata database, `superset db upgrade` and `superset init` (once per version)
#   superset.sh provision   views + read-only role in WAREHOUSE, import superset/assets, roles/RLS/users
#   superset.sh refresh     rebuild the dashboards' precomputed tables in WAREHOUSE (marts.dash_*)
#   superset.sh start|stop  gunicorn on 127.0.0.1:SUPERSET_PORT (pid and log in .local/superset/run)
#   superset.sh bench [SLUG...]  render time of dashboards in headless Chromium, slowest query named
#   superset.sh bench-serve   the same on a Superset of its own for WAREHOUSE (metadata $SUPERSET_BENCH_METADATA_DB,
#                           default superset_bench), for make bench
#   superset.sh logins      where to log in (users; passwords stay in .local/superset/passwords)
#   superset.sh run ARGS    any `superset` command with this configuration
# Settings from the environment (the Makefile's): PG*, WAREHOUSE, SUPERSET_PORT, SUPERSET_METADATA_DB.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SUPERSET_VENV:-$ROOT/.venv-superset}
LOCAL=${SUPERSET_LOCAL:-$ROOT/.local/superset}
RUN="$LOCAL/run"
mkdir -p "$LOCAL" "$RUN"
: "${PGHOST:=127.0.0.1}" "${PGPORT:=55432}" "${PGUSER:=hotspots}" "${WAREHOUSE:=hotspots}"
# No default password: the Makefile passes it; alone, the cluster's own (generated) owner password.
[ -n "${PGPASSWORD:-}" ] || PGPASSWORD=$("$ROOT/scripts/pg.sh" owner-password)
: "${SUPERSET_PORT:=8088}" "${SUPERSET_METADATA_DB:=superset}"
export PGHOST PGPORT PGUSER PGPASSWORD WAREHOUSE SUPERSET_PORT SUPERSET_LOCAL="$LOCAL"
[ -s "$LOCAL/secret_key" ] || { head -c 42 /dev/urandom | base64 | tr -d '\n' > "$LOCAL/secret_key"; chmod 600 "$LOCAL/secret_key"; }
export SUPERSET_SECRET_KEY=${SUPERSET_SECRET_KEY:-$(cat "$LOCAL/secret_key")}
export SUPERSET_CONFIG_PATH="$ROOT/superset/superset_config.py"
export SUPERSET_METADATA_URI=${SUPERSET_METADATA_URI:-postgresql+psycopg2://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$SUPERSET_METADATA_DB}
export PYTHONPATH="$ROOT/superset${PYTHONPATH:+:$PYTHONPATH}"
export FLASK_APP=superset SCARF_ANALYTICS=false SUPERSET_LOG_LEVEL=${SUPERSET_LOG_LEVEL:-WARNING}
SS="$VENV/bin/superset"
PIDFILE="$RUN/gunicorn-$SUPERSET_PORT.pid"
LOG="$RUN/gunicorn-$SUPERSET_PORT.log"

healthy() { "$VENV/bin/python" -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)" "http://127.0.0.1:$SUPERSET_PORT/health" >/dev/null 2>&1; }
alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

setup() {
  "$ROOT/scripts/pg.sh" ensure-db "$SUPERSET_METADATA_DB"
  local stamp="$LOCAL/.setup-$SUPERSET_METADATA_DB-6.1.0"
  # The stamp alone is not enough: the metadata database may have been dropped since.
  if [ -f "$stamp" ] && "$VENV/bin/python" -c "import sys, psycopg2; c = psycopg2.connect(dbname=sys.argv[1]); \
cur = c.cursor(); cur.execute(\"select to_regclass('public.dbs') is not null\"); sys.exit(0 if cur.fetchone()[0] else 1)" \
      "$SUPERSET_METADATA_DB" 2>/dev/null; then
    return 0
  fi
  echo "superset: migrating metadata database $SUPERSET_METADATA_DB and creating default roles"
  "$SS" db upgrade >"$LOCAL/setup.log" 2>&1 || { tail -30 "$LOCAL/setup.log"; exit 1; }
  "$SS" init >>"$LOCAL/setup.log" 2>&1 || { tail -30 "$LOCAL/setup.log"; exit 1; }
  touch "$stamp"
}

case "${1:-}" in
  setup) setup ;;
  provision) setup; shift; "$VENV/bin/python" -m hotspots_superset.provision "$@" ;;
  start)
    if alive; then echo "superset: already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    nohup "$VENV/bin/gunicorn" --bind "127.0.0.1:$SUPERSET_PORT" --workers "${SUPERSET_WORKERS:-2}" \
      --worker-class gthread --threads 4 --timeout 120 --limit-request-line 0 --limit-request-field_size 0 \
      --no-control-socket --pid "$PIDFILE" "superset.app:create_app()" >"$LOG" 2>&1 &
    for _ in $(seq 1 90); do healthy && break; alive || sleep 1; sleep 1; done
    if healthy; then echo "superset: Superset at http://127.0.0.1:$SUPERSET_PORT (log $LOG)"
    else echo "superset: did not answer in 90 s, see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; fi
    ;;
  stop)
    if alive; then
      kill -TERM "$(cat "$PIDFILE")" 2>/dev/null || true
      for _ in $(seq 1 30); do alive || break; sleep 1; done
      alive && kill -KILL "$(cat "$PIDFILE")" 2>/dev/null || true
      echo "superset: stopped"
    fi
    rm -f "$PIDFILE"
    ;;
  logins)
    echo "superset: http://127.0.0.1:$SUPERSET_PORT/superset/dashboard/national-risk-map/ (also district-drilldown, alerts-cases, model-data-health; acknowledgements at /hotspots/ack/)"
    echo "superset: users admin and those of superset/security.yml; passwords from \$SUPERSET_PASSWORD_<USER> or in $LOCAL/passwords/<user>:"
    for f in "$LOCAL"/passwords/*; do [ -f "$f" ] && echo "  $(basename "$f")"; done
    ;;
  refresh)
    # the dashboards' precomputed tables (also done by provision and by the refresh_dashboards DAG)
    "$VENV/bin/python" -c "from hotspots_superset.provision import refresh_tables, pg_connect, warehouse_name; \
refresh_tables(pg_connect(warehouse_name(None)))" ;;
  bench) shift; "$VENV/bin/python" -m hotspots_superset.bench "$@" ;;
  bench-serve)
    # make bench: a Superset of its own (metadata DB superset_bench) for WAREHOUSE, provisioned (the
    # dashboard tables refreshed, timed), measured, stopped.
    shift
    SUPERSET_METADATA_DB=${SUPERSET_BENCH_METADATA_DB:-superset_bench}
    export SUPERSET_METADATA_DB SUPERSET_METADATA_URI="postgresql+psycopg2://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$SUPERSET_METADATA_DB"
    PIDFILE="$RUN/gunicorn-$SUPERSET_PORT.pid"
    "$0" provision | grep -E "^superset: (dashboard tables|provisioned)"
    "$0" start >/dev/null
    trap '"$0" stop >/dev/null' EXIT
    "$VENV/bin/python" -m hotspots_superset.bench "$@"
    ;;
  run) shift; exec "$SS" "$@" ;;
  *) echo "usage: $0 setup|provision|refresh|start|stop|bench|bench-serve|logins|run ARGS" >&2; exit 2 ;;
esac
