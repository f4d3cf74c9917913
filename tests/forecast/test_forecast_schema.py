"""The forecast tables' home (ml/hotspots/forecast/schema.sql), on a real PostGIS warehouse:

- a fresh warehouse gets schema forecast with its tables, and the contract's names
  (marts.hotspot_forecast, marts.backtest_forecast) as views with the contract's columns;
- a warehouse built before (the forecast tables in marts, with rows, a gist index and a view
  of a reader on top) is moved over without losing a row, and its readers keep working;
- the writer replaces rows through forecast.*, readers see them under marts.*, and the
  contract's checker (../shared/tools/check_forecast.sh) holds on the result;
- two tables of the same name in both schemas are refused, not merged.
"""

from __future__ import annotations

import subprocess

import pandas as pd
import psycopg2
import pytest

from hotspots.forecast import store
from tests.conftest import ROOT, SHARED

pytestmark = pytest.mark.integration

# The DDL store.py ran before schema.sql existed (a warehouse built then has these tables in marts).
OLD_DDL = """
create schema if not exists marts;
create table marts.{table} (
    h3_cell text not null,
    h3_res smallint not null default 8 check (h3_res = 8),
    forecast_date date not null,
    horizon_days smallint not null check (horizon_days in (1, 7)),
    issued_at timestamptz not null,
    expected_withdrawals double precision not null check (expected_withdrawals >= 0),
    p_any double precision not null check (p_any between 0 and 1),
    risk_rank integer not null check (risk_rank >= 1),
    model_version text not null,
    state text,
    district text,
    geom geometry(Polygon, 4326) not null,
    primary key (forecast_date, horizon_days, h3_cell),
    unique (forecast_date, horizon_days, risk_rank)
);
create index {table}_geom on marts.{table} using gist (geom);
"""
CELLS = ["883da11a11fffff", "883da11ae9fffff", "883da32463fffff"]
HEX = "st_geomfromtext('POLYGON((77 28, 77.01 28, 77.01 28.01, 77 28.01, 77 28))', 4326)"


def _connect(warehouse):
    return psycopg2.connect(dbname=warehouse)


def _q(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        rows = cur.fetchall() if cur.description else None
    conn.commit()
    return rows


def _kinds(conn) -> dict[str, str]:
    return dict(_q(conn, """select n.nspname || '.' || c.relname, c.relkind::text from pg_class c
                            join pg_namespace n on n.oid = c.relnamespace
                            where n.nspname in ('marts', 'forecast') and c.relkind in ('r', 'v')"""))


def _registered_cells(conn) -> None:
    """What dbt's marts.dim_registered_cells gives the writer: each cell's place and hexagon."""
    _q(conn, "create schema if not exists marts")
    _q(conn, f"""create table marts.dim_registered_cells as
                 select c as h3_cell, 'HARYANA'::text as state, 'GURUGRAM'::text as district, {HEX} as geom
                 from unnest(%s::text[]) c""", (CELLS,))


def _forecast(date: str) -> pd.DataFrame:
    return pd.DataFrame([{"h3_cell": c, "forecast_date": date, "horizon_days": h, "expected_withdrawals": 3.0 - i,
                          "p_any": 0.9 - 0.1 * i} for h in (1, 7) for i, c in enumerate(CELLS)])


def test_a_fresh_warehouse_gets_schema_forecast_and_the_contract_names(warehouse):
    conn = _connect(warehouse)
    with conn:
        store.ensure_tables(conn)
    with conn:
        store.ensure_tables(conn)  # idempotent
    kinds = _kinds(conn)
    for t in store.TABLES:
        assert kinds[f"forecast.{t}"] == "r" and kinds[f"marts.{t}"] == "v", t
    for name in ("hotspot_forecast", "backtest_forecast"):
        types = dict(_q(conn, """select column_name, case when data_type = 'USER-DEFINED' then udt_name else data_type end
                                 from information_schema.columns where table_schema = 'marts' and table_name = %s""",
                        (name,)))
        assert types == {"h3_cell": "text", "h3_res": "smallint", "forecast_date": "date", "horizon_days": "smallint",
                         "issued_at": "timestamp with time zone", "expected_withdrawals": "double precision",
                         "p_any": "double precision", "risk_rank": "integer", "model_version": "text",
                         "state": "text", "district": "text", "geom": "geometry"}, name
    conn.close()


def test_an_older_warehouse_moves_its_tables_and_keeps_readers_working(warehouse):
    conn = _connect(warehouse)
    for t in ("hotspot_forecast", "backtest_forecast"):
        _q(conn, OLD_DDL.format(table=t))
        _q(conn, f"""insert into marts.{t} (h3_cell, forecast_date, horizon_days, issued_at, expected_withdrawals,
                                             p_any, risk_rank, model_version, state, district, geom)
                     select c, date '2026-03-02', h, now(), 1.0, 0.5, row_number() over (partition by h order by c),
                            'hotspots_old/1', 'HARYANA', 'GURUGRAM', {HEX}
                     from unnest(%s::text[]) c, (values (1), (7)) v(h)""", (CELLS,))
    _q(conn, """create table marts.backtest_metrics (method text not null, forecast_date date not null,
                horizon_days smallint not null, metric text not null, value double precision,
                computed_at timestamptz not null default now(), primary key (method, forecast_date, horizon_days, metric))""")
    _q(conn, "insert into marts.backtest_metrics values ('model', '2026-03-01', 1, 'pei_200', 0.9, now())")
    # A reader's view on the old table (as the dashboards' views are): it follows the table.
    _q(conn, "create view marts.v_reader as select count(*) as n from marts.hotspot_forecast")

    with conn:
        store.ensure_tables(conn)
    kinds = _kinds(conn)
    for t in store.TABLES:
        assert kinds[f"forecast.{t}"] == "r" and kinds[f"marts.{t}"] == "v", t
    assert _q(conn, "select count(*) from forecast.hotspot_forecast") == [(6,)]
    assert _q(conn, "select count(*), min(model_version) from marts.hotspot_forecast") == [(6, "hotspots_old/1")]
    assert _q(conn, "select n from marts.v_reader") == [(6,)]
    assert _q(conn, "select value from marts.backtest_metrics") == [(0.9,)]
    indexes = {r[0] for r in _q(conn, "select indexname from pg_indexes where schemaname = 'forecast'")}
    assert {"hotspot_forecast_geom", "hotspot_forecast_pkey", "backtest_forecast_geom"} <= indexes

    # The writer replaces the latest forecast through forecast.*; every reader sees the new rows.
    _registered_cells(conn)
    n = store.write_forecast(conn, "hotspot_forecast", _forecast("2026-03-03"), pd.Timestamp("2026-03-02 20:00Z"),
                             "hotspots_new/2", replace_all=True)
    assert n == 6
    assert _q(conn, "select distinct forecast_date::text, model_version from marts.hotspot_forecast") == [
        ("2026-03-03", "hotspots_new/2")]
    assert _q(conn, "select n from marts.v_reader") == [(6,)]
    conn.close()
    p = subprocess.run(["bash", str(SHARED / "tools" / "check_forecast.sh"), f"WAREHOUSE={warehouse}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "holds:" in p.stdout, p.stdout + p.stderr


def test_a_table_in_both_schemas_is_refused(warehouse):
    conn = _connect(warehouse)
    with conn:
        store.ensure_tables(conn)
    _q(conn, "drop view marts.hotspot_forecast")
    _q(conn, OLD_DDL.format(table="hotspot_forecast").replace("create index hotspot_forecast_geom",
                                                              "create index old_geom"))
    with pytest.raises(psycopg2.errors.RaiseException, match="both tables"), conn:
        store.ensure_tables(conn)
    conn.close()
