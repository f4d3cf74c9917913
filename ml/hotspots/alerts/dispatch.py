"""Entry points the DAG, the command line, the tests and the bench call."""

from __future__ import annotations

from datetime import datetime, timezone

from hotspots import db
from hotspots.alerts import config, store
from hotspots.errors import BadRequest


def _now(now) -> datetime:
    if now in (None, ""):
        return datetime.now(timezone.utc)
    t = now if isinstance(now, datetime) else datetime.fromisoformat(str(now))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def decide(warehouse: str, recipients: str | None = None, rules: str | None = None, now=None,
           run_id: str | None = None, log=print) -> dict:
    """Validates the configuration, then decides and writes the outbox (one transaction)."""
    from hotspots.alerts import decide as d

    rec = config.load_recipients(recipients, warehouse)
    rl = config.load_rules(rules)
    conn = db.connect(warehouse)
    try:
        store.ensure_schema(conn)
        return d.decide(conn, rec, rl, now=_now(now), run_id=run_id, warehouse=warehouse, log=log)
    finally:
        conn.close()


def deliver(warehouse: str, recipients: str | None = None, rules: str | None = None, wait: bool = True,
            log=print) -> dict:
    """Sends what is due in the outbox (and waits for the retries when ``wait``)."""
    from hotspots.alerts.deliver import Dispatcher

    rec = config.load_recipients(recipients, warehouse)
    rl = config.load_rules(rules)
    conn = db.connect(warehouse)
    try:
        store.ensure_schema(conn)
    finally:
        conn.close()
    return Dispatcher(warehouse, rec, rl, log=log).run(wait=wait)


def dispatch(warehouse: str, recipients: str | None = None, rules: str | None = None, now=None,
             run_id: str | None = None, wait: bool = True, log=print) -> dict:
    decided = decide(warehouse, recipients, rules, now, run_id, log)
    sent = deliver(warehouse, recipients, rules, wait, log)
    return {"decided": decided, "delivered": sent}


def acknowledge(warehouse: str, alert_id: str, by: str, action: str, outcome: str | None = None,
                note: str | None = None, now=None) -> str:
    """Records an acknowledgement (or, for an acknowledged alert, its outcome)."""
    conn = db.connect(warehouse)
    try:
        store.ensure_schema(conn)
        with conn, conn.cursor() as cur:
            cur.execute("select 1 from alerts.alerts where alert_id = %s", (alert_id,))
            if cur.fetchone() is None:
                raise BadRequest(f"alerts ack: no alert {alert_id}")
            cur.execute("select ack_id from alerts.acknowledgements where alert_id = %s order by ack_id desc limit 1",
                        (alert_id,))
            row = cur.fetchone()
            t = _now(now)
            if row is None:
                cur.execute("""insert into alerts.acknowledgements (alert_id, acknowledged_by, acknowledged_at, action,
                                                                   outcome, outcome_at, note)
                               values (%s, %s, %s, %s, %s, %s, %s)""",
                            (alert_id, by, t, action, outcome, t if outcome else None, note))
                return "acknowledged"
            cur.execute("""update alerts.acknowledgements set action = %s,
                               outcome = coalesce(%s, outcome),
                               outcome_at = case when %s is not null then %s else outcome_at end,
                               note = coalesce(%s, note)
                           where ack_id = %s""", (action, outcome, outcome, t, note, row[0]))
            return "updated"
    finally:
        conn.close()


def silence(warehouse: str, by: str, reason: str, starts_at, ends_at, h3_cell=None, state=None, district=None,
            bank=None) -> int:
    conn = db.connect(warehouse)
    try:
        store.ensure_schema(conn)
        with conn, conn.cursor() as cur:
            cur.execute("""insert into alerts.silences (source, h3_cell, state, district, bank, starts_at, ends_at,
                                                        created_by, reason)
                           values ('command', %s, %s, %s, %s, %s, %s, %s, %s) returning silence_id""",
                        (h3_cell, state, district, bank, _now(starts_at), _now(ends_at), by, reason))
            return cur.fetchone()[0]
    finally:
        conn.close()
