"""Alerts: decide which hotspots deserve an alert, write them to an outbox, deliver them
through Apprise exactly once per (cell, forecast date, horizon, recipient, kind).

Modules: store (schema, outbox), config (recipients.yml and config/alerts.yml), decide
(rules, routing, silences, caps, escalation), content (templates, maps), deliver
(claims, retries, dead letters), failure (the DAGs' on_failure_callback), bench.
"""
