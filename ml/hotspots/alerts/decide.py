"""Which hotspots deserve an alert, for whom: tiers, routing, repeats, silences, caps,
escalation; and the outbox written in the same transaction as the decisions.

One call of :func:`decide` is one transaction under an advisory lock: it reads the latest
forecast (marts.hotspot_forecast), gives each (cell, horizon) a tier (config/alerts.yml),
routes it to the recipients whose jurisdiction holds it (district, state, national; a bank
liaison only for cells its mule accounts fed), and inserts one alerts.alerts row per
(cell, forecast date, horizon, recipient, kind) with ``on conflict do nothing`` on the
idempotency key, so a re-run, a retry or a second scheduler decides nothing twice. The
new rows are grouped per recipient and kind into messages (alerts.messages, one per
channel), rendered, in the same transaction: what is decided is in the outbox, or neither.

The clock is the parameter ``now`` (tests move it; the DAG passes the run's time).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pandas as pd

from hotspots import db
from hotspots.alerts import content
from hotspots.alerts.config import Recipient, Recipients, Rules

IST = timezone(timedelta(hours=5, minutes=30))
POLICE = ("district", "state", "national")


def alert_key(cell: str, forecast_date, horizon: int, recipient: str, kind: str) -> str:
    return f"{cell}|{pd.Timestamp(forecast_date).date()}|{int(horizon)}|{recipient}|{kind}"


def short_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- tiers -------------------------------------------------------------------------------


def _threshold(rules: Rules, tier: dict, key: str, h: int, state, district):
    """A tier's number for horizon h, with the jurisdiction's override when there is one."""
    value = (tier.get(key) or {}).get(h, (tier.get(key) or {}).get(str(h)))
    for scope in (state, f"{state}/{district}"):
        o = ((rules.overrides.get(scope) or {}).get(tier["name"]) or {}).get(key)
        if o is not None:
            value = o.get(h, o.get(str(h), value)) if isinstance(o, dict) else o
    return value


def assign_tiers(fc: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Adds state_rank, district_rank, tier (or None) and reasons to forecast rows."""
    fc = fc.copy()
    fc["state_rank"] = fc.groupby(["horizon_days", "state"], dropna=False)["risk_rank"].rank(method="first")
    fc["district_rank"] = fc.groupby(["horizon_days", "state", "district"], dropna=False)["risk_rank"].rank(
        method="first")
    tiers, reasons = [None] * len(fc), [[] for _ in range(len(fc))]
    for i, r in enumerate(fc.itertuples(index=False)):
        h = int(r.horizon_days)
        for t in rules.tiers:
            def th(key, t=t, h=h, r=r):
                return _threshold(rules, t, key, h, r.state, r.district)

            floor = th("min_expected")
            if floor is not None and r.expected_withdrawals < floor:
                continue
            why = []
            if th("state_top") is not None and r.state_rank <= th("state_top"):
                why.append(f"top {int(th('state_top'))} of {r.state}")
            if th("district_top") is not None and r.district_rank <= th("district_top"):
                why.append(f"top {int(th('district_top'))} of {r.district}")
            if th("p_any") is not None and r.p_any >= th("p_any"):
                why.append(f"P(any) >= {th('p_any')}")
            if th("expected_withdrawals") is not None and r.expected_withdrawals >= th("expected_withdrawals"):
                why.append(f"expected >= {th('expected_withdrawals')}")
            if why:
                tiers[i], reasons[i] = t["name"], why
                break
    fc["tier"], fc["reasons"] = tiers, reasons
    return fc


# --- reading the warehouse ---------------------------------------------------------------


def load_forecast(cur, rules: Rules) -> pd.DataFrame:
    cur.execute("select to_regclass('marts.hotspot_forecast') is not null")
    if not cur.fetchone()[0]:
        return pd.DataFrame()
    cur.execute("""select h3_cell, forecast_date, horizon_days, issued_at, expected_withdrawals, p_any, risk_rank,
                          model_version, coalesce(state, '?') as state, coalesce(district, '?') as district
                   from marts.hotspot_forecast where horizon_days = any(%s)""", (rules.horizons,))
    cols = [d[0] for d in cur.description]
    return pd.DataFrame(cur.fetchall(), columns=cols)


def trail_since(rules: Rules, forecast_dates) -> datetime:
    """Start of the money trail's window: `money_trail_days` (config/alerts.yml) before the
    earliest forecast date, at 00:00 IST."""
    first = min(pd.Timestamp(d).date() for d in forecast_dates)
    return datetime.combine(first - timedelta(days=rules.money_trail_days), datetime.min.time(), IST)


def arrived_since(since: datetime) -> str:
    """The first extract date that can hold a record dated at or after ``since``: the ingest
    quarantines a record dated after the end of its extract's IST day plus
    `future_tolerance_minutes` (config/ingest.yml; expectations `future_timestamp`), and a stored
    row's time and extract_date come from the same delivery, so a record of ``since`` or later
    is in an extract dated at most a day (and the tolerance) before. A bound on
    raw.*.extract_date (indexed, in arrival order on disk) that selects nothing the time window
    would not: the window's rows are read by date, not every row of the accounts or cells."""
    from hotspots import settings

    tol_days = -(-settings.ingest_config().future_tolerance_minutes // 1440)
    return (since.astimezone(IST).date() - timedelta(days=1 + tol_days)).isoformat()


def money_trail(cur, cells: list[str], since: datetime | None = None) -> dict[str, list[dict]]:
    """Per cell (every cell asked for), the banks (4-letter IFSC prefix of the receiving branch)
    whose mule accounts cashed out there: accounts that withdrew in the cell and received complaint money (the
    money trail), with the number of such accounts and the money they received, most
    accounts first. The transactions are summed per account before the join (an account
    that withdrew in several cells would otherwise repeat all its transactions per cell).
    ``since`` (:func:`trail_since`): only withdrawals and transfers from then on, so the trail
    names the mules active lately; both read through their extract date (:func:`arrived_since`),
    so the cost is the window's rows whatever the years of history (at national scale over
    180 days, 3.9 s through every transfer the accounts ever received, 1.4 s by extract date)."""
    if not cells:
        return {}
    first = arrived_since(since) if since is not None else None
    cur.execute("""with w as (select distinct account, h3_cell from raw.withdrawals
                              where h3_cell = any(%(cells)s)
                                and (%(since)s::timestamptz is null
                                     or (withdrawn_at >= %(since)s and extract_date >= %(first)s::date))),
                        t as (select to_account, left(to_ifsc, 4) as bank, sum(amount_inr) as amount
                              from raw.transactions where to_account in (select account from w)
                                and (%(since)s::timestamptz is null
                                     or (txn_at >= %(since)s and extract_date >= %(first)s::date))
                              group by 1, 2)
                   select w.h3_cell, t.bank, count(distinct t.to_account) as accounts, sum(t.amount) as amount
                   from w join t on t.to_account = w.account
                   group by 1, 2 order by 1, 3 desc, 2""", {"cells": cells, "since": since, "first": first})
    out: dict[str, list[dict]] = {c: [] for c in cells}  # every cell asked for, with or without banks
    for cell, bank, accounts, amount in cur.fetchall():
        out[cell].append({"bank": bank, "accounts": int(accounts), "amount": float(amount or 0)})
    return out


def cell_banks(cur, cells: list[str], trail: dict | None = None) -> dict[str, list[str]]:
    """Banks whose mule accounts cashed out in each cell (see :func:`money_trail`), by name."""
    trail = trail if trail is not None else money_trail(cur, cells)
    return {cell: sorted(b["bank"] for b in banks) for cell, banks in trail.items()}


def _history(cur, now: datetime, rules: Rules):
    """Earlier alerts: best tier per (cell, horizon, recipient) within the repeat window, and
    which were acknowledged within the quiet window."""
    cur.execute("""select h3_cell, horizon_days, recipient, tier from alerts.alerts
                   where kind in ('alert', 'escalation') and status <> 'silenced'
                     and created_at > %s - make_interval(days => %s) and created_at <= %s""",
                (now, rules.repeat_after_days, now))
    alerted: dict[tuple, int] = {}
    for cell, h, rec, tier in cur.fetchall():
        k = (cell, int(h), rec)
        alerted[k] = min(alerted.get(k, 99), rules.tier_order(tier))
    cur.execute("""select a.h3_cell, a.horizon_days, a.recipient, a.jurisdiction_level
                   from alerts.acknowledgements k join alerts.alerts a using (alert_id)
                   where k.acknowledged_at > %s - make_interval(days => %s)""", (now, rules.ack_quiet_days))
    acked_police, acked_rec = set(), set()
    for cell, h, rec, level in cur.fetchall():
        acked_rec.add((cell, int(h), rec))
        if level in POLICE:
            acked_police.add((cell, int(h)))
    return alerted, acked_police, acked_rec


def _sync_config_silences(cur, rules: Rules) -> None:
    for s in rules.silences:
        cur.execute("""insert into alerts.silences (source, h3_cell, state, district, bank, starts_at, ends_at,
                                                    created_by, reason)
                       select 'config', %(h3_cell)s, %(state)s, %(district)s, %(bank)s, %(starts_at)s, %(ends_at)s,
                              %(created_by)s, %(reason)s
                       where not exists (select 1 from alerts.silences where source = 'config'
                           and h3_cell is not distinct from %(h3_cell)s and state is not distinct from %(state)s
                           and district is not distinct from %(district)s and bank is not distinct from %(bank)s
                           and starts_at = %(starts_at)s and ends_at = %(ends_at)s)""",
                    {"h3_cell": s.get("h3_cell"), "state": s.get("state"), "district": s.get("district"),
                     "bank": s.get("bank"), "starts_at": s["starts_at"], "ends_at": s["ends_at"],
                     "created_by": s.get("created_by", "config/alerts.yml"), "reason": s.get("reason", "")})


def _silences(cur, now: datetime) -> list[tuple]:
    cur.execute("""select silence_id, h3_cell, state, district, bank from alerts.silences
                   where starts_at <= %s and ends_at > %s order by silence_id""", (now, now))
    return cur.fetchall()


def _silenced_by(silences, cell, state, district, bank) -> int | None:
    for sid, s_cell, s_state, s_district, s_bank in silences:
        if s_cell and s_cell != cell:
            continue
        if s_district and (s_district != district or (s_state and s_state != state)):
            continue
        if s_state and not s_district and s_state != state:
            continue
        if s_bank and s_bank != bank:
            continue
        return sid
    return None


# --- routing -----------------------------------------------------------------------------


def _route_index(recipients: Recipients) -> dict:
    """Recipients by what they watch: one dictionary look-up per cell instead of a scan."""
    idx: dict = defaultdict(list)
    for i, r in enumerate(recipients.recipients):
        key = {"national": ("national",), "state": ("state", r.state), "district": ("district", r.state, r.district),
               "bank": ("bank", r.bank)}.get(r.level)
        if key:
            idx[key].append((i, r))
    return idx


def routes(recipients: Recipients, state: str, district: str, banks: list[str],
           index: dict | None = None) -> list[tuple[Recipient, str | None]]:
    """The recipients whose jurisdiction holds a cell (with the bank for bank liaisons), in
    the order of the recipients file. ``index``: :func:`_route_index` of the recipients."""
    idx = index if index is not None else _route_index(recipients)
    found = [(i, r, None) for key in (("national",), ("state", state), ("district", state, district))
             for i, r in idx.get(key, [])]
    found += [(i, r, r.bank) for b in dict.fromkeys(banks) for i, r in idx.get(("bank", b), [])]
    return [(r, bank) for _, r, bank in sorted(found, key=lambda x: x[0])]


# --- the decision ------------------------------------------------------------------------


def decide(conn, recipients: Recipients, rules: Rules, now: datetime | None = None, run_id: str | None = None,
           warehouse: str = "", log=print) -> dict:
    """Decides and writes the outbox in one transaction; returns the run's counts."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    run_id = run_id or f"manual__{now.strftime('%Y%m%dT%H%M%S')}__{uuid.uuid4().hex[:6]}"
    counts = {"run_id": run_id, "alerts": 0, "escalations": 0, "digest": 0, "silenced": 0, "capped": 0,
              "repeats_skipped": 0, "acknowledged_skipped": 0, "messages": 0}
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('hotspots.alerts.decide'))")
        # The money trail's plan looks expensive enough for JIT compilation, which then costs
        # more (about a second) than the query; nothing here gains from it.
        cur.execute("set local jit = off")
        fc = load_forecast(cur, rules)
        if fc.empty:
            conn.commit()
            log("alerts: no forecast in marts.hotspot_forecast; nothing to decide")
            return counts
        fc = assign_tiers(fc, rules)
        tiered = fc[fc["tier"].notna()].sort_values(["horizon_days", "risk_rank"])
        trail = money_trail(cur, sorted(tiered["h3_cell"].unique().tolist()),
                            trail_since(rules, tiered["forecast_date"]) if len(tiered) else None)
        banks = cell_banks(cur, [], trail)
        alerted, acked_police, acked_rec = _history(cur, now, rules)
        _sync_config_silences(cur, rules)
        silences = _silences(cur, now)
        day_start = datetime.combine(now.astimezone(IST).date(), datetime.min.time(), IST)
        cur.execute("""select recipient, count(*) from alerts.alerts where kind in ('alert', 'escalation')
                       and status <> 'silenced' and created_at >= %s and created_at <= %s group by 1""",
                    (day_start, now))
        sent_today = defaultdict(int, dict(cur.fetchall()))
        forecast_date = fc["forecast_date"].iloc[0]
        issued_at = fc["issued_at"].max()

        rows: list[dict] = []

        def add(r: Recipient, bank, f, kind, escalated_from=None, level=0):
            key = alert_key(f.h3_cell, f.forecast_date, f.horizon_days, r.name, kind)
            sid = _silenced_by(silences, f.h3_cell, f.state, f.district, bank)
            rows.append({"alert_id": short_id(key), "idempotency_key": key, "run_id": run_id, "h3_cell": f.h3_cell,
                         "forecast_date": f.forecast_date, "horizon_days": int(f.horizon_days), "recipient": r.name,
                         "jurisdiction_level": r.level, "state": f.state, "district": f.district, "bank": bank,
                         "kind": kind, "tier": f.tier, "expected_withdrawals": float(f.expected_withdrawals),
                         "p_any": float(f.p_any), "risk_rank": int(f.risk_rank),
                         "status": "silenced" if sid else "pending", "reasons": list(f.reasons),
                         "language": r.language, "escalated_from": escalated_from, "escalation_level": level,
                         "silence_id": sid, "created_at": now})

        # 1. New alerts and digest lines.
        index = _route_index(recipients)
        for f in tiered.itertuples(index=False):
            order = rules.tier_order(f.tier)
            for r, bank in routes(recipients, f.state, f.district, banks.get(f.h3_cell, []), index):
                spec = rules.levels.get(r.level, {})
                if f.tier in spec.get("alert", []):
                    k = (f.h3_cell, int(f.horizon_days), r.name)
                    if (r.level in POLICE and (f.h3_cell, int(f.horizon_days)) in acked_police) or k in acked_rec:
                        counts["acknowledged_skipped"] += 1
                        continue
                    if alerted.get(k, 99) <= order:
                        counts["repeats_skipped"] += 1
                        continue
                    kind = "alert"
                    if not _silenced_by(silences, f.h3_cell, f.state, f.district, bank):
                        if sent_today[r.name] >= rules.daily_cap:
                            kind = "digest"
                            counts["capped"] += 1
                        else:
                            sent_today[r.name] += 1
                    add(r, bank, f, kind)
                elif f.tier in spec.get("digest", []):
                    add(r, bank, f, "digest")

        # 2. Escalation of unacknowledged alerts whose cell persists or grew.
        current = {(f.h3_cell, int(f.horizon_days)): f for f in tiered.itertuples(index=False)}
        cur.execute("""select a.alert_id, a.h3_cell, a.horizon_days, a.forecast_date, a.recipient,
                              a.jurisdiction_level, a.state, a.district, a.tier, a.escalation_level,
                              a.created_at  -- the decision's clock (`now`), as every time compared here
                       from alerts.alerts a
                       where a.kind in ('alert', 'escalation') and a.jurisdiction_level in ('district', 'state')
                         and a.status in ('sent', 'dead_letter') and a.created_at <= %s
                         and not exists (select 1 from alerts.alerts e where e.escalated_from = a.alert_id)
                         and not exists (select 1 from alerts.acknowledgements k where k.alert_id = a.alert_id)""",
                    (now,))
        for aid, cell, h, fdate, _rec, level, state, _district, tier, elevel, since in cur.fetchall():
            hours = rules.escalation_hours.get(level)
            if hours is None or since + timedelta(hours=float(hours)) > now:
                continue
            if (cell, int(h)) in acked_police:
                continue
            f = current.get((cell, int(h)))
            if f is None or rules.tier_order(f.tier) > rules.tier_order(tier):
                continue  # neither persists nor grew
            up = [r for r in recipients.recipients if level == "district" and r.level == "state" and r.state == state]
            if not up:
                up = [r for r in recipients.recipients if r.level == "national"]
            f = f._replace(forecast_date=fdate)  # the escalation belongs to the alert it escalates
            for r in up:
                if alerted.get((cell, int(h), r.name), 99) <= rules.tier_order(f.tier):
                    continue  # that level already has it
                add(r, None, f, "escalation", escalated_from=aid, level=int(elevel) + 1)

        # 3. What is new (a re-run finds none), its outbox, then both written (idempotent).
        new = _new(cur, rows)
        for a in new:
            if a["status"] == "silenced":
                counts["silenced"] += 1
            else:
                counts[{"alert": "alerts", "escalation": "escalations", "digest": "digest"}[a["kind"]]] += 1
        by_rec = {r.name: r for r in recipients.recipients}
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for a in new:
            if a["status"] != "silenced":
                groups[(a["recipient"], a["kind"])].append(a)
        out = _Outbox()
        if groups:
            ctx = content.load_context(cur, [a for g in groups.values() for a in g], rules, trail=trail)
            for (rec_name, kind), items in sorted(groups.items()):
                counts["messages"] += _outbox(out, by_rec[rec_name], kind, items, ctx, rules, run_id, now)
        out.write(cur, new)
        cur.execute("""insert into alerts.runs (run_id, warehouse, forecast_date, issued_at, decided_at, n_alerts,
                                                n_escalations, n_digest, n_silenced, n_capped, n_messages)
                       values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                       on conflict (run_id) do update set n_alerts = alerts.runs.n_alerts + excluded.n_alerts,
                           n_escalations = alerts.runs.n_escalations + excluded.n_escalations,
                           n_digest = alerts.runs.n_digest + excluded.n_digest,
                           n_silenced = alerts.runs.n_silenced + excluded.n_silenced,
                           n_capped = alerts.runs.n_capped + excluded.n_capped,
                           n_messages = alerts.runs.n_messages + excluded.n_messages""",
                    (run_id, warehouse, forecast_date, issued_at, now, counts["alerts"], counts["escalations"],
                     counts["digest"], counts["silenced"], counts["capped"], counts["messages"]))
    conn.commit()
    log(f"alerts: decided for forecast {pd.Timestamp(forecast_date).date()} at {now.isoformat()}: "
        f"{counts['alerts']} alerts, {counts['escalations']} escalations, {counts['digest']} digest lines, "
        f"{counts['silenced']} silenced, {counts['capped']} over the daily cap (to the digest), "
        f"{counts['repeats_skipped']} repeats and {counts['acknowledged_skipped']} acknowledged skipped; "
        f"{counts['messages']} messages in the outbox")
    return counts


_ALERT_COLS = ["alert_id", "idempotency_key", "run_id", "h3_cell", "forecast_date", "horizon_days", "recipient",
               "jurisdiction_level", "state", "district", "bank", "kind", "tier", "expected_withdrawals", "p_any",
               "risk_rank", "status", "reasons", "language", "escalated_from", "escalation_level", "silence_id",
               "created_at", "message_id", "last_error"]


def _new(cur, rows: list[dict]) -> list[dict]:
    """The decisions not taken yet (a re-run gets none), each once. Read under the decision's
    advisory lock, so nothing inserts alerts between this and the write."""
    seen, unique = set(), []
    for r in rows:  # a run may route the same cell twice to one recipient (e.g. two banks): once
        if r["idempotency_key"] not in seen:
            seen.add(r["idempotency_key"])
            unique.append(r)
    if not unique:
        return []
    cur.execute("select alert_id from alerts.alerts where alert_id = any(%s)", ([r["alert_id"] for r in unique],))
    taken = {a for (a,) in cur.fetchall()}
    return [r for r in unique if r["alert_id"] not in taken]


class _Outbox:
    """The messages of one decision, written with its new alerts at the end (same transaction)."""

    def __init__(self):
        self.rows: list[tuple] = []
        self.links: list[tuple] = []
        self.first: dict[str, str] = {}  # alert_id -> the message it points to (its first channel's)
        self.unsendable: dict[str, str] = {}  # alert_id -> why no channel takes it

    def write(self, cur, new: list[dict]) -> None:
        """The new alerts (each with the message that carries it, or dead-lettered when no
        channel takes it), the messages and their links: COPY into temporary tables, then one
        ``insert ... on conflict do nothing`` per table (a key already there is left as it is)."""
        if not new:
            return
        alerts = []
        for a in new:
            a = dict(a, message_id=self.first.get(a["alert_id"]))
            if a["alert_id"] in self.unsendable:
                a.update(status="dead_letter", last_error=self.unsendable[a["alert_id"]])
            alerts.append(tuple(a.get(c) for c in _ALERT_COLS))
        _copy_insert(cur, "alerts.alerts", _ALERT_COLS, alerts)
        _copy_insert(cur, "alerts.messages", _MESSAGE_COLS, self.rows)
        _copy_insert(cur, "alerts.message_alerts", ["message_id", "alert_id"], self.links)


_MESSAGE_COLS = ["message_id", "run_id", "recipient", "channel", "channel_kind", "kind", "language", "subject",
                 "body_text", "body_html", "payload", "map_cells", "forecast_date"]


def _copy_insert(cur, table: str, columns: list[str], rows: list[tuple]) -> None:
    if not rows:
        return
    temp = "new_" + table.split(".")[1]
    cur.execute(f"create temp table {temp} (like {table} including defaults) on commit drop")
    db.copy_rows(cur, temp, columns, rows)
    cols = ", ".join(columns)
    cur.execute(f"insert into {table} ({cols}) select {cols} from {temp} on conflict do nothing; drop table {temp}")


def _outbox(out: _Outbox, r: Recipient, kind: str, items: list[dict], ctx, rules: Rules, run_id: str, now) -> int:
    """One message per channel of the recipient that takes this kind, carrying every item
    (added to ``out``, written by its ``write``)."""
    items = sorted(items, key=lambda a: (rules.tier_order(a["tier"]), a["horizon_days"], a["risk_rank"]))
    ids = [a["alert_id"] for a in items]
    rows = []
    views = [content.item_view(a, ctx, rules) for a in items]  # once per group, whatever the channels
    rendered: dict[str, tuple] = {}  # per channel kind: a desk's two mailboxes get the same message
    for ch in r.channels_for(kind):
        if ch.kind not in rendered:
            msg = content.render(r, ch, kind, items, ctx, rules, views=[dict(v) for v in views])
            rendered[ch.kind] = (msg, json.dumps(msg["payload"], default=str))
        msg, payload = rendered[ch.kind]
        mid = short_id(f"{run_id}|{r.name}|{kind}|{ch.name}|" + ",".join(ids))
        rows.append((mid, run_id, r.name, ch.name, ch.kind, kind, r.language, msg["subject"], msg["text"],
                     msg.get("html"), payload, msg.get("map_cells", []), items[0]["forecast_date"]))
        out.links += [(mid, a) for a in ids]
    if not rows:  # no channel takes this kind: nothing will carry these alerts
        out.unsendable.update(dict.fromkeys(ids, f"recipient {r.name} has no channel tagged {kind}"))
        return 0
    out.rows += rows
    out.first.update(dict.fromkeys(ids, rows[0][0]))
    return len(rows)
