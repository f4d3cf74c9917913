"""Train the hotspot model (weekly, and on demand from the UI or `make train`).

check_features (enough history? a scheduled run also skips when nothing is new) -> evaluate:
a rolling-origin evaluation of the challenger, the baselines (persistence, prospective-hotspot
kernel, lag-feature GBM) and the current champion over the last weeks, the final fit,
everything logged to the MLflow tracking server (parameters, features, per-origin metrics as a
table, overall metrics, the backtest plot, feature importance, the data version, the model with
its signature and input example) -> register: the next version of the warehouse's model ->
promote: the gate, the champion alias moves only if the challenger beats the champion and
every baseline by the configured margin. A retried evaluate resumes the MLflow run of its
earlier try; a retried register registers no second version.
announce_champion emits the model_registry Asset (extra: the warehouse) only when the champion
moved, so scoring runs again with the new champion; it is skipped otherwise.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from hotspots import orchestration
from hotspots.alerts.failure import notify_failure
from hotspots.assets import MODEL_REGISTRY


@dag(
    dag_id="train_model",
    schedule="0 2 * * 1",  # Mondays 02:00 UTC; also triggered on demand
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["training"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2), "on_failure_callback": notify_failure},
    params={
        "warehouse": orchestration.warehouse_param(),
        "landing": Param("", type="string", description="landing folder; its ../truth is used for evaluation "
                         "when present (simulated histories)"),
        "promote": Param(True, type="boolean", description="allow the gate to move the champion alias"),
    },
)
def train_model():
    @task
    def check_features(params=None, dag_run=None) -> dict:
        """Enough history to train? (hotspots.orchestration.training_readiness: the rules live there)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from hotspots.airflow_api import name_run

        if dag_run is not None and not getattr(dag_run, "note", None):
            name_run(dag_run.dag_id, dag_run.run_id, params["warehouse"])
        run_type = getattr(dag_run, "run_type", None)
        skip, summary = orchestration.training_readiness(
            params["warehouse"], scheduled=str(getattr(run_type, "value", run_type)) == "scheduled")
        if summary:
            print(f"progress: features {summary['rows']} rows, {summary['first']} .. {summary['last']}")
        if skip:
            print(f"summary: training skipped: {skip}")
            raise AirflowSkipException(skip)
        return {"rows": summary["rows"], "first": str(summary["first"]), "last": str(summary["last"])}

    @task(execution_timeout=timedelta(hours=2))
    def evaluate(features: dict, params=None, dag_run=None) -> dict:
        """Rolling-origin evaluation, final fit, everything logged to the MLflow run (a retry resumes it)."""
        from hotspots.forecast.train import evaluate as run

        return run(params["warehouse"], params["landing"] or None,
                   run_key=f"{dag_run.dag_id}/{dag_run.run_id}" if dag_run else None)

    @task
    def register(decision: dict, params=None) -> dict:
        """The evaluated model as the next registered version (once per run)."""
        from hotspots.forecast.train import register as run

        return run(params["warehouse"], decision)

    @task
    def promote(decision: dict, params=None) -> dict:
        """The gate: the champion alias moves only past the champion and every baseline."""
        from hotspots.forecast.train import gate

        return gate(params["warehouse"], decision, promote=params["promote"])

    @task(outlets=[MODEL_REGISTRY])
    def announce_champion(decision: dict, params=None, outlet_events=None) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        if not decision.get("promoted"):
            raise AirflowSkipException(f"{decision.get('challenger')} not promoted: the champion did not change")
        orchestration.emit(outlet_events, MODEL_REGISTRY, params["warehouse"], champion=decision["challenger"])
        print(f"summary: new champion {decision['challenger']} announced (model_registry): scoring follows")
        return decision["challenger"]

    announce_champion(promote(register(evaluate(check_features()))))


train_model()
