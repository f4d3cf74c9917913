"""Reference forecasts to beat: naive persistence, a prospective-hotspot kernel and a lag-feature GBM.

Every baseline forecasts ``expected_withdrawals`` (mu >= 0) for each row of ``rows``
(``h3_cell``, ``feature_date`` = D) over the window D .. D+horizon-1, returned as a
numpy array aligned with ``rows`` (same order, same length). They read

* ``arrived``: withdrawals per (``h3_cell``, ``event_date``, ``extract_date``) with
  ``n_withdrawals``: what arrived in which extract (see :mod:`hotspots.forecast.data`);
* ``neighbours``: (``h3_cell``, ``neighbour_cell``, ``k``) grid-distance pairs, both
  directions, no self pairs (only the kernel uses them).

**Leak rule.** The forecast for a row dated D uses only ``arrived`` records with
``extract_date < D`` (and ``event_date < D``), whatever else is passed in. ``fit`` at
origin O uses only records with ``extract_date < O``, and trains only on rows whose
label window had settled by O (:func:`hotspots.forecast.data.trainable`), labelled as
known at O (:func:`hotspots.forecast.data.labels_as_of`).

**Cost.** History "as known before D" differs per D (a withdrawal of day D-2 that
arrives in extract D+1 is visible to D+2 but not to D), so the features are built
with one vectorised pass per distinct date (:func:`known_lag_sums`): arrived is sorted
by event day once, each date takes its slice of event days with a binary search, drops
what had not arrived yet and sums per cell with ``np.bincount``. No per-row Python.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from hotspots.forecast import data

__all__ = [
    "BASELINES",
    "Baseline",
    "KernelBaseline",
    "LagGBMBaseline",
    "PersistenceBaseline",
    "kernel_scores",
    "kernel_time_weights",
    "known_lag_sums",
    "lag_features",
    "p_any_from_mu",
    "persistence_mu",
]

PERSISTENCE_DAYS = 7
KERNEL_DAYS = 56  # T: bandwidth in time (8 weeks)
KERNEL_MAX_K = 2  # bandwidth in space (grid distance)
LAG_FEATURES = ["lag_1", "lag_7", "lag_30", "mean_7", "mean_28", "dow"]
GBM_PARAMS = {
    "objective": "poisson",
    "num_leaves": 15,
    "learning_rate": 0.05,
    "min_data_in_leaf": 50,
    "num_threads": 2,  # configured() gives it the model's (config/forecast.yml train.lightgbm.num_threads)
    "verbose": -1,
    "seed": 20240601,
    "deterministic": True,
    "force_row_wise": True,
}
GBM_ROUNDS = 200


class Baseline(Protocol):
    name: str

    def fit(self, rows: pd.DataFrame, arrived: pd.DataFrame, neighbours: pd.DataFrame, horizon: int,
            origin) -> Baseline: ...

    def predict(self, rows: pd.DataFrame, arrived: pd.DataFrame, neighbours: pd.DataFrame,
                horizon: int) -> np.ndarray: ...


def p_any_from_mu(mu):
    """P(at least one withdrawal) for a Poisson count with mean ``mu``: 1 - exp(-mu)."""
    return -np.expm1(-np.asarray(mu, dtype=float))


# ---------------------------------------------------------------- history as known before D
def _days(values) -> np.ndarray:
    """Dates as int64 day numbers (whatever the datetime64 unit)."""
    return np.asarray(pd.to_datetime(values)).astype("datetime64[D]").astype(np.int64)


def _row_index(rows: pd.DataFrame) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray]:
    """(cells, dates, cell index per row, date index per row): the distinct cells and
    days of ``rows`` and where each row sits in them."""
    cells = pd.Index(pd.unique(rows["h3_cell"]))
    day = _days(rows["feature_date"])
    dates = np.unique(day)
    return cells, dates, cells.get_indexer(rows["h3_cell"]), np.searchsorted(dates, day)


def known_lag_sums(arrived: pd.DataFrame, dates: np.ndarray, cells: pd.Index,
                   weights: np.ndarray) -> np.ndarray:
    """Weighted sums of each cell's recent daily counts as known before each date.

    ``dates`` are int64 day numbers (see ``_days``), ``weights`` is (F, L): column j-1
    weighs event day D-j (j = 1 .. L). Returns (F, len(dates), len(cells)) with

        out[f, i, c] = sum_j weights[f, j-1] * (withdrawals in cell c on day dates[i]-j
                                                from extracts dated before dates[i]).

    Cells of ``arrived`` not in ``cells`` are ignored.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    n_f, n_lag = weights.shape
    out = np.zeros((n_f, len(dates), len(cells)))
    if len(dates) == 0 or len(cells) == 0 or arrived.empty:
        return out
    ev = _days(arrived["event_date"])
    ex = _days(arrived["extract_date"])
    code = cells.get_indexer(arrived["h3_cell"])
    keep = (code >= 0) & (ev >= dates.min() - n_lag) & (ev < dates.max()) & (ex < dates.max())
    order = np.argsort(ev[keep], kind="stable")
    ev, ex, code = ev[keep][order], ex[keep][order], code[keep][order]
    n = arrived["n_withdrawals"].to_numpy(dtype=float)[keep][order]
    starts = np.searchsorted(ev, dates - n_lag, side="left")
    ends = np.searchsorted(ev, dates, side="left")
    for i, d in enumerate(dates):
        s, e = starts[i], ends[i]
        seen = ex[s:e] < d
        c, j, w = code[s:e][seen], d - ev[s:e][seen], n[s:e][seen]
        for f in range(n_f):
            out[f, i] = np.bincount(c, weights=w * weights[f, j - 1], minlength=len(cells))
    return out


def persistence_mu(rows: pd.DataFrame, arrived: pd.DataFrame, horizon: int) -> np.ndarray:
    """Mean daily withdrawals over event days D-7 .. D-1 (extracts before D), times horizon."""
    if rows.empty:
        return np.zeros(0)
    cells, dates, ci, di = _row_index(rows)
    w = np.full((1, PERSISTENCE_DAYS), 1.0 / PERSISTENCE_DAYS)
    return horizon * known_lag_sums(arrived, dates, cells, w)[0, di, ci]


def kernel_time_weights(days: int = KERNEL_DAYS) -> np.ndarray:
    """Weight of event day D-j, j = 1 .. days: 1 / (1 + weeks_ago), weeks_ago = floor((j-1) / 7)."""
    j = np.arange(1, days + 1)
    return 1.0 / (1.0 + (j - 1) // 7)


def kernel_scores(rows: pd.DataFrame, arrived: pd.DataFrame, neighbours: pd.DataFrame | None,
                  days: int = KERNEL_DAYS, max_k: int = KERNEL_MAX_K) -> np.ndarray:
    """Prospective-hotspot risk score (Bowers, Johnson & Pease 2004) per row.

    Each withdrawal that arrived before D, happened on day D-1-7w .. D-7-7w (w =
    weeks_ago, within the last ``days`` days) in a cell at grid distance k <= ``max_k``
    (the cell itself k = 0) adds 1/(1+k) * 1/(1+w).
    """
    if rows.empty:
        return np.zeros(0)
    cells, dates, ci, di = _row_index(rows)
    # edges target <- source with weight 1/(1+k); the cell itself with k = 0
    src_cells = [np.asarray(cells, dtype=object)]
    tgt, wk = [np.arange(len(cells))], [np.ones(len(cells))]
    if neighbours is not None and not neighbours.empty:
        nb = neighbours[(neighbours["k"] >= 1) & (neighbours["k"] <= max_k)]
        nb = nb[nb["h3_cell"] != nb["neighbour_cell"]]
        nb = nb.groupby(["h3_cell", "neighbour_cell"], as_index=False)["k"].min()
        t = cells.get_indexer(nb["h3_cell"])
        src_cells.append(nb["neighbour_cell"].to_numpy(dtype=object)[t >= 0])
        tgt.append(t[t >= 0])
        wk.append(1.0 / (1.0 + nb["k"].to_numpy(dtype=float)[t >= 0]))
    src_cells, tgt, wk = np.concatenate(src_cells), np.concatenate(tgt), np.concatenate(wk)
    universe = pd.Index(pd.unique(src_cells))
    src = universe.get_indexer(src_cells)
    own = known_lag_sums(arrived, dates, universe, kernel_time_weights(days)[None, :])[0]
    score = np.zeros((len(dates), len(cells)))
    for i in range(len(dates)):
        score[i] = np.bincount(tgt, weights=own[i, src] * wk, minlength=len(cells))
    return score[di, ci]


def lag_features(rows: pd.DataFrame, arrived: pd.DataFrame) -> pd.DataFrame:
    """Per row, from the cell's own daily counts as known before D: counts on D-1, D-7 and
    D-30, mean daily counts over D-7 .. D-1 and D-28 .. D-1, and the day of week of D."""
    cols = LAG_FEATURES
    if rows.empty:
        return pd.DataFrame({c: np.zeros(0) for c in cols})
    cells, dates, ci, di = _row_index(rows)
    w = np.zeros((5, 30))
    w[0, 0] = w[1, 6] = w[2, 29] = 1.0
    w[3, :7] = 1.0 / 7
    w[4, :28] = 1.0 / 28
    s = known_lag_sums(arrived, dates, cells, w)[:, di, ci]
    out = {c: s[f] for f, c in enumerate(cols[:5])}
    out["dow"] = pd.DatetimeIndex(pd.to_datetime(rows["feature_date"])).dayofweek.to_numpy(dtype=float)
    return pd.DataFrame(out)


def _training_set(rows: pd.DataFrame, arrived: pd.DataFrame, horizon: int, origin):
    """(trainable rows, labels as known at origin, arrived before origin)."""
    origin = pd.Timestamp(origin)
    before = arrived[arrived["extract_date"] < origin] if not arrived.empty else arrived
    if rows.empty:
        return rows, np.zeros(0), before
    settle = data.settle_days(before)
    train = rows[data.trainable(rows, horizon, origin, settle).to_numpy()].reset_index(drop=True)
    if train.empty or before.empty:
        return train, np.zeros(len(train)), before
    return train, data.labels_as_of(train, before, horizon, origin), before


def _check_horizon(fitted: int | None, horizon: int, name: str) -> None:
    if fitted is None:
        raise RuntimeError(f"{name}: call fit before predict")
    if horizon != fitted:
        raise ValueError(f"{name} was fitted for horizon {fitted}, asked for {horizon}")


# ---------------------------------------------------------------- the baselines
class PersistenceBaseline:
    """Naive persistence: the last 7 days' mean daily count as arrived before D, times horizon."""

    name = "persistence"

    def fit(self, rows, arrived, neighbours, horizon, origin) -> PersistenceBaseline:
        return self

    def predict(self, rows, arrived, neighbours, horizon) -> np.ndarray:
        return persistence_mu(rows, arrived, horizon)


class KernelBaseline:
    """Prospective-hotspot kernel score times one scale factor fitted at the origin.

    ``scale`` = sum(labels) / sum(scores) over the trainable rows (the Poisson maximum
    likelihood scale, which is also the ratio of sums). When there is nothing to fit
    (no trainable rows or all their scores 0) the scale is ``horizon / sum(time
    weights)`` (= horizon / 19.03 for 56 days): it turns the score of an isolated cell
    with a steady rate of r a day into horizon * r. Scores but no withdrawals in the
    training labels give scale 0 (forecasts 0), as the ratio of sums says.
    """

    name = "kernel"

    def __init__(self, days: int = KERNEL_DAYS, max_k: int = KERNEL_MAX_K):
        self.days, self.max_k = days, max_k
        self.scale: float | None = None
        self.horizon: int | None = None
        self.fallback = False

    def fit(self, rows, arrived, neighbours, horizon, origin) -> KernelBaseline:
        train, labels, before = _training_set(rows, arrived, horizon, origin)
        scores = kernel_scores(train, before, neighbours, self.days, self.max_k)
        total = float(scores.sum())
        self.horizon = horizon
        self.fallback = total <= 0
        self.scale = horizon / kernel_time_weights(self.days).sum() if self.fallback else float(labels.sum()) / total
        return self

    def predict(self, rows, arrived, neighbours, horizon) -> np.ndarray:
        _check_horizon(self.horizon, horizon, self.name)
        return self.scale * kernel_scores(rows, arrived, neighbours, self.days, self.max_k)


class LagGBMBaseline:
    """LightGBM (Poisson) on the cell's own lagged counts as known before D.

    Trained on the trainable rows with labels as known at the origin. With no trainable
    rows it falls back to persistence; when every training label is 0 it forecasts 0.
    """

    name = "lag_gbm"

    def __init__(self, params: dict | None = None, rounds: int = GBM_ROUNDS, negative_rate: float = 1.0,
                 history_days: int | None = None):
        self.params = {**GBM_PARAMS, **(params or {})}
        self.rounds = rounds
        # Like the model (config/forecast.yml train.negative_rate, train.history_days): a share of the
        # zero-label rows, weighted back so the Poisson loss stays unbiased, from the same window.
        self.negative_rate = float(negative_rate)
        self.history_days = history_days
        self.model = None
        self.mode: str | None = None  # "model", "persistence" or "zero"
        self.horizon: int | None = None

    def fit(self, rows, arrived, neighbours, horizon, origin) -> LagGBMBaseline:
        import lightgbm as lgb

        if self.history_days is not None and not rows.empty:
            rows = rows[rows["feature_date"] >= pd.Timestamp(origin) - pd.Timedelta(days=self.history_days)]
        train, labels, before = _training_set(rows, arrived, horizon, origin)
        self.horizon, self.model = horizon, None
        if train.empty:
            self.mode = "persistence"
        elif labels.sum() <= 0:
            self.mode = "zero"
        else:
            weight = None
            if self.negative_rate < 1.0:
                rng = np.random.default_rng(self.params["seed"] + horizon)
                keep = (labels > 0) | (rng.random(len(labels)) < self.negative_rate)
                train, labels = train[keep].reset_index(drop=True), labels[keep]
                weight = np.where(labels > 0, 1.0, 1.0 / self.negative_rate)
            x = lag_features(train, before)
            ds = lgb.Dataset(x, label=labels, weight=weight, feature_name=LAG_FEATURES, free_raw_data=True)
            self.model = lgb.train(self.params, ds, num_boost_round=self.rounds)
            self.mode = "model"
        return self

    def predict(self, rows, arrived, neighbours, horizon) -> np.ndarray:
        _check_horizon(self.horizon, horizon, self.name)
        if rows.empty:
            return np.zeros(0)
        if self.mode == "persistence":
            return persistence_mu(rows, arrived, horizon)
        if self.mode == "zero":
            return np.zeros(len(rows))
        mu = self.model.predict(lag_features(rows, arrived), num_threads=self.params["num_threads"])
        return np.clip(np.asarray(mu, dtype=float), 0.0, None)


BASELINES = {
    "persistence": PersistenceBaseline,
    "kernel": KernelBaseline,
    "lag_gbm": LagGBMBaseline,
}


def configured(name: str, cfg: dict) -> Baseline:
    """The baseline `name` as the evaluation fits it: the learned one (lag_gbm) from the model's
    history window and with its sampling of zero labels (config/forecast.yml, train)."""
    if name == "lag_gbm":
        threads = cfg["train"].get("lightgbm", {}).get("num_threads")
        return LagGBMBaseline(params={"num_threads": threads} if threads else None,
                              negative_rate=float(cfg["train"].get("negative_rate", 1.0)),
                              history_days=int(cfg["train"]["history_days"]))
    return BASELINES[name]()
