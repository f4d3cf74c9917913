"""A test's own Airflow: its services (API server, DAG processor, scheduler, triggerer) in their own
home and metadata database, the environment that points them there, and waiting on them. Used by
the tests that run the real scheduler (the chain, the deadline alert, the CeleryExecutor)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest


def airflow_env(home: Path, meta: str, port: str, **settings: str) -> dict[str, str]:
    """os.environ with Airflow pointed at `home`, the metadata database `meta` on the test cluster and
    an API server on `port`; `settings` added last (DAGS_FOLDER, parallelism, the warehouse ...)."""
    pg = {k: os.environ[k] for k in ("PGUSER", "PGPASSWORD", "PGHOST", "PGPORT")}
    env = dict(
        os.environ,
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=(f"postgresql+psycopg2://{pg['PGUSER']}:{pg['PGPASSWORD']}@"
                                             f"{pg['PGHOST']}:{pg['PGPORT']}/{meta}"),
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
        AIRFLOW__API__PORT=port,
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
    )
    env.update(settings)
    return env


class AirflowServices:
    """Airflow's services for one test, in their own home and metadata database."""

    services = ("api-server", "dag-processor", "scheduler", "triggerer")

    def __init__(self, base: Path, env: dict):
        self.base, self.env, self.procs = base, env, {}

    def start(self) -> None:
        logs = self.base / "run"
        logs.mkdir(parents=True, exist_ok=True)
        port = self.env["AIRFLOW__API__PORT"]
        commands = {"api-server": ["airflow", "api-server", "-H", "127.0.0.1", "-p", port, "-w", "1"],
                    "dag-processor": ["airflow", "dag-processor"],
                    "scheduler": ["airflow", "scheduler", "--skip-serve-logs"],
                    "triggerer": ["airflow", "triggerer", "--skip-serve-logs"]}
        for name in self.services:
            cmd = commands[name]
            out = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            self.procs[name] = (subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                                 start_new_session=True), out)

    def alive(self) -> None:
        for name, (p, _) in self.procs.items():
            if p.poll() is not None:
                pytest.fail(f"airflow {name} exited ({p.returncode}):\n{self.log(name)[-4000:]}")

    def log(self, name: str) -> str:
        return (self.base / "run" / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for _, (p, _) in self.procs.items():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.time() + 40
        for _, (p, out) in self.procs.items():
            try:
                p.wait(timeout=max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
            out.close()

    def cli(self, *args: str) -> str:
        p = subprocess.run(["airflow", *args], env=self.env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"airflow {' '.join(args)}:\n{(p.stdout + p.stderr)[-3000:]}"
        return p.stdout


def wait_for(what: str, check, af: AirflowServices, timeout: float, every: float = 3.0,
             logs: tuple[str, ...] = ("scheduler",)):
    """check()'s first true result, polled every `every` s while the services live; on timeout the
    test fails with the tail of each service's log in `logs`."""
    t0 = time.time()
    while True:
        af.alive()
        got = check()
        if got:
            return got
        if time.time() - t0 > timeout:
            tails = "".join(f"\n{name} log tail:\n{af.log(name)[-3000:]}" for name in logs)
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{tails}")
        time.sleep(every)
