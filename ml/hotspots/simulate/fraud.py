"""One day of fraud incidents: complaints (with their later status versions) and money trails.

Each incident belongs to a ring. The victim lives anywhere in India (post office
density as population proxy), pays one to three times into the ring's layer-1
mule accounts; each payment is then layered on through up to three more
accounts, some of them held by partner rings elsewhere. Money that completes
its chain arrives in the last account and becomes cash-out intensity, unless
the scenario forwards it first to a second-layer account of the ring holding
it (1-96 hours later, one more transaction row), which then takes it out.
Everything here is numeric; text is produced only when an extract is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hotspots.contract import CATEGORIES, COMPLAINT_STATUSES, TXN_STATUSES

from .formats import TS_IST, TS_UTC_OFFSET, TS_Z
from .rhythm import DAY_S, day_start_utc, ist_day
from .rings import SECOND_LAYER, RingBook
from .scenario import DEFAULT, Scenario
from .world import World, profile_matrix

VICTIM_TOKEN_BASE = 2 << 40  # account token serials: mules count from 1 << 40, victims from here
MULE_TOKEN_BASE = 1 << 40
# Median loss (INR) per category, lognormal spread.
_MEDIAN_LOSS = {"UPI": 8_000, "CARD": 15_000, "NET_BANKING": 40_000, "INVESTMENT": 200_000,
                "CUSTOMER_CARE": 20_000, "KYC_IMPERSONATION": 25_000, "DIGITAL_ARREST": 500_000,
                "JOB": 30_000, "LOAN_APP": 10_000, "SEXTORTION": 20_000, "OTHER": 12_000}
MAX_LOSS = 5e7
_INCIDENT_HOURS = np.array([1, 0.5, 0.3, 0.3, 0.3, 0.6, 1.5, 3, 5, 7, 8, 8, 8, 8, 7, 7, 7, 7, 7, 6, 5, 4, 3, 2],
                           float)
_INCIDENT_HOUR_P = _INCIDENT_HOURS / _INCIDENT_HOURS.sum()
P_INCIDENT_AT = 0.9     # victims who state when it happened
P_VICTIM_COORDS = 0.6   # complaints geocoded by the portal
P_MOBILE = 0.85
P_UTC_STYLE = 0.05      # rows written by a system that uses UTC
# Layer-1 payments per complaint, and further hops per payment (mean total ~3 rows per complaint).
_N_PAYMENTS = ([1, 2, 3], [0.72, 0.23, 0.05])
_N_HOPS = ([0, 1, 2, 3], [0.25, 0.35, 0.28, 0.12])
P_PARTNER_HOP = 0.25
_STATUS_L1 = [0.89, 0.08, 0.03]      # COMPLETED, ON_HOLD, REVERSED
_STATUS_LATER = [0.93, 0.05, 0.02]
# Days from a transaction to the extract that carries it (0-5).
TXN_REPORT_DELAY_P = [0.2, 0.3, 0.22, 0.13, 0.1, 0.05]


@dataclass
class DayOfFraud:
    complaints: pd.DataFrame     # one row per complaint version, numeric
    transactions: pd.DataFrame   # numeric
    arrivals: pd.DataFrame       # mule, at, amount, ack: money that completed its chain


class Counters:
    """Serial numbers for keys; start at a seed-dependent offset so runs do not share keys."""

    def __init__(self, rng: np.random.Generator):
        self.complaint = int(rng.integers(1, 10**9))
        self.txn = int(rng.integers(1, 10**12))
        self.victim = 0

    def take(self, name: str, k: int) -> np.ndarray:
        start = getattr(self, name)
        setattr(self, name, start + k)
        return np.arange(start, start + k, dtype=np.int64)


class FraudDay:
    """Generates the incidents of one day for all rings."""

    def __init__(self, world: World, book: RingBook, rng: np.random.Generator, scenario: Scenario = DEFAULT,
                 forward_rng: np.random.Generator | None = None):
        self.world, self.book, self.rng = world, book, rng
        self.scenario = scenario
        self.forward_rng = forward_rng if forward_rng is not None else rng
        self.counters = Counters(rng)
        self.profiles = np.cumsum(profile_matrix(), axis=1)
        self.loss_median = np.array([_MEDIAN_LOSS[c] for c in CATEGORIES], dtype=float)
        states = world.victims["state"].map(world.state_codes).to_numpy()
        self.victim_state_code = states.astype(np.int64)

    def run(self, day: int) -> DayOfFraud:
        book, rng = self.book, self.rng
        picker = book.picker()
        lam = book.expected_complaints * (picker.count(np.arange(len(book.rings))) > 0)
        n = rng.poisson(lam)
        ring = np.repeat(np.arange(len(n)), n)
        complaints = self._complaints(day, ring)
        txns, arrivals = self._money_trail(complaints, picker)
        hold = np.zeros(len(complaints), dtype=bool)
        on_hold = txns["status"].to_numpy() == TXN_STATUSES.index("ON_HOLD")
        hold[np.searchsorted(complaints["ack"].to_numpy(), txns["ack"].to_numpy()[on_hold])] = True
        versions = self._versions(complaints, hold)
        return DayOfFraud(versions, txns, arrivals)

    # ---------------------------------------------------------------- complaints
    def _complaints(self, day: int, ring: np.ndarray) -> pd.DataFrame:
        rng, k = self.rng, len(ring)
        w = self.world.victims
        u = rng.random(k)
        cat = (self.profiles[self.book_profiles()[ring]] < u[:, None]).sum(axis=1)
        cat = np.minimum(cat, len(CATEGORIES) - 1)
        hour = rng.choice(24, size=k, p=_INCIDENT_HOUR_P)
        incident = day_start_utc(day) + hour * 3600 + rng.integers(0, 3600, k)
        reported = incident + self._report_delay(k)
        amount = np.minimum(self.loss_median[cat] * rng.lognormal(0, 1.0, k), MAX_LOSS)
        amount = np.where(rng.random(k) < 0.7, np.maximum(np.round(amount, -1), 100.0), np.round(amount, 2))
        victim = np.minimum(np.searchsorted(self.world.victim_cum, rng.random(k), side="right"), len(w) - 1)
        serial = self.counters.take("complaint", k)
        code = self.victim_state_code[victim]
        ack = code * 10**12 + (serial * 7_777_777) % 10**12
        order = np.argsort(ack, kind="stable")  # sorted acks let transactions find their complaint
        df = pd.DataFrame({
            "ack": ack, "ring": ring, "incident": incident, "reported": reported,
            "has_incident": rng.random(k) < P_INCIDENT_AT, "cat": cat, "amount": amount, "victim": victim,
            "state_style": rng.choice(3, size=k, p=[0.35, 0.55, 0.10]),
            "district_style": rng.choice(2, size=k, p=[0.4, 0.6]),
            "has_coords": rng.random(k) < P_VICTIM_COORDS,
            "vlat": w["lat"].to_numpy()[victim] + np.clip(rng.normal(0, 0.008, k), -0.02, 0.02),
            "vlon": w["lon"].to_numpy()[victim] + np.clip(rng.normal(0, 0.008, k), -0.02, 0.02),
            "mobile": rng.integers(6, 10, k) * 10**9 + rng.integers(0, 10**9, k),
            "has_mobile": rng.random(k) < P_MOBILE,
            "style": self._ts_styles(k),
            "victim_serial": self.counters.take("victim", k),
        })
        return df.iloc[order].reset_index(drop=True)

    def book_profiles(self) -> np.ndarray:
        return np.array([r.profile for r in self.book.rings])

    def _report_delay(self, k: int) -> np.ndarray:
        """Most victims report within hours; some after days (their money trail arrives first)."""
        rng = self.rng
        kind = rng.choice(3, size=k, p=[0.55, 0.30, 0.15])
        hours = np.where(kind == 0, rng.exponential(4.0, k),
                         np.where(kind == 1, rng.exponential(30.0, k), rng.uniform(72, 288, k)))
        return (600 + hours * 3600).astype(np.int64)

    def _ts_styles(self, k: int) -> np.ndarray:
        u = self.rng.random(k)
        return np.where(u < P_UTC_STYLE / 2, TS_Z, np.where(u < P_UTC_STYLE, TS_UTC_OFFSET, TS_IST)).astype(np.int8)

    def _versions(self, c: pd.DataFrame, hold: np.ndarray) -> pd.DataFrame:
        """Status history: REGISTERED at once, then UNDER_PROCESS or FUNDS_ON_HOLD, maybe CLOSED.
        Each version is a row of the extract of its updated_at day."""
        rng, k = self.rng, len(c)
        rep = c["reported"].to_numpy()
        end_of_day = day_start_utc(ist_day(rep)) + DAY_S - 1
        v0 = np.minimum(rep + rng.integers(0, 1800, k), end_of_day)
        second = np.where(hold, rng.random(k) < 0.9, rng.random(k) < 0.6)
        t1 = rep + np.where(hold, rng.integers(1, 5, k), rng.integers(1, 8, k)) * DAY_S + rng.integers(-6, 6, k) * 3600
        s1 = np.where(hold, COMPLAINT_STATUSES.index("FUNDS_ON_HOLD"), COMPLAINT_STATUSES.index("UNDER_PROCESS"))
        closed = rng.random(k) < 0.35
        t2 = rep + rng.integers(10, 41, k) * DAY_S + rng.integers(0, DAY_S, k)
        parts = [c.assign(status=COMPLAINT_STATUSES.index("REGISTERED"), updated=v0)]
        parts.append(c[second].assign(status=s1[second], updated=t1[second]))
        parts.append(c[closed].assign(status=COMPLAINT_STATUSES.index("CLOSED"), updated=t2[closed]))
        return pd.concat(parts, ignore_index=True)

    # ---------------------------------------------------------------- money trail
    def _money_trail(self, c: pd.DataFrame, picker) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Victim -> layer-1 mule accounts -> up to three more hops. Returns (transactions, arrivals)."""
        rng = self.rng
        ring = c["ring"].to_numpy()
        n_pay = rng.choice(_N_PAYMENTS[0], size=len(c), p=_N_PAYMENTS[1])
        comp = np.repeat(np.arange(len(c)), n_pay)
        share = rng.exponential(1.0, len(comp))
        share /= np.bincount(comp, weights=share, minlength=len(c))[comp]
        first = np.r_[True, comp[1:] != comp[:-1]] if len(comp) else np.zeros(0, bool)
        gap = np.where(first, rng.integers(60, 1800, len(comp)),
                       rng.exponential(7200, len(comp)).astype(np.int64) + 300)
        hop = _Hop(
            comp=comp, layer=1, frm=VICTIM_TOKEN_BASE + c["victim_serial"].to_numpy()[comp],
            to=picker.pick(ring[comp], rng),
            amount=np.maximum(np.round(c["amount"].to_numpy()[comp] * share, 2), 1.0),
            at=c["incident"].to_numpy()[comp] + _group_cumsum(gap, comp),
            status=rng.choice(3, size=len(comp), p=_STATUS_L1),
            hops_left=rng.choice(_N_HOPS[0], size=len(comp), p=_N_HOPS[1]),
            owner=ring[comp],
        )
        hops = [hop]
        partners = self.book.partners()
        has_mules = picker.count(np.arange(len(self.book.rings))) > 0
        while True:
            idx = np.flatnonzero((hop.status == 0) & (hop.hops_left > 0))
            if len(idx) == 0:
                break
            owner = hop.owner[idx]
            partner = partners[owner, rng.integers(0, 3, len(idx))]
            use_partner = (rng.random(len(idx)) < P_PARTNER_HOP) & has_mules[partner]
            hop = _Hop(
                comp=hop.comp[idx], layer=hop.layer + 1, frm=MULE_TOKEN_BASE + hop.to[idx],
                to=picker.pick(np.where(use_partner, partner, owner), rng, avoid=hop.to[idx]),
                amount=np.maximum(np.round(hop.amount[idx] * rng.uniform(0.55, 0.98, len(idx)), 2), 1.0),
                at=hop.at[idx] + 120 + rng.exponential(3 * 3600, len(idx)).astype(np.int64),
                status=rng.choice(3, size=len(idx), p=_STATUS_LATER),
                hops_left=hop.hops_left[idx] - 1, owner=owner,
            )
            hops.append(hop)
        if self.scenario.forwards:
            hops += self._forwards(hops)
        ack = c["ack"].to_numpy()
        txns = self._txn_frame(ack, hops)
        arrivals = pd.DataFrame({
            "mule": np.concatenate([h.to[h.cashes_out] for h in hops]),
            "at": np.concatenate([h.at[h.cashes_out] for h in hops]),
            "amount": np.concatenate([h.amount[h.cashes_out] for h in hops]),
            "ack": np.concatenate([ack[h.comp[h.cashes_out]] for h in hops]),
        })
        np.add.at(self.book.mules.hits, txns["to"].to_numpy()[txns["status"].to_numpy() == 0], 1)
        return txns, arrivals

    def _forwards(self, hops: list[_Hop]) -> list[_Hop]:
        """Money that completed its chain moves on, hours later, to a second-layer account of the
        ring holding it (when that ring has one), which will withdraw it instead."""
        s, rng = self.scenario, self.forward_rng
        second = self.book.picker(SECOND_LAYER)
        out = []
        for h in hops:
            done = np.flatnonzero(h.cashes_out)
            holder = self.book.mules.ring[h.to[done]]
            go = (rng.random(len(done)) < s.forward_share) & (second.count(holder) > 0)
            idx = done[go]
            h.forwarded = np.zeros(len(h.to), dtype=bool)
            h.forwarded[idx] = True
            if len(idx) == 0:
                continue
            delay = rng.uniform(s.forward_hours[0], s.forward_hours[1], len(idx)) * 3600
            out.append(_Hop(
                comp=h.comp[idx], layer=h.layer + 1, frm=MULE_TOKEN_BASE + h.to[idx],
                to=second.pick(holder[go], rng),
                amount=np.maximum(np.round(h.amount[idx] * rng.uniform(0.97, 1.0, len(idx)), 2), 1.0),
                at=h.at[idx] + np.round(delay).astype(np.int64),
                status=rng.choice(3, size=len(idx), p=_STATUS_LATER),
                hops_left=np.zeros(len(idx), dtype=np.int64), owner=h.owner[idx], received=h.at[idx],
            ))
        return out

    def _txn_frame(self, ack: np.ndarray, hops: list[_Hop]) -> pd.DataFrame:
        df = pd.concat([pd.DataFrame({
            "ack": ack[h.comp], "layer": h.layer, "from": h.frm.astype(np.int64), "to": h.to,
            "amount": h.amount, "at": h.at, "status": h.status,
            **({"received": h.received if h.received is not None else np.full(len(h.to), -1, dtype=np.int64)}
               if self.scenario.forwards else {})}) for h in hops], ignore_index=True)
        df = df.sort_values(["at", "ack", "layer"], kind="stable").reset_index(drop=True)
        df["serial"] = self.counters.take("txn", len(df))
        df["style"] = self._ts_styles(len(df))
        return df


@dataclass
class _Hop:
    """One layer of transfers, aligned arrays (one entry per payment still moving)."""

    comp: np.ndarray       # row of the complaint
    layer: int
    frm: np.ndarray        # token serial of the sender
    to: np.ndarray         # mule account index of the receiver
    amount: np.ndarray
    at: np.ndarray
    status: np.ndarray
    hops_left: np.ndarray
    owner: np.ndarray      # ring whose money this is
    received: np.ndarray | None = None   # forwards: when the money reached the sending account
    forwarded: np.ndarray | None = None  # moved on to a second-layer account instead of cashed out here

    @property
    def cashes_out(self) -> np.ndarray:
        """Completed, and the last hop: the money stays in this account and goes out as cash."""
        out = (self.status == 0) & (self.hops_left == 0)
        return out if self.forwarded is None else out & ~self.forwarded


def _group_cumsum(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cumulative sum within consecutive groups."""
    total = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1] if len(groups) else np.zeros(0, int)
    offset = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, len(values)]))
    return total - offset
