"""A small client of Airflow's REST API (v2), the same API the UI reads: a token from the simple
auth manager's login, the DAGs and whether they are paused, triggering a run, following it, and
reading a task's log. Standard library only (make up and make run call it before anything heavy).

    python -m hotspots.airflow_api status            which DAGs are paused, how to unpause, a token
    python -m hotspots.airflow_api token             print an API token (for curl)
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


class Client:
    def __init__(self, base: str | None = None, user: str = "admin", password: str | None = None):
        self.base = (base or base_url()).rstrip("/")
        self.user = user
        self.password = password if password is not None else settings.airflow_passwords(announce=lambda _: None)[user]
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
            with urllib.request.urlopen(req, timeout=60) as r:
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


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "status"
    try:
        if cmd == "token":
            print(Client().token())
        elif cmd == "status":
            status()
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (AirflowAPIError, OSError) as e:
        print(f"airflow: API at {base_url()} not usable: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
