"""What forecasting reads from the warehouse, and labels as they were known at a time.

Dates are pandas ``datetime64[ns]`` days throughout. A forecast for day D (one row of
``marts.fct_cell_daily_features``, feature_date = D) may use only extracts dated before
D. Training a model at origin O uses labels as they were known at O: withdrawals whose
(first) extract is dated before O, for windows that had had time to be reported
(``settle_days``, measured from the data itself rather than assumed).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

# Every table forecasting reads is a dbt mart, built with the daily feature path.
FEATURES_TABLE = "marts.fct_cell_daily_features"
ARRIVED_TABLE = "marts.fct_withdrawal_arrivals"
NEIGHBOURS_TABLE = "marts.dim_cell_neighbours"
CELLS_TABLE = "marts.dim_registered_cells"

# Model inputs: every feature column but the keys, places and bookkeeping.
NOT_FEATURES = {"cell_day_key", "h3_cell", "feature_date", "h3_res6", "state", "district", "built_at"}


def frame(conn, sql: str, params: tuple | None = None, dates: list[str] | None = None) -> pd.DataFrame:
    """A query's result through COPY (much faster than fetching rows into Python)."""
    with conn.cursor() as cur:
        query = cur.mogrify(sql, params) if params else sql
        if isinstance(query, bytes):
            query = query.decode()
        buf = io.StringIO()
        cur.copy_expert(f"copy ({query}) to stdout with (format csv, header true)", buf)
    buf.seek(0)
    df = pd.read_csv(buf, keep_default_na=False, na_values=[""])
    for c in dates or []:
        df[c] = pd.to_datetime(df[c])
    return df


def feature_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in NOT_FEATURES]


def load_features(conn, first=None, last=None) -> pd.DataFrame:
    """Feature rows with first <= feature_date <= last (either bound optional)."""
    where, params = [], []
    if first is not None:
        where.append("feature_date >= %s")
        params.append(pd.Timestamp(first).date())
    if last is not None:
        where.append("feature_date <= %s")
        params.append(pd.Timestamp(last).date())
    sql = f"select * from {FEATURES_TABLE}" + (" where " + " and ".join(where) if where else "")
    df = frame(conn, sql + " order by feature_date, h3_cell", tuple(params) or None, dates=["feature_date"])
    df = df.drop(columns=["built_at", "cell_day_key"], errors="ignore")
    for c in ("is_month_end", "is_holiday"):  # COPY writes booleans as t / f
        if c in df:
            df[c] = df[c].astype(str).map({"t": 1, "f": 0, "True": 1, "False": 0}).astype("int8")
    for c in feature_columns(df):
        df[c] = pd.to_numeric(df[c]).astype("float32")
    return df


def load_arrived(conn, before=None) -> pd.DataFrame:
    """Located withdrawals per (h3_cell, event_date, extract_date): what arrived when."""
    sql = f"select h3_cell, event_date, extract_date, n_withdrawals from {ARRIVED_TABLE}"
    params = None
    if before is not None:
        sql += " where extract_date < %s"
        params = (pd.Timestamp(before).date(),)
    return frame(conn, sql, params, dates=["event_date", "extract_date"])


def load_neighbours(conn) -> pd.DataFrame:
    return frame(conn, f"select h3_cell, neighbour_cell, k from {NEIGHBOURS_TABLE}")


def load_places(conn) -> pd.Series:
    """"STATE / DISTRICT" of every registered cell, by h3_cell."""
    return frame(conn, "select h3_cell, coalesce(state, '?') || ' / ' || coalesce(district, '?') as district "
                       f"from {CELLS_TABLE}").set_index("h3_cell")["district"]


def extract_dates(conn) -> pd.DatetimeIndex:
    df = frame(conn, "select extract_date from ingest.extract_ledger where status = 'loaded' order by 1",
               dates=["extract_date"])
    return pd.DatetimeIndex(df["extract_date"])


def settle_days(arrived: pd.DataFrame, quantile: float = 0.95, lo: int = 2, hi: int = 21) -> int:
    """Days after an event by which ``quantile`` of the withdrawals that do arrive have arrived."""
    if arrived.empty:
        return hi
    lag = (arrived["extract_date"] - arrived["event_date"]).dt.days.to_numpy()
    w = arrived["n_withdrawals"].to_numpy()
    order = np.argsort(lag, kind="stable")
    cum = np.cumsum(w[order]) / w.sum()
    q = int(lag[order][np.searchsorted(cum, quantile)])
    return int(min(max(q, lo), hi))


def daily_counts(arrived: pd.DataFrame, as_of=None) -> pd.DataFrame:
    """Withdrawals per (h3_cell, event_date) as known from extracts dated before ``as_of``."""
    a = arrived if as_of is None else arrived[arrived["extract_date"] < pd.Timestamp(as_of)]
    return a.groupby(["h3_cell", "event_date"], as_index=False)["n_withdrawals"].sum()


def window_sums(rows: pd.DataFrame, daily: pd.DataFrame, horizon: int, date_col: str = "feature_date",
                start_offset: int = 0) -> np.ndarray:
    """For each row (h3_cell, date), the sum of ``daily`` over days date+start_offset ..
    date+start_offset+horizon-1. Aligned with ``rows``."""
    if rows.empty:
        return np.zeros(0)
    key = daily.set_index(["h3_cell", "event_date"])["n_withdrawals"]
    out = np.zeros(len(rows))
    cells = rows["h3_cell"].to_numpy()
    for off in range(start_offset, start_offset + horizon):
        idx = pd.MultiIndex.from_arrays([cells, rows[date_col] + pd.Timedelta(days=off)])
        out += key.reindex(idx).fillna(0).to_numpy()
    return out


def labels_as_of(rows: pd.DataFrame, arrived: pd.DataFrame, horizon: int, as_of) -> np.ndarray:
    """Withdrawals in each row's window (feature_date .. +horizon-1) known from extracts before as_of."""
    return window_sums(rows, daily_counts(arrived, as_of), horizon)


def trainable(rows: pd.DataFrame, horizon: int, as_of, settle: int) -> pd.Series:
    """Rows whose label window ended ``settle`` days before as_of (labels nearly complete)."""
    last_day = rows["feature_date"] + pd.Timedelta(days=horizon - 1)
    return last_day <= pd.Timestamp(as_of) - pd.Timedelta(days=settle + 1)


def windows(daily: pd.DataFrame, date_col: str, value_col: str, first, last, horizons=(1, 7),
            out_col: str = "value") -> pd.DataFrame:
    """Per-cell daily values summed over each forecast window starting first..last:
    (h3_cell, forecast_date, horizon_days, out_col), cells with a non-zero sum only."""
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    out = []
    for h in horizons:
        parts = []
        for off in range(h):
            s = daily[(daily[date_col] >= first + pd.Timedelta(days=off))
                      & (daily[date_col] <= last + pd.Timedelta(days=off))]
            parts.append(pd.DataFrame({"h3_cell": s["h3_cell"].to_numpy(),
                                       "forecast_date": (s[date_col] - pd.Timedelta(days=off)).to_numpy(),
                                       out_col: s[value_col].to_numpy(dtype=float)}))
        w = pd.concat(parts).groupby(["h3_cell", "forecast_date"], as_index=False)[out_col].sum()
        w["horizon_days"] = h
        out.append(w[w[out_col] > 0])
    return pd.concat(out, ignore_index=True)[["h3_cell", "forecast_date", "horizon_days", out_col]]


def realised_windows(arrived: pd.DataFrame, first, last, horizons=(1, 7)) -> pd.DataFrame:
    """Withdrawals per cell and forecast window as the warehouse knows them now (for evaluation)."""
    return windows(daily_counts(arrived), "event_date", "n_withdrawals", first, last, horizons, "realised")


def truth_path(landing: Path | str | None) -> Path | None:
    """The simulator's truth beside a landing folder (``landing/../truth``), if there is one."""
    if not landing:
        return None
    p = Path(landing).resolve().parent / "truth" / "intensity.csv.gz"
    return p if p.exists() else None


def read_truth(path: Path) -> pd.DataFrame:
    """The simulator's true intensity per cell and day: (h3_cell, date, expected_withdrawals)."""
    with gzip.open(path, "rt") as f:
        return pd.read_csv(f, parse_dates=["date"])


def load_truth(path: Path, first, last, horizons=(1, 7)) -> pd.DataFrame:
    """The simulator's true intensity summed over each forecast window:
    (h3_cell, forecast_date, horizon_days, expected) for first <= forecast_date <= last."""
    return windows(read_truth(path), "date", "expected_withdrawals", first, last, horizons, "expected")
