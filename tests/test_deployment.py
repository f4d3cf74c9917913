"""docker-compose.yml is the production deployment (CeleryExecutor, docs/operations.md). No Docker
engine runs here (nor `docker compose`), so it is checked statically, with compose's own semantics
where they matter: YAML with anchors and merge keys, then ${VAR} interpolation (`:-` / `-` defaults,
`:?` / `?` required, `$$` an escaped dollar) from .env (here: .env.example's values, with a stand-in
for each required secret). And the settings it passes are the native path's: one source of truth."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
SHARED = [ROOT / "config" / "airflow.env", ROOT / "config" / "celery.env"]
UI_SERVICES = {"airflow-api": 8080, "mlflow": 5000, "superset": 8088}
PIPELINE = ("airflow-init", "airflow-api", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
            "airflow-worker")
VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|\$)")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|PII_KEY|TOKEN")


class Unset(Exception):
    pass


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of one value (recursively through lists and mappings)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        val = env.get(name)
        if op in (":-", ":?"):
            present = bool(val)
        else:
            present = val is not None
        if present:
            return val
        if op in (":-", "-"):
            return interpolate(arg, env)
        if op in (":?", "?"):
            raise Unset(f"{name}: {arg}")
        return ""
    out = VAR.sub(one, value)
    return out


def env_file(path: Path, commented: bool = False) -> dict[str, str]:
    """KEY=value lines (with commented=True also `# KEY=` lines: documented, unset)."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m and (commented or not m.group(1)):
            out[m.group(2)] = "" if m.group(1) else m.group(3).strip()
    return out


def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def required_vars() -> set[str]:
    return {m.group(1) for m in VAR.finditer(COMPOSE.read_text()) if m.group(2) in (":?", "?")}


def example_env() -> dict[str, str]:
    env = env_file(ROOT / ".env.example")
    for name in required_vars():
        env.setdefault(name, f"/srv/stand-in-{name.lower()}" if name.endswith("_DIR") else f"stand-in-{name.lower()}")
    return env


def resolved(env: dict[str, str] | None = None) -> dict:
    return interpolate(raw(), example_env() if env is None else env)


def compose_vars() -> set[str]:
    return {m.group(1) for m in VAR.finditer(COMPOSE.read_text()) if m.group(1)}


def test_interpolation_semantics():
    env = {"A": "x", "E": ""}
    assert interpolate("${A} ${A:-d} ${B:-d} ${E:-d} ${E-d} $$A ${B:-${A}}", env) == "x x d d  $A x"
    with pytest.raises(Unset):
        interpolate("${B:?say}", env)
    with pytest.raises(Unset):
        interpolate("${E:?say}", env)


def test_compose_parses_and_resolves_with_the_example_settings():
    c = resolved()
    assert set(c["services"]) == {"postgis", "redis", "airflow-init", "airflow-api", "airflow-scheduler",
                                  "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "mlflow",
                                  "superset-init", "superset", "superset-worker", "mail"}
    text = yaml.safe_dump(c)
    assert "${" not in text, "an interpolation compose would not resolve"
    # The merge keys gave every pipeline service the image, its settings and its volumes.
    for name in PIPELINE + ("mlflow", "mail"):
        svc = c["services"][name]
        assert svc["image"].startswith("hotspots-pipeline:") and svc["build"]["dockerfile"] == "Dockerfile", name
    for name in ("superset-init", "superset", "superset-worker"):
        assert c["services"][name]["build"]["dockerfile"] == "Dockerfile.superset"
    # Without a required secret compose refuses to start: each of them is required, none has a default.
    for name in sorted(required_vars()):
        env = example_env()
        env.pop(name)
        with pytest.raises(Unset):
            resolved(env)
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD",
            "MLFLOW_TRACKING_PASSWORD", "SUPERSET_SECRET_KEY", "HOTSPOTS_PII_KEY", "LANDING_DIR",
            "HOTSPOTS_INGEST_PASSWORD", "HOTSPOTS_DBT_PASSWORD"} <= required_vars()


def test_every_service_has_a_health_check_and_waits_on_what_it_needs():
    c = resolved()
    services = c["services"]
    for name, svc in services.items():
        hc = svc.get("healthcheck") or {}
        if svc.get("restart") == "no":  # one-shot jobs: dependants wait for their completion
            assert hc.get("disable") is True, name
            users = [n for n, s in services.items() if name in (s.get("depends_on") or {})]
            assert users, name
            for user in users:
                assert services[user]["depends_on"][name]["condition"] == "service_completed_successfully"
        else:
            assert hc.get("test") and hc["test"][0] in ("CMD", "CMD-SHELL"), name
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            want = "service_completed_successfully" if services[dep].get("restart") == "no" else "service_healthy"
            assert cond["condition"] == want, (name, dep)
    # Airflow waits for the database and the broker; so does Superset.
    assert {"airflow-init", "redis"} <= set(services["airflow-scheduler"]["depends_on"])
    assert services["airflow-init"]["depends_on"] == {"postgis": {"condition": "service_healthy"}}
    assert {"superset-init", "redis"} <= set(services["superset-worker"]["depends_on"])


def test_images_build_contexts_dockerfiles_and_mounted_files_exist():
    c = resolved()
    for name, svc in c["services"].items():
        if "build" in svc:
            context = ROOT / svc["build"]["context"]
            dockerfile = context / svc["build"]["dockerfile"]
            assert context.is_dir() and dockerfile.is_file(), name
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for src in line.split()[1:-1]:
                        assert (context / src).exists(), (dockerfile.name, src)
        else:
            image = svc["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image's tag ({image})"
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), (name, src)
            elif not src.startswith("/"):
                assert src in c["volumes"], f"{name}: volume {src} is not declared"
        for f in svc.get("env_file", []):
            assert (ROOT / f).is_file(), (name, f)
    # The scripts the images run are executable.
    for script in ("scripts/compose-init.sh", "scripts/superset-entrypoint.sh"):
        assert os.access(ROOT / script, os.X_OK), script


def test_every_variable_is_documented_in_env_example():
    documented = env_file(ROOT / ".env.example", commented=True)
    missing = compose_vars() - set(documented)
    assert not missing, f"not in .env.example: {sorted(missing)}"
    # The native entries are still there.
    assert {"PGHOST", "PGPORT", "PGUSER", "WAREHOUSE", "AIRFLOW_PORT", "MLFLOW_PORT", "SUPERSET_PORT"} <= set(documented)
    # No secret has a value in the example (secrets are generated or set from the secret store).
    for name, value in env_file(ROOT / ".env.example").items():
        if SECRET_KEY.search(name):
            assert not value, f".env.example gives {name} a value"


def test_no_secret_literal():
    c = raw()
    for name, svc in c["services"].items():
        env = svc.get("environment") or {}
        assert isinstance(env, dict), name
        for key, value in env.items():
            value = str(value)
            if SECRET_KEY.search(key) and not key.endswith("_FILE"):
                assert value.startswith("${") and value.endswith("}"), f"{name}: {key} is a literal"
            # Credentials inside URLs and connection strings: only from variables.
            for m in re.finditer(r"://([^:@/\s]*):([^@\s]*)@", value):
                assert m.group(2).startswith("${"), f"{name}: {key} has a literal password"
            for m in re.finditer(r'"password":\s*"([^"]*)"', value):
                assert m.group(1).startswith("${"), f"{name}: {key} has a literal password"
    text = COMPOSE.read_text() + "".join(p.read_text() for p in SHARED)
    for m in re.finditer(r"(requirepass|--password|PASSWORD=)\s*(\S+)", text):
        assert "$" in m.group(2) or m.group(2).startswith("%s"), m.group(0)
    for f in SHARED:
        assert not [k for k in env_file(f) if SECRET_KEY.search(k)], f"secret in {f.name}"
    for df in ("Dockerfile", "Dockerfile.superset"):
        assert not SECRET_KEY.search(" ".join(re.findall(r"^ENV .*", (ROOT / df).read_text(), re.M))), df


def test_only_the_uis_are_published_and_on_loopback():
    c = resolved()
    published = {}
    for name, svc in c["services"].items():
        for port in svc.get("ports", []):
            parts = str(port).split(":")  # [IP:][HOST_PORT:]CONTAINER_PORT
            host_ip, container = (parts[0] if len(parts) == 3 else ""), parts[-1]
            assert host_ip == "127.0.0.1", f"{name}: {port} is not published on loopback only"
            published[name] = int(container)
    assert published == UI_SERVICES
    nets = c["networks"]
    assert nets["backend"].get("internal") is True
    # The database and the broker are on the internal network only.
    for name in ("postgis", "redis"):
        assert c["services"][name]["networks"] == ["backend"], name
    for name in UI_SERVICES:
        assert set(c["services"][name]["networks"]) == {"backend", "egress"}
    # Published on another address only on purpose (UI_BIND).
    other = dict(example_env(), UI_BIND="10.0.0.5")
    assert str(resolved(other)["services"]["superset"]["ports"][0]).startswith("10.0.0.5:")


def test_the_worker_scales():
    c = resolved()
    worker = c["services"]["airflow-worker"]
    assert "container_name" not in worker and "hostname" not in worker and not worker.get("ports")
    assert worker["command"][:3] == ["airflow", "celery", "worker"]
    assert not [n for n, s in c["services"].items() if "container_name" in s]
    # Every Airflow service runs on the CeleryExecutor against the Redis service.
    for name in PIPELINE:
        svc = c["services"][name]
        assert svc["environment"]["AIRFLOW__CELERY__BROKER_URL"].endswith("@redis:6379/0")
        assert svc["env_file"] == ["config/airflow.env", "config/celery.env"]
    assert env_file(SHARED[1])["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def make_env(*args: str) -> dict[str, str]:
    p = subprocess.run(["make", "-s", "--no-print-directory", "shared-env", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)


def test_settings_have_one_source_the_native_path_and_compose_read():
    shared, celery = env_file(SHARED[0]), env_file(SHARED[1])
    assert shared and celery
    # The native path: what make exports is exactly the files' values (LocalExecutor by default;
    # with CELERY=1, make up-celery, the Celery settings too).
    assert make_env() == shared
    assert make_env("CELERY=1") == {**shared, **celery}
    makefile = (ROOT / "Makefile").read_text()
    for key in {**shared, **celery}:
        sets = re.findall(rf"^\s*(?:export\s+)?{key}\s*[:?]?=\s*(.*)$", makefile, re.M)
        # the one exception: the single-machine default executor, when CELERY is not set
        assert sets == (["LocalExecutor"] if key == "AIRFLOW__CORE__EXECUTOR" else []), f"Makefile sets {key} itself"
    # Compose: the same files, and no service sets one of their keys itself.
    c = raw()
    for name, svc in c["services"].items():
        if svc.get("image", "").startswith("hotspots-pipeline"):
            assert svc["env_file"] == ["config/airflow.env", "config/celery.env"], name
        overlap = set(svc.get("environment") or {}) & (set(shared) | set(celery))
        assert not overlap, f"{name} sets {overlap} itself"
    # The warehouse connections are the Makefile's, by name.
    conns = set(re.findall(r"^export (AIRFLOW_CONN_[A-Z_]+)", makefile, re.M))
    assert conns and conns == {k for k in c["services"]["airflow-worker"]["environment"] if k.startswith("AIRFLOW_CONN_")}


def _flags(words: list[str]) -> list[str]:
    return [w for w in words if w.startswith("-")]


def test_mlflow_superset_and_mail_start_as_natively():
    c = resolved()
    services = (ROOT / "scripts" / "services.sh").read_text()
    # MLflow: scripts/services.sh's command (basic-auth app, served artifacts, one worker), its store
    # URI and admin password in the environment, and the pipeline talks to it with a login.
    native = shlex.split(re.search(r"start_one mlflow setsid (mlflow server .*?--workers 1)",
                                   services.replace("\\\n", " "), re.S).group(1))
    script = c["services"]["mlflow"]["command"][2]
    ours = shlex.split(script[script.index("exec mlflow server") + 5:])
    assert _flags(ours) == _flags(native)
    assert ours[ours.index("--app-name") + 1] == "basic-auth" and ours[ours.index("--workers") + 1] == "1"
    env = c["services"]["mlflow"]["environment"]
    for key in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        assert key in env and key in services, key
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgis:5432/mlflow")
    for key in ("default_permission = READ", "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
                "auth_cache_ttl_seconds = 300"):
        assert key in script and key in services
    worker_env = c["services"]["airflow-worker"]["environment"]
    assert worker_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and worker_env["MLFLOW_TRACKING_PASSWORD"]
    # Superset: gunicorn with scripts/superset.sh's flags, the settings superset.sh exports.
    superset_sh = (ROOT / "scripts" / "superset.sh").read_text().replace("\\\n", " ")
    native = shlex.split(re.search(r'"\$VENV/bin/gunicorn" (.*?) >"\$LOG"', superset_sh, re.S).group(1))
    ours = c["services"]["superset"]["command"]
    assert ours[0] == "gunicorn"

    def opts(words):
        """{--option: value}, flags (--no-control-socket) True, positionals under ''."""
        out, i = {"": []}, 0
        while i < len(words):
            if words[i] == "--no-control-socket":
                out[words[i]], i = True, i + 1
            elif words[i].startswith("--"):
                out[words[i]], i = words[i + 1], i + 2
            else:
                out[""].append(words[i])
                i += 1
        return out
    n, o = opts(native), opts(ours[1:])
    n.pop("--pid")  # the native pid file; a container's process is its own
    assert set(n) == set(o) and n[""] == o[""] == ["superset.app:create_app()"]
    for flag in set(n) - {"--bind", "--workers"}:
        assert n[flag] == o[flag], flag
    assert n["--workers"] == "${SUPERSET_WORKERS:-2}" and o["--workers"] == "2"
    assert o["--bind"] == "0.0.0.0:8088" and n["--bind"] == "127.0.0.1:$SUPERSET_PORT"
    dockerfile = (ROOT / "Dockerfile.superset").read_text()
    for pair in ("FLASK_APP=superset", "SCARF_ANALYTICS=false", "SUPERSET_LOG_LEVEL=WARNING"):
        assert pair in dockerfile
    assert "FLASK_APP=superset SCARF_ANALYTICS=false SUPERSET_LOG_LEVEL=${SUPERSET_LOG_LEVEL:-WARNING}" in superset_sh
    # The compose Superset configuration is the repository's, with Celery added.
    assert "superset/superset_config.py" in (ROOT / "deploy" / "superset_config.py").read_text()
    # The staging mail catcher: scripts/services.sh start_mail's.
    native = re.search(r"start_one mail (python -m aiosmtpd .*?) \"\$maildir\"", services).group(1)
    ours = " ".join(c["services"]["mail"]["command"])
    assert ours.replace("0.0.0.0:8025", "X").startswith(
        re.sub(r'"127\.0\.0\.1:\$\{ALERTS_SMTP_PORT:-8025\}"', "X", native))
    assert c["services"]["mail"]["profiles"] == ["staging"]


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-").replace(".", "-")] = m.group(2)
    return out


@pytest.mark.parametrize(("dockerfile", "lock", "env_lock"), [
    ("Dockerfile", "pipeline-runtime.lock", "pipeline.lock"),
    ("Dockerfile.superset", "superset-runtime.lock", "superset.lock"),
])
def test_images_install_runtime_locks_with_hashes(dockerfile, lock, env_lock):
    text = (ROOT / dockerfile).read_text()
    assert re.search(rf"^RUN pip install --require-hashes (--only-binary=:all: )?-r requirements/{re.escape(lock)}$", text, re.M)
    assert len(re.findall(r"pip install", text)) == 1, "every package of the image comes hash-checked from the lock"
    body = (ROOT / "requirements" / lock).read_text()
    entries = re.split(r"\n(?=[a-z0-9])", body.split("\n", 3)[3].strip())
    assert entries and all(re.search(r"--hash=sha256:[0-9a-f]{64}", e) for e in entries)
    runtime, env = _pins(ROOT / "requirements" / lock), _pins(ROOT / "requirements" / env_lock)
    assert len(runtime) == len(entries)
    # The versions the native virtualenv runs, but where the runtime requirements exclude the
    # virtualenv's version (said in the .in file; lock-hashes takes the newest allowed); tests and
    # linters stay out of the image.
    from packaging.requirements import Requirement

    declared = {}
    for line in (ROOT / "requirements" / lock.replace(".lock", ".in")).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            r = Requirement(line)
            declared.setdefault(r.name.lower(), []).append(r.specifier)
    for name, version in runtime.items():
        for spec in declared.get(name, []):
            assert spec.contains(version, prereleases=True), (name, version, str(spec))
        excluded = any(not s.contains(env[name], prereleases=True) for s in declared.get(name, [])) if name in env else True
        assert version == env.get(name) or excluded, (name, version, env.get(name))
    assert sum(runtime[k] != env.get(k) for k in runtime) <= 2
    assert not {"pytest", "ruff", "sqlfluff", "sqlfluff-templater-dbt", "hypothesis"} & set(runtime)


def test_pipeline_lock_has_the_celery_executor():
    pins = _pins(ROOT / "requirements" / "pipeline.lock")
    assert {"apache-airflow-providers-celery", "celery", "kombu", "redis"} <= set(pins)
    assert "-r pipeline-runtime.in" in (ROOT / "requirements" / "pipeline.in").read_text()
    assert "apache-airflow-providers-celery" in (ROOT / "requirements" / "pipeline-runtime.in").read_text()
    assert "redis-server" in re.search(r"^SYSTEM_PACKAGES := (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def test_the_production_database_runs_with_the_native_paths_server_settings():
    """docker-compose.yml's PostGIS container gets the settings scripts/pg.sh starts the native
    cluster with (SERVER_SETTINGS): the write path's WAL and checkpoints above all."""
    text = (ROOT / "scripts" / "pg.sh").read_text()
    native = shlex.split(re.search(r'^SERVER_SETTINGS="([^"]*)"', text, re.M).group(1))
    command = raw()["services"]["postgis"]["command"]
    assert command[0] == "postgres" and command[1:] == native
    settings = dict(v.split("=", 1) for v in native if v != "-c")
    assert settings["max_wal_size"] == "8GB" and settings["checkpoint_timeout"] == "15min"
