"""Scenario variants: the producer behaviours and ring dynamics a run simulates.

`Scenario()` is the simulator as it always was ("default": same seed, same bytes).
Every other variant switches on behaviours seen in other producers' deliveries
(issue 8) that the default never shows:

1. withdrawals reported with their terminal (terminal_id and PIN) but without
   coordinates, although the same terminal comes with coordinates in other rows;
2. jittered coordinates: each report of a terminal is off its true position by
   tens of metres, a few by a few hundred (so some fall in a neighbouring cell);
3. rings that go dark (a raid, or lying low on their own) and come back with
   their cash-out in another district;
4. money forwarded from the account it completed its chain in to a second layer
   of mule accounts 1-96 hours later, which then withdraw it;
5. a heavier tail of reporting delay: a share of withdrawals and transactions
   arrives 10-30 days late.

The truth never changes meaning: `truth/withdrawals` and `truth/intensity` give
the terminal's true position and cell, however a row was reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Scenario:
    name: str = "default"
    description: str = "the simulator's own producer: every located terminal reported at its position"

    # 1. Withdrawals reported with terminal_id and PIN but no lat/lon.
    # `pin_only_terminals`: the default producer knows about 12% of terminals (mostly AEPS and
    # micro-ATM points, placed at their PIN centroid, which is their true position) only by PIN
    # and never gives their coordinates: 5-15% of withdrawals, harmless to locate. With False,
    # this producer reports those terminals like any other (at that centroid).
    # `coordless_share`: share of all withdrawals reported without coordinates. The PIN-only
    # terminals above count towards it; the rest is taken each day from withdrawals at terminals
    # with coordinates, in proportion to a per-terminal tendency (Gamma, mean 1, shape
    # `coordless_concentration`: 2 makes some terminals give coordinates almost always and others
    # mostly not; 0: the same probability for every row). The same terminals come with
    # coordinates in other rows: what a terminal registry can learn from.
    pin_only_terminals: bool = True
    coordless_share: float = 0.0
    coordless_concentration: float = 0.0

    # 2. Jitter of reported coordinates: per report, a normal offset per axis with standard
    # deviation `jitter_m` metres (clipped at 3 sd); a share `jitter_far_share` of reports uses
    # `jitter_far_m` instead (a bank's rough geocode).
    jitter_m: float = 0.0
    jitter_far_share: float = 0.0
    jitter_far_m: float = 0.0

    # 3. Rings. Per ring and day: police action (`p_disrupt`, accounts frozen), lying low on
    # its own (`p_go_dark`, accounts kept), moving on its own (`p_relocate`). A ring that went
    # dark comes back after `dark_days` (inclusive range) and then dissolves, relocates or
    # recovers with probabilities `after_dark`. A relocation goes to a district within 150 km
    # with probability `relocate_near_share`, else to a hotspot or a random district.
    p_disrupt: float = 1 / 200
    p_go_dark: float = 0.0
    p_relocate: float = 1 / 400
    after_dark: tuple[float, float, float] = (0.3, 0.45, 0.25)   # dissolve, relocate, recover
    dark_days: tuple[int, int] = (3, 24)
    relocate_near_share: float = 0.65

    # 4. Second layer: a share `forward_share` of the money that completed its chain is moved on,
    # `forward_hours` (uniform) later, to a second-layer account of the ring holding it (a
    # transaction row, layer + 1), and withdrawn from there. Rings keep
    # `second_layer_accounts` second-layer accounts per first-layer account they need.
    forward_share: float = 0.0
    forward_hours: tuple[float, float] = (1.0, 96.0)
    second_layer_accounts: float = 0.4

    # 5. Late reports: a share `late_share` of withdrawals and of transactions reaches the
    # extract `late_days` (inclusive, uniform) after the event instead of the usual 0-10 days.
    late_share: float = 0.0
    late_days: tuple[int, int] = (10, 30)

    def __post_init__(self) -> None:
        def share(name):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"scenario {self.name}: {name}={v} must be in [0, 1]")

        for name in ("coordless_share", "jitter_far_share", "p_disrupt", "p_go_dark", "p_relocate",
                     "relocate_near_share", "forward_share", "late_share"):
            share(name)
        if self.p_disrupt + self.p_go_dark + self.p_relocate > 1:
            raise ValueError(f"scenario {self.name}: daily ring hazards add up to more than 1")
        if len(self.after_dark) != 3 or min(self.after_dark) < 0 or abs(sum(self.after_dark) - 1) > 1e-9:
            raise ValueError(f"scenario {self.name}: after_dark must be 3 probabilities summing to 1")
        for name in ("jitter_m", "jitter_far_m", "coordless_concentration", "second_layer_accounts"):
            if getattr(self, name) < 0:
                raise ValueError(f"scenario {self.name}: {name} must be >= 0")
        for name, lo_min in (("dark_days", 1), ("late_days", 1), ("forward_hours", 0)):
            lo, hi = getattr(self, name)
            if not lo_min <= lo <= hi:
                raise ValueError(f"scenario {self.name}: {name} must be an ordered range from {lo_min}")

    @property
    def forwards(self) -> bool:
        return self.forward_share > 0

    def knobs(self) -> dict:
        """The settings that differ from the default scenario (for docs and summaries)."""
        base = asdict(DEFAULT)
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("name", "description") and getattr(self, f.name) != base[f.name]}


DEFAULT = Scenario()

# Jitter as in producer-b's sample: same terminal's reports median ~20 m apart, a few far off.
_JITTER = dict(jitter_m=25.0, jitter_far_share=0.05, jitter_far_m=200.0)

VARIANTS: dict[str, Scenario] = {
    "default": DEFAULT,
    "pin_terminals": Scenario(
        name="pin_terminals",
        description="a quarter of withdrawals carry a terminal but no coordinates; jittered coordinates",
        coordless_share=0.25, coordless_concentration=2.0, pin_only_terminals=False, **_JITTER,
    ),
    "moving_rings": Scenario(
        name="moving_rings",
        description="rings go dark often and mostly come back with their cash-out in another district; "
                    "22% of withdrawals without coordinates; jitter",
        coordless_share=0.22, coordless_concentration=2.0, pin_only_terminals=False, **_JITTER,
        p_disrupt=1 / 80, p_go_dark=1 / 120, p_relocate=1 / 300, after_dark=(0.1, 0.8, 0.1),
        dark_days=(3, 14), relocate_near_share=0.4,
    ),
    "layered": Scenario(
        name="layered",
        description="money forwarded to second-layer accounts 1-96 h before cash-out; 8% of withdrawals "
                    "and transactions reported 10-30 days late; 21% without coordinates; jitter",
        coordless_share=0.21, coordless_concentration=2.0, pin_only_terminals=False, **_JITTER,
        forward_share=0.7, forward_hours=(1.0, 96.0), second_layer_accounts=0.4,
        late_share=0.08, late_days=(10, 30),
    ),
}


def resolve(variant: str | Scenario | None) -> Scenario:
    """A Scenario from a variant name (or the Scenario itself)."""
    if variant is None:
        return DEFAULT
    if isinstance(variant, Scenario):
        return variant
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}") from None


__all__ = ["DEFAULT", "VARIANTS", "Scenario", "resolve"]
