"""`python -m hotspots.cli alerts ...`: dispatch, decide, deliver, ack, silence, check."""

from __future__ import annotations

import json

ACTIONS = ("patrol", "bank_alerted", "account_frozen", "nothing_done")
OUTCOMES = ("cash_seized", "accounts_frozen", "nothing_found")


def add_parser(sub) -> None:
    p = sub.add_parser("alerts", help="hotspot alerts: dispatch, ack, silence, check the configuration")
    s = p.add_subparsers(dest="alerts_cmd", required=True)
    for name, text in (("dispatch", "decide and deliver (what the dispatch_alerts DAG does)"),
                       ("decide", "decide and write the outbox only"), ("deliver", "send what is due in the outbox"),
                       ("check", "validate alerts/recipients.yml and config/alerts.yml")):
        c = s.add_parser(name, help=text)
        c.add_argument("--recipients", default=None, help="recipients file (default alerts/recipients.yml)")
        c.add_argument("--rules", default=None, help="rules file (default config/alerts.yml)")
        if name in ("dispatch", "decide"):
            c.add_argument("--now", default=None, help="the decision's clock, ISO time (default: now)")
            c.add_argument("--run-id", default=None)
        if name in ("dispatch", "deliver"):
            c.add_argument("--no-wait", action="store_true", help="do not wait for retries that are not due yet")
    a = s.add_parser("ack", help="acknowledge an alert (again to record its outcome)")
    a.add_argument("alert_id")
    a.add_argument("--by", required=True, help="who acknowledges")
    a.add_argument("--action", required=True, choices=ACTIONS)
    a.add_argument("--outcome", choices=OUTCOMES, default=None)
    a.add_argument("--note", default=None)
    si = s.add_parser("silence", help="hold alerts of a cell, district, state or bank back for a time range")
    si.add_argument("--by", required=True)
    si.add_argument("--reason", required=True)
    si.add_argument("--starts-at", default=None, help="ISO time (default now)")
    si.add_argument("--ends-at", required=True, help="ISO time")
    for k in ("h3-cell", "state", "district", "bank"):
        si.add_argument(f"--{k}", default=None)


def run(a, warehouse: str) -> int:
    from hotspots.alerts import config, dispatch

    cmd = a.alerts_cmd
    if cmd == "check":
        r = config.load_recipients(a.recipients, warehouse)
        config.load_rules(a.rules)
        print(f"alerts: {len(r.recipients)} recipients and {len(r.engineers)} engineers in {r.path}: valid")
    elif cmd == "dispatch":
        out = dispatch.dispatch(warehouse, a.recipients, a.rules, a.now, a.run_id, wait=not a.no_wait)
        print(json.dumps(out, default=str))
    elif cmd == "decide":
        print(json.dumps(dispatch.decide(warehouse, a.recipients, a.rules, a.now, a.run_id), default=str))
    elif cmd == "deliver":
        print(json.dumps(dispatch.deliver(warehouse, a.recipients, a.rules, wait=not a.no_wait), default=str))
    elif cmd == "ack":
        what = dispatch.acknowledge(warehouse, a.alert_id, a.by, a.action, a.outcome, a.note)
        print(f"alerts: {a.alert_id} {what} by {a.by}: {a.action}" + (f", outcome {a.outcome}" if a.outcome else ""))
    elif cmd == "silence":
        sid = dispatch.silence(warehouse, a.by, a.reason, a.starts_at, a.ends_at, a.h3_cell, a.state, a.district,
                               a.bank)
        print(f"alerts: silence {sid} recorded")
    return 0
