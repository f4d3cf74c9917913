"""Alerts end to end, for real: a scored warehouse (simulate, ingest, features, train, score
through their DAGs), the dispatch_alerts DAG under `airflow dags test`, a real SMTP server
(aiosmtpd) and a real HTTP receiver on 127.0.0.1; assertions on what arrived.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from io import BytesIO

import psycopg2
import pytest
import yaml

from tests.alerts.receivers import HTTPSink, SMTPSink
from tests.conftest import ROOT, create_db, drop_db, run_dag

pytestmark = pytest.mark.integration

START, DAYS, SCALE, SEED = "2026-01-01", 62, 0.02, 5
# Two sending processes whatever the number of messages: the forked path is the one the
# national volume takes (exactly once, retries and dead letters must hold across processes).
FAST = {"max_attempts": 3, "backoff_seconds": 0.3, "backoff_max_seconds": 1, "lease_seconds": 60, "workers": 4,
        "timeout_seconds": 10, "processes": 2, "processes_above": 0}


def q(warehouse: str, query: str, args=None):
    conn = psycopg2.connect(dbname=warehouse)
    with conn, conn.cursor() as cur:
        cur.execute(query, args)
        rows = cur.fetchall() if cur.description else None
    conn.close()
    return rows


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A scored warehouse (the forecasting test's path), or HOTSPOTS_TEST_ALERTS_WAREHOUSE
    when set to an already scored one (kept)."""
    given = os.environ.get("HOTSPOTS_TEST_ALERTS_WAREHOUSE")
    if given:
        yield given
        return
    from hotspots.simulate import simulate
    from tests.integration.test_forecasting import _forget_models

    base = tmp_path_factory.mktemp("alerts")
    landing = base / "extracts"
    simulate(landing, START, DAYS, SCALE, SEED, progress=False)
    wh = f"test_al_{uuid.uuid4().hex[:8]}"
    create_db(wh)
    try:
        # The upstream layers without Airflow's per-task start-up (their DAGs are tested elsewhere):
        # ingest, cells, dbt, training with promotion, scoring; then the alerts DAG for real.
        env = dict(os.environ, WAREHOUSE=wh, DBT_PROFILES_DIR=str(ROOT / "dbt"))
        cli = [sys.executable, "-m", "hotspots.cli", "--warehouse", wh]
        dbt = ["dbt", "--quiet", "{}", "--project-dir", str(ROOT / "dbt"), "--target-path", str(base / "dbt"),
               "--log-path", str(base / "dbt")]
        for cmd in ([*cli, "ingest", "--landing", str(landing)],
                    [sys.executable, "-c", "from hotspots import db; from hotspots.geo.cells import register_cells; "
                     f"register_cells(db.connect({wh!r}))"],
                    [c.replace("{}", "seed") for c in dbt], [c.replace("{}", "run") for c in dbt],
                    [*cli, "train", "--landing", str(landing)], "promote", [*cli, "score"]):
            if cmd == "promote":
                _champion(wh)
                continue
            t0 = time.perf_counter()
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
            assert p.returncode == 0, f"{cmd[:5]} failed:\n{(p.stdout + p.stderr)[-4000:]}"
            print(f"scored warehouse: {' '.join(cmd[1:5])} {time.perf_counter() - t0:.1f} s")
        yield wh
    finally:
        _forget_models(wh)
        drop_db(wh)


def _champion(wh: str) -> None:
    """The explanations that alerts carry come from a model: when the gate kept the trained
    version back (it must beat every baseline, which a short history may not allow), make it
    the champion here, as an operator would."""
    from mlflow import MlflowClient

    from hotspots.forecast import tracking

    tracking.setup(wh)
    c, name = MlflowClient(), tracking.model_name(wh)
    try:
        c.get_model_version_by_alias(name, "champion")
    except Exception:  # noqa: BLE001 - no champion yet
        latest = max(int(v.version) for v in c.search_model_versions(f"name='{name}'"))
        c.set_registered_model_alias(name, "champion", str(latest))


@pytest.fixture()
def wh(scored):
    """The scored warehouse with an empty alerts schema for each test."""
    from hotspots.cli import init_warehouse

    init_warehouse(scored)
    q(scored, """truncate alerts.alerts, alerts.messages, alerts.message_alerts, alerts.attempts,
                 alerts.acknowledgements, alerts.silences, alerts.runs, alerts.maps cascade""")
    return scored


@pytest.fixture()
def smtp():
    s = SMTPSink().start()
    yield s
    s.stop()


@pytest.fixture()
def http():
    s = HTTPSink(fail={"/flaky": 2, "/dead": -1}).start()
    yield s
    s.stop()


def places(wh: str) -> dict:
    """Two districts with alert-tier cells (the top cell's and another), and a bank that fed the top cell."""
    top = q(wh, """select h3_cell, state, district from marts.hotspot_forecast
                   where horizon_days = 1 order by risk_rank limit 1""")[0]
    other = q(wh, """select state, district from marts.hotspot_forecast where horizon_days = 1
                     and (state, district) <> (%s, %s) order by risk_rank limit 1""", (top[1], top[2]))[0]
    bank = q(wh, """select left(t.to_ifsc, 4), count(*) from raw.withdrawals w
                    join raw.transactions t on t.to_account = w.account where w.h3_cell = %s
                    group by 1 order by 2 desc limit 1""", (top[0],))[0][0]
    return {"cell": top[0], "state": top[1], "district": top[2], "other_state": other[0],
            "other_district": other[1], "bank": bank}


def write_config(tmp_path, smtp: SMTPSink, http: HTTPSink, p: dict, extra_rules: dict | None = None,
                 flaky: bool = True):
    def email(to):
        return [{"name": "email", "url": smtp.url(to)}]

    recipients = [
        {"name": "ncc", "jurisdiction": {"level": "national"}, "channels": [{"name": "hook", "url": http.url("/ncc")}]},
        {"name": "state-a", "jurisdiction": {"level": "state", "state": p["state"]},
         "channels": email("state-a@localhost")},
        {"name": "district-a", "jurisdiction": {"level": "district", "state": p["state"], "district": p["district"]},
         "channels": [*email("district-a@localhost"), {"name": "hook", "url": http.url("/district-a")}]},
        {"name": "district-b", "language": "hi",
         "jurisdiction": {"level": "district", "state": p["other_state"], "district": p["other_district"]},
         "channels": email("district-b@localhost")},
        {"name": "bank", "jurisdiction": {"level": "bank", "bank": p["bank"]},
         "channels": [{"name": "hook", "url": http.url("/bank")}]},
    ]
    if flaky:
        recipients += [
            {"name": "flaky", "jurisdiction": {"level": "national"}, "channels": [{"url": http.url("/flaky")}]},
            {"name": "dead", "jurisdiction": {"level": "national"}, "channels": [{"url": http.url("/dead")}]},
            # Takes alerts only: its digest lines have no channel and are dead letters at once.
            {"name": "alerts-only", "jurisdiction": {"level": "national"},
             "channels": [{"url": http.url("/alerts-only"), "tags": ["alert", "escalation"]}]},
        ]
    doc = {"recipients": recipients,
           "engineers": [{"name": "eng", "channels": [{"url": http.url("/engineers"), "tags": ["failure"]}]}]}
    rpath = tmp_path / "recipients.yml"
    rpath.write_text(yaml.safe_dump(doc, sort_keys=False))
    rules = yaml.safe_load((ROOT / "config" / "alerts.yml").read_text())
    # Small scale (3 % of national volume): low floors so that the top cells alert.
    rules["tiers"] = [
        {"name": "critical", "state_top": {1: 1, 7: 1}, "min_expected": {1: 0.01, 7: 0.05}},
        {"name": "high", "district_top": {1: 2, 7: 2}, "min_expected": {1: 0.01, 7: 0.05}},
        {"name": "watch", "district_top": {1: 5, 7: 5}, "min_expected": {1: 0.001, 7: 0.001}},
    ]
    rules["levels"]["national"] = {"alert": ["critical"], "digest": ["high"]}
    rules["delivery"] = FAST
    rules["daily_cap"] = 1000
    rules.update(extra_rules or {})
    lpath = tmp_path / "alerts.yml"
    lpath.write_text(yaml.safe_dump(rules, sort_keys=False))
    return str(rpath), str(lpath)


def payload(received: dict) -> dict:
    return json.loads(received["json"]["message"])


def test_dag_delivers_routes_retries_dead_letters_and_a_rerun_sends_nothing(wh, smtp, http, tmp_path):
    p = places(wh)
    rpath, lpath = write_config(tmp_path, smtp, http, p)
    conf = {"warehouse": wh, "recipients": rpath, "rules": lpath}
    out = run_dag("dispatch_alerts", conf)
    assert "alerts: decided for forecast" in out and "alerts: delivered" in out

    # The district officer of the top cell: one grouped alert email (with maps) and one digest.
    mails = smtp.to("district-a@localhost")
    digests = [m for m in mails if "Daily digest" in m["subject"]]
    alerts = [m for m in mails if "hotspot alert" in m["subject"]]
    assert len(mails) == 2 and len(digests) == 1 and len(alerts) == 1, [m["subject"] for m in mails]
    m = alerts[0]
    assert p["cell"] in m["subject"] and p["district"] in m["subject"]
    html = m.get_body(preferencelist=("html",)).get_content()
    text = m.get_body(preferencelist=("plain",)).get_content()
    for body in (html, text):
        assert p["cell"] in body and p["district"] in body and "PIN" in body
    expl = q(wh, """select text from marts.hotspot_explanations e join marts.hotspot_forecast f
                    using (forecast_date, horizon_days, h3_cell) where f.h3_cell = %s and f.horizon_days = 1
                    and e.rank = 1""", (p["cell"],))
    assert expl and expl[0][0] in html
    pngs = [a for a in m.iter_attachments() if a.get_content_type() == "image/png"]
    assert pngs and f"map-{p['cell']}.png" in {a.get_filename() for a in pngs}
    from PIL import Image

    img = Image.open(BytesIO(pngs[0].get_content()))
    img.load()
    assert img.format == "PNG" and img.size[0] > 200

    # Routing: district officers only get their own district; the bank only cells its accounts fed.
    for d in http.at("/district-a"):
        assert {(a["state"], a["district"]) for a in payload(d)["alerts"]} == {(p["state"], p["district"])}
    hindi = [m for m in smtp.to("district-b@localhost") if "दैनिक" not in m["subject"]]
    assert len(hindi) == 1 and "हॉटस्पॉट" in hindi[0]["subject"] and p["other_district"] in hindi[0]["subject"]
    assert "डाकघर" in hindi[0].get_body(preferencelist=("html",)).get_content()
    for mail in smtp.to("district-b@localhost"):
        assert p["cell"] not in mail.get_body(preferencelist=("html",)).get_content()
    bank_cells = {a["h3_cell"] for d in http.at("/bank") for a in payload(d)["alerts"]}
    assert p["cell"] in bank_cells
    fed = {c for (c,) in q(wh, """select distinct w.h3_cell from raw.withdrawals w join raw.transactions t
                                 on t.to_account = w.account where left(t.to_ifsc, 4) = %s""", (p["bank"],))}
    assert bank_cells <= fed
    assert all(a["bank"] == p["bank"] for d in http.at("/bank") for a in payload(d)["alerts"])

    # Exactly once per message; flaky got each of its messages once after two refusals in all;
    # dead is dead-lettered after every try while the others got theirs.
    flaky_ids = [r["headers"].get("X-Hotspots-Message-Id") for r in http.at("/flaky")]
    flaky_msgs = q(wh, "select message_id, status, attempts from alerts.messages where recipient = 'flaky'")
    assert sorted(flaky_ids) == sorted(m[0] for m in flaky_msgs) and len(set(flaky_ids)) == len(flaky_ids) >= 1
    assert http.refused.count("/flaky") == 2 and {m[1] for m in flaky_msgs} == {"sent"}
    assert sum(m[2] - 1 for m in flaky_msgs) == 2
    assert http.at("/dead") == [] and http.refused.count("/dead") == FAST["max_attempts"] * len(
        q(wh, "select 1 from alerts.messages where recipient = 'dead'"))
    dead = q(wh, "select status, attempts, last_error from alerts.alerts where recipient = 'dead'")
    assert dead and all(s == "dead_letter" and n == 3 and "503" in (e or "") for s, n, e in dead), dead
    assert q(wh, "select count(*) from alerts.attempts a join alerts.alerts x using (alert_id) "
                 "where x.recipient = 'dead' and not a.ok")[0][0] == 3 * len(dead)
    assert {s for (s,) in q(wh, "select distinct status from alerts.alerts where recipient = 'flaky'")} == {"sent"}
    statuses = dict(q(wh, "select status, count(*) from alerts.alerts group by 1"))
    assert statuses.get("pending", 0) == 0 and statuses.get("failed", 0) == 0 and statuses["sent"] > 0
    keys = q(wh, "select idempotency_key, alert_id from alerts.alerts")
    assert all(k.count("|") == 4 for k, _ in keys)
    # Every alert a message carries points to one of its messages; a kind no channel takes is a
    # dead letter with the reason, in no message.
    assert q(wh, """select count(*) from alerts.alerts a where a.status <> 'silenced' and a.message_id is not null
                    and not exists (select 1 from alerts.message_alerts ma
                                    where ma.message_id = a.message_id and ma.alert_id = a.alert_id)""")[0][0] == 0
    orphans = q(wh, """select recipient, kind, status, last_error from alerts.alerts a where a.message_id is null
                       and a.status <> 'silenced'""")
    assert orphans and all(r == "alerts-only" and k == "digest" and s == "dead_letter"
                           and "no channel tagged digest" in e for r, k, s, e in orphans), orphans
    assert {k for (k,) in q(wh, "select distinct kind from alerts.alerts where recipient = 'alerts-only' "
                                "and status = 'sent'")} == {"alert"}

    # A re-run (another DAG run on the same forecast) decides and sends nothing new.
    n_mail, n_http = len(smtp.messages), len(http.received)
    n_alerts = q(wh, "select count(*) from alerts.alerts")[0][0]
    out = run_dag("dispatch_alerts", conf)
    assert "0 alerts, 0 escalations, 0 digest lines" in out
    assert (len(smtp.messages), len(http.received)) == (n_mail, n_http)
    assert q(wh, "select count(*) from alerts.alerts")[0][0] == n_alerts


def _cli(*args, env=None):
    return [sys.executable, "-m", "hotspots.cli", *args]


def test_killed_dispatch_then_rerun_sends_every_message_exactly_once(wh, tmp_path):
    smtp = SMTPSink(delay=0.3).start()
    http = HTTPSink(delay=0.3).start()
    try:
        p = places(wh)
        # One sender: a second one would be anywhere in its send when the first is killed, and the
        # instant between a receiver accepting and the commit of `sent` is where a duplicate can come
        # from (docs/alerts.md); this test is about taking over what a killed dispatcher held.
        rpath, lpath = write_config(tmp_path, smtp, http, p, {"delivery": dict(FAST, workers=1, processes=1)},
                                    flaky=False)
        base = ["--warehouse", wh, "alerts"]
        decided = subprocess.run(_cli(*base, "decide", "--recipients", rpath, "--rules", lpath),
                                 capture_output=True, text=True, timeout=300)
        assert decided.returncode == 0, decided.stderr[-3000:]
        total = q(wh, "select count(*) from alerts.messages")[0][0]
        assert total >= 5
        proc = subprocess.Popen(_cli(*base, "deliver", "--recipients", rpath, "--rules", lpath),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while q(wh, "select count(*) from alerts.messages where status = 'sent'")[0][0] < 3:
            assert proc.poll() is None and time.time() < deadline, "delivery ended before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        sent_before = q(wh, "select count(*) from alerts.messages where status = 'sent'")[0][0]
        assert sent_before < total, "the kill came too late to test anything"
        again = subprocess.run(_cli(*base, "deliver", "--recipients", rpath, "--rules", lpath),
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        assert q(wh, "select count(*) from alerts.messages where status <> 'sent'")[0][0] == 0
        ids = [r["headers"].get("X-Hotspots-Message-Id") for r in http.received]
        ids += [m["msg"]["X-Hotspots-Message-Id"] for m in smtp.messages]
        assert len(ids) == total and len(set(ids)) == total  # every message once, none twice
    finally:
        smtp.stop()
        http.stop()


def test_escalation_after_the_configured_time_unless_acknowledged(wh, smtp, http, tmp_path):
    from hotspots.alerts import dispatch

    p = places(wh)
    rpath, lpath = write_config(tmp_path, smtp, http, p, flaky=False)
    t0 = datetime(2026, 3, 15, 6, 0, tzinfo=timezone.utc)
    dispatch.dispatch(wh, rpath, lpath, now=t0, run_id="t0")
    district_alerts = q(wh, """select alert_id, h3_cell, horizon_days from alerts.alerts
                              where recipient = 'district-a' and kind = 'alert' and status = 'sent'
                              order by risk_rank, horizon_days""")
    assert len(district_alerts) >= 2
    acked, unacked = district_alerts[0], district_alerts[1:]
    out = subprocess.run(_cli("--warehouse", wh, "alerts", "ack", acked[0], "--by", "SI Verma", "--action", "patrol"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "acknowledged" in out.stdout, out.stderr[-2000:]

    # Before the configured 12 hours: nothing escalates, nothing repeats.
    r = dispatch.dispatch(wh, rpath, lpath, now=t0 + timedelta(hours=11), run_id="t11")
    assert r["decided"]["escalations"] == 0 and r["decided"]["alerts"] == 0
    # After them: every unacknowledged district alert escalates to the state, the acknowledged one does not.
    n_state_mail = len(smtp.to("state-a@localhost"))
    r = dispatch.dispatch(wh, rpath, lpath, now=t0 + timedelta(hours=13), run_id="t13")
    esc = q(wh, """select escalated_from, recipient, escalation_level, h3_cell from alerts.alerts
                   where kind = 'escalation'""")
    from_ids = {e[0] for e in esc}
    state_level = {a[0] for a in unacked if not q(wh, """select 1 from alerts.alerts where recipient = 'state-a'
                                                        and kind = 'alert' and h3_cell = %s and horizon_days = %s""",
                                                 (a[1], a[2]))}
    assert state_level and state_level <= from_ids and acked[0] not in from_ids
    assert {e[1] for e in esc if e[0] in state_level} == {"state-a"} and all(e[2] == 1 for e in esc
                                                                             if e[0] in state_level)
    mails = smtp.to("state-a@localhost")[n_state_mail:]
    assert len(mails) == 1 and "ESCALATION" in mails[0]["subject"]
    # The next day's run: no second escalation of the same alerts, no repeat of the acknowledged one.
    r = dispatch.dispatch(wh, rpath, lpath, now=t0 + timedelta(hours=14), run_id="t14")
    assert r["decided"]["escalations"] == 0 and r["decided"]["alerts"] == 0
    # The outcome, later, on the same acknowledgement.
    out = subprocess.run(_cli("--warehouse", wh, "alerts", "ack", acked[0], "--by", "SI Verma", "--action", "patrol",
                              "--outcome", "cash_seized", "--note", "two mules stopped at the ATM"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert q(wh, "select action, outcome, note from alerts.acknowledgements where alert_id = %s", (acked[0],)) == [
        ("patrol", "cash_seized", "two mules stopped at the ATM")]


def test_silence_holds_alerts_back_and_records_them(wh, smtp, http, tmp_path):
    from hotspots.alerts import dispatch

    p = places(wh)
    rpath, lpath = write_config(tmp_path, smtp, http, p, flaky=False)
    t0 = datetime(2026, 3, 15, 6, 0, tzinfo=timezone.utc)
    dispatch.silence(wh, "SP", "raid under way", t0 - timedelta(hours=1), t0 + timedelta(days=1),
                     state=p["state"], district=p["district"])
    dispatch.dispatch(wh, rpath, lpath, now=t0, run_id="s0")
    assert smtp.to("district-a@localhost") == [] and http.at("/district-a") == []
    held = q(wh, "select distinct status from alerts.alerts where recipient = 'district-a'")
    assert held == [("silenced",)]
    assert smtp.to("district-b@localhost")  # other districts are not held


def test_bad_configuration_names_the_entry(wh, smtp, http, tmp_path):
    from hotspots.alerts import config

    p = places(wh)
    rpath, _ = write_config(tmp_path, smtp, http, p, flaky=False)
    doc = yaml.safe_load(open(rpath))
    doc["recipients"][3]["jurisdiction"]["district"] = "ATLANTIS"
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(config.ConfigError, match=r"entry district-b \(line \d+\): unknown district 'ATLANTIS'"):
        config.load_recipients(bad, wh)


def test_a_failing_task_sends_one_failure_notice(scored, smtp, http, tmp_path):
    p = places(scored)
    rpath, lpath = write_config(tmp_path, smtp, http, p, flaky=False)
    env = dict(os.environ, HOTSPOTS_ALERTS_RECIPIENTS=rpath)
    conf = {"warehouse": "no_such_warehouse_x", "recipients": rpath, "rules": lpath}
    proc = subprocess.run(["airflow", "dags", "test", "dispatch_alerts", "-c", json.dumps(conf)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    notices = http.at("/engineers")
    assert len(notices) == 1, (len(notices), (proc.stdout + proc.stderr)[-3000:])
    n = notices[0]["json"]
    assert "dispatch_alerts.decide" in n["title"] and "no_such_warehouse_x" in n["title"]
    assert "Try:" in n["message"] and "Log:" in n["message"]


def test_two_schedulers_deciding_at_once_decide_each_alert_once(wh, smtp, http, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from hotspots.alerts import dispatch

    p = places(wh)
    rpath, lpath = write_config(tmp_path, smtp, http, p, flaky=False)
    now = datetime(2026, 3, 15, 6, 0, tzinfo=timezone.utc)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda r: dispatch.decide(wh, rpath, lpath, now=now, run_id=r), ["a", "b"]))
    assert min(r["alerts"] for r in runs) == 0 and max(r["alerts"] for r in runs) > 0
    (n, keys), = q(wh, "select count(*), count(distinct idempotency_key) from alerts.alerts")
    assert n == keys == sum(r["alerts"] + r["digest"] + r["escalations"] + r["silenced"] for r in runs)
    assert q(wh, "select count(distinct run_id) from alerts.messages")[0][0] == 1


def test_money_trail_names_only_the_mules_active_in_its_window(wh):
    """A mule account of bank ZZZZ that received complaint money and withdrew in the top cell
    200 days before the forecast is named by a 365-day trail, not by the default 90-day one
    (nor by the decision's routing); the same account active 10 days before is named by both."""
    from hotspots import db
    from hotspots.alerts import config
    from hotspots.alerts.decide import money_trail, trail_since

    cell, fdate = q(wh, """select h3_cell, forecast_date from marts.hotspot_forecast
                           where horizon_days = 1 order by risk_rank limit 1""")[0]
    rules = config.load_rules()
    assert rules.money_trail_days == 90
    conn = db.connect(wh)
    try:
        with conn.cursor() as cur:
            def banks(days: int) -> set[str]:
                rules.money_trail_days = days
                return {b["bank"] for b in money_trail(cur, [cell], trail_since(rules, [fdate]))[cell]}

            before = banks(90)
            assert "ZZZZ" not in before and "ZZZY" not in before
            for bank, ago in (("ZZZZ", 200), ("ZZZY", 10)):
                at = datetime.combine(fdate - timedelta(days=ago), datetime.min.time(), timezone.utc)
                cur.execute("""insert into raw.transactions (txn_id, ack_no, layer, from_account, to_account,
                                   to_ifsc, amount_inr, txn_at, status, extract_date, first_extract_date,
                                   source_file, source_line)
                               values (%s, 'ACK-T', 1, 'AC-VICTIM', %s, %s, 50000, %s, 'COMPLETED', %s, %s,
                                       'test.csv', 1)""",
                            (f"TXN-{bank}", f"AC-{bank}", f"{bank}0000001", at, at.date(), at.date()))
                cur.execute("""insert into raw.withdrawals (withdrawal_id, account, channel, amount_inr,
                                   withdrawn_at, h3_cell, extract_date, first_extract_date, source_file,
                                   source_line)
                               values (%s, %s, 'ATM', 40000, %s, %s, %s, %s, 'test.csv', 1)""",
                            (f"WD-{bank}", f"AC-{bank}", at + timedelta(hours=3), cell, at.date(), at.date()))
            assert banks(90) == before | {"ZZZY"}
            assert banks(365) >= before | {"ZZZZ", "ZZZY"}
    finally:
        conn.rollback()
        conn.close()


def test_terminals_in_an_alert_count_the_cash_outs_of_the_trail_window(wh, monkeypatch):
    """The terminals an alert lists (content.load_context) count the cell's cash-outs within
    `money_trail_days` before the forecast date, as the money trail: a terminal used only 200
    days before is not listed by the 90-day window and is by a 365-day one; one used 10 days
    before is listed by both, with the cash-outs of its window only."""
    from hotspots import db
    from hotspots.alerts import config, content

    # Every terminal of the cell listed (the busiest come first, and only 8 are shown).
    monkeypatch.setattr(content, "TERMINALS_SHOWN", 10_000)
    cell, fdate = q(wh, """select h3_cell, forecast_date from marts.hotspot_forecast
                           where horizon_days = 1 order by risk_rank limit 1""")[0]
    rules = config.load_rules()
    alert = {"h3_cell": cell, "forecast_date": fdate}
    conn = db.connect(wh)
    try:
        with conn.cursor() as cur:
            def listed(days: int) -> dict[str, int]:
                rules.money_trail_days = days
                ctx = content.load_context(cur, [alert], rules, trail={cell: []})
                return {t["terminal_id"]: t["withdrawals"] for t in ctx["terminals"][cell]}

            for i, ago in enumerate((200, 10, 10, 200)):
                at = datetime.combine(fdate - timedelta(days=ago), datetime.min.time(), timezone.utc)
                terminal = "ATM-ZZ-OLD" if i == 0 else "ATM-ZZ-NEW"
                cur.execute("""insert into raw.withdrawals (withdrawal_id, account, channel, terminal_id, amount_inr,
                                   withdrawn_at, h3_cell, extract_date, first_extract_date, source_file, source_line)
                               values (%s, 'AC-ZZ', 'ATM', %s, 40000, %s, %s, %s, %s, 'test.csv', 1)""",
                            (f"WD-ZZ-{i}", terminal, at + timedelta(hours=3), cell, at.date(), at.date()))
            recent, year = listed(90), listed(365)
            assert "ATM-ZZ-OLD" not in recent and recent["ATM-ZZ-NEW"] == 2
            assert year["ATM-ZZ-OLD"] == 1 and year["ATM-ZZ-NEW"] == 3
    finally:
        conn.rollback()
        conn.close()
