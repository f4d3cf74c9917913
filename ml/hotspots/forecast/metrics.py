"""Evaluation metrics for hotspot forecasts of fraud-linked cash withdrawals.

A forecast gives, for one (forecast_date, horizon_days) and every candidate H3 res-8
cell, ``expected_withdrawals`` (mu >= 0) and ``p_any`` = P(at least one withdrawal).
The array functions below take 1-D arrays aligned by cell for ONE such
(forecast_date, horizon_days); :func:`evaluate` does the alignment and grouping for
whole frames, :func:`summarise` averages its output over dates.

Conventions shared by the ranking metrics (capture rate, PAI, PEI):

* **Ranking.** Cells are ranked by ``score`` descending with a *stable* sort, so
  tied scores are broken by position in the input: the earlier cell wins.
  :func:`evaluate` sorts each group by ``h3_cell`` first, so there ties go to the
  smaller cell id. Deterministic, and it neither rewards nor punishes ties on
  average across cells.
* **Unscored cells.** A ``NaN`` score means "the model did not score this cell"
  (e.g. a cell with realised withdrawals, or true intensity, that is not in the
  candidate set). It can never be selected, but its realised withdrawals (or its
  reference value) still count in the denominators: missing a cell is a miss.
* **k.** The model selects ``n = min(k, number of scored cells)`` cells: k is capped
  at the candidate count. PEI's best ranking picks the same ``n`` cells (equal
  area), but from *all* cells, scored or not.
* **Undefined values are NaN.** A metric whose denominator is 0 (no realised
  withdrawals, nothing selected, no reference mass) is ``NaN``, not 0 or 1, and
  :func:`summarise` skips NaN when it averages over dates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral

import numpy as np
import pandas as pd

KEYS = ["forecast_date", "horizon_days"]
CELL = "h3_cell"
MU_FLOOR = 1e-9

__all__ = [
    "brier_score",
    "capture_rate",
    "evaluate",
    "pai",
    "pei",
    "pei_against",
    "poisson_deviance",
    "reliability_table",
    "summarise",
]


# ---------------------------------------------------------------- helpers
def _vector(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has non-finite values")
    return a


def _counts(x, name: str) -> np.ndarray:
    a = _vector(x, name)
    if (a < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return a


def _probabilities(x, name: str = "p_any") -> np.ndarray:
    a = _vector(x, name)
    if ((a < 0) | (a > 1)).any():
        raise ValueError(f"{name} must lie in [0, 1]")
    return a


def _same_length(*arrays: np.ndarray) -> None:
    if len({len(a) for a in arrays}) > 1:
        raise ValueError(f"arrays are not aligned: lengths {[len(a) for a in arrays]}")


def _k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    return int(k)


def _score(score) -> np.ndarray:
    # +inf / -inf scores rank fine; only NaN has a meaning of its own (unscored)
    a = np.asarray(score, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"score must be 1-D, got shape {a.shape}")
    return a


def _ranking(score: np.ndarray) -> np.ndarray:
    """Positions of the scored (non-NaN) cells, best first; ties keep input order."""
    order = np.argsort(-score, kind="stable")  # NaN sorts last
    return order[: int(np.count_nonzero(~np.isnan(score)))]


def _top_sum(values: np.ndarray, order: np.ndarray, n: int) -> float:
    return float(values[order[:n]].sum())


def _best_sum(values: np.ndarray, n: int) -> float:
    """Largest possible sum of ``values`` over ``n`` cells."""
    if n <= 0:
        return 0.0
    n = min(n, len(values))
    return float(np.sort(values)[len(values) - n:].sum())


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


# ---------------------------------------------------------------- ranking metrics
def capture_rate(score, realised, k: int) -> float:
    """Share of the realised withdrawals that fall in the model's top-k cells.

    ``capture = sum(realised[top_n(score)]) / sum(realised)``, n = min(k, #scored).
    Why: it is what a patrol of k cells would have intercepted.

    Ties: stable sort, the earlier cell wins. ``NaN`` scores are never selected but
    their realised withdrawals count in the denominator. Returns ``NaN`` when
    ``sum(realised) == 0`` (nothing to capture).
    """
    s, y, k = _score(score), _counts(realised, "realised"), _k(k)
    _same_length(s, y)
    return _ratio(_top_sum(y, _ranking(s), k), float(y.sum()))


def pai(score, realised, k: int, n_candidates: int | None = None) -> float:
    """Predictive Accuracy Index (Chainey, Tompson & Uhlig 2008).

    ``PAI = capture_rate / (n / n_candidates)``, n = min(k, #scored) the cells
    selected. Why: capture rate per unit of area, so 1 is no better than picking
    cells at random and k's of different size become comparable.

    ``n_candidates`` (default: the number of scored cells) is the size of the area
    the k cells are chosen from; it cannot be smaller than the number of scored
    cells. With the default, ``n = min(k, n_candidates)``, so a k of all
    candidates or more gives ``PAI == capture_rate == 1`` when all realised
    withdrawals are in scored cells. ``NaN`` when the capture rate is NaN or
    nothing is selected.
    """
    s, y, k = _score(score), _counts(realised, "realised"), _k(k)
    _same_length(s, y)
    order = _ranking(s)
    n_cand = len(order) if n_candidates is None else _k(n_candidates)
    if n_cand < len(order):
        raise ValueError(f"n_candidates={n_cand} is smaller than the {len(order)} scored cells")
    n = min(k, len(order))
    if n == 0:
        return float("nan")
    return _ratio(_top_sum(y, order, n), float(y.sum())) / (n / n_cand)


def pei(score, realised, k: int, reference=None) -> float:
    """Predictive Efficiency Index (Hunt 2016): captured over the best capturable.

    ``PEI = sum(v[top_n(score)]) / max_{|S| = n} sum(v[S])``, n = min(k, #scored),
    where ``v = realised`` by default, or ``v = reference`` when one is given. The
    best set S is chosen among *all* cells, including unscored (NaN score) ones.
    Why: PAI's ceiling depends on how concentrated the withdrawals were that day;
    PEI rescales to [0, 1], 1 meaning no ranking of n cells could have done better.

    With ``reference`` (e.g. the simulator's true expected intensity over the
    window) BOTH numerator and denominator use the reference values and
    ``realised`` only serves to check the alignment: PEI against truth measures
    ranking quality free of Poisson noise. Use :func:`pei_against` when the truth
    covers cells the model did not score. ``NaN`` when the best sum is 0.
    """
    s, k = _score(score), _k(k)
    v = _counts(realised if reference is None else reference, "realised" if reference is None else "reference")
    if reference is not None:
        _same_length(s, _vector(realised, "realised"))
    _same_length(s, v)
    order = _ranking(s)
    n = min(k, len(order))
    return _ratio(_top_sum(v, order, n), _best_sum(v, n))


def pei_against(score_cells, score, reference_cells, reference_values, k: int) -> float:
    """PEI of a ranking against reference values keyed by cell, e.g. the true intensity.

    ``PEI* = sum(ref over the model's top-n cells) / sum(ref over the top-n cells by ref)``,
    n = min(k, #scored). ``reference_cells`` may hold cells absent from
    ``score_cells``: they cannot be selected by the model but compete in the best
    ranking (a hotspot the model never scored is a miss). Scored cells absent from
    the reference have reference 0. Ties in ``score`` go to the cell listed first in
    ``score_cells``. Why: ranking quality against the truth, free of Poisson noise,
    without having to align the arrays by hand.
    """
    s = pd.Series(_score(score), index=pd.Index(score_cells))
    r = pd.Series(_counts(reference_values, "reference_values"), index=pd.Index(reference_cells))
    for name, x in (("score_cells", s), ("reference_cells", r)):
        if not x.index.is_unique:
            raise ValueError(f"{name} has duplicate cells")
    cells = s.index.append(r.index[~r.index.isin(s.index)])
    ref = r.reindex(cells, fill_value=0.0).to_numpy(dtype=float)
    return pei(s.reindex(cells).to_numpy(dtype=float), ref, k, reference=ref)


# ---------------------------------------------------------------- count and probability metrics
def poisson_deviance(expected, realised) -> float:
    """Mean Poisson deviance of the expected counts.

    ``D = mean(2 * (y*log(y/mu) - (y - mu)))`` with ``y*log(y/mu) = 0`` at y = 0 and
    ``mu = max(expected, 1e-9)``. Why: it is the proper scoring rule of a Poisson
    count forecast (0 for a perfect mu = y, rewards calibrated intensities, not just
    a ranking). ``NaN`` for empty input.
    """
    mu = np.maximum(_counts(expected, "expected"), MU_FLOOR)
    y = _counts(realised, "realised")
    _same_length(mu, y)
    if len(y) == 0:
        return float("nan")
    pos = y > 0
    ylog = np.zeros_like(y)
    ylog[pos] = y[pos] * np.log(y[pos] / mu[pos])
    return float(np.mean(2.0 * (ylog - (y - mu))))


def brier_score(p_any, realised) -> float:
    """Brier score of P(at least one withdrawal): ``mean((p - 1[y > 0])**2)``.

    Why: proper score of the p_any column, 0 is perfect, 0.25 is p = 0.5 everywhere.
    ``NaN`` for empty input.
    """
    p, y = _probabilities(p_any), _counts(realised, "realised")
    _same_length(p, y)
    if len(p) == 0:
        return float("nan")
    return float(np.mean((p - (y > 0)) ** 2))


def reliability_table(p_any, realised, bins: int | Sequence[float] = 10) -> pd.DataFrame:
    """Calibration of p_any: per probability bin, mean predicted vs observed frequency.

    ``bins`` is a number of equal-width bins on [0, 1] or increasing edges that
    cover every p. Bins are ``[lower, upper)`` except the last, ``[lower, upper]``,
    so a p on an inner edge goes to the upper bin. Columns: ``bin, lower, upper, n,
    mean_predicted = mean(p in bin), observed_frequency = mean(1[y > 0] in bin)``;
    empty bins are kept with n = 0 and NaN means. Why: a calibrated forecast has
    ``observed_frequency ~= mean_predicted`` in every populated bin.
    """
    p, y = _probabilities(p_any), _counts(realised, "realised")
    _same_length(p, y)
    if isinstance(bins, Integral) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError("bins must be >= 1")
        edges = np.linspace(0.0, 1.0, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or len(edges) < 2 or not (np.diff(edges) > 0).all():
            raise ValueError("bin edges must be 1-D, strictly increasing, at least 2")
        if len(p) and (p.min() < edges[0] or p.max() > edges[-1]):
            raise ValueError("bin edges do not cover every p_any")
    nb = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, nb - 1)
    n = np.bincount(idx, minlength=nb)
    sum_p = np.bincount(idx, weights=p, minlength=nb)
    sum_o = np.bincount(idx, weights=(y > 0).astype(float), minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(n > 0, sum_p / np.maximum(n, 1), np.nan)
        obs = np.where(n > 0, sum_o / np.maximum(n, 1), np.nan)
    return pd.DataFrame({"bin": np.arange(nb), "lower": edges[:-1], "upper": edges[1:], "n": n,
                         "mean_predicted": mean_p, "observed_frequency": obs})


# ---------------------------------------------------------------- frames
def _check_frame(df: pd.DataFrame, name: str, cols: Iterable[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")
    if df.duplicated(KEYS + [CELL]).any():
        raise ValueError(f"{name} has duplicate (forecast_date, horizon_days, h3_cell) rows")


def _group_metrics(cols: dict[str, np.ndarray], ks: Sequence[int], with_truth: bool) -> dict:
    """One group's metrics from its rows' arrays (``_score``, ``realised``, ``expected``,
    ``_evaluated``, ``expected_withdrawals``, ``p_any``), sorted by cell."""
    score = cols["_score"]
    y = cols["realised"]
    order = _ranking(score)
    total = float(y.sum())
    out: dict = {"n_candidates": len(order), "realised_total": total,
                 "realised_unscored": float(y[np.isnan(score)].sum())}
    truth = cols["expected"] if with_truth else None
    for k in ks:
        n = min(k, len(order))
        cap = _ratio(_top_sum(y, order, n), total)
        out[f"capture_rate_{k}"] = cap
        out[f"pai_{k}"] = cap / (n / len(order)) if n > 0 else float("nan")
        out[f"pei_{k}"] = _ratio(_top_sum(y, order, n), _best_sum(y, n))
        if with_truth:
            out[f"pei_truth_{k}"] = _ratio(_top_sum(truth, order, n), _best_sum(truth, n))
    ev = cols["_evaluated"]
    out["poisson_deviance"] = poisson_deviance(cols["expected_withdrawals"][ev], y[ev])
    out["brier"] = brier_score(cols["p_any"][ev], y[ev])
    return out


def _runs(df: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Start and end row of each run of equal ``keys`` in a frame sorted by them (NaN equal to NaN)."""
    change = np.zeros(len(df), dtype=bool)
    if len(df):
        change[0] = True
    for c in keys:
        a = df[c]
        prev = a.shift()
        same = np.asarray((a == prev).fillna(False), dtype=bool)  # nullable dtypes: NA compares as NA
        change |= ~(same | (a.isna() & prev.isna()).to_numpy(dtype=bool))
    starts = np.flatnonzero(change)
    return starts, np.append(starts[1:], len(df))


def evaluate(forecasts: pd.DataFrame, realised: pd.DataFrame, ks: Sequence[int] = (50, 200, 1000),
             truth: pd.DataFrame | None = None, by: str | None = None, *,
             score: str = "expected_withdrawals", groups: Mapping | pd.Series | None = None) -> pd.DataFrame:
    """All metrics, one row per (forecast_date, horizon_days[, by]).

    ``forecasts``: h3_cell, forecast_date, horizon_days, expected_withdrawals, p_any
    (+ the ``by`` column, e.g. district). ``realised``: h3_cell, forecast_date,
    horizon_days, realised (withdrawal count over the horizon's window; absent = 0).
    ``truth`` (optional): h3_cell, forecast_date, horizon_days, expected (true
    intensity over the window; absent = 0). Key columns must share dtypes across
    frames; no row may repeat a (forecast_date, horizon_days, h3_cell).

    The groups evaluated are the (forecast_date, horizon_days) present in
    ``forecasts``; realised and truth rows of other groups are ignored. Within a
    group the cells are the union of the three frames, sorted by h3_cell (so score
    ties go to the smaller cell id). Cells without a forecast are unscored: never
    selected, but their realised withdrawals count in the capture denominator and
    in the PEI best ranking, their truth in the PEI-against-truth best ranking, and
    - for cells with realised withdrawals - in the deviance and Brier score as a
    forecast of mu = 0, p = 0 (truth-only cells do not enter deviance or Brier, so
    passing truth does not change them). The ranking score is the ``score`` column.

    Columns: the keys, [by], ``n_candidates`` (scored cells), ``realised_total``,
    ``realised_unscored`` (withdrawals in cells without forecast), then per k in
    ``ks``: ``capture_rate_k, pai_k, pei_k`` and, with truth, ``pei_truth_k`` (see
    the array functions; PAI's area is the scored cells), then
    ``poisson_deviance, brier``.

    ``by="district"`` evaluates each district on its own: the candidate set, k's
    cap, the capture denominator and the best rankings are the district's. A cell
    without forecast takes its district from ``groups`` (mapping h3_cell -> value)
    if given, else from any forecast row of the same cell, else from a ``by``
    column of its own frame (a forecast row with a missing ``by`` value is
    filled the same way); cells left without one form a NaN group row.
    """
    ks = [_k(k) for k in ks]
    if len(set(ks)) != len(ks) or any(k == 0 for k in ks):
        raise ValueError(f"ks must be distinct positive integers, got {ks}")
    f_cols = KEYS + [CELL, "expected_withdrawals", "p_any", score] + ([by] if by else [])
    _check_frame(forecasts, "forecasts", f_cols)
    _check_frame(realised, "realised", KEYS + [CELL, "realised"])
    f = forecasts[list(dict.fromkeys(f_cols))].copy()
    if f[["expected_withdrawals", "p_any", score]].isna().any().any():
        raise ValueError("forecasts have missing expected_withdrawals, p_any or score")
    _counts(f["expected_withdrawals"], "expected_withdrawals")
    _probabilities(f["p_any"])
    f["_score"] = f[score].astype(float)
    f["_forecast"] = True
    wanted = f[KEYS].drop_duplicates()

    def restrict(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
        extra = [by] if by and by in df.columns else []
        return df[KEYS + [CELL] + cols + extra].merge(wanted, on=KEYS, how="inner")

    r = restrict(realised, ["realised"])
    _counts(r["realised"], "realised")
    df = f.merge(r.drop(columns=[by], errors="ignore"), on=KEYS + [CELL], how="outer")
    df["_evaluated"] = True
    with_truth = truth is not None
    if with_truth:
        _check_frame(truth, "truth", KEYS + [CELL, "expected"])
        t = restrict(truth, ["expected"])
        _counts(t["expected"], "truth expected")
        df = df.merge(t.drop(columns=[by], errors="ignore"), on=KEYS + [CELL], how="outer")
        df["expected"] = df["expected"].fillna(0.0)
        df["_evaluated"] = df["_evaluated"].fillna(False).astype(bool)
    df["_forecast"] = df["_forecast"].fillna(False).astype(bool)
    df["realised"] = df["realised"].fillna(0.0)
    df["expected_withdrawals"] = df["expected_withdrawals"].fillna(0.0)
    df["p_any"] = df["p_any"].fillna(0.0)
    # _score stays NaN where there is no forecast: unscored

    group_keys = list(KEYS)
    if by:
        sources = [groups if isinstance(groups, pd.Series) else pd.Series(groups or {}, dtype=object),
                   f.drop_duplicates(CELL).set_index(CELL)[by]]
        for other in (r, t if with_truth else None):
            if other is not None and by in other.columns:
                sources.append(other.drop_duplicates(CELL).set_index(CELL)[by])
        lookup = pd.Series(dtype=object)
        for s in sources:
            s = s[~s.index.duplicated()].dropna()
            lookup = pd.concat([lookup, s[~s.index.isin(lookup.index)]])
        df[by] = df[by].fillna(df[CELL].map(lookup))
        group_keys.append(by)

    # Sorted by the group keys (NaN last), each group's rows are one run: its metrics read slices
    # of whole-column arrays, not a frame per group.
    df = df.sort_values(group_keys + [CELL], kind="stable", na_position="last").reset_index(drop=True)
    arrays = {c: df[c].to_numpy(dtype=float) for c in ["_score", "realised", "expected_withdrawals", "p_any"]
              + (["expected"] if with_truth else [])}
    arrays["_evaluated"] = df["_evaluated"].to_numpy(dtype=bool)
    starts, ends = _runs(df, group_keys)
    keys = df[group_keys].iloc[starts].to_dict("records")
    rows = [{**key, **_group_metrics({c: a[s:e] for c, a in arrays.items()}, ks, with_truth)}
            for key, s, e in zip(keys, starts, ends, strict=True)]
    out = pd.DataFrame(rows)
    if out.empty:
        out = pd.DataFrame(columns=group_keys)
    out.attrs["by"] = by
    return out


def summarise(metrics: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Mean of every metric over forecast dates, per horizon_days [and ``by``].

    ``by`` defaults to the one :func:`evaluate` was called with. NaN values (e.g. a
    capture rate on a day without withdrawals) are skipped, so each mean is over
    the dates where the metric is defined; ``n_dates`` counts all dates.
    Why: a per-date mean weighs every day equally, as an operational decision would.
    """
    by = by if by is not None else metrics.attrs.get("by")
    keys = ["horizon_days"] + ([by] if by else [])
    values = [c for c in metrics.columns if c not in keys + ["forecast_date"]
              and pd.api.types.is_numeric_dtype(metrics[c])]
    grouped = metrics.groupby(keys, sort=True, dropna=False)
    out = grouped[values].mean()
    out.insert(0, "n_dates", grouped["forecast_date"].nunique())
    return out.reset_index()
