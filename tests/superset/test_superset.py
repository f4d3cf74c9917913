"""Superset provisioned from superset/ against a warehouse with a real forecast and real alert
decisions: provisioning is idempotent, the export tree round-trips, row-level security gives each
role exactly its rows (compared with the warehouse), SQL Lab is refused to officers, the read-only
role cannot read raw data, and in headless Chromium a district officer sees the deck.gl map, the
map follows a native filter, and an alert is acknowledged through the page."""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile

import psycopg2
import pytest
import yaml

from tests.conftest import ROOT
from tests.superset.conftest import ARTIFACTS, q, superset_python

pytestmark = pytest.mark.integration

ASSETS = ROOT / "superset" / "assets"
SLUGS = {"national-risk-map", "district-drilldown", "alerts-cases", "model-data-health"}

SNAPSHOT = r"""
import json
from superset.app import create_app
app = create_app()
with app.app_context():
    from superset import db, security_manager as sm
    from superset.connectors.sqla.models import RowLevelSecurityFilter, SqlaTable
    from superset.models.dashboard import Dashboard
    from superset.models.slice import Slice
    from superset.models.core import Database
    out = {
      "databases": sorted((d.database_name, str(d.uuid)) for d in db.session.query(Database)),
      "datasets": sorted((t.table_name, str(t.uuid), t.sql, len(t.columns)) for t in db.session.query(SqlaTable)),
      "charts": sorted((s.slice_name, str(s.uuid), s.viz_type, s.params) for s in db.session.query(Slice)),
      "dashboards": sorted((d.slug, str(d.uuid), sorted(r.name for r in d.roles), sorted(str(s.uuid) for s in d.slices),
                            d.json_metadata) for d in db.session.query(Dashboard)),
      "roles": sorted((r.name, sorted(str(p) for p in r.permissions)) for r in sm.get_all_roles()),
      "rls": sorted((f.name, f.clause, sorted(t.table_name for t in f.tables), sorted(r.name for r in f.roles))
                    for f in db.session.query(RowLevelSecurityFilter)),
      "users": sorted((u.username, sorted(r.name for r in u.roles), u.active) for u in db.session.query(sm.user_model)),
    }
    print(json.dumps(out, default=str))
"""


def _snapshot(stack) -> dict:
    return json.loads(superset_python(stack, SNAPSHOT).strip().splitlines()[-1])


def test_provisioning_twice_gives_the_same_state(superset_stack):
    first = _snapshot(superset_stack)
    out = superset_stack["run"]("provision").stdout
    second = _snapshot(superset_stack)
    assert first == second
    tree_datasets = list((ASSETS / "datasets").rglob("*.yaml"))
    tree_charts = list((ASSETS / "charts").glob("*.yaml"))
    assert len(second["databases"]) == 1
    assert len(second["datasets"]) == len(tree_datasets)
    assert len(second["charts"]) == len(tree_charts)
    assert {d[0] for d in second["dashboards"]} == SLUGS
    sec = superset_stack["security"]
    assert {u[0] for u in second["users"]} >= {u["username"] for u in sec["users"]} | {"admin"}
    # one RLS rule per (jurisdiction role, clause) of the file, no duplicates
    kinds = sec["kinds"]
    want = sum(len(kinds[u["kind"]].get("rls", [])) for u in sec["users"])
    assert len([r for r in second["rls"] if r[0].startswith("hotspots: ")]) == want
    # passwords are printed once only: the second run generates none
    assert "password generated" in superset_stack["provision_outputs"][0]
    assert "password generated" not in out


def test_export_round_trips_the_tree(superset_stack, client):
    admin = client("admin")
    ids = [d["id"] for d in admin.get("/api/v1/dashboard/?q=(page_size:100)").json()["result"]]
    r = admin.get("/api/v1/assets/export/")
    assert r.status_code == 200, r.text[:500]
    exported = {}
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        for name in z.namelist():
            rel = name.split("/", 1)[1]
            if rel.endswith(".yaml") and rel != "metadata.yaml":
                exported[rel.split("/")[0], yaml.safe_load(z.read(name))["uuid"]] = yaml.safe_load(z.read(name))
    assert len(ids) == 4
    tree = {}
    for p in ASSETS.rglob("*.yaml"):
        if p.name != "metadata.yaml":
            doc = yaml.safe_load(p.read_text())
            tree[p.relative_to(ASSETS).parts[0], doc["uuid"]] = doc
    assert set(tree) == set(exported)  # same objects, same UUIDs, nothing duplicated
    for key, want in tree.items():
        got = exported[key]
        kind = key[0]
        if kind == "databases":
            assert got["database_name"] == want["database_name"]
            assert "XXXXXXXXXX" in got["sqlalchemy_uri"]  # the password never leaves Superset
        elif kind == "datasets":
            assert (got["table_name"], got["sql"].strip(), got["database_uuid"]) == \
                   (want["table_name"], want["sql"].strip(), want["database_uuid"])
            assert {c["column_name"] for c in got["columns"]} == {c["column_name"] for c in want["columns"]}
        elif kind == "charts":
            assert (got["slice_name"], got["viz_type"], got["dataset_uuid"]) == \
                   (want["slice_name"], want["viz_type"], want["dataset_uuid"])
            for k, v in want["params"].items():
                if k not in ("deck_slices", "datasource"):
                    assert got["params"].get(k) == v, (want["slice_name"], k)
        elif kind == "dashboards":
            assert (got["slug"], got["dashboard_title"]) == (want["slug"], want["dashboard_title"])
            charts = lambda d: sorted(v["meta"]["uuid"] for v in d["position"].values()  # noqa: E731
                                      if isinstance(v, dict) and v.get("type") == "CHART")
            assert charts(got) == charts(want)
            assert [f["name"] for f in got["metadata"]["native_filter_configuration"]] == \
                   [f["name"] for f in want["metadata"]["native_filter_configuration"]]


def _dataset_sql(dataset: str, user: str = "admin") -> str:
    """A dataset's SQL from the tree, its Jinja (the signed-in user) rendered for `user`."""
    sql = yaml.safe_load((ASSETS / "datasets" / "hotspots_warehouse" / f"{dataset}.yaml").read_text())["sql"]
    return sql.replace("{{ current_username() }}", user)


def _expected(stack, dataset: str, where: str, args=()) -> int:
    """Rows of a dataset's own SQL (from the tree) under a WHERE, counted in the warehouse."""
    return q(stack["warehouse"], f"select count(*) from ({_dataset_sql(dataset)}) t where {where}", args)[0][0]


DATASETS_OFFICER = ("forecast_cells", "cell_explanations", "district_daily", "complaints_daily", "money_trail",
                    "hot_cell_terminals", "alerts", "alert_cases")


def test_row_level_security_gives_each_role_exactly_its_rows(superset_stack, client):
    s, j, bank = superset_stack, superset_stack["jurisdiction"], superset_stack["bank"]
    admin = client("admin")
    ids = {d["table_name"]: d["id"] for d in admin.get("/api/v1/dataset/?q=(page_size:100)").json()["result"]}
    users = {u: client(u) for u in ("t_district", "t_state", "t_bank", "t_ncc", "t_analyst")}
    checked = 0
    for ds in DATASETS_OFFICER:
        total = _expected(s, ds, "true")
        assert admin.count(ids[ds]) == total
        assert users["t_ncc"].count(ids[ds]) == total
        assert users["t_analyst"].count(ids[ds]) == total
        in_district = _expected(s, ds, "state = %s and district = %s", (j["state"], j["district"]))
        assert users["t_district"].count(ids[ds]) == in_district, ds
        assert users["t_state"].count(ids[ds]) == _expected(s, ds, "state = %s", (j["state"],)), ds
        # another district by filter: nothing
        other = [{"col": "district", "op": "==", "val": j["other_district"]}]
        assert users["t_district"].count(ids[ds], filters=other) == 0, ds
        checked += in_district > 0
    assert checked >= 4  # the test district has forecast, explanations, terminals, alerts...
    # the district officer sees exactly the warehouse's forecast rows of its district, none elsewhere
    assert _expected(s, "forecast_cells", "true") > _expected(
        s, "forecast_cells", "state = %s and district = %s", (j["state"], j["district"])) > 0
    # bank liaison: only cells its bank's accounts fed, only its bank's terminals and alerts, no complaints
    b = users["t_bank"]
    assert b.count(ids["forecast_cells"]) == _expected(s, "forecast_cells", "%s = any(banks)", (bank,)) > 0
    assert b.count(ids["forecast_cells"]) < _expected(s, "forecast_cells", "true")
    assert b.count(ids["hot_cell_terminals"]) == _expected(s, "hot_cell_terminals", "bank = %s", (bank,))
    assert b.count(ids["alerts"]) == _expected(s, "alerts", "bank = %s", (bank,)) > 0
    for ds in ("complaints_daily", "alert_cases", "district_daily", "cell_explanations"):
        assert b.count(ids[ds]) is None, ds  # refused: no complaint rows for a bank
    # officers reach no dataset outside their role
    for ds in ("backtest_metrics", "ingest_health", "model_registry"):
        assert users["t_district"].count(ids[ds]) is None
        assert users["t_ncc"].count(ids[ds]) == _expected(s, ds, "true")
    # the RLS clause shows in the SQL Superset runs
    r = users["t_district"].chart_data(ids["forecast_cells"], metrics=["count"], result_type="query")
    assert f"district = '{j['district']}'" in r.json()["result"][0]["query"]


def test_sql_lab_is_refused_to_officers_and_the_reader_role_sees_no_raw_data(superset_stack, client):
    db_id = client("admin").get("/api/v1/database/").json()["result"][0]["id"]
    body = {"database_id": db_id, "sql": "select count(*) as n from marts.hotspot_forecast", "runAsync": False,
            "schema": "marts"}
    for u in ("t_district", "t_state", "t_bank"):
        assert client(u).post("/api/v1/sqllab/execute/", json=body).status_code == 403, u
    r = client("t_analyst").post("/api/v1/sqllab/execute/", json=body)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["data"][0]["n"] == q(superset_stack["warehouse"], "select count(*) from marts.hotspot_forecast")[0][0]
    r = client("t_analyst").post("/api/v1/sqllab/execute/", json=dict(body, sql="select count(*) from raw.complaints"))
    assert r.status_code != 200 and "raw.complaints" in r.text  # Superset refuses (schema access: marts only)
    pw = (superset_stack["local"] / "reader_password").read_text().strip()
    for table in ("raw.complaints", "raw.withdrawals", "ingest.quarantine", "ref.h3_cells"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            q(superset_stack["warehouse"], f"select 1 from {table} limit 1", user=superset_stack["reader"],
              password=pw)
    assert q(superset_stack["warehouse"], "select count(*) from marts.hotspot_forecast", user=superset_stack["reader"],
             password=pw)[0][0] > 0


def _browser(stack, *args) -> dict:
    p = subprocess.run([str(ROOT / ".venv-superset" / "bin" / "python"), str(ROOT / "superset" / "hotspots_superset" / "browser.py"),
                        *args], capture_output=True, text=True, timeout=600, env=dict(os.environ, SE_OFFLINE="true"))
    lines = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        pytest.fail(f"browser {args[0]} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def test_district_officer_sees_the_map_and_it_follows_a_native_filter(superset_stack):
    s, j = superset_stack, superset_stack["jurisdiction"]
    # a risk tier that holds some, not all, of the district's cells in the latest 1-day forecast
    tiers = q(s["warehouse"], f"""select risk_tier, count(*) from ({_dataset_sql('forecast_cells')}) t
                                   where state = %s and district = %s and horizon_days = 1
                                     and forecast_date = (select max(forecast_date) from marts.hotspot_forecast)
                                   group by 1 order by 2, 1""", (j["state"], j["district"]))
    assert len(tiers) >= 2, tiers
    res = _browser(s, "map-filter", s["base"], "t_district", s["passwords"]["t_district"], str(ARTIFACTS),
                   "Risk tier", tiers[0][0])
    before, after = res["before"], res["after"]
    assert before["charts"]["holders"] >= 4 and not before["charts"]["errors"], before["charts"]
    canvas = [c for c in before["canvas"] if c.get("webgl")]
    assert canvas and max(c["nonwhite"] for c in canvas) > 500, before["canvas"]  # deck.gl drew something
    assert not after["charts"]["errors"], after["charts"]
    assert [c["hash"] for c in after["canvas"]] != [c["hash"] for c in before["canvas"]]  # the map changed
    assert (ARTIFACTS / "t_district-map-before.png").stat().st_size > 10_000


def test_map_layers_keep_row_level_security_after_an_admin_opened_the_map(superset_stack):
    """The multi-layer map fetches its layers with GET explore_json; a response cached for the
    admin must never reach an officer (Superset's view cache keys by URL only: it is off)."""
    s, j = superset_stack, superset_stack["jurisdiction"]
    admin = _browser(s, "layers", s["base"], "admin", s["passwords"]["admin"], str(ARTIFACTS))
    officer = _browser(s, "layers", s["base"], "t_district", s["passwords"]["t_district"], str(ARTIFACTS))
    cells = {"admin": q(s["warehouse"], "select count(*) from marts.hotspot_forecast where horizon_days = 1")[0][0],
             "t_district": q(s["warehouse"], """select count(*) from marts.hotspot_forecast where horizon_days = 1
                                                and state = %s and district = %s""", (j["state"], j["district"]))[0][0]}
    for who, res in (("admin", admin), ("t_district", officer)):
        points = [x["rows"] for x in res["layers"] if x["viz_type"] == "deck_scatter"]
        assert points and all(n == cells[who] for n in points), (who, res["layers"], cells)
    assert cells["t_district"] < cells["admin"]


def test_officer_acknowledges_an_alert_through_the_page(superset_stack):
    s, j = superset_stack, superset_stack["jurisdiction"]
    wh = s["warehouse"]
    mine = q(wh, "select alert_id from alerts.alerts where state = %s and district = %s order by alert_id",
             (j["state"], j["district"]))
    assert mine, "the test district has alerts"
    alert_id = mine[0][0]
    before = q(wh, "select count(*) from alerts.acknowledgements where alert_id = %s", (alert_id,))[0][0]
    res = _browser(s, "ack", s["base"], "t_district", s["passwords"]["t_district"], str(ARTIFACTS), alert_id,
                   "patrol", "nothing_found", "checked by browser test")
    assert set(res["visible_alerts"]) == {a for (a,) in mine}  # only its jurisdiction's alerts
    assert "patrol" in res["row_after"] and "nothing_found" in res["row_after"]
    rows = q(wh, """select acknowledged_by, action, outcome, note, outcome_at is not null from alerts.acknowledgements
                    where alert_id = %s order by ack_id""", (alert_id,))
    assert len(rows) == before + 1
    assert rows[-1] == ("t_district", "patrol", "nothing_found", "checked by browser test", True)


def test_ack_page_refuses_alerts_outside_the_jurisdiction(superset_stack):
    import requests

    s, j = superset_stack, superset_stack["jurisdiction"]
    other = q(s["warehouse"], "select alert_id from alerts.alerts where district <> %s limit 1", (j["district"],))
    assert other
    sess = requests.Session()
    page = sess.get(f"{s['base']}/login/", timeout=60).text
    import re

    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(r'value="([^"]+)"[^>]*name="csrf_token"', page)
    r = sess.post(f"{s['base']}/login/", data={"username": "t_district", "password": s["passwords"]["t_district"],
                                                "csrf_token": token.group(1) if token else ""}, timeout=60)
    assert r.ok
    ack = sess.get(f"{s['base']}/hotspots/ack/", timeout=60)
    assert ack.status_code == 200 and 'id="alerts"' in ack.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', ack.text).group(1)
    r = sess.post(f"{s['base']}/hotspots/ack/{other[0][0]}", data={"csrf_token": csrf, "action": "patrol"},
                  headers={"Referer": s["base"]}, timeout=60, allow_redirects=False)
    assert r.status_code == 403
    assert q(s["warehouse"], "select count(*) from alerts.acknowledgements where alert_id = %s", (other[0][0],))[0][0] == 0


def test_every_dashboard_renders_without_chart_errors(superset_stack):
    s = superset_stack
    res = _browser(s, "dashboards", s["base"], "admin", s["passwords"]["admin"], str(ARTIFACTS),
                   ",".join(sorted(SLUGS)), "admin-")
    for d in res["dashboards"]:
        assert d["charts"]["holders"] >= 3 and not d["charts"]["errors"], d
        assert (ARTIFACTS / f"admin-{d['slug']}.png").exists()


def test_dashboard_tables_hold_what_the_views_compute(superset_stack):
    """The charts read precomputed tables (marts.dash_*, views.sql): after provisioning they hold
    exactly what the views over raw rows compute, and the outlines cover the districts."""
    wh = superset_stack["warehouse"]

    def differ(a: str, b: str) -> int:
        return q(wh, f"select count(*) from (({a} except all {b}) union all ({b} except all {a})) x")[0][0]

    flows = "victim_state, victim_district, state, district, category, n_complaints, n_accounts, amount_inr"
    assert differ(f"select {flows} from marts.dash_money_trail_flows", f"select {flows} from marts.v_money_trail_flows") == 0
    assert differ("select * from marts.dash_complaints_daily", "select * from marts.v_complaints_daily") == 0
    terms = "h3_cell, state, district, terminal_id, channel, bank, n_withdrawals, last_withdrawal_at"
    assert differ(f"select {terms} from marts.dash_cell_terminals", f"select {terms} from marts.v_cell_terminals") == 0
    assert differ("select h3_cell, banks from marts.dash_cell_banks",
                  "select h3_cell, array_agg(bank order by bank) from marts.v_cell_banks group by 1") == 0
    n_flows = q(wh, "select count(*) from marts.v_money_trail_flows")[0][0]
    assert n_flows > 0
    # the daily series: complaints and withdrawals per district and day as in raw
    assert differ("select day, state, district, n_complaints from marts.dash_district_daily where n_complaints > 0",
                  """select day, state, district, sum(n_complaints) from marts.v_complaints_daily
                     group by 1, 2, 3""") == 0
    covered, districts = q(wh, """select (select count(distinct (state, district)) from marts.dash_district_outlines),
                                         (select count(*) from marts.dim_districts)""")[0]
    assert covered >= 0.95 * districts, (covered, districts)
    # a refresh swaps new tables in and leaves no build tables behind
    q(wh, "select * from marts.refresh_dashboard_tables()")
    assert q(wh, "select count(*) from pg_tables where schemaname = 'marts' and tablename like 'dash%%__new'")[0][0] == 0
    assert q(wh, "select count(*) from marts.dash_money_trail_flows")[0][0] == n_flows
