"""Writes the export tree superset/assets/ (datasets, charts, dashboards in Superset's import
format, stable UUIDs). The tree is what provisioning imports and what the round-trip test compares
an export against; this module is how it was written: `python superset/hotspots_superset/assets_src.py`
regenerates it after a change here. UUIDs are derived from names (uuid5), so they never move."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import yaml

ASSETS = Path(__file__).resolve().parents[1] / "assets"
NS = uuid.UUID("6f1c2b1e-6a39-4c55-9a51-0c0d7c1f8a10")
DB_NAME = "hotspots_warehouse"
VERSION = "1.0.0"


def uid(kind: str, name: str) -> str:
    return str(uuid.uuid5(NS, f"{kind}:{name}"))


DB_UUID = uid("database", DB_NAME)

# Jurisdiction of the signed-in user inside the map layers' SQL (marts.superset_user_scope, written
# at provisioning from security.yml), on top of row-level security: the deck.gl multi-layer chart
# fetches its layers on a path where Superset 6.1 did not apply RLS. No row for a user: nothing.
SCOPE = ("exists (select 1 from marts.superset_user_scope s where s.username = '{{{{ current_username() }}}}'"
         " and (s.state is null or s.state = {t}.state){district}{bank})")


def scope(t: str, district: bool = True, bank: str | None = None) -> str:
    return SCOPE.format(t=t, district=f" and (s.district is null or s.district = {t}.district)" if district else "",
                        bank=f" and (s.bank is null or s.bank = any({bank}))" if bank else "")

# ---------------------------------------------------------------- datasets
# Precomputed at refresh (superset/views.sql, marts.refresh_dashboard_tables): the charts read small
# indexed tables, never raw rows.
BANKS = "left join marts.dash_cell_banks b using (h3_cell)"
TIER = ("case when f.risk_rank <= 10 then 'critical' when f.risk_rank <= 50 then 'high' "
        "when f.risk_rank <= 200 then 'watch' else 'low' end")

DATASETS: dict[str, dict] = {
    "forecast_cells": dict(
        description="The latest forecast per H3 res-8 cell (marts.hotspot_forecast): hexagon ring, centre, banks.",
        sql=f"""select f.h3_cell, f.forecast_date, f.horizon_days, f.expected_withdrawals, f.p_any, f.risk_rank,
       {TIER} as risk_tier,
       f.state, f.district, f.model_version, f.issued_at,
       (st_asgeojson(f.geom, 5)::json -> 'coordinates' -> 0)::text as ring,
       st_y(st_centroid(f.geom)) as lat, st_x(st_centroid(f.geom)) as lon,
       coalesce(b.banks, '{{}}') as banks
from marts.hotspot_forecast f
{BANKS}
where {scope("f", bank="coalesce(b.banks, '{}')")}""",
        columns=[("h3_cell", "STRING"), ("forecast_date", "DATE"), ("horizon_days", "INTEGER"),
                 ("expected_withdrawals", "FLOAT"), ("p_any", "FLOAT"), ("risk_rank", "INTEGER"),
                 ("risk_tier", "STRING"), ("state", "STRING"), ("district", "STRING"), ("model_version", "STRING"),
                 ("issued_at", "TIMESTAMP"), ("ring", "STRING"), ("lat", "FLOAT"), ("lon", "FLOAT"),
                 ("banks", "ARRAY")],
        dttm="forecast_date"),
    "state_outlines": dict(
        description="State and UT outlines (marts.dim_states): outer ring of each polygon, as a JSON array of [lon, lat].",
        sql=f"""select o.state, o.ring
from marts.dash_state_outlines o
where {scope("o", district=False)}""",
        columns=[("state", "STRING"), ("ring", "STRING")]),
    "district_outlines": dict(
        description="District outlines (marts.dim_districts): outer ring of each polygon.",
        sql=f"""select d.state, d.district, d.ring
from marts.dash_district_outlines d
where {scope("d", district=False)}""",
        columns=[("state", "STRING"), ("district", "STRING"), ("ring", "STRING")]),
    "money_trail": dict(
        description="Complaint money from victims' districts to cash-out districts (state, district = cash-out side).",
        sql=f"""select f.*
from marts.dash_money_trail_flows f
where {scope("f", bank="f.banks")}""",
        columns=[("victim_state", "STRING"), ("victim_district", "STRING"), ("state", "STRING"),
                 ("district", "STRING"), ("category", "STRING"), ("n_complaints", "INTEGER"),
                 ("n_accounts", "INTEGER"), ("amount_inr", "FLOAT"), ("banks", "ARRAY"),
                 ("victim_lat", "FLOAT"), ("victim_lon", "FLOAT"), ("cashout_lat", "FLOAT"),
                 ("cashout_lon", "FLOAT"), ("flow_rank", "INTEGER")]),
    "district_daily": dict(
        description="Per IST day and district: complaints, withdrawals, and the 1-day forecast for it (issued, else backtest).",
        sql="""select day, state, district, n_complaints, amount_lost_inr, n_withdrawals, expected_withdrawals
from marts.dash_district_daily""",
        columns=[("day", "DATE"), ("state", "STRING"), ("district", "STRING"), ("n_complaints", "INTEGER"),
                 ("amount_lost_inr", "FLOAT"), ("n_withdrawals", "INTEGER"), ("expected_withdrawals", "FLOAT")],
        dttm="day"),
    "complaints_daily": dict(
        description="Complaints per IST day, victim's district and category (no personal data).",
        sql="select * from marts.dash_complaints_daily",
        columns=[("day", "DATE"), ("state", "STRING"), ("district", "STRING"), ("category", "STRING"),
                 ("n_complaints", "INTEGER"), ("amount_lost_inr", "FLOAT")],
        dttm="day"),
    "cell_explanations": dict(
        description="Cells of the latest forecast with the model's explanation sentences.",
        sql=f"""select e.forecast_date, e.horizon_days, e.h3_cell, f.risk_rank, {TIER} as risk_tier, f.state, f.district,
       f.expected_withdrawals, f.p_any, string_agg(e.text, '; ' order by e.rank) as explanation,
       coalesce(b.banks, '{{}}') as banks
from marts.hotspot_explanations e
join marts.hotspot_forecast f using (forecast_date, horizon_days, h3_cell)
{BANKS}
group by e.forecast_date, e.horizon_days, e.h3_cell, f.risk_rank, f.state, f.district, f.expected_withdrawals,
         f.p_any, b.banks""",
        columns=[("forecast_date", "DATE"), ("horizon_days", "INTEGER"), ("h3_cell", "STRING"),
                 ("risk_rank", "INTEGER"), ("risk_tier", "STRING"), ("state", "STRING"), ("district", "STRING"),
                 ("expected_withdrawals", "FLOAT"), ("p_any", "FLOAT"), ("explanation", "STRING"),
                 ("banks", "ARRAY")],
        dttm="forecast_date"),
    "hot_cell_terminals": dict(
        description="Terminals in the cells of the latest forecast with channel and bank.",
        sql=f"""select t.h3_cell, t.state, t.district, t.terminal_id, t.channel, t.bank, t.n_withdrawals, t.amount_inr,
       t.last_withdrawal_at, f.forecast_date, f.horizon_days, f.risk_rank, {TIER} as risk_tier
from marts.dash_cell_terminals t
join marts.hotspot_forecast f using (h3_cell)""",
        columns=[("h3_cell", "STRING"), ("state", "STRING"), ("district", "STRING"), ("terminal_id", "STRING"),
                 ("channel", "STRING"), ("bank", "STRING"), ("n_withdrawals", "INTEGER"), ("amount_inr", "FLOAT"),
                 ("last_withdrawal_at", "TIMESTAMP"), ("forecast_date", "DATE"), ("horizon_days", "INTEGER"),
                 ("risk_rank", "INTEGER"), ("risk_tier", "STRING")],
        dttm="forecast_date"),
    "alerts": dict(
        description="Alerts (alerts.alerts) with delivery and the latest acknowledgement.",
        sql="""select a.alert_id, a.h3_cell, a.forecast_date, a.horizon_days, a.recipient, a.jurisdiction_level,
       a.state, a.district, a.bank, a.kind, a.tier as risk_tier, a.expected_withdrawals, a.p_any, a.risk_rank,
       a.status, a.attempts, a.last_error, a.created_at, a.sent_at,
       k.acknowledged_by, k.acknowledged_at, k.action, k.outcome, k.note,
       case when k.alert_id is null then 'open' else 'acknowledged' end as ack_state
from alerts.alerts a
left join lateral (select * from alerts.acknowledgements x where x.alert_id = a.alert_id
                   order by x.acknowledged_at desc, x.ack_id desc limit 1) k on true""",
        columns=[("alert_id", "STRING"), ("h3_cell", "STRING"), ("forecast_date", "DATE"),
                 ("horizon_days", "INTEGER"), ("recipient", "STRING"), ("jurisdiction_level", "STRING"),
                 ("state", "STRING"), ("district", "STRING"), ("bank", "STRING"), ("kind", "STRING"),
                 ("risk_tier", "STRING"), ("expected_withdrawals", "FLOAT"), ("p_any", "FLOAT"),
                 ("risk_rank", "INTEGER"), ("status", "STRING"), ("attempts", "INTEGER"), ("last_error", "STRING"),
                 ("created_at", "TIMESTAMP"), ("sent_at", "TIMESTAMP"), ("acknowledged_by", "STRING"),
                 ("acknowledged_at", "TIMESTAMP"), ("action", "STRING"), ("outcome", "STRING"), ("note", "STRING"),
                 ("ack_state", "STRING")],
        dttm="forecast_date"),
    "alert_cases": dict(
        description="Complaints linked to alerted cells (pseudonymous: complaint number, amounts, mule account).",
        sql="""select c.h3_cell, c.state, c.district, c.ack_no, c.category, c.complaint_status, c.reported_day,
       c.amount_lost_inr, c.amount_on_hold_inr, c.mule_account, c.bank
from marts.v_cell_cases c
where c.h3_cell in (select h3_cell from alerts.alerts)""",
        columns=[("h3_cell", "STRING"), ("state", "STRING"), ("district", "STRING"), ("ack_no", "STRING"),
                 ("category", "STRING"), ("complaint_status", "STRING"), ("reported_day", "DATE"),
                 ("amount_lost_inr", "FLOAT"), ("amount_on_hold_inr", "FLOAT"), ("mule_account", "STRING"),
                 ("bank", "STRING")],
        dttm="reported_day"),
    "backtest_metrics": dict(
        description="Backtest metrics per method, forecast date, horizon (marts.backtest_metrics).",
        sql="select method, forecast_date, horizon_days, metric, value from marts.backtest_metrics",
        columns=[("method", "STRING"), ("forecast_date", "DATE"), ("horizon_days", "INTEGER"),
                 ("metric", "STRING"), ("value", "FLOAT")],
        dttm="forecast_date"),
    "ingest_health": dict(
        description="Rows read, loaded, repaired and quarantined per extract date and file.",
        sql="select * from marts.v_ingest_health",
        columns=[("extract_date", "DATE"), ("entity", "STRING"), ("status", "STRING"), ("rows_read", "INTEGER"),
                 ("rows_loaded", "INTEGER"), ("rows_repaired", "INTEGER"), ("rows_quarantined", "INTEGER"),
                 ("finished_at", "TIMESTAMP")],
        dttm="extract_date"),
    "quarantine_reasons": dict(
        description="Quarantined rows per extract date, file and reason.",
        sql="select * from marts.v_quarantine_reasons",
        columns=[("extract_date", "DATE"), ("entity", "STRING"), ("reason", "STRING"), ("n_rows", "INTEGER")],
        dttm="extract_date"),
    "source_freshness": dict(
        description="Newest extract loaded per source and its age.",
        sql="select * from marts.v_source_freshness",
        columns=[("entity", "STRING"), ("last_extract_date", "DATE"), ("last_loaded_at", "TIMESTAMP"),
                 ("days_old", "INTEGER"), ("rows_loaded", "INTEGER")]),
    "model_registry": dict(
        description="Registered model versions, the champion alias and gate decisions (copied from MLflow).",
        sql="select model_name, version, alias, decision, metric, created_at from marts.model_registry_snapshot",
        columns=[("model_name", "STRING"), ("version", "STRING"), ("alias", "STRING"), ("decision", "STRING"),
                 ("metric", "STRING"), ("created_at", "TIMESTAMP")]),
}


def dataset_yaml(name: str, d: dict) -> dict:
    cols = []
    for c, t in d["columns"]:
        cols.append({"advanced_data_type": None, "column_name": c, "description": None, "expression": None,
                     "extra": None, "filterable": True, "groupby": True, "is_active": True,
                     "is_dttm": t in ("DATE", "TIMESTAMP"), "python_date_format": None, "type": t,
                     "verbose_name": None})
    return {"table_name": name, "main_dttm_col": d.get("dttm"), "description": d["description"],
            "default_endpoint": None, "offset": 0, "cache_timeout": None, "catalog": None, "schema": None,
            "sql": d["sql"], "params": None, "template_params": None, "filter_select_enabled": True,
            "fetch_values_predicate": None, "extra": None, "normalize_columns": False,
            "always_filter_main_dttm": False, "folders": None, "uuid": uid("dataset", name),
            "metrics": [{"metric_name": "count", "verbose_name": "COUNT(*)", "metric_type": "count",
                         "expression": "COUNT(*)", "description": None, "d3format": None, "currency": None,
                         "extra": None, "warning_text": None}],
            "columns": cols, "version": VERSION, "database_uuid": DB_UUID}


# ---------------------------------------------------------------- charts
def sql_metric(label: str, sql: str) -> dict:
    return {"expressionType": "SQL", "sqlExpression": sql, "label": label, "hasCustomLabel": True,
            "optionName": "metric_" + label.lower().replace(" ", "_")}


VIEWPORT = {"longitude": 81.0, "latitude": 22.8, "zoom": 4.1, "bearing": 0, "pitch": 0}
MAP_STYLE = "tile://http://127.0.0.1:9/{z}/{x}/{y}.png"
CHARTS: dict[str, dict] = {}


def chart(name: str, viz: str, dataset: str, **params) -> str:
    CHARTS[name] = {"viz": viz, "dataset": dataset, "params": params}
    return name


def _deck(**p) -> dict:
    base = {"viewport": VIEWPORT, "mapbox_style": MAP_STYLE, "autozoom": False, "time_range": "No filter",
            "adhoc_filters": [], "js_columns": [], "js_data_mutator": "", "js_tooltip": "", "js_onclick_href": "",
            "row_limit": 50000, "reverse_long_lat": False}
    base.update(p)
    return base


chart("Risk hexagons", "deck_polygon", "forecast_cells", **_deck(
    line_column="ring", line_type="json", filled=True, stroked=False, extruded=False,
    metric=sql_metric("Expected withdrawals", "MAX(expected_withdrawals)"),
    linear_color_scheme="oranges", fill_color_picker={"r": 230, "g": 81, "b": 0, "a": 1},
    stroke_color_picker={"r": 120, "g": 40, "b": 0, "a": 1}, line_width=1, line_width_unit="pixels",
    opacity=90, legend_position="tr", legend_format=".1f", multiplier=1, num_buckets=6,
    table_filter=False, toggle_polygons=True, point_radius_fixed={"type": "fix", "value": 1000},
    tooltip_contents=["h3_cell", "district", "state"]))
chart("State outlines", "deck_polygon", "state_outlines", **_deck(
    line_column="ring", line_type="json", filled=True, stroked=True, extruded=False,
    fill_color_picker={"r": 245, "g": 243, "b": 236, "a": 1}, stroke_color_picker={"r": 90, "g": 90, "b": 90, "a": 1},
    line_width=1.5, line_width_unit="pixels", opacity=100, legend_position=None, multiplier=1,
    point_radius_fixed={"type": "fix", "value": 0}))
chart("District outlines", "deck_polygon", "district_outlines", **_deck(
    line_column="ring", line_type="json", filled=False, stroked=True, extruded=False,
    fill_color_picker={"r": 255, "g": 255, "b": 255, "a": 0}, stroke_color_picker={"r": 170, "g": 170, "b": 170, "a": 1},
    line_width=0.5, line_width_unit="pixels", opacity=100, legend_position=None, multiplier=1,
    point_radius_fixed={"type": "fix", "value": 0}))
chart("Risk points", "deck_scatter", "forecast_cells", **_deck(
    spatial={"type": "latlong", "latCol": "lat", "lonCol": "lon"}, color_picker={"r": 200, "g": 30, "b": 30, "a": 0.85},
    point_radius_fixed={"type": "metric", "value": sql_metric("Expected withdrawals", "SUM(expected_withdrawals)")},
    point_unit="square_m", min_radius=2, max_radius=14, multiplier=2000, legend_position=None, dimension=None,
    tooltip_contents=["h3_cell", "district"]))
chart("Money trail arcs", "deck_arc", "money_trail", **_deck(
    start_spatial={"type": "latlong", "latCol": "victim_lat", "lonCol": "victim_lon"},
    end_spatial={"type": "latlong", "latCol": "cashout_lat", "lonCol": "cashout_lon"},
    color_picker={"r": 30, "g": 90, "b": 200, "a": 0.35}, target_color_picker={"r": 200, "g": 20, "b": 60, "a": 0.6},
    stroke_width=1, legend_position=None, row_limit=2000,
    # the largest flows into each cash-out district (ranked among all its flows at refresh; three, so
    # the national map is not a hairball: ~2,000 arcs at national scale)
    adhoc_filters=[{"expressionType": "SIMPLE", "clause": "WHERE", "subject": "flow_rank", "operator": "<=",
                    "comparator": 3, "filterOptionName": "top_flows"}]))
chart("National risk map", "deck_multi", "forecast_cells", **_deck(autozoom=True,
    deck_slices=[], deck_slice_uuids=[uid("chart", n) for n in
                                      ("State outlines", "District outlines", "Money trail arcs", "Risk hexagons",
                                              "Risk points")]))
chart("Top cells", "table", "cell_explanations", query_mode="raw",
      all_columns=["risk_rank", "risk_tier", "h3_cell", "district", "state", "expected_withdrawals", "p_any",
                   "explanation"],
      order_by_cols=[json.dumps(["risk_rank", True])], row_limit=200, adhoc_filters=[], time_range="No filter",
      column_config={"expected_withdrawals": {"d3NumberFormat": ".1f"}, "p_any": {"d3NumberFormat": ".0%"}},
      table_timestamp_format="smart_date", page_length=20, include_search=True, server_pagination=False)
chart("Cells forecast", "big_number_total", "forecast_cells",
      metric=sql_metric("Cells forecast", "COUNT(DISTINCT h3_cell)"), adhoc_filters=[], time_range="No filter",
      subheader="cells with a forecast", y_axis_format="SMART_NUMBER",
      header_font_size=0.3, subheader_font_size=0.125)
chart("Expected withdrawals", "big_number_total", "forecast_cells",
      metric=sql_metric("Expected withdrawals", "SUM(expected_withdrawals)"), adhoc_filters=[],
      time_range="No filter", subheader="expected fraud-linked withdrawals", y_axis_format=",.0f",
      header_font_size=0.3, subheader_font_size=0.125)
chart("Complaints, withdrawals and forecast", "echarts_timeseries_line", "district_daily",
      x_axis="day", time_grain_sqla="P1D",
      metrics=[sql_metric("Complaints", "SUM(n_complaints)"), sql_metric("Withdrawals", "SUM(n_withdrawals)"),
               sql_metric("Forecast (1 day)", "SUM(expected_withdrawals)")],
      groupby=[], adhoc_filters=[], time_range="No filter", row_limit=10000, show_legend=True,
      legendOrientation="top", rich_tooltip=True, y_axis_format="SMART_NUMBER", truncate_metric=True,
      comparison_type="values", markerEnabled=True, markerSize=4, zoomable=False)
chart("Category mix", "pie", "complaints_daily", groupby=["category"],
      metric=sql_metric("Complaints", "SUM(n_complaints)"), adhoc_filters=[], time_range="No filter",
      row_limit=20, show_legend=True, show_labels=True, label_type="key_percent", number_format="SMART_NUMBER",
      donut=True, innerRadius=40, outerRadius=70, sort_by_metric=True)
chart("Terminals in hot cells", "table", "hot_cell_terminals", query_mode="raw",
      all_columns=["risk_rank", "h3_cell", "district", "terminal_id", "channel", "bank", "n_withdrawals",
                   "amount_inr", "last_withdrawal_at"],
      order_by_cols=[json.dumps(["risk_rank", True]), json.dumps(["n_withdrawals", False])], row_limit=500,
      adhoc_filters=[], time_range="No filter", page_length=20, include_search=True, server_pagination=False,
      column_config={"amount_inr": {"d3NumberFormat": ",.0f"}})
chart("Alerts", "table", "alerts", query_mode="raw",
      all_columns=["created_at", "risk_tier", "kind", "status", "recipient", "jurisdiction_level", "district",
                   "h3_cell", "expected_withdrawals", "attempts", "last_error", "ack_state", "action", "outcome",
                   "acknowledged_by", "alert_id"],
      order_by_cols=[json.dumps(["created_at", False])], row_limit=1000, adhoc_filters=[], time_range="No filter",
      page_length=20, include_search=True, server_pagination=False,
      column_config={"expected_withdrawals": {"d3NumberFormat": ".1f"}})
chart("Alerts by status", "pie", "alerts", groupby=["status"], metric=sql_metric("Alerts", "COUNT(*)"),
      adhoc_filters=[], time_range="No filter", row_limit=10, show_legend=True, show_labels=True,
      label_type="key_value", donut=True, innerRadius=40, outerRadius=70)
chart("Acknowledged", "pie", "alerts", groupby=["ack_state"], metric=sql_metric("Alerts", "COUNT(*)"),
      adhoc_filters=[], time_range="No filter", row_limit=10, show_legend=True, show_labels=True,
      label_type="key_value", donut=True, innerRadius=40, outerRadius=70)
chart("Linked complaints and mule accounts", "table", "alert_cases", query_mode="raw",
      all_columns=["h3_cell", "district", "ack_no", "category", "complaint_status", "reported_day",
                   "amount_lost_inr", "amount_on_hold_inr", "mule_account", "bank"],
      order_by_cols=[json.dumps(["reported_day", False])], row_limit=1000, adhoc_filters=[],
      time_range="No filter", page_length=20, include_search=True, server_pagination=False)
chart("Amount lost and on hold", "table", "alert_cases", query_mode="aggregate", groupby=["district"],
      metrics=[sql_metric("Complaints", "COUNT(DISTINCT ack_no)"), sql_metric("Lost (INR)", "SUM(amount_lost_inr)"),
               sql_metric("On hold (INR)", "SUM(amount_on_hold_inr)"),
               sql_metric("Mule accounts", "COUNT(DISTINCT mule_account)")],
      adhoc_filters=[], time_range="No filter", row_limit=100, order_desc=True, server_pagination=False)
chart("Backtest: PEI by method", "echarts_timeseries_line", "backtest_metrics", x_axis="forecast_date",
      time_grain_sqla="P1D", metrics=[sql_metric("PEI (top 200)", "AVG(value)")], groupby=["method"],
      adhoc_filters=[{"expressionType": "SIMPLE", "subject": "metric", "operator": "==", "comparator": "pei_200",
                      "clause": "WHERE"}],
      time_range="No filter", row_limit=10000, show_legend=True, legendOrientation="top", y_axis_format=".2f",
      markerEnabled=True)
chart("Backtest: capture rate by method", "echarts_timeseries_line", "backtest_metrics", x_axis="forecast_date",
      time_grain_sqla="P1D", metrics=[sql_metric("Capture rate (top 200)", "AVG(value)")], groupby=["method"],
      adhoc_filters=[{"expressionType": "SIMPLE", "subject": "metric", "operator": "==",
                      "comparator": "capture_rate_200", "clause": "WHERE"}],
      time_range="No filter", row_limit=10000, show_legend=True, legendOrientation="top", y_axis_format=".0%",
      markerEnabled=True)
chart("Backtest: calibration (Brier) by method", "echarts_timeseries_line", "backtest_metrics",
      x_axis="forecast_date", time_grain_sqla="P1D", metrics=[sql_metric("Brier score", "AVG(value)")],
      groupby=["method"],
      adhoc_filters=[{"expressionType": "SIMPLE", "subject": "metric", "operator": "==", "comparator": "brier",
                      "clause": "WHERE"}],
      time_range="No filter", row_limit=10000, show_legend=True, legendOrientation="top", y_axis_format=".3f",
      markerEnabled=True)
chart("Model versions and gate", "table", "model_registry", query_mode="raw",
      all_columns=["model_name", "version", "alias", "decision", "metric", "created_at"],
      order_by_cols=[json.dumps(["created_at", False])], row_limit=50, adhoc_filters=[], time_range="No filter",
      server_pagination=False)
chart("Rows per extract", "echarts_timeseries_bar", "ingest_health", x_axis="extract_date", time_grain_sqla="P1D",
      metrics=[sql_metric("Loaded", "SUM(rows_loaded) - SUM(rows_repaired)"),
               sql_metric("Loaded after repair", "SUM(rows_repaired)"),
               sql_metric("Quarantined", "SUM(rows_quarantined)")],
      groupby=[], stack="Stack", adhoc_filters=[], time_range="No filter", row_limit=10000, show_legend=True,
      legendOrientation="top", y_axis_format="SMART_NUMBER")
chart("Quarantine by reason", "table", "quarantine_reasons", query_mode="aggregate", groupby=["entity", "reason"],
      metrics=[sql_metric("Rows", "SUM(n_rows)")], adhoc_filters=[], time_range="No filter", row_limit=100,
      order_desc=True, server_pagination=False)
chart("Source freshness", "table", "source_freshness", query_mode="raw",
      all_columns=["entity", "last_extract_date", "days_old", "last_loaded_at", "rows_loaded"],
      order_by_cols=[json.dumps(["entity", True])], row_limit=20, adhoc_filters=[], time_range="No filter",
      server_pagination=False)


# ---------------------------------------------------------------- dashboards
def native_filter(name: str, column: str, datasets: list[str], default_first: bool = False,
                  multi: bool = True, latest_first: bool = False, default: list | None = None) -> dict:
    return {"id": "NATIVE_FILTER-" + uid("filter", name)[:20], "name": name, "filterType": "filter_select",
            "type": "NATIVE_FILTER", "description": "",
            "targets": [{"column": {"name": column}, "datasetUuid": uid("dataset", datasets[0])}],
            "controlValues": {"defaultToFirstItem": default_first, "enableEmptyFilter": bool(default_first or default),
                              "inverseSelection": False, "multiSelect": multi, "searchAllOptions": False,
                              "sortAscending": not latest_first},
            "defaultDataMask": ({"extraFormData": {"filters": [{"col": column, "op": "IN", "val": default}]},
                                 "filterState": {"value": default, "label": ", ".join(map(str, default))},
                                 "ownState": {}} if default else
                                {"extraFormData": {}, "filterState": {}, "ownState": {}}),
            "cascadeParentIds": [], "scope": {"excluded": [], "rootPath": ["ROOT_ID"]}}


def F_DATE(ds):
    return native_filter("Forecast date", "forecast_date", [ds], multi=False, latest_first=True)


def F_HORIZON(ds):
    return native_filter("Horizon (days)", "horizon_days", [ds], multi=False, default=[1])


def F_STATE(ds):
    return native_filter("State", "state", [ds])


def F_DISTRICT(ds):
    return native_filter("District", "district", [ds])


def F_TIER(ds):
    return native_filter("Risk tier", "risk_tier", [ds])


def F_CATEGORY(ds):
    return native_filter("Complaint category", "category", [ds])


DASHBOARDS = {
    "national-risk-map": dict(
        title="National risk map",
        rows=[[("Cells forecast", 3, 28), ("Expected withdrawals", 3, 28),
               ("MARKDOWN", 6, 28, "**Where fraud proceeds are likely to be withdrawn.** Hexagons: H3 res-8 cells "
                "of the latest forecast, darker = more expected withdrawals. Blue-to-red arcs: complaint money "
                "from the victims' districts to the districts where it was taken out in cash. Filter by state, "
                "district, horizon and risk tier; [acknowledge alerts](/hotspots/ack/).")],
              [("National risk map", 12, 110)],
              [("Top cells", 12, 60)]],
        filters=[F_DATE("forecast_cells"), F_HORIZON("forecast_cells"), F_STATE("forecast_cells"),
                 F_DISTRICT("forecast_cells"), F_TIER("forecast_cells"), F_CATEGORY("money_trail")]),
    "district-drilldown": dict(
        title="District drill-down",
        rows=[[("Complaints, withdrawals and forecast", 8, 60), ("Category mix", 4, 60)],
              [("Top cells", 12, 60)],
              [("Terminals in hot cells", 12, 60)]],
        filters=[F_DATE("cell_explanations"), F_HORIZON("cell_explanations"), F_STATE("district_daily"),
                 F_DISTRICT("district_daily"), F_TIER("cell_explanations"), F_CATEGORY("complaints_daily")]),
    "alerts-cases": dict(
        title="Alerts and cases",
        rows=[[("Alerts by status", 4, 40), ("Acknowledged", 4, 40),
               ("MARKDOWN", 4, 40, "**Acknowledge an alert**: record the action taken and later the outcome on "
                "the [acknowledgement page](/hotspots/ack/) (your jurisdiction's alerts only).")],
              [("Alerts", 12, 70)],
              [("Amount lost and on hold", 12, 40)],
              [("Linked complaints and mule accounts", 12, 70)]],
        filters=[F_DATE("alerts"), F_HORIZON("alerts"), F_STATE("alerts"), F_DISTRICT("alerts"),
                 F_TIER("alerts"), F_CATEGORY("alert_cases")]),
    "model-data-health": dict(
        title="Model and data health",
        rows=[[("Backtest: PEI by method", 6, 50), ("Backtest: capture rate by method", 6, 50)],
              [("Backtest: calibration (Brier) by method", 6, 50), ("Model versions and gate", 6, 50)],
              [("Rows per extract", 8, 50), ("Source freshness", 4, 50)],
              [("Quarantine by reason", 12, 40)]],
        filters=[native_filter("Forecast date", "forecast_date", ["backtest_metrics"]),
                 native_filter("Horizon (days)", "horizon_days", ["backtest_metrics"], multi=False, default=[1])]),
}


def chart_id(name: str) -> int:
    """The bundle-local id of a chart (import maps it to the instance's id)."""
    return list(CHARTS).index(name) + 1


def _scoped(d: dict) -> list[dict]:
    """Native filters apply only to the charts whose dataset has the filter's column."""
    names = [item[0] for row in d["rows"] for item in row if item[0] != "MARKDOWN"]
    out = []
    for f in d["filters"]:
        col = f["targets"][0]["column"]["name"]
        excluded = [chart_id(n) for n in names
                    if col not in {c for c, _ in DATASETS[CHARTS[n]["dataset"]]["columns"]}]
        out.append(dict(f, scope={"excluded": excluded, "rootPath": ["ROOT_ID"]}))
    return out


def dashboard_yaml(slug: str, d: dict) -> dict:
    position = {"DASHBOARD_VERSION_KEY": "v2",
                "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
                "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
                "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": d["title"]}}}
    for r, row in enumerate(d["rows"]):
        rid = f"ROW-{slug}-{r}"
        position["GRID_ID"]["children"].append(rid)
        position[rid] = {"type": "ROW", "id": rid, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
                         "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        for c, item in enumerate(row):
            if item[0] == "MARKDOWN":
                cid = f"MARKDOWN-{slug}-{r}-{c}"
                position[cid] = {"type": "MARKDOWN", "id": cid, "children": [],
                                 "parents": ["ROOT_ID", "GRID_ID", rid],
                                 "meta": {"width": item[1], "height": item[2], "code": item[3]}}
            else:
                name, width, height = item
                cid = f"CHART-{uid('chart', name)[:8]}"
                position[cid] = {"type": "CHART", "id": cid, "children": [], "parents": ["ROOT_ID", "GRID_ID", rid],
                                 "meta": {"width": width, "height": height, "sliceName": name,
                                          "uuid": uid("chart", name), "chartId": chart_id(name)}}
            position[rid]["children"].append(cid)
    return {"dashboard_title": d["title"], "description": None, "css": "", "slug": slug,
            "certified_by": None, "certification_details": None, "published": True,
            "uuid": uid("dashboard", slug), "position": position,
            "metadata": {"native_filter_configuration": _scoped(d), "cross_filters_enabled": True,
                         "color_scheme": "", "refresh_frequency": 0, "expanded_slices": {},
                         "label_colors": {}, "timed_refresh_immune_slices": [], "default_filters": "{}",
                         "chart_configuration": {}, "global_chart_configuration": {
                             "scope": {"rootPath": ["ROOT_ID"], "excluded": []}, "chartsInScope": []}},
            "version": VERSION}


def chart_yaml(name: str, c: dict) -> dict:
    params = dict(c["params"], viz_type=c["viz"], datasource=f"__{c['dataset']}__table")
    return {"slice_name": name, "description": None, "certified_by": None, "certification_details": None,
            "viz_type": c["viz"], "params": params, "query_context": None, "cache_timeout": None,
            "uuid": uid("chart", name), "version": VERSION, "dataset_uuid": uid("dataset", c["dataset"])}


def database_yaml() -> dict:
    return {"database_name": DB_NAME, "sqlalchemy_uri": "postgresql+psycopg2://hotspots_reader:XXXXXXXXXX@127.0.0.1:55432/hotspots",
            "cache_timeout": None, "expose_in_sqllab": True, "allow_run_async": False, "allow_ctas": False,
            "allow_cvas": False, "allow_dml": False, "allow_file_upload": False,
            "extra": {"allows_virtual_table_explore": True, "schemas_allowed_for_file_upload": [],
                      "engine_params": {"connect_args": {"options": "-c statement_timeout=60000"}}},
            "uuid": DB_UUID, "version": VERSION}


def _file(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


def write(root: Path = ASSETS) -> None:
    shutil.rmtree(root, ignore_errors=True)
    files = {"metadata.yaml": {"version": VERSION, "type": "Dashboard", "timestamp": "2026-12-01T00:00:00+00:00"},
             f"databases/{DB_NAME}.yaml": database_yaml()}
    for name, d in DATASETS.items():
        files[f"datasets/{DB_NAME}/{name}.yaml"] = dataset_yaml(name, d)
    for name, c in CHARTS.items():
        files[f"charts/{_file(name)}.yaml"] = chart_yaml(name, c)
    for slug, d in DASHBOARDS.items():
        files[f"dashboards/{slug}.yaml"] = dashboard_yaml(slug, d)
    for rel, doc in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump(doc, sort_keys=True, allow_unicode=True, width=120))


if __name__ == "__main__":
    write()
    print(f"assets: wrote {ASSETS}")
