#!/usr/bin/env bash
# Project-local PostgreSQL 15 + PostGIS cluster under .local/pg (git-ignored).
#   pg.sh start            init if missing, start if stopped (harmless when running)
#   pg.sh stop             stop cleanly
#   pg.sh ensure-db NAME [postgis]  create database NAME if missing; with postgis: a warehouse
#                          (PostGIS, and the least-privilege roles of scripts/warehouse-roles.sql)
#   pg.sh status
#   pg.sh secret NAME      print the generated secret .local/secrets/NAME (made if missing)
#   pg.sh owner-password   print the owner's (PGUSER's) password: PGPASSWORD, else see below
#   pg.sh rotate-owner-password   give the running cluster's owner a generated password
# Settings: PGHOST PGPORT PGUSER PGPASSWORD (see .env.example).
#
# No default password: the owner's password is PGPASSWORD, else the one generated into
# .local/secrets/pg_owner when the cluster is created. A cluster created before that (by an older
# checkout: .local/pg exists, no secret) keeps its old password 'hotspots', said once; give it a
# generated one with `scripts/pg.sh rotate-owner-password` (then restart what is connected).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
BASE="$ROOT/.local/pg"
DATA="$BASE/data"
RUN="$BASE/run"
LOG="$BASE/postgres.log"
SECRETS="$ROOT/.local/secrets"
OWNER_SECRET="$SECRETS/pg_owner"

# A secret kept in .local/secrets/NAME (mode 600), generated the first time.
secret() {
  local f="$SECRETS/$1"
  if [ ! -s "$f" ]; then
    mkdir -p "$SECRETS" && chmod 700 "$SECRETS"
    # Written aside, then linked in: of two processes making it at once, the first one wins.
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '\n/+=' > "$f.$$"; ln "$f.$$" "$f" 2>/dev/null; rm -f "$f.$$")
  fi
  cat "$f"
}

owner_password() {
  if [ -n "${PGPASSWORD:-}" ]; then printf '%s\n' "$PGPASSWORD"; return; fi
  if [ ! -s "$OWNER_SECRET" ] && [ -f "$DATA/PG_VERSION" ]; then
    if [ ! -e "$SECRETS/.pg_owner_legacy_noted" ]; then
      mkdir -p "$SECRETS" && chmod 700 "$SECRETS" && touch "$SECRETS/.pg_owner_legacy_noted"
      echo "pg: this cluster was created with the old default owner password; it keeps it. To replace it with" \
        "a generated one: scripts/pg.sh rotate-owner-password (docs/architecture.md, Database roles)" >&2
    fi
    echo hotspots
    return
  fi
  secret pg_owner
}

: "${PGHOST:=127.0.0.1}" "${PGPORT:=55432}" "${PGUSER:=hotspots}"
PGPASSWORD=$(owner_password)
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
  # Byte-order collation (see ensure_db), UTF-8 character classes.
  as_owner "$PGBIN/initdb" -D "$DATA" -U "$PGUSER" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 --lc-collate=C \
    --auth-host=scram-sha-256 --auth-local=trust >/dev/null
  rm -f "$pwfile"
  cat >> "$DATA/postgresql.conf" <<CONF
# project settings: given at every start by scripts/pg.sh (SERVER_SETTINGS), over this file
CONF
}

# The server's settings, on the command line of every start, so that a cluster made by an older
# version of this script gets them at its next start (docker-compose.yml gives the production
# container the same). The write path: with PostgreSQL's default max_wal_size (1 GB) the ingest of
# a national history checkpointed every 1 to 5 s, and every index page it touched after a
# checkpoint went to the WAL whole again (docs/benchmarks-notes.md, ingest_ratio).
SERVER_SETTINGS="-c shared_buffers=512MB -c work_mem=64MB -c maintenance_work_mem=512MB -c max_connections=200
  -c synchronous_commit=off -c max_wal_size=8GB -c min_wal_size=1GB -c checkpoint_timeout=15min
  -c wal_compression=lz4"

running() { as_owner "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  init
  if running; then return 0; fi
  mkdir -p "$RUN"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$RUN"; fi
  as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-p $PGPORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$RUN $(echo $SERVER_SETTINGS)" \
    start >/dev/null
  echo "pg: running on $PGHOST:$PGPORT (log $LOG)"
}

stop() {
  [ -f "$DATA/PG_VERSION" ] || return 0
  if running; then as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; echo "pg: stopped"; fi
}

# A new database collates text by its bytes ("C"). For UTF-8 that is the order of C.UTF-8 (code
# points) exactly, but PostgreSQL compares "C" text with memcmp and sorts it by abbreviated keys,
# while any other locale goes through strcoll for every comparison: on the two-year warehouse the
# sort of 16 M transfers by account took 26 s under C.UTF-8 and 11 s under C (dim_mule_accounts,
# int_cell_pressure_daily; docs/benchmarks-notes.md). Character classes stay UTF-8 (lc_ctype).
ensure_db() {
  local db=$1
  [[ "$db" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "pg: database name '$db' must be lower-case letters, digits, _" >&2; exit 2; }
  if [ "$(psql -d postgres -AtqX -c "select 1 from pg_database where datname='$db'")" != 1 ]; then
    psql -d postgres -qX -c "create database $db template template0 encoding 'UTF8' lc_collate 'C' lc_ctype 'C.UTF-8'" >/dev/null
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
  local db=$1 role var pw
  PGOPTIONS="-c client_min_messages=warning" psql -d "$db" -qX -v ON_ERROR_STOP=1 \
    -f "$ROOT/scripts/warehouse-roles.sql" >/dev/null
  for role in hotspots_ingest hotspots_dbt; do
    var="HOTSPOTS_${role#hotspots_}_PASSWORD"; var=${var^^}
    pw=${!var:-}
    [ -n "$pw" ] || pw=$(secret "$role")
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

# The running cluster's owner gets the generated password (.local/secrets/pg_owner, made if
# missing), set over the local socket (trusted: no old password needed). Whatever is connected
# with the old one (Airflow, MLflow, Superset) must be restarted: make down && make up.
rotate_owner_password() {
  running || { echo "pg: the cluster is not running (make db)" >&2; exit 1; }
  local pw
  pw=$(secret pg_owner)
  psql -h "$RUN" -d postgres -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
alter role "$PGUSER" password '${pw//\'/\'\'}';
SQL
  rm -f "$SECRETS/.pg_owner_legacy_noted"
  echo "pg: owner $PGUSER has the password in $OWNER_SECRET; restart the services (make down && make up)"
}

case "${1:-}" in
  start) start ;;
  secret) secret "$2" ;;
  owner-password) printf '%s\n' "$PGPASSWORD" ;;
  rotate-owner-password) rotate_owner_password ;;
  stop) stop ;;
  status) if running; then echo "pg: running on $PGHOST:$PGPORT"; else echo "pg: stopped"; exit 3; fi ;;
  ensure-db) ensure_db "$2" "${3:-}" ;;
  roles) roles "$2" ;;
  *) echo "usage: $0 start|stop|status|ensure-db NAME [postgis]|roles NAME|secret NAME|owner-password|rotate-owner-password" >&2; exit 2 ;;
esac
