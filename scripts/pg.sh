#!/usr/bin/env bash
# Project-local PostgreSQL 15 + PostGIS cluster under .local/pg (git-ignored).
#   pg.sh start            init if missing, start if stopped (harmless when running)
#   pg.sh stop             stop cleanly
#   pg.sh ensure-db NAME   create database NAME if missing (PostGIS enabled)
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
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "pg: running on $PGHOST:$PGPORT"; else echo "pg: stopped"; exit 3; fi ;;
  ensure-db) ensure_db "$2" "${3:-}" ;;
  *) echo "usage: $0 start|stop|status|ensure-db NAME [postgis]" >&2; exit 2 ;;
esac
