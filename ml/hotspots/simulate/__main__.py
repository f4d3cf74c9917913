"""CLI: python -m hotspots.simulate --out DIR --start YYYY-MM-DD --days N --scale X --seed N [--variant NAME]."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from .core import simulate
from .scenario import VARIANTS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hotspots.simulate", description=(
        "Write simulated complaint extracts (contract extracts/v1) and the simulator's truth."))
    p.add_argument("--out", required=True, help="landing folder: one sub-folder per extract date")
    p.add_argument("--start", required=True, type=dt.date.fromisoformat, help="first extract date, YYYY-MM-DD")
    p.add_argument("--days", required=True, type=int, help="number of extract dates")
    p.add_argument("--scale", type=float, default=1.0, help="1.0 = national volume (~8,000 complaints/day)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth", default=None, help="truth folder (default: OUT/../truth); never inside OUT")
    p.add_argument("--dirty-rate", type=float, default=0.02, help="share of dirty rows (0 = clean)")
    p.add_argument("--variant", default="default", choices=list(VARIANTS),
                   help="scenario variant (producer behaviours, ring dynamics); see docs/simulator.md")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    a = p.parse_args(argv)
    try:
        summary = simulate(a.out, a.start, a.days, a.scale, a.seed, truth=a.truth, dirty_rate=a.dirty_rate,
                           progress=not a.quiet, variant=a.variant)
    except ValueError as e:
        p.error(str(e))
    if a.quiet:
        print(" ".join(f"{k}={v}" for k, v in summary.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
