"""The forecast tables of contract/OUTPUTS.md and the project's own tables beside them.

Writes are idempotent per (forecast_date, horizon_days): the rows of the dates written
are replaced in one transaction, so a re-run never duplicates and a reader never sees a
half-written forecast. Geometry, state and district come from ref.h3_cells (the
directory-assigned place of each registered cell).
"""

from __future__ import annotations

import io

import pandas as pd

FORECAST_COLUMNS = ["h3_cell", "h3_res", "forecast_date", "horizon_days", "issued_at", "expected_withdrawals",
                    "p_any", "risk_rank", "model_version", "state", "district", "geom"]

DDL = """
create schema if not exists marts;
create table if not exists marts.{table} (
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
create index if not exists {table}_geom on marts.{table} using gist (geom);
"""

OTHER_DDL = """
create table if not exists marts.hotspot_explanations (
    forecast_date date not null,
    horizon_days smallint not null,
    h3_cell text not null,
    risk_rank integer not null,
    rank smallint not null,
    feature text not null,
    value double precision,
    contribution double precision not null,
    factor double precision not null,
    text text not null,
    model_version text not null,
    issued_at timestamptz not null,
    primary key (forecast_date, horizon_days, h3_cell, rank)
);
create table if not exists marts.backtest_baselines (
    method text not null,
    h3_cell text not null,
    forecast_date date not null,
    horizon_days smallint not null,
    expected_withdrawals double precision not null,
    p_any double precision not null,
    risk_rank integer not null,
    primary key (method, forecast_date, horizon_days, h3_cell)
);
create table if not exists marts.backtest_district_metrics (
    method text not null,
    horizon_days smallint not null,
    district text not null,
    n_dates integer not null,
    metric text not null,
    value double precision,
    computed_at timestamptz not null default now(),
    primary key (method, horizon_days, district, metric)
);
create table if not exists marts.backtest_metrics (
    method text not null,
    forecast_date date not null,
    horizon_days smallint not null,
    metric text not null,
    value double precision,
    computed_at timestamptz not null default now(),
    primary key (method, forecast_date, horizon_days, metric)
);
"""

FORECAST_TABLES = ("hotspot_forecast", "hotspot_forecast_history", "backtest_forecast")


def ensure_tables(conn) -> None:
    with conn.cursor() as cur:
        for t in FORECAST_TABLES:
            cur.execute(DDL.format(table=t))
        cur.execute(OTHER_DDL)


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
        cur.execute("select count(*) from new_forecast n left join ref.h3_cells c using (h3_cell) "
                    "where c.h3_cell is null")
        missing = cur.fetchone()[0]
        if missing:
            raise ValueError(f"{missing} forecast cells are not registered in ref.h3_cells")
        if replace_all:
            cur.execute(f"delete from marts.{table}")
        else:
            cur.execute(f"""delete from marts.{table} t using (select distinct forecast_date, horizon_days
                            from new_forecast) n
                            where t.forecast_date = n.forecast_date and t.horizon_days = n.horizon_days""")
        cur.execute(f"""insert into marts.{table} ({', '.join(FORECAST_COLUMNS)})
                        select n.h3_cell, 8, n.forecast_date, n.horizon_days, n.issued_at,
                               n.expected_withdrawals, n.p_any, n.risk_rank, n.model_version,
                               coalesce(c.state, 'UNKNOWN'), coalesce(c.district, 'UNKNOWN'), c.geom
                        from new_forecast n join ref.h3_cells c using (h3_cell)""")
        return cur.rowcount


def write_baselines(conn, df: pd.DataFrame, dates: tuple) -> int:
    """Baseline forecasts of a backtest (method, h3_cell, forecast_date, horizon_days, mu, p)."""
    df = pd.concat([rank(g) for _, g in df.groupby("method")]) if len(df) else df
    cols = ["method", "h3_cell", "forecast_date", "horizon_days", "expected_withdrawals", "p_any", "risk_rank"]
    with conn, conn.cursor() as cur:
        ensure_tables(conn)
        cur.execute("delete from marts.backtest_baselines where forecast_date between %s and %s", dates)
        if len(df):
            _copy(cur, df, "marts.backtest_baselines", cols)
        return len(df)


def write_metrics(conn, per_date: pd.DataFrame, dates: tuple) -> int:
    """Per-date metrics of every method, long form (method, forecast_date, horizon_days, metric, value)."""
    keys = ["method", "forecast_date", "horizon_days"]
    long = per_date.melt(id_vars=keys, var_name="metric", value_name="value").dropna(subset=["value"])
    with conn, conn.cursor() as cur:
        ensure_tables(conn)
        cur.execute("delete from marts.backtest_metrics where forecast_date between %s and %s", dates)
        if len(long):
            _copy(cur, long, "marts.backtest_metrics", keys + ["metric", "value"])
        return len(long)


def write_explanations(conn, df: pd.DataFrame) -> int:
    cols = ["forecast_date", "horizon_days", "h3_cell", "risk_rank", "rank", "feature", "value", "contribution",
            "factor", "text", "model_version", "issued_at"]
    with conn, conn.cursor() as cur:
        ensure_tables(conn)
        groups = df[["forecast_date", "horizon_days"]].drop_duplicates()
        for d, h in groups.itertuples(index=False):
            cur.execute("delete from marts.hotspot_explanations where forecast_date = %s and horizon_days = %s",
                        (pd.Timestamp(d).date(), int(h)))
        if len(df):
            _copy(cur, df, "marts.hotspot_explanations", cols)
        return len(df)


def write_district_metrics(conn, summary: pd.DataFrame) -> int:
    """Per-district means over the backtest's dates (method, horizon_days, district, n_dates, metric, value);
    replaces the previous backtest's."""
    keys = ["method", "horizon_days", "district", "n_dates"]
    long = summary.assign(district=summary["district"].fillna("(cells outside known districts)")).melt(
        id_vars=keys, var_name="metric", value_name="value").dropna(subset=["value"])
    with conn, conn.cursor() as cur:
        ensure_tables(conn)
        cur.execute("delete from marts.backtest_district_metrics")
        if len(long):
            _copy(cur, long, "marts.backtest_district_metrics", keys + ["metric", "value"])
        return len(long)
