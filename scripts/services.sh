#!/usr/bin/env bash
# Starts/stops the local long-running services on 127.0.0.1 (Airflow API server with
# the UI, scheduler, DAG processor, triggerer), the MLflow UI and Superset (scripts/superset.sh). PostgreSQL is scripts/pg.sh's. Run via make up/down.
set -euo pipefail
RUN="$AIRFLOW_HOME/run"; mkdir -p "$RUN"
healthy() { python -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)" "$1" >/dev/null 2>&1; }

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start_one() {
  local name=$1; shift
  if alive "$name"; then echo "services: $name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  nohup "$@" >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  echo "services: $name started (log $RUN/$name.log)"
}

stop_one() {
  local name=$1 pid
  if alive "$name"; then
    pid=$(cat "$RUN/$name.pid")
    # A service started under setsid leads its own process group: stop the group (its workers too).
    if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]; then kill -TERM -- "-$pid" 2>/dev/null || true
    else kill -TERM "$pid" 2>/dev/null || true; fi
    for _ in $(seq 1 30); do alive "$name" || break; sleep 1; done
    alive "$name" && kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    echo "services: $name stopped"
  fi
  rm -f "$RUN/$name.pid"
}

# The local mail catcher: the default recipients (alerts/recipients.yml) send to
# 127.0.0.1:ALERTS_SMTP_PORT; every message lands as a file in .local/mail (Maildir).
start_mail() {
  local maildir="$HOTSPOTS_ROOT/.local/mail"
  mkdir -p "$maildir"/{cur,new,tmp}
  start_one mail python -m aiosmtpd -n -l "127.0.0.1:${ALERTS_SMTP_PORT:-8025}" -c aiosmtpd.handlers.Mailbox "$maildir"
  for _ in $(seq 1 20); do
    python -c "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" \
      "${ALERTS_SMTP_PORT:-8025}" 2>/dev/null && break
    sleep 0.5
  done
  echo "services: mail catcher on 127.0.0.1:${ALERTS_SMTP_PORT:-8025}, messages in $maildir/new"
}

# The MLflow tracking server: MLflow's basic-auth app (UI and API ask for a login), artifacts served
# by the server (--serve-artifacts: clients upload and download over HTTP, no shared folder). Its
# store URI (with the database password) and the admin password reach it through its environment
# (MLFLOW_BACKEND_STORE_URI, MLFLOW_AUTH_ADMIN_PASSWORD), never its command line, so `ps` shows neither.
start_mlflow() {
  local ini="${MLFLOW_AUTH_CONFIG_PATH:-$HOTSPOTS_ROOT/.local/mlflow/basic_auth.ini}"
  mkdir -p "$HOTSPOTS_MLFLOW_ARTIFACTS" "$(dirname "$ini")"
  if [ ! -s "$ini" ]; then
    (umask 077; cat > "$ini" <<INI
[mlflow]
default_permission = READ
database_uri = sqlite:///$(dirname "$ini")/basic_auth.db
admin_username = ${MLFLOW_TRACKING_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = 300
INI
    )
  fi
  # Each request's login is checked against a scrypt hash (about 0.15 s of CPU, 0.5 s on a busy
  # machine): a training run's hundreds of requests paid it every time. MLflow caches a checked
  # login (keyed by an HMAC of the password, dropped at once when the user's password changes);
  # an ini written before this line gets it too.
  grep -q '^auth_cache_ttl_seconds' "$ini" || printf 'auth_cache_ttl_seconds = 300\n' >> "$ini"
  MLFLOW_AUTH_CONFIG_PATH="$ini" MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_TRACKING_PASSWORD" \
    start_one mlflow setsid mlflow server --app-name basic-auth --serve-artifacts \
    --artifacts-destination "$HOTSPOTS_MLFLOW_ARTIFACTS" --host 127.0.0.1 --port "${MLFLOW_PORT:-5000}" --workers 1
}

wait_mlflow() {
  for _ in $(seq 1 120); do healthy "http://127.0.0.1:${MLFLOW_PORT:-5000}/health" && break; alive mlflow || break; sleep 1; done
  if healthy "http://127.0.0.1:${MLFLOW_PORT:-5000}/health"; then
    echo "services: MLflow UI at http://127.0.0.1:${MLFLOW_PORT:-5000} (user ${MLFLOW_TRACKING_USERNAME:-admin}; its password:" \
      "MLFLOW_TRACKING_PASSWORD or $HOTSPOTS_ROOT/.local/mlflow/admin_password)"
  else
    echo "services: MLflow did not answer in 120 s, see $RUN/mlflow.log" >&2; tail -20 "$RUN/mlflow.log" >&2; exit 1
  fi
}

case "${1:-}" in
  mail)
    start_mail
    ;;
  mlflow)
    start_mlflow
    wait_mlflow
    ;;
  start)
    start_mail
    start_one airflow-api airflow api-server -H 127.0.0.1 -p "${AIRFLOW__API__PORT:-8080}"
    start_one airflow-scheduler airflow scheduler --skip-serve-logs
    start_one airflow-dag-processor airflow dag-processor
    start_one airflow-triggerer airflow triggerer --skip-serve-logs
    start_mlflow
    for _ in $(seq 1 60); do
      healthy "http://127.0.0.1:${AIRFLOW__API__PORT:-8080}/api/v2/monitor/health" && break
      sleep 1
    done
    if healthy "http://127.0.0.1:${AIRFLOW__API__PORT:-8080}/api/v2/monitor/health"; then
      echo "services: Airflow UI at http://127.0.0.1:${AIRFLOW__API__PORT:-8080} (user admin; its password:" \
        "AIRFLOW_ADMIN_PASSWORD or $AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE)"
      python -m hotspots.airflow_api status || true
    else
      echo "services: Airflow API did not answer in 60 s, see $RUN/airflow-api.log" >&2; exit 1
    fi
    wait_mlflow
    # Superset (its own virtualenv, gunicorn; scripts/superset.sh keeps its pid and log).
    "$(dirname "$0")/superset.sh" setup
    "$(dirname "$0")/superset.sh" start
    ;;
  stop)
    "$(dirname "$0")/superset.sh" stop
    for s in mlflow airflow-triggerer airflow-dag-processor airflow-scheduler airflow-api mail; do stop_one "$s"; done
    ;;
  *) echo "usage: $0 start|stop|mail|mlflow" >&2; exit 2 ;;
esac
