"""Simulator of complaint extracts (contract extracts/v1) with known truth; see docs/simulator.md."""

from .core import simulate

__all__ = ["simulate"]
