"""Vectorised text formatting of identifiers, timestamps, amounts and coordinates.

Rows are kept numeric while they wait for their extract date and only turned
into text here, when a file is written: cheaper in memory, and the exact text
of every field is decided in one place.
"""

from __future__ import annotations

import numpy as np

from .rhythm import IST_OFFSET_S

# Timestamp styles of one row: most producers write IST, a few write UTC.
TS_IST, TS_Z, TS_UTC_OFFSET = 0, 1, 2
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_MUL64 = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplication is a bijection mod 2**64


def mix64(n: np.ndarray) -> np.ndarray:
    """Bijective scramble of 64-bit counters, so tokens look random but never collide."""
    x = np.asarray(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x ^ np.uint64(0x2545F4914F6CDD1D)
        x = (x * _MUL64) & _MASK64
        x ^= x >> np.uint64(29)
        x = (x * _MUL64) & _MASK64
    return x


def hex_tokens(prefix: str, n: np.ndarray, width: int = 16) -> np.ndarray:
    """prefix + lower-case hex of mix64(n), `width` digits (width 16 is collision-free)."""
    mixed = mix64(n)
    if width < 16:
        mixed = mixed >> np.uint64(4 * (16 - width))
    pattern = f"{prefix}%0{width}x"
    return np.array([pattern % v for v in mixed.tolist()], dtype=object)


def ack_numbers(state_code: np.ndarray, serial: np.ndarray) -> np.ndarray:
    """14-digit complaint numbers: 2-digit state code + 12 digits bijective in the serial."""
    body = (np.asarray(serial, dtype=np.int64) * 7_777_777) % 1_000_000_000_000
    return np.asarray(state_code, dtype=np.int64) * 1_000_000_000_000 + body


def ints(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int64).astype(str)


def optional_ints(a: np.ndarray, present: np.ndarray) -> np.ndarray:
    return np.where(present, ints(a), "")


def decimals(x: np.ndarray, places: int) -> np.ndarray:
    """Fixed-point text ('1234.50'), exact and fast: integer arithmetic, no printf per value."""
    scale = 10**places
    units = np.rint(np.asarray(x, dtype=float) * scale).astype(np.int64)
    neg = units < 0
    units = np.abs(units)
    whole = (units // scale).astype(str)
    frac = np.strings.zfill((units % scale).astype(str), places)
    out = np.strings.add(np.strings.add(whole, "."), frac)
    return np.where(neg, np.strings.add("-", out), out)


def optional_decimals(x: np.ndarray, present: np.ndarray, places: int) -> np.ndarray:
    return np.where(present, decimals(np.where(present, x, 0.0), places), "")


def timestamps(seconds: np.ndarray, style: np.ndarray) -> np.ndarray:
    """ISO 8601 with offset: '+05:30' local time, or the same instant in UTC as 'Z' / '+00:00'."""
    s = np.asarray(seconds, dtype=np.int64)
    ist = np.strings.add(np.datetime_as_string((s + IST_OFFSET_S).astype("datetime64[s]")), "+05:30")
    utc = np.datetime_as_string(s.astype("datetime64[s]"))
    out = np.where(style == TS_Z, np.strings.add(utc, "Z"), ist)
    return np.where(style == TS_UTC_OFFSET, np.strings.add(utc, "+00:00"), out)


def optional_timestamps(seconds: np.ndarray, style: np.ndarray, present: np.ndarray) -> np.ndarray:
    return np.where(present, timestamps(np.where(present, seconds, 0), style), "")
