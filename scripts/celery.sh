#!/usr/bin/env bash
# The distributed path on one machine: Redis (the Celery broker) on 127.0.0.1:REDIS_PORT and
# CELERY_WORKERS `airflow celery worker` processes with distinct names (worker-N@host), with the
# settings docker-compose.yml passes (config/celery.env, exported by the Makefile with CELERY=1;
# `make up-celery` runs this, then make up's services on the CeleryExecutor).
#   celery.sh start     Redis, then the workers (each waits until Celery says it is ready)
#   celery.sh stop      the workers (warm shutdown: running tasks finish), then Redis
#   celery.sh status    which of them run
# Settings from the environment: REDIS_PORT, REDIS_PASSWORD (the broker URL's, in
# AIRFLOW__CELERY__BROKER_URL), CELERY_WORKERS (2), CELERY_LOCAL (default .local/celery: Redis's
# config, data and log, the workers' pids and logs), AIRFLOW_HOME and the AIRFLOW__* settings.
# The Redis password reaches redis-server through its config file (mode 600), never a command line.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCAL=${CELERY_LOCAL:-$ROOT/.local/celery}
: "${REDIS_PORT:?REDIS_PORT is not set (make up-celery sets it)}" "${REDIS_PASSWORD:?REDIS_PASSWORD is not set}"
: "${AIRFLOW__CELERY__BROKER_URL:?AIRFLOW__CELERY__BROKER_URL is not set (make up-celery sets it)}"
WORKERS=${CELERY_WORKERS:-2}
RUN="$LOCAL/run"
mkdir -p "$RUN" "$LOCAL/redis"

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
redis_ping() { REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start_redis() {
  if alive redis; then echo "celery: redis already running (pid $(cat "$RUN/redis.pid"))"; return; fi
  (umask 077; cat > "$LOCAL/redis/redis.conf" <<CONF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
requirepass $REDIS_PASSWORD
dir $LOCAL/redis
appendonly yes
save ""
daemonize no
CONF
  )
  setsid redis-server "$LOCAL/redis/redis.conf" >"$RUN/redis.log" 2>&1 &
  echo $! >"$RUN/redis.pid"
  for _ in $(seq 1 50); do redis_ping && break; alive redis || break; sleep 0.2; done
  redis_ping || { echo "celery: redis did not answer on 127.0.0.1:$REDIS_PORT, see $RUN/redis.log" >&2; tail -20 "$RUN/redis.log" >&2; exit 1; }
  echo "celery: redis on 127.0.0.1:$REDIS_PORT (log $RUN/redis.log)"
}

start_worker() {
  local name="worker-$1"
  if alive "$name"; then echo "celery: $name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  # --skip-serve-logs: the workers share this machine's log folder with the API server, which reads
  # the task logs from it (on other hosts a worker serves its logs on worker_log_server_port).
  setsid airflow celery worker --celery-hostname "$name@%h" --skip-serve-logs \
    --concurrency "${AIRFLOW__CELERY__WORKER_CONCURRENCY:-2}" >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

wait_worker() {
  local name="worker-$1"
  for _ in $(seq 1 180); do
    grep -q "$name@.* ready" "$RUN/$name.log" 2>/dev/null && { echo "celery: $name ready (log $RUN/$name.log)"; return; }
    alive "$name" || break
    sleep 1
  done
  echo "celery: $name did not get ready, see $RUN/$name.log" >&2; tail -20 "$RUN/$name.log" >&2; exit 1
}

stop_one() {
  local name=$1 pid
  alive "$name" || { rm -f "$RUN/$name.pid"; return 0; }
  pid=$(cat "$RUN/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do alive "$name" || break; sleep 1; done
  alive "$name" && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
  rm -f "$RUN/$name.pid"
  echo "celery: $name stopped"
}

case "${1:-}" in
  start)
    start_redis
    for i in $(seq 1 "$WORKERS"); do start_worker "$i"; done
    for i in $(seq 1 "$WORKERS"); do wait_worker "$i"; done
    ;;
  stop)
    for f in "$RUN"/worker-*.pid; do [ -e "$f" ] && stop_one "$(basename "$f" .pid)"; done
    stop_one redis
    ;;
  status)
    for f in "$RUN"/*.pid; do
      [ -e "$f" ] || continue
      n=$(basename "$f" .pid)
      if alive "$n"; then echo "celery: $n running (pid $(cat "$f"))"; else echo "celery: $n not running"; fi
    done
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
