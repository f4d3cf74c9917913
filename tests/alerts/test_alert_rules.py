"""Tiers, routing, content and the failure notice, on hand-made rows (no database)."""

from __future__ import annotations

import pandas as pd

from hotspots.alerts import config, content, decide, failure
from hotspots.alerts.config import Channel, Recipient, Recipients


def rules(**over):
    r = config.load_rules()
    r.tiers = [
        {"name": "critical", "state_top": {1: 1}, "p_any": {1: 0.9}, "min_expected": {1: 1.0}},
        {"name": "high", "district_top": {1: 1}, "expected_withdrawals": {1: 2.0}, "min_expected": {1: 0.5}},
        {"name": "watch", "district_top": {1: 3}, "min_expected": {1: 0.1}},
    ]
    r.overrides = {}
    for k, v in over.items():
        setattr(r, k, v)
    return r


def frame():
    rows = [  # cell, state, district, expected, p_any, risk_rank
        ("c1", "S1", "D1", 5.0, 0.95, 1),   # top of S1 -> critical
        ("c2", "S1", "D2", 1.2, 0.60, 2),   # top of D2 -> high
        ("c3", "S1", "D1", 0.4, 0.30, 3),   # 2nd of D1, below high's floor -> watch
        ("c4", "S1", "D1", 0.05, 0.04, 4),  # under every floor -> none
        ("c5", "S2", "D9", 0.8, 0.92, 5),   # top of S2 but under critical's floor; top of D9 -> high
    ]
    return pd.DataFrame([dict(h3_cell=c, state=s, district=d, expected_withdrawals=e, p_any=p, risk_rank=k,
                              horizon_days=1, forecast_date=pd.Timestamp("2026-03-01").date())
                         for c, s, d, e, p, k in rows])


def test_tiers_first_match_with_floors():
    t = decide.assign_tiers(frame(), rules()).set_index("h3_cell")
    assert {k: v if isinstance(v, str) else None for k, v in t["tier"].items()} == {"c1": "critical", "c2": "high", "c3": "watch", "c4": None, "c5": "high"}
    assert "top 1 of S1" in t.loc["c1", "reasons"] and "P(any) >= 0.9" in t.loc["c1", "reasons"]


def test_override_per_jurisdiction_changes_the_threshold():
    r = rules(overrides={"S1/D2": {"high": {"district_top": {1: 0}, "expected_withdrawals": {1: 1.0}}}})
    t = decide.assign_tiers(frame(), r).set_index("h3_cell")
    assert t.loc["c2", "tier"] == "high" and t.loc["c2", "reasons"] == ["expected >= 1.0"]
    r = rules(overrides={"S1/D2": {"high": {"district_top": {1: 0}}}})
    assert decide.assign_tiers(frame(), r).set_index("h3_cell").loc["c2", "tier"] == "watch"


def _rec(name, level, state=None, district=None, bank=None, language="en", kind="email"):
    url = "mailto://127.0.0.1:1?from=a@localhost&to=b@localhost" if kind == "email" else "msg91://t@k/91980"
    return Recipient(name, level, state, district, bank, language, (Channel(kind, url, kind, config.KINDS),))


def test_routing_by_jurisdiction_and_bank():
    recs = Recipients((_rec("nat", "national"), _rec("s1", "state", "S1"), _rec("d1", "district", "S1", "D1"),
                       _rec("d2", "district", "S1", "D2"), _rec("hdfc", "bank", bank="HDFC"),
                       _rec("sbin", "bank", bank="SBIN")), ())
    got = {r.name for r, _ in decide.routes(recs, "S1", "D1", ["SBIN"])}
    assert got == {"nat", "s1", "d1", "sbin"}
    assert {r.name for r, _ in decide.routes(recs, "S2", "D9", [])} == {"nat"}


def _items(n=2, language="en"):
    ctx = {"explanations": {("c1", pd.Timestamp("2026-03-01").date(), 1): ["3 mule accounts cashed out here"]},
           "post_office": {"c1": {"name": "Jamtara", "pincode": "815351", "km": 0.4}},
           "terminals": {"c1": [{"terminal_id": "ATM001", "channel": "ATM", "inside": True, "withdrawals": 4,
                                 "last_at": "2026-02-27"}]},
           "banks": {"c1": [{"bank": "SBIN", "accounts": 2, "amount": 250000.0}]}}
    items = [dict(alert_id=f"id{i}", idempotency_key=f"k{i}", kind="alert", tier="critical",
                  h3_cell="c1" if i == 0 else f"c{i + 1}", state="JHARKHAND", district="JAMTARA",
                  forecast_date=pd.Timestamp("2026-03-01").date(), horizon_days=1 if i == 0 else 7,
                  expected_withdrawals=4.26, p_any=0.912, risk_rank=i + 1, reasons=["top 3 of JHARKHAND"])
             for i in range(n)]
    return items, ctx


def test_email_content_has_what_where_when_why_and_what_to_do():
    items, ctx = _items()
    r = _rec("jamtara", "district", "JHARKHAND", "JAMTARA")
    m = content.render(r, r.channels[0], "alert", items, ctx, config.load_rules())
    assert "c1" in m["subject"] and "JAMTARA" in m["subject"]
    for text in (m["text"], m["html"]):
        assert "Jamtara" in text and "815351" in text and "JAMTARA" in text
        assert "3 mule accounts cashed out here" in text and "ATM001" in text and "SBIN" in text
        assert "2026-03-01 to 2026-03-07" in text and "4.3" in text and "91%" in text
        assert "district-drilldown/?h3_cell=c1" in text and "alerts ack id0" in text
    assert m["map_cells"] == ["c1", "c2"]
    digest = content.render(r, r.channels[0], "digest", items, ctx, config.load_rules())
    assert digest.get("map_cells", []) == []
    assert m["payload"]["alerts"][0]["banks"][0]["amount_text"] == "₹2,50,000"


def test_sms_is_one_line_under_160_characters_in_both_languages():
    items, ctx = _items(n=9)
    for lang in ("en", "hi"):
        r = _rec("jamtara", "district", "JHARKHAND", "JAMTARA", language=lang, kind="sms")
        m = content.render(r, r.channels[0], "escalation", items, ctx, config.load_rules())
        assert len(m["text"]) < 160 and "\n" not in m["text"], m["text"]
        assert "c1" in m["text"] and "815351" in m["text"]
    assert "हॉटस्पॉट" in m["text"]


def test_hindi_email():
    items, ctx = _items()
    r = _rec("jamtara", "district", "JHARKHAND", "JAMTARA", language="hi")
    m = content.render(r, r.channels[0], "alert", items, ctx, config.load_rules())
    assert "हॉटस्पॉट" in m["subject"] and "डाकघर" in m["html"] and "815351" in m["html"]


def test_failure_message_names_dag_task_warehouse_try_and_log():
    class TI:
        dag_id, task_id, try_number, run_id, log_url = "score_hotspots", "score", 2, "manual__x", None

    subject, body = failure.failure_message({"task_instance": TI(), "params": {"warehouse": "wh1"},
                                             "exception": ValueError("boom")})
    assert "score_hotspots.score" in subject and "wh1" in subject and "try 2" in subject
    assert "ValueError: boom" in body and "task_id=score" in body and "attempt=2" in body
