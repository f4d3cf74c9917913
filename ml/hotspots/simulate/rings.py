"""Fraud rings and their mule accounts, and how they change from day to day.

A ring is a gang based in a district. It runs some kinds of fraud (its profile),
has an activity level (its share of the national incident rate) and a set of
mule accounts that receive the stolen money and take it out as cash at a few
terminals near the ring's base. Rings emerge and grow, get disrupted by police
action (activity collapses, most mules are frozen), then dissolve, recover or
relocate to another district; mule accounts churn all the time. Those breaks
are what makes "same as last week" a beatable forecast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .scenario import DEFAULT, Scenario
from .world import HOTSPOTS, PROFILE_NAMES, PROFILES, World, km_between

# DORMANT: a ring lying low on its own (scenario.p_go_dark), its accounts kept; never in the default.
ACTIVE, DISRUPTED, DISSOLVED, DORMANT = 0, 1, 2, 3
STATUS_NAMES = ("active", "disrupted", "dissolved", "dormant")
NO_EVENT, RECOVER, RELOCATE, DISSOLVE = 0, 1, 2, 3
FIRST_LAYER, SECOND_LAYER = 0, 1  # mule account tiers: second-layer accounts only receive forwards

# The daily ring hazards (police action, moving on its own) and what follows a dark spell are
# scenario settings; scenario.DEFAULT has P_DISRUPT = 1/200, P_RELOCATE = 1/400.
P_DISRUPT = DEFAULT.p_disrupt
P_RELOCATE = DEFAULT.p_relocate
EMERGE_PER_RING = 1 / 450  # new rings per day, per initial ring
MIN_AGE_FOR_RAID = 20      # days: a new ring is not raided at once
N_SLOTS = 4                # terminals a mule account uses: 3 near the base, maybe 1 farther
NEAR_KM, FAR_KM = 15.0, 60.0
POOL_SIZE = 30
MULE_LIFETIME_DAYS = 70
FREEZE_PER_HIT = 0.004     # each credit the bank sees raises the chance the account is frozen


def ring_count(scale: float) -> int:
    """More rings at national scale, but never so few that dynamics vanish at small scale."""
    return int(np.clip(round(150 * np.sqrt(scale)), 14, 400))


@dataclass
class Ring:
    ring_id: str
    district_idx: int
    lat: float
    lon: float
    profile: int
    cash_share: float
    activity: float
    target: float
    born: int
    status: int = ACTIVE
    next_event: int = NO_EVENT
    next_event_day: int = -1
    partners: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pool: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pool_w: np.ndarray = field(default_factory=lambda: np.zeros(0))
    far_pool: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class MuleAccounts:
    """Struct of arrays over every mule account ever recruited; grows by doubling."""

    def __init__(self, capacity: int = 1024):
        self.n = 0
        self.ring = np.zeros(capacity, dtype=np.int64)
        self.alive = np.zeros(capacity, dtype=bool)
        self.weight = np.zeros(capacity)
        self.ifsc = np.zeros(capacity, dtype=object)
        self.home = np.zeros(capacity, dtype=np.int64)
        self.hits = np.zeros(capacity, dtype=np.int64)
        self.tier = np.zeros(capacity, dtype=np.int8)
        self.terms = np.full((capacity, N_SLOTS), -1, dtype=np.int64)
        self.tw = np.zeros((capacity, N_SLOTS))

    @property
    def capacity(self) -> int:
        return len(self.ring)

    def add(self, k: int) -> np.ndarray:
        while self.n + k > self.capacity:
            self._grow()
        idx = np.arange(self.n, self.n + k)
        self.n += k
        return idx

    def _grow(self) -> None:
        cap = self.capacity
        for name in ("ring", "alive", "weight", "ifsc", "home", "hits", "tier"):
            old = getattr(self, name)
            new = np.zeros(2 * cap, dtype=old.dtype)
            new[:cap] = old
            setattr(self, name, new)
        terms = np.full((2 * cap, N_SLOTS), -1, dtype=np.int64)
        terms[:cap] = self.terms
        tw = np.zeros((2 * cap, N_SLOTS))
        tw[:cap] = self.tw
        self.terms, self.tw = terms, tw


class MulePicker:
    """Today's alive mule accounts of one tier grouped by ring, for vectorised weighted picks."""

    def __init__(self, mules: MuleAccounts, n_rings: int, tier: int = FIRST_LAYER):
        alive = np.flatnonzero(mules.alive[: mules.n] & (mules.tier[: mules.n] == tier))
        order = alive[np.argsort(mules.ring[alive], kind="stable")]
        self.order = order
        self.ring_sorted = mules.ring[order]
        self.cum = np.cumsum(mules.weight[order])
        self.lo = np.searchsorted(self.ring_sorted, np.arange(n_rings), side="left")
        self.hi = np.searchsorted(self.ring_sorted, np.arange(n_rings), side="right")
        base = np.concatenate(([0.0], self.cum))
        self.w_lo = base[self.lo]
        self.w_hi = base[self.hi]

    def count(self, rings: np.ndarray) -> np.ndarray:
        return self.hi[rings] - self.lo[rings]

    def pick(self, rings: np.ndarray, rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
        """One mule per entry of `rings` (each ring must have one), by mule weight; never `avoid`."""
        u = rng.random(len(rings))
        x = self.w_lo[rings] + u * (self.w_hi[rings] - self.w_lo[rings])
        pos = np.clip(np.searchsorted(self.cum, x, side="right"), self.lo[rings], self.hi[rings] - 1)
        mule = self.order[pos]
        if avoid is not None:
            same = (mule == avoid) & (self.count(rings) > 1)
            size = self.count(rings[same])
            nxt = self.lo[rings[same]] + (pos[same] - self.lo[rings[same]] + 1) % size
            mule[same] = self.order[nxt]
        return mule


class RingBook:
    """All rings and mule accounts, with the daily step of their dynamics."""

    def __init__(self, world: World, rng: np.random.Generator, scale: float, day: int,
                 scenario: Scenario = DEFAULT):
        self.world = world
        self.rng = rng
        self.scale = scale
        self.scenario = scenario
        self.rings: list[Ring] = []
        self.mules = MuleAccounts()
        self.on_freeze = None  # callback(mule indices): the money waiting in them is gone
        self.events: dict[int, str] = {}
        self.event_counts: dict[str, int] = {}
        self._district_weight = np.bincount(world.anchors["district_idx"], minlength=len(world.districts))
        self._hotspot_idx = self._hotspot_districts()
        n = ring_count(scale)
        n_hot = min(sum(h[2] for h in self._hotspot_idx), int(np.ceil(0.6 * n)))
        for k, (district, profile) in enumerate(self._initial_bases(n, n_hot)):
            self._new_ring(district, profile, day, hot=k < n_hot, emerging=False)
        self.initial_count = n
        self.reference_activity = self.total_activity()
        self.expected_complaints = np.zeros(len(self.rings))

    # ---------------------------------------------------------------- set-up
    def _hotspot_districts(self) -> list[tuple[int, int, int]]:
        """(district index, profile index, initial rings) of the hotspots the gazetteer knows."""
        d = self.world.districts
        out = []
        for h in HOTSPOTS:
            hit = np.flatnonzero((d["district"] == h.district).to_numpy() & (d["state"] == h.state).to_numpy())
            if len(hit):
                out.append((int(hit[0]), PROFILE_NAMES.index(h.profile), h.rings))
        return out

    def _initial_bases(self, n: int, n_hot: int) -> list[tuple[int, int]]:
        slots = [(d, p) for d, p, rings in self._hotspot_idx for _ in range(rings)]
        bases = slots[:n_hot]
        bases += [(self._random_district(), PROFILE_NAMES.index("national")) for _ in range(n - len(bases))]
        return bases

    def _random_district(self) -> int:
        w = self._district_weight / self._district_weight.sum()
        return int(self.rng.choice(len(w), p=w))

    def _new_ring(self, district: int, profile: int, day: int, hot: bool, emerging: bool) -> Ring:
        rng = self.rng
        cash = PROFILES[PROFILE_NAMES[profile]][1]
        if PROFILE_NAMES[profile] == "national":
            cash = float(rng.uniform(0.4, 1.0))
        target = float(rng.lognormal(np.log(4.0), 0.5) if hot else rng.lognormal(np.log(0.7), 0.9))
        lat, lon = self._base_point(district)
        ring = Ring(
            ring_id=f"R{len(self.rings) + 1:04d}", district_idx=district, lat=lat, lon=lon, profile=profile,
            cash_share=cash, activity=target * (0.05 if emerging else 1.0), target=target, born=day,
        )
        if self.rings:
            ring.partners = rng.choice(len(self.rings), size=min(3, len(self.rings)), replace=False)
        self._build_pool(ring)
        self.rings.append(ring)
        for r in self.rings[:-1]:  # newcomers get picked as partners by a few others
            if len(r.partners) < 3 and rng.random() < 0.5:
                r.partners = np.append(r.partners, len(self.rings) - 1)
        return ring

    def _base_point(self, district: int) -> tuple[float, float]:
        a = self.world.anchors
        cand = np.flatnonzero(a["district_idx"].to_numpy() == district)
        w = a["weight"].to_numpy()[cand]
        i = cand[self.rng.choice(len(cand), p=w / w.sum())]
        return float(a["lat"].iat[i]), float(a["lon"].iat[i])

    def _build_pool(self, ring: Ring) -> None:
        """The terminals the ring's mules use: close to the base, a few favourites dominate."""
        t = self.world.terminals
        d = km_between(ring.lat, ring.lon, t["lat"].to_numpy(), t["lon"].to_numpy())
        near = np.flatnonzero(d <= NEAR_KM)
        if len(near) < 10:
            near = np.argsort(d, kind="stable")[:10]
        w = np.exp(-d[near] / 3.0) * self.rng.lognormal(0.0, 2.0, len(near))
        keep = np.argsort(-w, kind="stable")[:POOL_SIZE]
        ring.pool, ring.pool_w = near[keep], w[keep] / w[keep].sum()
        far = np.flatnonzero((d > NEAR_KM) & (d <= FAR_KM))
        ring.far_pool = self.rng.choice(far, size=min(30, len(far)), replace=False) if len(far) else ring.pool

    # ---------------------------------------------------------------- mules
    def _assign_terminals(self, idx: np.ndarray, ring: Ring) -> None:
        """Each mule account cashes out at up to three favourite terminals near the base, some
        also at one farther away: the habit that makes past cash-out cells predictive."""
        rng, k = self.rng, len(idx)
        near = ring.pool[rng.choice(len(ring.pool), size=(k, N_SLOTS - 1), p=ring.pool_w)]
        w = rng.dirichlet(np.full(N_SLOTS - 1, 0.5), size=k)
        far = rng.random(k) < 0.08
        terms = np.full((k, N_SLOTS), -1, dtype=np.int64)
        tw = np.zeros((k, N_SLOTS))
        terms[:, : N_SLOTS - 1] = near
        tw[:, : N_SLOTS - 1] = w * np.where(far, 0.9, 1.0)[:, None]
        terms[far, N_SLOTS - 1] = rng.choice(ring.far_pool, size=int(far.sum()))
        tw[far, N_SLOTS - 1] = 0.1
        self.mules.terms[idx] = terms
        self.mules.tw[idx] = tw

    def _recruit(self, r: int, k: int, tier: int = FIRST_LAYER) -> None:
        ring, m = self.rings[r], self.mules
        idx = m.add(k)
        m.ring[idx] = r
        m.tier[idx] = tier
        m.alive[idx] = True
        m.weight[idx] = self.rng.lognormal(0.0, 0.8, k)
        m.home[idx] = ring.district_idx
        m.ifsc[idx] = self.world.branch_ifsc[ring.district_idx,
                                             self.rng.integers(0, self.world.branch_ifsc.shape[1], k)]
        m.hits[idx] = 0
        self._assign_terminals(idx, ring)

    def _freeze(self, idx: np.ndarray) -> None:
        if len(idx) == 0:
            return
        self.mules.alive[idx] = False
        if self.on_freeze is not None:
            self.on_freeze(idx)

    def alive_of(self, r: int) -> np.ndarray:
        m = self.mules
        return np.flatnonzero(m.alive[: m.n] & (m.ring[: m.n] == r))

    def mule_target(self, expected_complaints: float) -> int:
        return int(np.clip(round(3 + 1.2 * expected_complaints ** 0.75), 3, 250))

    # ---------------------------------------------------------------- dynamics
    def total_activity(self) -> float:
        return float(sum(r.activity for r in self.rings if r.status != DISSOLVED))

    def step(self, day: int, national_rate: float) -> None:
        """Advance one day: scheduled outcomes, raids, moves, new rings, activity, mule churn."""
        self.events = {}
        self._scheduled_outcomes(day)
        self._hazards(day)
        self._emergence(day)
        self._drift_activity()
        # National volume follows total activity only within bounds: a raid dents it for a few
        # weeks, but new rings cannot inflate it without limit (scale 1.0 stays ~8,000 a day).
        total = self.total_activity()
        self.reference_activity += (total - self.reference_activity) / 30.0
        level = float(np.clip(total / self.reference_activity, 0.85, 1.1)) / total
        self.expected_complaints = np.array(
            [national_rate * r.activity * level if r.status != DISSOLVED else 0.0 for r in self.rings])
        self._churn_mules()
        for e in self.events.values():
            kind = e.split()[0]
            self.event_counts[kind] = self.event_counts.get(kind, 0) + 1

    def _scheduled_outcomes(self, day: int) -> None:
        for i, ring in enumerate(self.rings):
            if ring.status not in (DISRUPTED, DORMANT) or ring.next_event_day != day:
                continue
            if ring.next_event == DISSOLVE:
                ring.status, ring.activity = DISSOLVED, 0.0
                self._freeze(self.alive_of(i))
                self.events[i] = "dissolved"
            elif ring.next_event == RELOCATE:
                self._relocate(i)
                ring.status = ACTIVE
            else:
                ring.status = ACTIVE
                self.events[i] = "recovered"
            ring.next_event, ring.next_event_day = NO_EVENT, -1

    def _hazards(self, day: int) -> None:
        s = self.scenario
        u = self.rng.random(len(self.rings))
        for i, ring in enumerate(self.rings):
            if ring.status != ACTIVE or i in self.events:
                continue
            if u[i] < s.p_disrupt and day - ring.born >= MIN_AGE_FOR_RAID:
                self._disrupt(i, day)
            elif s.p_disrupt <= u[i] < s.p_disrupt + s.p_relocate:
                self._relocate(i)
            elif (s.p_go_dark > 0 and s.p_disrupt + s.p_relocate <= u[i] < s.p_disrupt + s.p_relocate + s.p_go_dark
                  and day - ring.born >= MIN_AGE_FOR_RAID):
                self._go_dark(i, day)

    def _schedule_after_dark(self, ring: Ring, day: int) -> None:
        """Dissolve, relocate or recover when the dark spell ends (scenario.after_dark, dark_days)."""
        s, rng = self.scenario, self.rng
        ring.next_event = int(rng.choice([DISSOLVE, RELOCATE, RECOVER], p=list(s.after_dark)))
        ring.next_event_day = day + int(rng.integers(s.dark_days[0], s.dark_days[1] + 1))

    def _go_dark(self, i: int, day: int) -> None:
        """The ring lies low on its own: activity collapses, its accounts are kept (no raid)."""
        ring = self.rings[i]
        ring.status = DORMANT
        ring.activity *= float(self.rng.uniform(0.05, 0.2))
        self._schedule_after_dark(ring, day)
        self.events[i] = "dark"

    def _disrupt(self, i: int, day: int) -> None:
        """Police action: activity collapses and most of the ring's accounts are frozen."""
        ring, rng = self.rings[i], self.rng
        ring.status = DISRUPTED
        ring.activity *= float(rng.uniform(0.05, 0.2))
        ring.target *= float(rng.uniform(0.4, 1.0))
        alive = self.alive_of(i)
        n_keep = max(2, int(round(len(alive) * (1 - rng.uniform(0.6, 0.95)))))
        self._freeze(rng.permutation(alive)[n_keep:])
        self._schedule_after_dark(ring, day)
        self.events[i] = "disrupted"

    def _relocate(self, i: int) -> None:
        """The gang moves: mostly to a neighbouring district, sometimes to another hub."""
        ring, rng, d = self.rings[i], self.rng, self.world.districts
        dist = km_between(ring.lat, ring.lon, d["lat"].to_numpy(), d["lon"].to_numpy())
        neighbours = np.flatnonzero((dist < 150) & (np.arange(len(d)) != ring.district_idx))
        if len(neighbours) and rng.random() < self.scenario.relocate_near_share:
            target = int(rng.choice(neighbours))
        elif rng.random() < 0.5:
            target = self._hotspot_idx[int(rng.integers(len(self._hotspot_idx)))][0]
        else:
            target = self._random_district()
        old = self.world.districts["district"].iat[ring.district_idx]
        ring.district_idx = target
        ring.lat, ring.lon = self._base_point(target)
        self._build_pool(ring)
        alive = self.alive_of(i)
        if len(alive):
            self._assign_terminals(alive, ring)
        self.events[i] = f"relocated from {old}"

    def _emergence(self, day: int) -> None:
        for _ in range(self.rng.poisson(self.initial_count * EMERGE_PER_RING)):
            if self.rng.random() < 0.5 and self._hotspot_idx:
                district, profile, _ = self._hotspot_idx[int(self.rng.integers(len(self._hotspot_idx)))]
                hot = True
            else:
                district, profile, hot = self._random_district(), PROFILE_NAMES.index("national"), False
            self._new_ring(district, profile, day, hot=hot, emerging=True)
            self.events[len(self.rings) - 1] = "emerged"

    def _drift_activity(self) -> None:
        """Log-activity reverts to a slowly wandering target: growth, recovery, noise."""
        rng = self.rng
        eps = rng.normal(size=(len(self.rings), 2))
        for i, ring in enumerate(self.rings):
            if ring.status == DISSOLVED:
                continue
            ring.target *= float(np.exp(0.01 * eps[i, 1]))
            if ring.status == ACTIVE:
                pull = 0.03 * np.log(ring.target / ring.activity)
                ring.activity *= float(np.exp(pull + 0.06 * eps[i, 0]))

    def _churn_mules(self) -> None:
        """Banks freeze accounts (faster the more credits they see); rings recruit new ones."""
        m, rng = self.mules, self.rng
        n = m.n
        p = np.minimum(1 / MULE_LIFETIME_DAYS + FREEZE_PER_HIT * m.hits[:n], 0.5)
        frozen = np.flatnonzero(m.alive[:n] & (rng.random(n) < p))
        # A ring keeps at least two (first-layer) accounts while it operates.
        first = m.tier[:n] == FIRST_LAYER
        keep = np.zeros(n, dtype=bool)
        counts = np.bincount(m.ring[:n][m.alive[:n] & first], minlength=len(self.rings))
        lost_idx = frozen[first[frozen]]
        lost = np.bincount(m.ring[lost_idx], minlength=len(self.rings))
        for r in np.flatnonzero(counts - lost < 2):
            keep[lost_idx[m.ring[lost_idx] == r][: 2 - max(counts[r] - lost[r], 0)]] = True
        self._freeze(frozen[~keep[frozen]])
        m.hits[:n] = 0
        counts = np.bincount(m.ring[:n][m.alive[:n] & first], minlength=len(self.rings))
        second = np.bincount(m.ring[:n][m.alive[:n] & ~first], minlength=len(self.rings))
        for r, ring in enumerate(self.rings):
            if ring.status != ACTIVE:
                continue
            target = self.mule_target(self.expected_complaints[r])
            need = target - counts[r]
            if need > 0:
                self._recruit(r, int(need))
            if self.scenario.forwards:
                need = max(2, int(np.ceil(self.scenario.second_layer_accounts * target))) - second[r]
                if need > 0:
                    self._recruit(r, int(need), tier=SECOND_LAYER)

    # ---------------------------------------------------------------- views
    def picker(self, tier: int = FIRST_LAYER) -> MulePicker:
        return MulePicker(self.mules, len(self.rings), tier)

    def cash_share(self) -> np.ndarray:
        return np.array([r.cash_share for r in self.rings])

    def partners(self) -> np.ndarray:
        """(n_rings, 3) partner ring per slot; a ring without partners points at itself."""
        out = np.tile(np.arange(len(self.rings))[:, None], (1, 3))
        for i, r in enumerate(self.rings):
            if len(r.partners):
                out[i] = np.resize(r.partners, 3)
        return out

    def log_rows(self, date: str) -> pd.DataFrame:
        """One row per ring still of interest today, for truth/rings.csv.gz."""
        d = self.world.districts
        m = self.mules
        alive = np.bincount(m.ring[: m.n][m.alive[: m.n]], minlength=len(self.rings))
        rows = [
            (r.ring_id, date, d["district"].iat[r.district_idx], d["state"].iat[r.district_idx],
             round(r.lat, 5), round(r.lon, 5), PROFILE_NAMES[r.profile], STATUS_NAMES[r.status],
             round(r.activity, 4), round(float(self.expected_complaints[i]), 3), int(alive[i]),
             self.events.get(i, ""))
            for i, r in enumerate(self.rings) if r.status != DISSOLVED or i in self.events
        ]
        return pd.DataFrame(rows, columns=["ring_id", "date", "district", "state", "base_lat", "base_lon",
                                           "profile", "status", "activity", "expected_complaints",
                                           "mule_accounts", "event"])
