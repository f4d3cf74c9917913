#!/usr/bin/env bash
# Project-local PostgreSQL 15 + PostGIS cluster under .local/pg (git-ignored).
#   pg.sh start            init if missing, start if stopped (harmless when running)
#   pg.sh stop             stop cleanly
#   pg.sh ensure-db NAME [postgis]  create database NAME if missing; with postgis: a warehouse
#                          (PostGIS, and the least-privilege roles of scripts/warehouse-roles.sql)
#   pg.sh status
# Settings: PGHOST PGPORT PGUSER PGPASSWORD (see .env.example).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
BASE="$ROOT/.local/pg"
DATA="$BASE/data"
RUN="$BASE/run"
LOG="$BASE/postgres.log"
: "${PGHOST:=127.0.0.1}" "${PGPORT:=55432}" "${PGUSER:=hotspots}" "${PGPASSWORD:=hotspots}"
export PGHOST PGPORT PGUSER PGPASSWORD

# initdb refuses to run as root: run the server as the 'postgres' system user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}

init() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  echo "pg: creating cluster in $DATA (port $PGPORT)"
  mkdir -p "$BASE" "$RUN"
  local pwfile="$BASE/.pwfile"
  printf '%s\n' "$PGPASSWORD" > "$pwfile"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$BASE"; fi
  chmod 600 "$pwfile"
  as_owner "$PGBIN/initdb" -D "$DATA" -U "$PGUSER" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-host=scram-sha-256 --auth-local=trust >/dev/null
  rm -f "$pwfile"
  cat >> "$DATA/postgresql.conf" <<CONF
# project settings (scripts/pg.sh)
shared_buffers = 512MB
work_mem = 64MB
maintenance_work_mem = 512MB
max_connections = 200
synchronous_commit = off
CONF
}

running() { as_owner "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  init
  if running; then return 0; fi
  mkdir -p "$RUN"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$RUN"; fi
  as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-p $PGPORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$RUN" start >/dev/null
  echo "pg: running on $PGHOST:$PGPORT (log $LOG)"
}

stop() {
  [ -f "$DATA/PG_VERSION" ] || return 0
  if running; then as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; echo "pg: stopped"; fi
}

ensure_db() {
  local db=$1
  [[ "$db" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "pg: database name '$db' must be lower-case letters, digits, _" >&2; exit 2; }
  if [ "$(psql -d postgres -AtqX -c "select 1 from pg_database where datname='$db'")" != 1 ]; then
    psql -d postgres -qX -c "create database $db" >/dev/null
    echo "pg: created database $db"
  fi
  if [ "${2:-}" = postgis ]; then
    PGOPTIONS="-c client_min_messages=warning" psql -d "$db" -qX -c "create extension if not exists postgis" >/dev/null
    roles "$db"
  fi
}

# The warehouse's roles and grants (ingest writes raw/ingest, dbt staging/intermediate/marts,
# dashboards read marts/alerts), then a login for hotspots_ingest and hotspots_dbt with a password
# from HOTSPOTS_INGEST_PASSWORD / HOTSPOTS_DBT_PASSWORD, else generated into .local/secrets/ROLE
# (never on a command line: psql reads the statement from stdin). hotspots_reader's login is
# Superset's provisioning's (SUPERSET_READER_PASSWORD or .local/superset/reader_password).
roles() {
  local db=$1 role var pw secrets="$ROOT/.local/secrets"
  PGOPTIONS="-c client_min_messages=warning" psql -d "$db" -qX -v ON_ERROR_STOP=1 \
    -f "$ROOT/scripts/warehouse-roles.sql" >/dev/null
  mkdir -p "$secrets" && chmod 700 "$secrets"
  for role in hotspots_ingest hotspots_dbt; do
    var="HOTSPOTS_${role#hotspots_}_PASSWORD"; var=${var^^}
    pw=${!var:-}
    if [ -z "$pw" ]; then
      [ -s "$secrets/$role" ] || { (umask 077; head -c 24 /dev/urandom | base64 | tr -d '\n/+=' > "$secrets/$role"); }
      pw=$(cat "$secrets/$role")
    fi
    # In the postgres database under one advisory lock: two warehouses made at once would
    # otherwise update the same role row concurrently.
    psql -d postgres -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
begin;
select pg_advisory_xact_lock(hashtext('hotspots.roles'));
alter role $role with login nosuperuser nocreatedb nocreaterole password '${pw//\'/\'\'}';
commit;
SQL
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "pg: running on $PGHOST:$PGPORT"; else echo "pg: stopped"; exit 3; fi ;;
  ensure-db) ensure_db "$2" "${3:-}" ;;
  roles) roles "$2" ;;
  *) echo "usage: $0 start|stop|status|ensure-db NAME [postgis]|roles NAME" >&2; exit 2 ;;
esac
