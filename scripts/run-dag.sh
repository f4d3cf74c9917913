#!/usr/bin/env bash
# Runs one DAG for real with `airflow dags test` (in-process, against the metadata DB), with a conf.
#   run-dag.sh DAG_ID 'JSON_CONF'
# Exits non-zero when the run fails; the task log goes to .local/airflow/runs/DAG_ID.log.
set -euo pipefail
dag=$1 conf=${2:-'{}'}
log_dir="$AIRFLOW_HOME/runs"; mkdir -p "$log_dir"
log="$log_dir/$dag.log"
echo "airflow: dags test $dag (log $log)"
start=$(date +%s)
if airflow dags test "$dag" -c "$conf" >"$log" 2>&1; then
  grep -E '^\s*(ingest|progress|summary):' "$log" | sed 's/^\s*//' || true
  echo "airflow: $dag succeeded in $(( $(date +%s) - start )) s"
else
  grep -E 'ERROR|Error|error:' "$log" | tail -20
  echo "airflow: $dag FAILED (see $log)" >&2
  exit 1
fi
