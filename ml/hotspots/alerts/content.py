"""What a message says: what, where, when, how sure, why, what to do; rendered from the
Jinja templates in alerts/templates/<language>/.

Per alert: the cell, the nearest India Post office and its PIN, district and state, a
Superset link filtered to the cell, the forecast window, expected withdrawals and P(any),
the explanation sentences of marts.hotspot_explanations, the terminals in the cell and its
ring-1 neighbours with their channels, and the banks whose mule accounts cashed out there.
Email gets HTML (Apprise derives the plain-text alternative from it) and the cell's map as
a PNG attachment; SMS one line under 160 characters; webhooks a JSON document.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from urllib.parse import quote

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from hotspots.alerts.config import TEMPLATES_DIR, Channel, Recipient, Rules

SMS_LIMIT = 159
TERMINALS_SHOWN = 8

_env: Environment | None = None


def env() -> Environment:
    global _env
    if _env is None:
        _env = Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), undefined=StrictUndefined,
                           autoescape=select_autoescape(enabled_extensions=("html",), default=False),
                           trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
        _env.filters["num"] = lambda x, d=1: f"{float(x):.{d}f}"
        _env.filters["pct"] = lambda x: f"{100 * float(x):.0f}%"
    return _env


def cell_link(rules: Rules, cell: str, dashboard: str = "district-drilldown") -> str:
    return f"{rules.superset_base_url}/superset/dashboard/{dashboard}/?h3_cell={quote(cell)}"


def load_context(cur, alerts: list[dict], rules: Rules, trail: dict | None = None) -> dict:
    """Everything the templates need about the cells of these alerts, read in bulk. ``trail``:
    the money trail per cell when the caller has read it (``decide.money_trail``). Terminals
    and banks both cover the `money_trail_days` before the earliest forecast date (the
    terminals' cash-outs through their extract date, as the trail: what a desk can act on now,
    at a cost that does not grow with the years of history)."""
    from hotspots.alerts.decide import arrived_since, money_trail, trail_since

    cells = sorted({a["h3_cell"] for a in alerts})
    dates = sorted({pd.Timestamp(a["forecast_date"]).date() for a in alerts})
    since = trail_since(rules, dates) if dates else None
    ctx: dict = {"explanations": defaultdict(list), "post_office": {}, "terminals": defaultdict(list),
                 "banks": defaultdict(list)}
    cur.execute("select to_regclass('marts.hotspot_explanations') is not null")
    if cur.fetchone()[0]:
        cur.execute("""select h3_cell, forecast_date, horizon_days, text from marts.hotspot_explanations
                       where h3_cell = any(%s) and forecast_date = any(%s) order by rank""", (cells, dates))
        for cell, d, h, text in cur.fetchall():
            ctx["explanations"][(cell, d, int(h))].append(text)
    cur.execute("""select c.h3_cell, p.office_name, p.pincode,
                          st_distance(c.geom::geography, st_centroid(p.geom)::geography) / 1000
                   from ref.h3_cells c
                   cross join lateral (select office_name, pincode, geom from ref.post_offices o
                                       order by o.geom <-> st_centroid(c.geom) limit 1) p
                   where c.h3_cell = any(%s)""", (cells,))
    for cell, office, pin, km in cur.fetchall():
        ctx["post_office"][cell] = {"name": office, "pincode": pin, "km": float(km)}
    cur.execute("""with around as (
                       select h3_cell as cell, h3_cell as near, true as inside from ref.h3_cells where h3_cell = any(%(cells)s)
                       union all
                       select h3_cell, neighbour, false from ref.h3_neighbours where k = 1 and h3_cell = any(%(cells)s))
                   select a.cell, w.terminal_id, w.channel, a.inside, count(*) as n, max(w.withdrawn_at) as last_at
                   from around a join raw.withdrawals w on w.h3_cell = a.near
                   where w.terminal_id is not null
                     and (%(since)s::timestamptz is null
                          or (w.withdrawn_at >= %(since)s and w.extract_date >= %(first)s::date))
                   group by 1, 2, 3, 4 order by 1, 4 desc, 5 desc, 2""",
                {"cells": cells, "since": since, "first": arrived_since(since) if since else None})
    for cell, terminal, channel, inside, n, last_at in cur.fetchall():
        if len(ctx["terminals"][cell]) < TERMINALS_SHOWN:
            ctx["terminals"][cell].append({"terminal_id": terminal, "channel": channel, "inside": bool(inside),
                                           "withdrawals": int(n), "last_at": last_at})
    if trail is None or any(c not in trail for c in cells):
        trail = money_trail(cur, cells, since)
    for cell in cells:
        ctx["banks"][cell] = list(trail.get(cell, []))
    return ctx


def item_view(a: dict, ctx: dict, rules: Rules) -> dict:
    """One alert as the templates and the webhook payload see it."""
    from hotspots.forecast.explain import format_inr

    d = pd.Timestamp(a["forecast_date"]).date()
    h = int(a["horizon_days"])
    end = d + timedelta(days=h - 1)
    po = ctx["post_office"].get(a["h3_cell"]) or {"name": "?", "pincode": "?", "km": float("nan")}
    return {
        "alert_id": a["alert_id"], "idempotency_key": a["idempotency_key"], "kind": a["kind"], "tier": a["tier"],
        "h3_cell": a["h3_cell"], "state": a["state"], "district": a["district"], "bank": a.get("bank"),
        "forecast_date": str(d), "window_end": str(end), "horizon_days": h,
        "window": str(d) if h == 1 else f"{d} to {end}",
        "expected_withdrawals": round(float(a["expected_withdrawals"]), 2), "p_any": round(float(a["p_any"]), 3),
        "risk_rank": int(a["risk_rank"]), "reasons": list(a.get("reasons") or []),
        "post_office": po["name"], "pincode": po["pincode"], "post_office_km": round(po["km"], 1),
        "link": cell_link(rules, a["h3_cell"]),
        "explanations": ctx["explanations"].get((a["h3_cell"], d, h), []),
        "terminals": [dict(t, last_at=str(pd.Timestamp(t["last_at"]).date())) for t in ctx["terminals"].get(a["h3_cell"], [])],
        "banks": [dict(b, amount_text=format_inr(b["amount"])) for b in ctx["banks"].get(a["h3_cell"], [])],
        "escalated_from": a.get("escalated_from"), "escalation_level": int(a.get("escalation_level") or 0),
        "ack": f"python -m hotspots.cli alerts ack {a['alert_id']} --by NAME --action patrol",
    }


def render(r: Recipient, ch: Channel, kind: str, items: list[dict], ctx: dict, rules: Rules,
           views: list[dict] | None = None) -> dict:
    """subject, text, html (email), payload (JSON for webhooks and the record), map_cells.
    ``views``: the items' :func:`item_view` when the caller has them (changed here)."""
    views = views if views is not None else [item_view(a, ctx, rules) for a in items]
    map_cells = []
    if ch.kind == "email" and kind != "digest":  # the digest is a list; alerts show their top cells on maps
        map_cells = list(dict.fromkeys(v["h3_cell"] for v in views))[:int(rules.raw.get("maps_per_email", 6))]
    for v in views:
        v["map"] = f"map-{v['h3_cell']}.png" if v["h3_cell"] in map_cells else None
    where = (f"{r.district}, {r.state}" if r.level == "district" else r.state if r.level == "state"
             else f"bank {r.bank}" if r.level == "bank" else "India")
    cases = f"{rules.superset_base_url}/superset/dashboard/alerts-cases/"
    shown = views[:int(rules.raw.get("max_items_per_message", 40))]  # the rest: counted, linked, in the payload
    data = {"recipient": r, "kind": kind, "items": shown, "n": len(views), "more": len(views) - len(shown),
            "where": where, "top": views[0], "forecast_date": views[0]["forecast_date"], "cases_link": cases}
    e, lang = env(), r.language
    subject = " ".join(e.get_template(f"{lang}/subject.txt.j2").render(**data).split())
    text = e.get_template(f"{lang}/message.txt.j2").render(**data).strip() + "\n"
    out = {"subject": subject, "text": text,
           "payload": {"recipient": r.name, "kind": kind, "language": lang, "subject": subject, "alerts": views}}
    if ch.kind == "email":
        out["html"] = e.get_template(f"{lang}/email.html.j2").render(**data)
        out["map_cells"] = map_cells
    elif ch.kind == "sms":
        sms = " ".join(e.get_template(f"{lang}/sms.txt.j2").render(**data).split())
        out["text"] = sms if len(sms) <= SMS_LIMIT else sms[:SMS_LIMIT - 1] + "…"
    return out
