"""Calendar rhythm of fraud: weekdays, salary days and holidays.

Days are integers: days since 1970-01-01 of the IST calendar. Everything that
varies with the calendar goes through this module so that the weekly and
month-end signal a forecaster can learn lives in one place.
"""

from __future__ import annotations

import datetime as dt

IST_OFFSET_S = 19_800  # +05:30
DAY_S = 86_400

# Monday .. Sunday. Victims report more after the weekend; cash-outs dip on Sundays.
_WEEKDAY_INCIDENTS = (1.12, 1.05, 1.0, 1.0, 1.02, 0.93, 0.82)
_WEEKDAY_WITHDRAWALS = (1.06, 1.0, 0.98, 1.0, 1.08, 1.04, 0.84)
# Salaries land on the last working days and the first days of a month: more money to steal.
_SALARY_INCIDENTS = 1.12
_SALARY_WITHDRAWALS = 1.15
_HOLIDAY_INCIDENTS = 0.75
_HOLIDAY_WITHDRAWALS = 0.85

_FIXED_HOLIDAYS = ((1, 26), (8, 15), (10, 2), (12, 25))
# Moving festivals (Holi, Diwali, Eid al-Fitr), approximate dates.
_MOVING_HOLIDAYS = frozenset(
    dt.date.fromisoformat(s)
    for s in (
        "2024-03-25", "2024-04-10", "2024-10-31", "2024-11-01",
        "2025-03-14", "2025-03-31", "2025-10-20", "2025-10-21",
        "2026-03-04", "2026-03-20", "2026-11-08", "2026-11-09",
        "2027-03-22", "2027-03-10", "2027-10-29", "2027-10-30",
    )
)
_EPOCH = dt.date(1970, 1, 1)


def to_day(date: dt.date) -> int:
    return (date - _EPOCH).days


def to_date(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=int(day))


def day_start_utc(day) -> int:
    """UTC epoch second at which the IST day begins."""
    return day * DAY_S - IST_OFFSET_S


def ist_day(seconds):
    """IST day index of UTC epoch seconds (scalar or numpy array)."""
    return (seconds + IST_OFFSET_S) // DAY_S


def is_holiday(date: dt.date) -> bool:
    return (date.month, date.day) in _FIXED_HOLIDAYS or date in _MOVING_HOLIDAYS


def is_salary_day(date: dt.date) -> bool:
    nxt = (date.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    last = (nxt - dt.timedelta(days=1)).day
    return date.day <= 3 or date.day >= last - 1


def incident_factor(day: int) -> float:
    """Multiplier of the national incident rate on this day."""
    d = to_date(day)
    f = _WEEKDAY_INCIDENTS[d.weekday()]
    if is_salary_day(d):
        f *= _SALARY_INCIDENTS
    if is_holiday(d):
        f *= _HOLIDAY_INCIDENTS
    return f


def withdrawal_factor(day: int) -> float:
    """Multiplier of every mule's cash-out intensity on this day."""
    d = to_date(day)
    f = _WEEKDAY_WITHDRAWALS[d.weekday()]
    if is_salary_day(d):
        f *= _SALARY_WITHDRAWALS
    if is_holiday(d):
        f *= _HOLIDAY_WITHDRAWALS
    return f
