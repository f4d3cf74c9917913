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
  local name=$1
  if alive "$name"; then
    kill -TERM "$(cat "$RUN/$name.pid")" 2>/dev/null || true
    for _ in $(seq 1 30); do alive "$name" || break; sleep 1; done
    alive "$name" && kill -KILL "$(cat "$RUN/$name.pid")" 2>/dev/null || true
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

case "${1:-}" in
  mail)
    start_mail
    ;;
  start)
    start_mail
    start_one airflow-api airflow api-server -H 127.0.0.1 -p "${AIRFLOW__API__PORT:-8080}"
    start_one airflow-scheduler airflow scheduler --skip-serve-logs
    start_one airflow-dag-processor airflow dag-processor
    start_one airflow-triggerer airflow triggerer --skip-serve-logs
    mkdir -p "$HOTSPOTS_MLFLOW_ARTIFACTS"
    start_one mlflow mlflow server --host 127.0.0.1 --port "${MLFLOW_PORT:-5000}" \
      --backend-store-uri "$MLFLOW_TRACKING_URI" --default-artifact-root "$HOTSPOTS_MLFLOW_ARTIFACTS" --workers 1
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
    for _ in $(seq 1 60); do healthy "http://127.0.0.1:${MLFLOW_PORT:-5000}/health" && break; sleep 1; done
    if healthy "http://127.0.0.1:${MLFLOW_PORT:-5000}/health"; then
      echo "services: MLflow UI at http://127.0.0.1:${MLFLOW_PORT:-5000}"
    else
      echo "services: MLflow did not answer in 60 s, see $RUN/mlflow.log" >&2; exit 1
    fi
    # Superset (its own virtualenv, gunicorn; scripts/superset.sh keeps its pid and log).
    "$(dirname "$0")/superset.sh" setup
    "$(dirname "$0")/superset.sh" start
    ;;
  stop)
    "$(dirname "$0")/superset.sh" stop
    for s in mlflow airflow-triggerer airflow-dag-processor airflow-scheduler airflow-api mail; do stop_one "$s"; done
    ;;
  *) echo "usage: $0 start|stop|mail" >&2; exit 2 ;;
esac
