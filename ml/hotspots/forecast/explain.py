"""Readable reasons for a forecast: LightGBM's own SHAP values turned into sentences.

The scoring step computes ``booster.predict(X, pred_contrib=True)``: one row per cell,
one column per feature plus a last column for the bias (expected value), in the
model's raw score space. With a Poisson (log-link) objective the raw score is
``log(expected withdrawals)``, so a feature's contribution ``c`` multiplies the
forecast by ``exp(c)`` (its *factor*): ``c = 0.83`` raises it ×2.3, ``c = -0.5``
lowers it ×0.6.

For the top-ranked cells only, :func:`top_contributions` picks each row's largest
contributions and :func:`describe` renders each as a short sentence an officer can
read, with the feature's value in it, e.g.::

    3 mule accounts that cashed out here before received complainants' money on a
    single day in the last 7 days (raises the forecast ×2.3)

:func:`summary` joins the sentences of one cell with ``"; "``.

Sentences are fragments without a final full stop and start in lower case unless
they start with a number or a rupee amount, so that joined they read as one
sentence; :func:`summary` capitalises the first letter. Counts are shown without
decimals when whole and with one decimal otherwise (complaint pressure is
fractional: a transfer to an account that cashes out in several cells is shared
among them). Rupees use Indian digit grouping (``₹1,25,000``) below ₹10 lakh and
lakh / crore above (``₹12.4 lakh``, ``₹1.2 crore``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["KNOWN_FEATURES", "describe", "format_inr", "format_number", "summary", "top_contributions"]

COLUMNS = ["row", "rank", "feature", "value", "contribution", "factor", "text"]

LAKH = 100_000
CRORE = 10_000_000
# Days since the last withdrawal when there was none in the feature windows
# (dbt var max_window_days = 90): the feature's sentinel.
NEVER_DAYS = 365
WINDOW_DAYS = 90

_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


# --- Numbers -----------------------------------------------------------------------------


def _group_indian(digits: str) -> str:
    """Indian digit grouping of a string of digits: last 3, then pairs (1,25,00,000)."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs = []
    while len(head) > 2:
        pairs.append(head[-2:])
        head = head[:-2]
    pairs.append(head)
    return ",".join(reversed(pairs)) + "," + tail


def format_number(x: float) -> str:
    """A count for a sentence: whole numbers without decimals, others with one.

    Values below 0.1 (but not 0) keep two significant digits so that a small
    positive pressure never reads "0". Indian digit grouping for large values.
    """
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    sign = "-" if x < 0 else ""
    a = abs(x)
    if 0 < a < 0.095:
        return sign + f"{a:.2g}"
    r = round(a, 1)
    if r == round(r):
        return sign + _group_indian(str(int(round(r))))
    whole, frac = f"{r:.1f}".split(".")
    return sign + _group_indian(whole) + "." + frac


def format_inr(amount: float) -> str:
    """Rupees, Indian style: ₹85,000, ₹1,25,000 (below ₹10 lakh), ₹12.4 lakh, ₹1.2 crore."""
    amount = float(amount)
    if not math.isfinite(amount):
        return f"₹{amount}"
    sign = "-" if amount < 0 else ""
    a = abs(amount)

    def one_decimal(v: float) -> str:
        s = f"{v:.1f}"
        whole, frac = s.split(".")
        return _group_indian(whole) + ("" if frac == "0" else "." + frac)

    if round(a) < 10 * LAKH:
        return f"{sign}₹{_group_indian(str(int(round(a))))}"
    lakh = round(a / LAKH, 1)
    if lakh < 100:
        return f"{sign}₹{one_decimal(lakh)} lakh"
    return f"{sign}₹{one_decimal(a / CRORE)} crore"


def _n(x: float, singular: str, plural: str | None = None) -> str:
    """'1 withdrawal', '3 withdrawals', '2.5 transfers': singular only when shown as 1."""
    shown = format_number(x)
    word = singular if shown == "1" else (plural or singular + "s")
    return f"{shown} {word}"


def _factor(f: float) -> str:
    if f >= 10:
        return _group_indian(str(int(round(f))))
    if 0.95 <= f < 1.05:
        return f"{f:.2f}"
    if f >= 0.095:
        return f"{f:.1f}"
    return f"{f:.2g}"


def _effect(contribution: float) -> str:
    """' (raises the forecast ×2.3)' / ' (lowers the forecast ×0.6)'; '' for 0 or NaN."""
    c = float(contribution)
    if math.isnan(c) or c == 0:
        return ""
    f = math.exp(max(min(c, 700.0), -700.0))
    return f" ({'raises' if c > 0 else 'lowers'} the forecast ×{_factor(f)})"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --- Sentences per feature ---------------------------------------------------------------

_WD = "fraud-linked withdrawal"
_MULES = "mule accounts that cashed out here before"
_WHEN = {"1d": "yesterday", "7d": "in the last 7 days", "28d": "in the last 28 days", "90d": "in the last 90 days"}
_PLACES = {
    "ring1": "in the 6 adjacent cells (within ~1 km)",
    "ring2": "in the cells within 2 rings (~2 km)",
    "res6": "in the surrounding ~36 km² area",
}
_MIX = {
    "mix_payment_fraud": "UPI, card and net-banking fraud",
    "mix_impersonation": "impersonation scams (customer care, KYC, digital arrest)",
    "mix_scheme": "investment, job and loan-app schemes",
    "mix_other": "sextortion and other scams",
}


def _wd(when: str) -> Callable[[float], str]:
    return lambda v: f"{_n(v, _WD)} reported here {when}"


def _place_wd(place: str, when: str) -> Callable[[float], str]:
    return lambda v: f"{_n(v, _WD)} reported {place} {when}"


def _trend(v: float) -> str:
    if v > 0:
        how = f"up by {format_number(v)} on"
    elif v < 0:
        how = f"down by {format_number(-v)} on"
    else:
        return f"as many {_WD}s here in the last 7 days as in the 7 days before (change of 0)"
    return f"{_WD}s here in the last 7 days {how} the 7 days before"


def _ratio(v: float) -> str:
    if math.isnan(v):
        return f"no {_WD}s here in the last 28 days to set a pace"
    pace = "speeding up" if v > 1.2 else "slowing down" if v < 0.8 else "steady"
    return f"{_WD}s here in the last 7 days at {v:.1f} times their 28-day pace ({pace})"


def _amount(when: str) -> Callable[[float], str]:
    return lambda v: f"{format_inr(v)} in {_WD}s here {when}"


def _days_since(v: float) -> str:
    if v >= NEVER_DAYS:
        return f"no {_WD} reported here in the last {WINDOW_DAYS} days"
    return f"last {_WD} here {_n(v, 'day')} ago"


def _terminals(v: float) -> str:
    noun = _n(v, "terminal (ATM, branch or POS)", "terminals (ATMs, branches or POS)")
    return f"{noun} here already seen used for fraud cash-outs"


def _pressure(when: str) -> Callable[[float], str]:
    return lambda v: f"{_n(v, 'transfer')} from complaints reported {when} went to {_MULES}"


def _pressure_amount(v: float) -> str:
    return f"{format_inr(v)} from complaints reported in the last 7 days went to {_MULES}"


def _pressure_accounts(v: float) -> str:
    noun = _n(v, "mule account that cashed out here before", "mule accounts that cashed out here before")
    return f"{noun} received complainants' money on a single day in the last 7 days"


def _ring_pressure(place: str) -> Callable[[float], str]:
    return lambda v: (
        f"{_n(v, 'transfer')} from complaints reported in the last 7 days went to mule accounts "
        f"that cashed out {place}"
    )


def _mix(kind: str) -> Callable[[float], str]:
    return lambda v: (
        f"{math.floor(v * 100 + 0.5)}% of the last 28 days' transfers to {_MULES} came from {kind}"
    )


def _day_of_week(v: float) -> str | None:
    if v != round(v) or not 1 <= v <= 7:
        return None
    return f"the forecast starts on a {_DAYS[int(v) - 1]} (day {int(v)} of the week)"


def _day_of_month(v: float) -> str | None:
    if v != round(v) or not 1 <= v <= 31:
        return None
    return f"the forecast starts on the {_ordinal(int(v))} of the month"


def _month_end(v: float) -> str:
    does = "starts" if v else "does not start"
    return f"the forecast {does} on a salary day (the first 2 or last 3 days of a month)"


def _holiday(v: float) -> str:
    return f"the forecast {'starts' if v else 'does not start'} on a public holiday"


_SENTENCES: dict[str, Callable[[float], str | None]] = {
    **{f"wd_{w}": _wd(when) for w, when in _WHEN.items()},
    "wd_trend_7d": _trend,
    "wd_ratio_7d_28d": _ratio,
    "amount_7d": _amount(_WHEN["7d"]),
    "amount_28d": _amount(_WHEN["28d"]),
    "days_since_last_withdrawal": _days_since,
    **{
        f"{p}_wd_{w}": _place_wd(place, _WHEN[w])
        for p, place in _PLACES.items()
        for w in ("7d", "28d", "90d")
    },
    "terminals_known": _terminals,
    "pressure_1d": _pressure(_WHEN["1d"]),
    "pressure_7d": _pressure(_WHEN["7d"]),
    "pressure_28d": _pressure(_WHEN["28d"]),
    "pressure_amount_7d": _pressure_amount,
    "pressure_accounts_max_7d": _pressure_accounts,
    "ring1_pressure_7d": _ring_pressure(_PLACES["ring1"]),
    "ring2_pressure_7d": _ring_pressure(_PLACES["ring2"]),
    **{name: _mix(kind) for name, kind in _MIX.items()},
    "day_of_week": _day_of_week,
    "day_of_month": _day_of_month,
    "is_month_end": _month_end,
    "is_holiday": _holiday,
}

# Features with their own sentence; any other name gets "<feature> = <value>".
KNOWN_FEATURES = frozenset(_SENTENCES)

# NaN is meaningful for these (e.g. no withdrawals in 28 days for the ratio).
_NAN_OK = {"wd_ratio_7d_28d"}


def describe(feature: str, value: float, contribution: float) -> str:
    """One sentence for one feature of one cell, with its value and effect on the forecast.

    ``contribution`` is the feature's SHAP value in raw-score (log) units: the suffix
    gives ``exp(contribution)``, the factor it multiplies the forecast by. Unknown
    feature names, missing values and values a sentence cannot take (e.g. day of week
    9) get the generic ``"<feature> = <value>"``.
    """
    v = float(value)
    text = None
    build = _SENTENCES.get(feature)
    if build is not None and (not math.isnan(v) or feature in _NAN_OK):
        text = build(v)
    if text is None:
        text = f"{feature} = {'missing' if math.isnan(v) else format_number(v)}"
    return text + _effect(contribution)


def summary(texts: Sequence[str]) -> str:
    """The sentences of one cell joined with "; ", the first letter capitalised."""
    s = "; ".join(t for t in texts if t)
    return s[:1].upper() + s[1:]


# --- Top contributions -------------------------------------------------------------------


def top_contributions(
    contrib: np.ndarray,
    feature_names: list[str],
    values: pd.DataFrame,
    top: int = 3,
    positive_only: bool = True,
) -> pd.DataFrame:
    """Each row's ``top`` largest feature contributions, as a long frame with sentences.

    ``contrib`` is ``booster.predict(X, pred_contrib=True)``: shape (n_rows,
    n_features + 1), the last (bias) column is ignored; (n_rows, n_features) is
    accepted too. ``values`` holds the feature values, its rows aligned by position
    with ``contrib`` (extra columns are ignored).

    Returns columns ``row`` (0-based position in the input), ``rank`` (1 = largest),
    ``feature``, ``value``, ``contribution`` (raw-score units), ``factor`` =
    exp(contribution) and ``text`` (:func:`describe`), ordered by row then rank.
    Contributions are ranked descending; ties go to the earlier feature. With
    ``positive_only`` only contributions > 0 are kept, so a row may get fewer than
    ``top`` entries, or none. Non-finite contributions are never kept.
    """
    c = np.asarray(contrib, dtype=float)
    names = list(feature_names)
    n_feat = len(names)
    if c.ndim != 2 or c.shape[1] not in (n_feat, n_feat + 1):
        raise ValueError(f"contrib must have shape (n, {n_feat} + 1), got {c.shape}")
    if len(values) != c.shape[0]:
        raise ValueError(f"values has {len(values)} rows, contrib {c.shape[0]}")
    if top < 1:
        raise ValueError("top must be at least 1")
    c = c[:, :n_feat]
    vals = values[names].to_numpy(dtype=float)

    k = min(top, n_feat)
    # Non-finite contributions sort last (and are dropped below), so the kept ranks are 1..m.
    key = np.where(np.isfinite(c), -c, np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(c, order, axis=1)
    keep = np.isfinite(picked)
    if positive_only:
        keep &= picked > 0

    rows = np.broadcast_to(np.arange(c.shape[0])[:, None], order.shape)[keep]
    ranks = np.broadcast_to(np.arange(1, k + 1)[None, :], order.shape)[keep]
    cols = order[keep]
    contribution = picked[keep]
    value = vals[rows, cols]
    feature = np.asarray(names, dtype=object)[cols]

    # Positive contributions form a prefix of each sorted row, so ranks stay 1..m.
    with np.errstate(over="ignore"):
        factor = np.exp(contribution)
    text = [describe(f, v, x) for f, v, x in zip(feature, value, contribution, strict=True)]
    return pd.DataFrame(
        {
            "row": rows.astype(np.int64),
            "rank": ranks.astype(np.int64),
            "feature": pd.Series(feature, dtype=object),
            "value": value.astype(float),
            "contribution": contribution.astype(float),
            "factor": factor.astype(float),
            "text": pd.Series(text, dtype=object),
        },
        columns=COLUMNS,
    )
