"""Simulator of complaint extracts (contract extracts/v1) with known truth; see docs/simulator.md."""

from .core import simulate
from .scenario import VARIANTS, Scenario

__all__ = ["VARIANTS", "Scenario", "simulate"]
