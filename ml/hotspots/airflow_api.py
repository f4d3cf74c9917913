"""A small client of Airflow's REST API (v2), the same API the UI reads: a token from the simple
auth manager's login, the DAGs and whether they are paused, triggering a run, following it, and
reading a task's log. Standard library only (make up and make run call it before anything heavy).

    python -m hotspots.airflow_api status            which DAGs are paused, how to unpause, a token
    python -m hotspots.airflow_api token             print an API token (for curl)
    python -m hotspots.airflow_api pipeline --warehouse W --landing DIR    make run's pipeline
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from hotspots import settings


class AirflowAPIError(RuntimeError):
    pass


def base_url() -> str:
    return os.environ.get("AIRFLOW__API__BASE_URL") or f"http://127.0.0.1:{os.environ.get('AIRFLOW__API__PORT', '8080')}"


def password_of(user: str) -> str:
    """The UI user's password: AIRFLOW_<USER>_PASSWORD, else the simple auth manager's passwords file
    (read only: make airflow-init writes it)."""
    if os.environ.get(f"AIRFLOW_{user.upper()}_PASSWORD"):
        return os.environ[f"AIRFLOW_{user.upper()}_PASSWORD"]
    path = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE") or \
        str(settings.LOCAL / "airflow" / "passwords.json")
    return json.loads(open(path).read())[user]


class Client:
    def __init__(self, base: str | None = None, user: str = "admin", password: str | None = None,
                 timeout: float = 60.0):
        self.base = (base or base_url()).rstrip("/")
        self.user, self.timeout = user, timeout
        self.password = password if password is not None else password_of(user)
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            out = self._call("POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False)
            self._token = out["access_token"]
        return self._token

    def _call(self, method: str, path: str, body=None, auth: bool = True, raw: bool = False):
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            raise AirflowAPIError(f"{method} {path}: HTTP {e.code} {e.read().decode(errors='replace')[:500]}") from e
        return text if raw else (json.loads(text) if text else {})

    def get(self, path: str, **query):
        q = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        return self._call("GET", path + (f"?{q}" if q else ""))

    def dags(self) -> list[dict]:
        return self.get("/api/v2/dags", limit=100)["dags"]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def set_note(self, dag_id: str, run_id: str, note: str) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}?update_mask=note",
                   {"note": note})

    def trigger(self, dag_id: str, conf: dict, run_id: str | None = None, note: str | None = None) -> dict:
        body = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        if note:
            body["note"] = note
        return self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances",
                        limit=1000)["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The task's log as the UI shows it (the log lines' events joined)."""
        out = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/"
                       f"{task_id}/logs/{try_number}", full_content="true", map_index=map_index)
        content = out.get("content", "")
        if isinstance(content, list):
            return "\n".join(c.get("event", "") if isinstance(c, dict) else str(c) for c in content)
        return str(content)


def name_run(dag_id: str, run_id: str, warehouse: str, log=print) -> bool:
    """Writes the run's warehouse into its note (the UI shows it beside the run), through the API
    the UI uses; best effort: False (and a line in the task log) when the API cannot be reached."""
    try:
        Client(timeout=10).set_note(dag_id, run_id, f"warehouse {warehouse}")
        return True
    except (AirflowAPIError, OSError, KeyError, ValueError) as e:
        log(f"progress: run note not written ({type(e).__name__}: {str(e)[:200]})")
        return False


def status(client: Client | None = None, out=print) -> None:
    """What `make up` prints: paused DAGs, how to unpause them, how to get a token."""
    c = client or Client()
    dags = sorted(c.dags(), key=lambda d: d["dag_id"])
    paused = [d["dag_id"] for d in dags if d.get("is_paused")]
    active = [d["dag_id"] for d in dags if not d.get("is_paused")]
    if not dags:
        out("airflow: no DAG parsed yet (the DAG processor takes a minute); `make up` again shows which are paused")
    if paused:
        out(f"airflow: PAUSED (nothing runs by itself): {', '.join(paused)}")
        out("airflow: unpause in the UI (toggle left of each DAG) or: airflow dags unpause <dag_id>   "
            "(all: airflow dags unpause --treat-dag-id-as-regex -y '.*')")
    if active:
        out(f"airflow: running on their schedule: {', '.join(active)}")
    out(f"airflow: API token (1 day): python -m hotspots.airflow_api token   then   curl -H \"Authorization: Bearer "
        f"$TOKEN\" {c.base}/api/v2/dags   (or POST {c.base}/auth/token with {{\"username\", \"password\"}})")


# ------------------------------------------------------------------ make run, through the scheduler

CHAIN = ("ingest_extracts", "build_features", "score_hotspots", "dispatch_alerts", "refresh_dashboards")
ALL_DAGS = (*CHAIN, "train_model")
ASSET_DAGS = ("build_features", "score_hotspots", "dispatch_alerts", "refresh_dashboards")
PROGRESS = ("ingest:", "progress:", "summary:", "evaluation:", "target:", "refresh_dashboards:")
DONE = {"success", "failed"}


class PipelineFailed(RuntimeError):
    pass


class Follower:
    """Follows DAG runs through the API: task states as they change, the tasks' progress lines
    from their logs (the same logs the UI shows) when they finish."""

    def __init__(self, client: Client, out=print, poll: float = 5.0):
        self.c, self.out, self.poll = client, out, poll
        self.seen: dict[tuple, str] = {}

    def _report(self, dag_id: str, run_id: str) -> None:
        for ti in self.c.task_instances(dag_id, run_id):
            key = (dag_id, run_id, ti["task_id"], ti.get("map_index", -1))
            state = ti.get("state") or "none"
            if self.seen.get(key) == state:
                continue
            self.seen[key] = state
            label = ti["task_id"] + (f"[{ti.get('rendered_map_index') or ti['map_index']}]"
                                     if ti.get("map_index", -1) >= 0 else "")
            if state in ("success", "failed", "skipped", "up_for_retry") and ti.get("try_number"):
                try:
                    text = self.c.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti.get("map_index", -1))
                except AirflowAPIError:
                    text = ""
                for line in text.splitlines():
                    line = line.strip()
                    if line.startswith(PROGRESS):
                        self.out(f"  {line}")
            if state not in ("none", "scheduled", "queued"):
                self.out(f"airflow: {dag_id} {label} {state}")

    def wait(self, dag_id: str, run_id: str, timeout: float = 7200) -> dict:
        import time

        t0 = time.time()
        while True:
            run = self.c.run(dag_id, run_id)
            self._report(dag_id, run_id)
            if run["state"] in DONE:
                took = time.time() - t0
                self.out(f"airflow: {dag_id} run {run_id} {run['state']} ({took:.0f} s)")
                if run["state"] != "success":
                    raise PipelineFailed(f"{dag_id} run {run_id} failed: its task logs are in the UI, "
                                         f"{self.c.base}/dags/{dag_id}/runs/{run_id}")
                return run
            if time.time() - t0 > timeout:
                raise PipelineFailed(f"{dag_id} run {run_id} not done after {timeout:.0f} s")
            time.sleep(self.poll)

    def run_warehouse(self, dag_id: str, run_id: str) -> str | None:
        """The warehouse a run resolved (resolve_warehouse's XCom), or None while it has not."""
        try:
            out = self.c.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/"
                             "resolve_warehouse/xcomEntries/warehouse")
        except AirflowAPIError:
            return None
        value = out.get("value")
        return json.loads(value) if isinstance(value, str) and value.startswith('"') else value

    def next_run(self, dag_id: str, after: str, warehouse: str, timeout: float = 1800) -> str:
        """The first run of ``dag_id`` queued after ``after`` (ISO time) for ``warehouse``: an
        asset-triggered one (runs for other warehouses, started by other events, are passed over)."""
        import time

        t0, others = time.time(), set()
        while time.time() - t0 < timeout:
            runs = self.c.get(f"/api/v2/dags/{dag_id}/dagRuns", order_by="run_after", limit=50,
                              run_after_gte=after)["dag_runs"]
            for r in runs:
                if r["dag_run_id"] in others:
                    continue
                wh = self.run_warehouse(dag_id, r["dag_run_id"])
                if wh == warehouse:
                    return r["dag_run_id"]
                if wh is not None or r["state"] in DONE:
                    others.add(r["dag_run_id"])
                    self.out(f"airflow: {dag_id} run {r['dag_run_id']} is for warehouse {wh}, not {warehouse}")
            time.sleep(self.poll)
        raise PipelineFailed(f"no {dag_id} run for {warehouse} started after {after} within {timeout:.0f} s")


def wait_parsed(c: Client, dags=ALL_DAGS, timeout: float = 900, out=print) -> None:
    import time

    t0, said = time.time(), False
    while True:
        have = {d["dag_id"] for d in c.dags()}
        if set(dags) <= have:
            return
        if not said:
            out(f"airflow: waiting for the DAG processor to parse {', '.join(sorted(set(dags) - have))}")
            said = True
        if time.time() - t0 > timeout:
            raise PipelineFailed(f"DAGs not parsed after {timeout:.0f} s: {sorted(set(dags) - have)}")
        time.sleep(5)


def pipeline(warehouse: str, landing: str, out=print, client: Client | None = None) -> None:
    """`make run` through the running scheduler: the chain DAGs unpaused, ingest triggered; features,
    scoring, alerts and dashboards follow by themselves (assets); then training is triggered, and a
    promotion re-scores (model_registry). Every run is in the UI with its task logs; its note and run
    id name the warehouse."""
    c = client or Client()
    f = Follower(c, out)
    wait_parsed(c, out=out)
    paused = {d["dag_id"] for d in c.dags() if d.get("is_paused") and d["dag_id"] in ALL_DAGS}
    # Asset events queued while a DAG was paused (`airflow dags test` runs of the test suite against
    # this metadata database, earlier runs) would start runs for other, maybe dropped, warehouses
    # the moment it is unpaused: drop them first.
    for d in sorted(paused & set(ASSET_DAGS)):
        n = c.get(f"/api/v2/dags/{d}/assets/queuedEvents").get("total_entries", 0)
        if n:
            c._call("DELETE", f"/api/v2/dags/{d}/assets/queuedEvents")
            out(f"airflow: {d}: {n} asset event(s) queued while it was paused dropped")
    for d in sorted(paused):
        c.set_paused(d, False)
    if paused:
        out(f"airflow: unpaused {', '.join(sorted(paused))} for this run (paused again at its end)")
    try:
        _pipeline(c, f, warehouse, landing, out)
    finally:
        for d in sorted(paused):
            c.set_paused(d, True)
        if paused:
            out(f"airflow: paused again: {', '.join(sorted(paused))} (unpause them in the UI to let new extracts "
                "run the chain by themselves: docs/architecture.md, Scheduling)")


def _pipeline(c: Client, f: Follower, warehouse: str, landing: str, out) -> None:
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    note = f"warehouse {warehouse} (make run)"

    run = c.trigger("ingest_extracts", {"landing": landing, "warehouse": warehouse},
                    run_id=f"{warehouse}__make_run__{stamp}", note=note)
    f.wait("ingest_extracts", run["dag_run_id"])
    # Each follower run is the first one queued after its upstream run started (its asset event).
    upstream = ("ingest_extracts", run["dag_run_id"])
    for dag_id in ("build_features", "score_hotspots"):
        r = f.next_run(dag_id, c.run(*upstream)["start_date"], warehouse)
        f.wait(dag_id, r)
        upstream = (dag_id, r)
    for dag_id in ("dispatch_alerts", "refresh_dashboards"):
        f.wait(dag_id, f.next_run(dag_id, c.run(*upstream)["start_date"], warehouse))

    t = c.trigger("train_model", {"warehouse": warehouse, "landing": landing},
                  run_id=f"{warehouse}__make_run__{stamp}", note=note)
    f.wait("train_model", t["dag_run_id"])
    announce = [ti for ti in c.task_instances("train_model", t["dag_run_id"]) if ti["task_id"] == "announce_champion"]
    if announce and announce[0]["state"] == "success":
        r = f.next_run("score_hotspots", c.run("train_model", t["dag_run_id"])["start_date"], warehouse)
        f.wait("score_hotspots", r)
        for dag_id in ("dispatch_alerts", "refresh_dashboards"):
            f.wait(dag_id, f.next_run(dag_id, c.run("score_hotspots", r)["start_date"], warehouse))
    else:
        out("airflow: the champion did not change: the forecast above stands")


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m hotspots.airflow_api", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="status", choices=("status", "token", "pipeline"))
    ap.add_argument("--warehouse", default=os.environ.get("WAREHOUSE", "hotspots"))
    ap.add_argument("--landing", default="")
    a = ap.parse_args(argv)
    try:
        if a.command == "token":
            print(Client().token())
        elif a.command == "status":
            status()
        else:
            pipeline(a.warehouse, a.landing)
    except PipelineFailed as e:
        print(f"airflow: FAILED: {e}", file=sys.stderr)
        return 1
    except (AirflowAPIError, OSError) as e:
        print(f"airflow: API at {base_url()} not usable: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
