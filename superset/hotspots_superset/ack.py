"""The acknowledgement page, registered inside Superset (BLUEPRINTS) at /hotspots/ack/: behind
Superset's login, an officer sees the alerts of their own jurisdiction (from superset/security.yml)
and records the action taken, and later the outcome with a note, into alerts.acknowledgements.
Writes go through the warehouse owner's connection (libpq environment), never the read-only role."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg2
import yaml
from flask import Blueprint, abort, g, redirect, render_template_string, request, url_for

blueprint = Blueprint("hotspots_ack", __name__, url_prefix="/hotspots")

ACTIONS = ("patrol", "bank_alerted", "account_frozen", "nothing_done")
OUTCOMES = ("cash_seized", "accounts_frozen", "nothing_found")
SECURITY = Path(os.environ.get("SUPERSET_SECURITY_FILE", Path(__file__).resolve().parents[1] / "security.yml"))

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Acknowledge alerts</title>
<style>
body { font-family: Inter, Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.critical { color: #b71c1c; font-weight: 600; } .high { color: #e65100; } .watch { color: #8d6e00; }
.msg { background: #e8f5e9; padding: 8px 12px; margin-bottom: 12px; }
form { display: flex; gap: 6px; align-items: center; }
</style></head><body>
<h2>Alerts of {{ scope_label }}</h2>
<p>Signed in as <b>{{ username }}</b>. <a href="/superset/dashboard/alerts-cases/">Alerts and cases dashboard</a></p>
{% if message %}<div class="msg" id="message">{{ message }}</div>{% endif %}
<table id="alerts">
<tr><th>Alert</th><th>Tier</th><th>Cell</th><th>District</th><th>Forecast</th><th>Expected</th><th>Status</th>
<th>Last acknowledgement</th><th>Record</th></tr>
{% for a in alerts %}
<tr data-alert-id="{{ a.alert_id }}">
<td>{{ a.alert_id }}<br><small>{{ a.kind }} to {{ a.recipient }}</small></td>
<td class="{{ a.tier }}">{{ a.tier }}</td><td>{{ a.h3_cell }}</td><td>{{ a.district }}, {{ a.state }}</td>
<td>{{ a.forecast_date }} (+{{ a.horizon_days }}d)</td><td>{{ '%.1f'|format(a.expected_withdrawals or 0) }}</td>
<td>{{ a.status }}</td>
<td class="ack">{% if a.action %}{{ a.action }}{% if a.outcome %} &rarr; {{ a.outcome }}{% endif %}
<br><small>{{ a.acknowledged_by }} {{ a.acknowledged_at }}{% if a.note %}: {{ a.note }}{% endif %}</small>{% else %}open{% endif %}</td>
<td><form method="post" action="{{ url_for('hotspots_ack.acknowledge', alert_id=a.alert_id) }}">
<input type="hidden" name="csrf_token" value="{{ csrf_token }}">
<select name="action">{% for x in actions %}<option value="{{ x }}" {% if x == a.action %}selected{% endif %}>{{ x }}</option>{% endfor %}</select>
<select name="outcome"><option value="">(outcome later)</option>{% for x in outcomes %}<option value="{{ x }}">{{ x }}</option>{% endfor %}</select>
<input name="note" placeholder="note" size="18">
<button type="submit">Save</button></form></td>
</tr>
{% else %}<tr><td colspan="9">No alerts in your jurisdiction.</td></tr>{% endfor %}
</table></body></html>"""


def _users() -> dict:
    cfg = yaml.safe_load(SECURITY.read_text())
    return {u["username"]: dict(u, acknowledge=cfg["kinds"][u["kind"]].get("acknowledge"))
            for u in cfg["users"]}


def _scope():
    """(sql condition, args, label) of the signed-in user's jurisdiction; 403 when none."""
    user = getattr(g, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if any(r.name == "Admin" for r in user.roles):
        return "true", [], "all jurisdictions"
    u = _users().get(user.username)
    if u is None or not u.get("acknowledge"):
        abort(403)
    level = u["acknowledge"]
    if level == "all":
        return "true", [], "all jurisdictions"
    if level == "state":
        return "a.state = %s", [u["state"]], u["state"]
    if level == "district":
        return "a.state = %s and a.district = %s", [u["state"], u["district"]], f"{u['district']}, {u['state']}"
    if level == "bank":
        return "a.bank = %s", [u["bank"]], f"bank {u['bank']}"
    abort(403)


def _conn():
    return psycopg2.connect(dbname=os.environ.get("WAREHOUSE", "hotspots"))


@blueprint.route("/ack/", methods=["GET"])
def page():
    scope = _scope()
    if scope is None:
        return redirect(f"/login/?next={request.path}")
    cond, args, label = scope
    from flask_wtf.csrf import generate_csrf

    conn = _conn()
    with conn, conn.cursor() as cur:
        cur.execute(f"""select a.alert_id, a.kind, a.recipient, a.tier, a.h3_cell, a.state, a.district,
                               a.forecast_date, a.horizon_days, a.expected_withdrawals, a.status,
                               k.action, k.outcome, k.acknowledged_by, k.acknowledged_at, k.note
                        from alerts.alerts a
                        left join lateral (select * from alerts.acknowledgements x where x.alert_id = a.alert_id
                                           order by x.acknowledged_at desc, x.ack_id desc limit 1) k on true
                        where {cond}
                        order by a.forecast_date desc, a.risk_rank nulls last, a.alert_id limit 500""", args)
        cols = [d[0] for d in cur.description]
        alerts = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    conn.close()
    return render_template_string(PAGE, alerts=alerts, scope_label=label, username=g.user.username,
                                  actions=ACTIONS, outcomes=OUTCOMES, csrf_token=generate_csrf(),
                                  message=request.args.get("message"))


@blueprint.route("/ack/<alert_id>", methods=["POST"])
def acknowledge(alert_id: str):
    scope = _scope()
    if scope is None:
        abort(401)
    cond, args, _ = scope
    action, outcome = request.form.get("action", ""), request.form.get("outcome") or None
    note = (request.form.get("note") or "").strip()[:1000] or None
    if action not in ACTIONS or (outcome is not None and outcome not in OUTCOMES):
        abort(400)
    conn = _conn()
    with conn, conn.cursor() as cur:
        cur.execute(f"select 1 from alerts.alerts a where a.alert_id = %s and {cond}", [alert_id, *args])
        if cur.fetchone() is None:
            abort(403)  # not an alert of this officer's jurisdiction (or no such alert)
        cur.execute("""insert into alerts.acknowledgements (alert_id, acknowledged_by, action, outcome, outcome_at, note)
                       values (%s, %s, %s, %s, case when %s::text is null then null else now() end, %s)""",
                    (alert_id, g.user.username, action, outcome, outcome, note))
    conn.close()
    return redirect(url_for("hotspots_ack.page", message=f"Recorded {action} for alert {alert_id}"))
