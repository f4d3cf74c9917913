"""The forecast tables of contract/OUTPUTS.md and the project's own tables beside them:
schema ``forecast`` (schema.sql), each table also reachable as ``marts.<name>`` (a view; the
contract's names are marts.hotspot_forecast and marts.backtest_forecast).

Writes are idempotent per (forecast_date, horizon_days): the rows of the dates written
are replaced in one transaction, so a re-run never duplicates and a reader never sees a
half-written forecast. Geometry, state and district come from marts.dim_registered_cells
(every registered cell with its directory-assigned place; a dbt view of the cell registry).
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

FORECAST_COLUMNS = ["h3_cell", "h3_res", "forecast_date", "horizon_days", "issued_at", "expected_withdrawals",
                    "p_any", "risk_rank", "model_version", "state", "district", "geom"]

SCHEMA_SQL = Path(__file__).with_name("schema.sql")
# Every table schema.sql creates in schema forecast (each also reachable as marts.<name>, a view).
TABLES = ("hotspot_forecast", "hotspot_forecast_history", "backtest_forecast", "hotspot_explanations",
          "backtest_baselines", "backtest_metrics", "backtest_district_metrics")
FORECAST_TABLES = ("hotspot_forecast", "hotspot_forecast_history", "backtest_forecast")
# Where a forecast cell lies (hexagon, state, district): a dbt model of the registered cells.
CELLS = "marts.dim_registered_cells"


def ensure_tables(conn) -> None:
    """Creates schema forecast, its tables and their marts.* views when missing, and moves the
    tables an older warehouse kept in marts (schema.sql; idempotent, serialised)."""
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('hotspots.forecast.ensure_tables'))")
        cur.execute("set local client_min_messages = warning")
        cur.execute(SCHEMA_SQL.read_text())


def rank(df: pd.DataFrame, score: str = "expected_withdrawals") -> pd.DataFrame:
    """risk_rank 1..n within each (forecast_date, horizon_days): highest score first, then
    higher p_any, then the smaller cell id (deterministic)."""
    df = df.sort_values(["forecast_date", "horizon_days", score, "p_any", "h3_cell"],
                        ascending=[True, True, False, False, True], kind="stable").copy()
    df["risk_rank"] = df.groupby(["forecast_date", "horizon_days"]).cumcount() + 1
    return df


def _copy(cur, df: pd.DataFrame, temp: str, columns: list[str]) -> None:
    buf = io.StringIO()
    df[columns].to_csv(buf, index=False, header=False, date_format="%Y-%m-%d")
    buf.seek(0)
    cur.copy_expert(f"copy {temp} ({', '.join(columns)}) from stdin with (format csv)", buf)


def write_forecast(conn, table: str, df: pd.DataFrame, issued_at, model_version: str | pd.Series,
                   replace_all: bool = False) -> int:
    """Replace the rows of the (forecast_date, horizon_days) groups in ``df`` (or the whole
    table with ``replace_all``) by ``df``: h3_cell, forecast_date, horizon_days,
    expected_withdrawals, p_any (ranked here). One transaction; returns rows written."""
    assert table in FORECAST_TABLES
    df = rank(df)
    if issued_at is not None:  # else df carries its own issued_at column (a backtest: one per date)
        df["issued_at"] = pd.Timestamp(issued_at).isoformat()
    df["model_version"] = model_version
    cols = ["h3_cell", "forecast_date", "horizon_days", "issued_at", "expected_withdrawals", "p_any",
            "risk_rank", "model_version"]
    with conn, conn.cursor() as cur:
        ensure_tables(conn)
        cur.execute("""create temp table new_forecast (h3_cell text, forecast_date date, horizon_days smallint,
                       issued_at timestamptz, expected_withdrawals double precision, p_any double precision,
                       risk_rank integer, model_version text) on commit drop""")
        _copy(cur, df, "new_forecast", cols)
        cur.execute(f"select count(*) from new_forecast n left join {CELLS} c using (h3_cell) "
                    "where c.h3_cell is null")
        missing = cur.fetchone()[0]
        if missing:
            raise ValueError(f"{missing} forecast cells are not registered cells ({CELLS})")
        if replace_all:
            cur.execute(f"delete from forecast.{table}")
        else:
            cur.execute(f"""delete from forecast.{table} t using (select distinct forecast_date, horizon_days
                            from new_forecast) n
                            where t.forecast_date = n.forecast_date and t.horizon_days = n.horizon_days""")
        cur.execute(f"""insert into forecast.{table} ({', '.join(FORECAST_COLUMNS)})
                        select n.h3_cell, 8, n.forecast_date, n.horizon_days, n.issued_at,
                               n.expected_withdrawals, n.p_any, n.risk_rank, n.model_version,
                               coalesce(c.state, 'UNKNOWN'), coalesce(c.district, 'UNKNOWN'), c.geom
                        from new_forecast n join {CELLS} c using (h3_cell)""")
        return cur.rowcount


def write_baselines(conn, df: pd.DataFrame, dates: tuple) -> int:
    """Baseline forecasts of a backtest (method, h3_cell, forecast_date, horizon_days, mu, p)."""
    df = pd.concat([rank(g) for _, g in df.groupby("method")]) if len(df) else df
    cols = ["method", "h3_cell", "forecast_date", "horizon_days", "expected_withdrawals", "p_any", "risk_rank"]
    with conn, conn.cursor() as cur:
        ensure_tables(conn)
        cur.execute("delete from forecast.backtest_baselines where forecast_date between %s and %s", dates)
        if len(df):
            _copy(cur, df, "forecast.backtest_baselines", cols)
        return len(df)


def write_metrics(conn, per_date: pd.DataFrame, dates: tuple) -> int:
    """Per-date metrics of every method, long form (method, forecast_date, horizon_days, metric, value)."""
    keys = ["method", "forecast_date", "horizon_days"]
    long = per_date.melt(id_vars=keys, var_name="metric", value_name="value").dropna(subset=["value"])
    with conn, conn.cursor() as cur:
        ensure_tables(conn)
        cur.execute("delete from forecast.backtest_metrics where forecast_date between %s and %s", dates)
        if len(long):
            _copy(cur, long, "forecast.backtest_metrics", keys + ["metric", "value"])
        return len(long)


def write_explanations(conn, df: pd.DataFrame) -> int:
    cols = ["forecast_date", "horizon_days", "h3_cell", "risk_rank", "rank", "feature", "value", "contribution",
            "factor", "text", "model_version", "issued_at"]
    with conn, conn.cursor() as cur:
        ensure_tables(conn)
        groups = df[["forecast_date", "horizon_days"]].drop_duplicates()
        for d, h in groups.itertuples(index=False):
            cur.execute("delete from forecast.hotspot_explanations where forecast_date = %s and horizon_days = %s",
                        (pd.Timestamp(d).date(), int(h)))
        if len(df):
            _copy(cur, df, "forecast.hotspot_explanations", cols)
        return len(df)


def write_district_metrics(conn, summary: pd.DataFrame) -> int:
    """Per-district means over the backtest's dates (method, horizon_days, district, n_dates, metric, value);
    replaces the previous backtest's."""
    keys = ["method", "horizon_days", "district", "n_dates"]
    long = summary.assign(district=summary["district"].fillna("(cells outside known districts)")).melt(
        id_vars=keys, var_name="metric", value_name="value").dropna(subset=["value"])
    with conn, conn.cursor() as cur:
        ensure_tables(conn)
        cur.execute("delete from forecast.backtest_district_metrics")
        if len(long):
            _copy(cur, long, "forecast.backtest_district_metrics", keys + ["metric", "value"])
        return len(long)
