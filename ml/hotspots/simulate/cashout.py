"""Cash-outs: the expected withdrawals of every mule account, and their Poisson draws.

Money arriving in a mule account (the last hop of a layering chain) creates an
expected number of cash withdrawals spread over the following hours and days
(a mixture of exponential delays). Each mule account spreads its withdrawals
over its favourite terminals with fixed weights. The truth intensity of a cell
and day is the sum of those expectations over the terminals in the cell, and
the realised withdrawals are Poisson draws from exactly those expectations,
so `truth/intensity` is the true expected value of what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hotspots.contract import CHANNELS

from .rhythm import DAY_S, day_start_utc, ist_day
from .rings import RingBook
from .world import World

HORIZON = 12  # days of pending intensity kept per mule account (more when money is forwarded later)
# Delay from money arriving to cash-out: (weight, mean hours) of an exponential mixture.
_DELAY_MIX = ((0.45, 5.0), (0.40, 30.0), (0.15, 96.0))
_MIN_DELAY_S = 1200
CASH_PER_ARRIVAL = 0.4   # calibrates national volume: a few thousand withdrawals a day at scale 1
ACK_LINKED = 0.35          # share of withdrawals the bank links to a complaint
# Withdrawal hour of day, IST, for money that has been waiting since an earlier day.
_HOURS = np.array([1, 0.5, 0.3, 0.3, 0.4, 0.8, 2, 4, 6, 7, 8, 8, 8, 7, 7, 7, 7, 7, 7, 6, 5, 4, 3, 2], float)
_HOUR_P = _HOURS / _HOURS.sum()


def _delay_cdf(seconds: np.ndarray) -> np.ndarray:
    x = np.maximum(np.asarray(seconds, dtype=float) - _MIN_DELAY_S, 0.0)
    return sum(w * (1 - np.exp(-x / (h * 3600.0))) for w, h in _DELAY_MIX)


def expected_cashouts(amount: np.ndarray, cash_share: np.ndarray) -> np.ndarray:
    """Concave in the amount: big sums go out in several withdrawals, not proportionally more."""
    return CASH_PER_ARRIVAL * cash_share * np.clip(np.sqrt(amount / 10_000.0), 0.15, 4.0)


@dataclass
class Withdrawals:
    """Realised withdrawals of one day, numeric."""

    serial: np.ndarray
    mule: np.ndarray
    terminal: np.ndarray
    at: np.ndarray
    amount: np.ndarray
    ack: np.ndarray  # -1: not linked


class CashOut:
    """Pending expected withdrawals per mule account and day, in a ring buffer of HORIZON days."""

    def __init__(self, world: World, book: RingBook, rng: np.random.Generator, horizon: int = HORIZON):
        self.world, self.book, self.rng = world, book, rng
        self.horizon = horizon
        self.carry = np.zeros((0, horizon))   # from money that arrived on an earlier day
        self.same = np.zeros((0, horizon))    # from money that arrives on that very day
        self.latest = np.zeros((0, horizon))  # last same-day arrival second
        self.last_ack = np.zeros(0, dtype=np.int64)
        self.serial = 0
        self._channel = world.terminals["channel"].to_numpy()
        self._cell = world.terminals["cell_idx"].to_numpy()
        book.on_freeze = self.freeze

    def _fit(self) -> None:
        n = self.book.mules.capacity
        if len(self.carry) < n:
            pad = n - len(self.carry)
            self.carry = np.vstack([self.carry, np.zeros((pad, self.horizon))])
            self.same = np.vstack([self.same, np.zeros((pad, self.horizon))])
            self.latest = np.vstack([self.latest, np.zeros((pad, self.horizon))])
            self.last_ack = np.concatenate([self.last_ack, np.full(pad, -1, dtype=np.int64)])

    def freeze(self, mules: np.ndarray) -> None:
        """A frozen account never pays out what it still holds."""
        self._fit()
        self.carry[mules] = 0.0
        self.same[mules] = 0.0

    def add_arrivals(self, today: int, mule: np.ndarray, at: np.ndarray, amount: np.ndarray,
                     ack: np.ndarray) -> None:
        """Spread each arrival's expected cash-outs over the days after it arrives."""
        self._fit()
        if len(mule) == 0:
            return
        cash = self.book.cash_share()[self.book.mules.ring[mule]]
        total = expected_cashouts(amount, cash)
        offsets = np.arange(self.horizon)
        start = day_start_utc(today + offsets)[None, :]
        lo = np.maximum(start - at[:, None], 0)
        hi = np.maximum(start + DAY_S - at[:, None], 0)
        mass = (_delay_cdf(hi) - _delay_cdf(lo)) * total[:, None]
        arrival_off = ist_day(at) - today
        cols = (today + offsets) % self.horizon
        same_day = offsets[None, :] == arrival_off[:, None]
        rows = np.broadcast_to(mule[:, None], mass.shape)
        colm = np.broadcast_to(cols[None, :], mass.shape)
        np.add.at(self.carry, (rows[~same_day], colm[~same_day]), mass[~same_day])
        np.add.at(self.same, (rows[same_day], colm[same_day]), mass[same_day])
        np.maximum.at(self.latest, (mule, cols[np.clip(arrival_off, 0, self.horizon - 1)]), at)
        order = np.argsort(at, kind="stable")
        self.last_ack[mule[order]] = ack[order]

    def draw(self, today: int, factor: float) -> tuple[pd.DataFrame, Withdrawals]:
        """Today's intensity per cell (truth) and the withdrawals drawn from it."""
        self._fit()
        col = today % self.horizon
        n = self.book.mules.n
        alive = self.book.mules.alive[:n]
        lam_c = self.carry[:n, col] * factor * alive
        lam_s = self.same[:n, col] * factor * alive
        latest = self.latest[:n, col].copy()
        self.carry[:, col] = 0.0
        self.same[:, col] = 0.0
        self.latest[:, col] = 0.0
        terms, tw = self.book.mules.terms[:n], self.book.mules.tw[:n]
        intensity = self._cell_intensity(lam_c + lam_s, terms, tw)
        parts = [self._draw_part(today, lam_c, terms, tw, None), self._draw_part(today, lam_s, terms, tw, latest)]
        mule = np.concatenate([p[0] for p in parts])
        term = np.concatenate([p[1] for p in parts])
        at = np.concatenate([p[2] for p in parts])
        order = np.lexsort((term, mule, at))
        mule, term, at = mule[order], term[order], at[order]
        k = len(mule)
        serial = np.arange(self.serial, self.serial + k)
        self.serial += k
        linked = self.rng.random(k) < ACK_LINKED
        ack = np.where(linked, self.last_ack[mule], -1)
        amount = self._amounts(self._channel[term])
        return intensity, Withdrawals(serial, mule, term, at, amount, ack)

    def _cell_intensity(self, lam: np.ndarray, terms: np.ndarray, tw: np.ndarray) -> pd.DataFrame:
        used = (lam[:, None] > 0) & (terms >= 0) & (tw > 0)
        cells = self._cell[terms[used]]
        val = np.bincount(cells, weights=(lam[:, None] * tw)[used], minlength=len(self.world.cells))
        nz = np.flatnonzero(val > 0)
        return pd.DataFrame({"h3_cell": self.world.cells[nz], "expected_withdrawals": val[nz]})

    def _draw_part(self, today, lam, terms, tw, latest):
        used = (lam[:, None] > 0) & (terms >= 0) & (tw > 0)
        rows, slots = np.nonzero(used)
        counts = self.rng.poisson(lam[rows] * tw[rows, slots])
        mule = np.repeat(rows, counts)
        term = np.repeat(terms[rows, slots], counts)
        start = day_start_utc(today)
        if latest is None:
            hour = self.rng.choice(24, size=len(mule), p=_HOUR_P)
            at = start + hour * 3600 + self.rng.integers(0, 3600, len(mule))
        else:
            # Cash taken the day the money came in: after it came in, before midnight.
            after = np.maximum(latest[mule], start) + _MIN_DELAY_S
            at = np.minimum(after + self.rng.random(len(mule)) * np.maximum(start + DAY_S - after, 0),
                            start + DAY_S - 1).astype(np.int64)
        return mule, term, at.astype(np.int64)

    def _amounts(self, channel: np.ndarray) -> np.ndarray:
        """Cash per withdrawal, by channel limits: ATMs in notes up to 10,000, POS cash up to 2,000."""
        rng, k = self.rng, len(channel)
        name = np.array(CHANNELS)[channel]
        atm = rng.choice([2000, 5000, 8000, 9500, 10000], size=k, p=[0.1, 0.15, 0.1, 0.15, 0.5])
        small = rng.integers(10, 101, size=k) * 100
        branch = rng.integers(20, 201, size=k) * 1000
        pos = rng.integers(5, 21, size=k) * 100
        out = np.where(name == "BRANCH", branch, np.where(name == "POS_CASH", pos, atm))
        return np.where(np.isin(name, ("AEPS", "MICRO_ATM")), small, out).astype(float)
