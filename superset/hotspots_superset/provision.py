"""Idempotent provisioning of Superset for one warehouse (scripts/superset.sh provision runs it in
.venv-superset after `superset db upgrade` and `superset init`):

1. the warehouse: the dashboards' views (superset/views.sql), the read-only database role
   (SELECT on marts and alerts only; password from $SUPERSET_READER_PASSWORD or generated into
   .local/superset/reader_password), a copy of MLflow's registry decisions;
2. the export tree superset/assets/ zipped in memory and imported with the reader's password
   (stable UUIDs: a second import updates in place), then the deck.gl multi-layer chart's layer
   ids resolved from their UUIDs;
3. roles, row-level security, users and dashboard roles from superset/security.yml.

    python -m hotspots_superset.provision [--warehouse NAME] [--security FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import sys
import zipfile
from pathlib import Path

import psycopg2
import yaml

HERE = Path(__file__).resolve().parent
SUPERSET_DIR = HERE.parent
ROOT = SUPERSET_DIR.parent
ASSETS = SUPERSET_DIR / "assets"
VIEWS_SQL = SUPERSET_DIR / "views.sql"
SECURITY = SUPERSET_DIR / "security.yml"
DB_NAME = "hotspots_warehouse"
RLS_PREFIX = "hotspots: "
ALL_DASHBOARDS = ("national-risk-map", "district-drilldown", "alerts-cases", "model-data-health")


def local_dir() -> Path:
    d = Path(os.environ.get("SUPERSET_LOCAL", ROOT / ".local" / "superset"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def secret(env: str, path: Path, announce: str | None = None) -> str:
    """A password from the environment, else the one kept in `path`, else a new one saved there
    (printed once when `announce` names it)."""
    if os.environ.get(env):
        return os.environ[env]
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(12)
    path.write_text(value + "\n")
    path.chmod(0o600)
    if announce:
        print(f"superset: {announce} password generated: {value} (kept in {path})")
    return value


def reader_role() -> str:
    return os.environ.get("SUPERSET_READER_ROLE", "hotspots_reader")


def reader_password() -> str:
    return secret("SUPERSET_READER_PASSWORD", local_dir() / "reader_password")


def warehouse_name(arg: str | None) -> str:
    return arg or os.environ.get("WAREHOUSE", "hotspots")


def pg_connect(dbname: str):
    return psycopg2.connect(dbname=dbname)  # libpq's PGHOST PGPORT PGUSER PGPASSWORD


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"provision: bad identifier {name!r}")
    return name


def prepare_warehouse(warehouse: str, cfg: dict | None = None) -> None:
    """Views, the read-only role and its grants, the users' jurisdictions, the MLflow registry copy."""
    role, owner = _ident(reader_role()), _ident(os.environ.get("PGUSER", "hotspots"))
    pw = reader_password()
    conn = pg_connect(warehouse)
    conn.autocommit = False
    with conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('hotspots.superset.provision'))")
        cur.execute("select 1 from pg_roles where rolname = %s", (role,))
        if cur.fetchone() is None:
            try:
                cur.execute("savepoint r")
                cur.execute(f"create role {role} login")
            except psycopg2.errors.DuplicateObject:  # created concurrently for another warehouse
                cur.execute("rollback to savepoint r")
        cur.execute(f"alter role {role} with login nosuperuser nocreatedb nocreaterole password %s", (pw,))
        cur.execute(f"alter role {role} set statement_timeout = '60s'")
        cur.execute(VIEWS_SQL.read_text())
        cur.execute(f"grant connect on database {_ident(warehouse)} to {role}")
        for schema in ("raw", "ingest", "ref", "staging", "intermediate", "dbt"):
            cur.execute("select 1 from pg_namespace where nspname = %s", (schema,))
            if cur.fetchone():
                cur.execute(f"revoke all on schema {schema} from {role}")
                cur.execute(f"revoke all on all tables in schema {schema} from {role}")
        for schema in ("marts", "alerts"):
            cur.execute(f"grant usage on schema {schema} to {role}")
            cur.execute(f"grant select on all tables in schema {schema} to {role}")
            # dbt and the scoring step recreate tables: grant on whatever the owner creates later.
            cur.execute(f"alter default privileges for role {owner} in schema {schema} grant select on tables to {role}")
    refresh_tables(conn)
    with conn, conn.cursor() as cur:
        cur.execute(f"grant select on all tables in schema marts to {role}")
    if cfg is not None:
        _write_scopes(conn, cfg)
    _copy_registry(conn, warehouse)
    conn.close()


def refresh_tables(conn, log=print) -> None:
    """The dashboards' precomputed tables (views.sql: marts.refresh_dashboard_tables, the outlines
    when the gazetteer changed); the refresh_dashboards DAG does the same after every scoring run."""
    import time

    t0 = time.perf_counter()
    with conn, conn.cursor() as cur:
        cur.execute("select * from marts.refresh_dashboard_tables()")
        rows = cur.fetchall()
        cur.execute("select marts.refresh_dashboard_outlines()")
        outlines = cur.fetchone()[0]
    log(f"superset: dashboard tables refreshed in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{n} {r if r is not None else 'skipped'} rows {s} s" for n, r, s in rows)
        + (f"; outlines rebuilt ({outlines} district polygons)" if outlines else ""))


def _write_scopes(conn, cfg: dict) -> None:
    """marts.superset_user_scope: each user's jurisdiction (null = all), read by the map layers' SQL
    through current_username(). Rows of users of other Superset instances on this warehouse stay."""
    admin = os.environ.get("SUPERSET_ADMIN_USER", "admin")
    rows = [(admin, "admin", None, None, None)] + [
        (u["username"], u["kind"], u.get("state") if u["kind"] in ("state_officer", "district_officer") else None,
         u.get("district") if u["kind"] == "district_officer" else None,
         u.get("bank") if u["kind"] == "bank_liaison" else None) for u in cfg["users"]]
    with conn, conn.cursor() as cur:
        cur.execute("""create table if not exists marts.superset_user_scope (
                           username text primary key, kind text not null, state text, district text, bank text,
                           updated_at timestamptz not null default now())""")
        for r in rows:
            cur.execute("""insert into marts.superset_user_scope (username, kind, state, district, bank)
                           values (%s, %s, %s, %s, %s)
                           on conflict (username) do update set kind = excluded.kind, state = excluded.state,
                               district = excluded.district, bank = excluded.bank, updated_at = now()""", r)
        cur.execute(f"grant select on marts.superset_user_scope to {_ident(reader_role())}")


def _copy_registry(conn, warehouse: str) -> None:
    """Registered versions, the champion alias and each version's gate decision, from MLflow's
    database (same cluster) into marts.model_registry_snapshot. Skipped when MLflow has none."""
    try:
        ml = pg_connect(os.environ.get("SUPERSET_MLFLOW_DB", "mlflow"))
    except psycopg2.OperationalError:
        return
    name = f"hotspots_{warehouse}"
    try:
        with ml, ml.cursor() as cur:
            cur.execute("""select mv.name, mv.version::text, a.alias, t.value, p.value,
                                  to_timestamp(mv.creation_time / 1000.0)
                           from model_versions mv
                           left join registered_model_aliases a on a.name = mv.name and a.version = mv.version
                           left join tags t on t.run_uuid = mv.run_id and t.key = 'promotion.decision'
                           left join params p on p.run_uuid = mv.run_id and p.key = 'evaluation_metric'
                           where mv.name = %s""", (name,))
            rows = cur.fetchall()
    except psycopg2.Error:
        rows = []
    finally:
        ml.close()
    with conn, conn.cursor() as cur:
        cur.execute("delete from marts.model_registry_snapshot")
        for r in rows:
            cur.execute("""insert into marts.model_registry_snapshot (model_name, version, alias, decision, metric,
                           created_at) values (%s, %s, %s, %s, %s, %s) on conflict do nothing""", r)


def bundle(warehouse: str, assets: Path = ASSETS) -> dict[str, str]:
    """The export tree as import contents, pointed at this warehouse (host, port, database)."""
    contents = {}
    for p in sorted(assets.rglob("*.yaml")):
        rel = p.relative_to(assets).as_posix()
        text = p.read_text()
        if rel.startswith("databases/"):
            doc = yaml.safe_load(text)
            doc["sqlalchemy_uri"] = (f"postgresql+psycopg2://{reader_role()}:XXXXXXXXXX@"
                                     f"{os.environ.get('PGHOST', '127.0.0.1')}:{os.environ.get('PGPORT', '55432')}/"
                                     f"{warehouse}")
            text = yaml.safe_dump(doc, sort_keys=True)
        if rel == "metadata.yaml":
            doc = yaml.safe_load(text)
            doc["type"] = "assets"
            text = yaml.safe_dump(doc, sort_keys=True)
        contents[rel] = text
    return contents


def zip_bundle(contents: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for rel, text in contents.items():
            z.writestr(f"hotspots_assets/{rel}", text)
    return buf.getvalue()


def import_assets(warehouse: str) -> None:
    from superset.commands.importers.v1.assets import ImportAssetsCommand
    from superset.commands.importers.v1.utils import get_contents_from_bundle

    data = zip_bundle(bundle(warehouse))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        contents = get_contents_from_bundle(z)
    ImportAssetsCommand(contents, passwords={f"databases/{DB_NAME}.yaml": reader_password()}).run()
    _resolve_layers()


def _resolve_layers() -> None:
    """deck.gl multi-layer charts name their layers by chart id, which differs per instance: the
    tree keeps the layers' UUIDs (deck_slice_uuids) and the ids are filled in here."""
    from superset.models.slice import Slice

    from superset import db

    for s in db.session.query(Slice).filter(Slice.viz_type == "deck_multi"):
        params = json.loads(s.params or "{}")
        uuids = params.get("deck_slice_uuids") or []
        ids = []
        for u in uuids:
            layer = db.session.query(Slice).filter(Slice.uuid == u).one_or_none()
            if layer is None:
                raise SystemExit(f"provision: layer {u} of {s.slice_name} is not imported")
            ids.append(layer.id)
        if params.get("deck_slices") != ids:
            params["deck_slices"] = ids
            s.params = json.dumps(params, sort_keys=True)
    db.session.commit()


def _literal(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


def role_name(user: dict) -> str:
    kind = user["kind"]
    if kind == "state_officer":
        return f"{kind}: {user['state']}"
    if kind == "district_officer":
        return f"{kind}: {user['state']} / {user['district']}"
    if kind == "bank_liaison":
        return f"{kind}: {user['bank']}"
    return kind


def load_security(path: Path = SECURITY) -> dict:
    cfg = yaml.safe_load(path.read_text())
    for u in cfg["users"]:
        if not re.fullmatch(r"[a-z][a-z0-9_.-]{1,63}", u["username"]):
            raise SystemExit(f"provision: username {u['username']!r}: lower-case letters, digits, _ . - only")
        if u["kind"] not in cfg["kinds"]:
            raise SystemExit(f"provision: user {u['username']} has unknown kind {u['kind']}")
        need = {"state_officer": ("state",), "district_officer": ("state", "district"),
                "bank_liaison": ("bank",)}.get(u["kind"], ())
        for k in need:
            if not u.get(k):
                raise SystemExit(f"provision: user {u['username']} ({u['kind']}) needs {k}")
    return cfg


def apply_security(cfg: dict) -> dict:
    """Roles with exactly their permissions, RLS rules, users, dashboard roles. Returns a summary."""
    from superset.connectors.sqla.models import RowLevelSecurityFilter, SqlaTable
    from superset.models.core import Database
    from superset.models.dashboard import Dashboard

    from superset import db
    from superset import security_manager as sm

    database = db.session.query(Database).filter_by(database_name=DB_NAME).one()
    datasets = {t.table_name: t for t in db.session.query(SqlaTable).filter_by(database_id=database.id)}

    def perm(name: str, view: str):
        pv = sm.find_permission_view_menu(name, view)
        if pv is None:
            sm.add_permission_view_menu(name, view)
            pv = sm.find_permission_view_menu(name, view)
        return pv

    roles: dict[str, object] = {}
    wanted_rls: dict[str, tuple[str, list, object]] = {}
    for u in cfg["users"]:
        kind = cfg["kinds"][u["kind"]]
        name = role_name(u)
        if name in roles:
            continue
        role = sm.find_role(name) or sm.add_role(name)
        names = list(datasets) if kind.get("datasets") == "all" else kind.get("datasets", [])
        missing = set(names) - set(datasets)
        if missing:
            raise SystemExit(f"provision: {u['kind']} names unknown datasets {sorted(missing)}")
        pvs = [perm("datasource_access", datasets[n].perm) for n in names]
        catalog = database.get_default_catalog()  # PostgreSQL: the database is the catalog
        for schema in kind.get("sql_lab_schemas", []):
            pvs.append(perm("schema_access", sm.get_schema_perm(database.database_name, catalog, schema)))
        role.permissions = pvs
        roles[name] = role
        lits = {k: _literal(u[k]) for k in ("state", "district", "bank") if u.get(k)}
        for i, rule in enumerate(kind.get("rls", [])):
            clause = rule["clause"].format(**lits)
            wanted_rls[f"{RLS_PREFIX}{name} #{i + 1}"] = (clause, [datasets[n] for n in rule["datasets"]], role)
    db.session.flush()

    existing = {f.name: f for f in db.session.query(RowLevelSecurityFilter)
                if f.name and f.name.startswith(RLS_PREFIX)}
    for rname, (clause, tables, role) in wanted_rls.items():
        f = existing.pop(rname, None) or RowLevelSecurityFilter(name=rname)
        f.filter_type = "Regular"
        f.clause = clause
        f.group_key = None
        f.description = "provisioned from superset/security.yml"
        f.tables = tables
        f.roles = [role]
        db.session.add(f)
    for stale in existing.values():
        db.session.delete(stale)

    gamma = sm.find_role("Gamma")
    pw_dir = local_dir() / "passwords"
    users = []
    for u in cfg["users"]:
        kind = cfg["kinds"][u["kind"]]
        user_roles = [gamma, roles[role_name(u)]] + [sm.find_role(r) for r in kind.get("extra_roles", [])]
        env = "SUPERSET_PASSWORD_" + u["username"].upper()
        existing_user = sm.find_user(username=u["username"])
        if existing_user is None:
            pw = secret(env, pw_dir / u["username"], announce=f"user {u['username']}")
            created = sm.add_user(u["username"], u.get("first_name", u["username"]), u.get("last_name", "-"),
                                  u.get("email", f"{u['username']}@hotspots.local"), user_roles, password=pw)
            if not created:
                raise SystemExit(f"provision: could not create user {u['username']}")
        else:
            existing_user.roles = user_roles
            existing_user.active = True
            if os.environ.get(env):
                sm.reset_password(existing_user.id, os.environ[env])
        users.append(u["username"])

    # Users provisioned earlier and no longer in the file are deactivated, not deleted (their history stays).
    admin = os.environ.get("SUPERSET_ADMIN_USER", "admin")
    for stale in db.session.query(sm.user_model).filter(sm.user_model.email.like("%@hotspots.local")):
        if stale.username not in users and stale.username != admin:
            stale.active = False

    for dash in db.session.query(Dashboard).filter(Dashboard.slug.in_(ALL_DASHBOARDS)):
        dash.roles = [roles[role_name(u)] for u in cfg["users"]
                      if dash.slug in cfg["kinds"][u["kind"]].get("dashboards", [])
                      and roles[role_name(u)] is not None]
        dash.roles = list({r.id: r for r in dash.roles}.values())
    db.session.commit()
    return {"roles": sorted(roles), "rls": sorted(wanted_rls), "users": users}


def ensure_admin() -> None:
    from superset import security_manager as sm

    name = os.environ.get("SUPERSET_ADMIN_USER", "admin")
    if sm.find_user(username=name) is None:
        pw = secret("SUPERSET_ADMIN_PASSWORD", local_dir() / "passwords" / name, announce=f"user {name} (Admin)")
        sm.add_user(name, "Superset", "Admin", f"{name}@hotspots.local", sm.find_role("Admin"), password=pw)
    elif os.environ.get("SUPERSET_ADMIN_PASSWORD"):
        sm.reset_password(sm.find_user(username=name).id, os.environ["SUPERSET_ADMIN_PASSWORD"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hotspots_superset.provision")
    p.add_argument("--warehouse", default=None)
    p.add_argument("--security", type=Path, default=Path(os.environ.get("SUPERSET_SECURITY_FILE", SECURITY)))
    p.add_argument("--skip-warehouse", action="store_true", help="do not touch the warehouse (views, role)")
    a = p.parse_args(argv)
    wh = warehouse_name(a.warehouse)
    cfg = load_security(a.security)
    if not a.skip_warehouse:
        prepare_warehouse(wh, cfg)
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from flask import g

        from superset import security_manager

        ensure_admin()
        g.user = security_manager.find_user(username=os.environ.get("SUPERSET_ADMIN_USER", "admin"))
        import_assets(wh)
        summary = apply_security(cfg)
    print(f"superset: provisioned warehouse {wh}: {len(summary['roles'])} roles, {len(summary['rls'])} RLS rules, "
          f"{len(summary['users'])} users, dashboards {', '.join(ALL_DASHBOARDS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
