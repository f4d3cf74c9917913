#!/usr/bin/env bash
# Runs one DAG for real with `airflow dags test` (in-process, against the metadata DB), with a conf.
#   run-dag.sh DAG_ID 'JSON_CONF'
# Shows the tasks' progress lines as they come; the whole log goes to .local/airflow/runs/DAG_ID.log.
# Exits non-zero when the run fails.
set -euo pipefail
dag=$1 conf=${2:-'{}'}
log_dir="$AIRFLOW_HOME/runs"; mkdir -p "$log_dir"
log="$log_dir/$dag.log"
echo "airflow: dags test $dag (log $log)"
start=$(date +%s)
set +e
airflow dags test "$dag" -c "$conf" 2>&1 | tee "$log" | grep --line-buffered -E '^\s*(ingest|progress|summary|evaluation|target):' | sed -u 's/^\s*//'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" = 0 ]; then
  echo "airflow: $dag succeeded in $(( $(date +%s) - start )) s"
else
  grep -E 'ERROR|Error|error:' "$log" | tail -20
  echo "airflow: $dag FAILED (see $log)" >&2
  exit 1
fi
