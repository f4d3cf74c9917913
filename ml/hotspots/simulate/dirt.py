"""Dirty rows, one class each, logged so tests and the ingest can check where every one ended.

Each class names the outcome the contract expects from a reader: a quarantine
reason or a repair flag from `hotspots.contract`, or `loaded` (re-sends). A
class is applied to one text row (a dict column -> field) and changes only
what makes it dirty; every other row of a file stays strictly clean. Classes
are dealt round-robin over a shuffled cycle per file kind so that every class
shows up even in small runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hotspots import contract as C
from hotspots.geo.gazetteer import in_india

from . import formats as fmt
from .extracts import ENCODING_PLACEHOLDER, csv_field
from .rhythm import DAY_S
from .world import World

ALL = ("complaints", "transactions", "withdrawals")
LOCATED = ("complaints", "withdrawals")


@dataclass(frozen=True)
class DirtClass:
    name: str
    expected: str
    entities: tuple[str, ...]


def _q(reason: str) -> str:
    return f"quarantine:{reason}"


def _r(flag: str) -> str:
    return f"repair:{flag}"


DIRT_CLASSES = (
    DirtClass("malformed_row", _q(C.Q_MALFORMED_ROW), ALL),
    DirtClass("invalid_encoding", _q(C.Q_INVALID_ENCODING), ALL),
    DirtClass("unparseable_number", _q(C.Q_UNPARSEABLE_NUMBER), ALL),
    DirtClass("unparseable_timestamp", _q(C.Q_UNPARSEABLE_TIMESTAMP), ALL),
    DirtClass("duplicate_key_in_file", _q(C.Q_DUPLICATE_KEY), ALL),
    DirtClass("incident_after_reported", _r(C.R_INCIDENT_AFTER_REPORTED), ("complaints",)),
    DirtClass("future_timestamp", _q(C.Q_FUTURE_TIMESTAMP), ALL),
    DirtClass("negative_amount", _q(C.Q_NEGATIVE_AMOUNT), ALL),
    DirtClass("amount_above_ceiling", _q(C.Q_AMOUNT_ABOVE_CEILING), ALL),
    DirtClass("coords_outside_india", _r(C.R_COORDS_OUTSIDE_INDIA), LOCATED),
    DirtClass("coords_swapped", _r(C.R_COORDS_SWAPPED), LOCATED),
    DirtClass("coords_zero", _r(C.R_COORDS_ZERO), LOCATED),
    DirtClass("unknown_pincode", _r(C.R_UNKNOWN_PINCODE), LOCATED),
    DirtClass("pincode_region_mismatch", _r(C.R_PINCODE_REGION_MISMATCH), ("complaints",)),
    DirtClass("unknown_code", _q(C.Q_UNKNOWN_CODE), ALL),
    DirtClass("code_case", _r(C.R_CODE_CASE), ALL),
    DirtClass("mobile_invalid", _r(C.R_MOBILE_INVALID), ("complaints",)),
)
RESEND = DirtClass("resend", "loaded", ALL)
BY_NAME = {d.name: d for d in DIRT_CLASSES + (RESEND,)}

# Field roles per entity.
AMOUNT = {"complaints": "amount_lost_inr", "transactions": "amount_inr", "withdrawals": "amount_inr"}
EVENT_TS = {"complaints": "reported_at", "transactions": "txn_at", "withdrawals": "withdrawn_at"}
LAT_LON = {"complaints": ("victim_lat", "victim_lon"), "withdrawals": ("lat", "lon")}
PINCODE = {"complaints": "victim_pincode", "withdrawals": "pincode"}
CODE = {"complaints": "category", "transactions": "status", "withdrawals": "channel"}
FREE_TEXT = {"complaints": "victim_district", "transactions": "from_account", "withdrawals": "terminal_id"}
UNKNOWN_CODES = {"category": ("CRYPTO", "PHISHING", "LOTTERY"), "status": ("PENDING", "FAILED", "OPEN"),
                 "channel": ("CRYPTO", "CDM", "UPI_ATM")}
# Places far from India and from its borders; their swapped forms are not in India either.
ABROAD = ((25.20, 55.27), (51.51, -0.13), (40.71, -74.00), (1.35, 103.82), (10.0, 60.0),
          (15.0, 89.0), (-20.0, 80.0), (33.0, 65.0), (-33.87, 151.21), (48.86, 2.35))


@dataclass
class RowContext:
    """What a dirt class may need beyond the row's text."""

    entity: str
    day_end: int         # last second of the extract date (UTC epoch)
    style: int           # timestamp style of the row
    reported: int        # complaints: reported_at second; others: the event second
    lat: float           # true location of the row (victim or terminal)
    lon: float


class DirtInjector:
    def __init__(self, world: World, rng: np.random.Generator, rate: float):
        self.world, self.rng, self.rate = world, rng, rate
        self._cycles: dict[str, list[str]] = {}
        self._known_pins = set(world.pins["pincode"].tolist())
        v = world.victims
        self._victim_pin_region = v["pincode"].str[0].to_numpy(dtype=str)
        self._victim_names = (v["state"].to_numpy(dtype=str), v["state_title"].to_numpy(dtype=str),
                              v["district"].to_numpy(dtype=str), v["district_title"].to_numpy(dtype=str))

    # ---------------------------------------------------------------- choice
    def classes_for(self, entity: str) -> list[DirtClass]:
        return [d for d in DIRT_CLASSES if entity in d.entities]

    def pick_rows(self, entity: str, n: int) -> tuple[np.ndarray, list[str]]:
        """Rows to dirty in a file of n rows, and their classes (round-robin over a shuffled cycle)."""
        if self.rate <= 0 or n == 0:
            return np.zeros(0, dtype=np.int64), []
        k = int(self.rng.binomial(n, min(self.rate, 1.0)))
        rows = np.sort(self.rng.choice(n, size=k, replace=False))
        return rows, [self._next_class(entity) for _ in range(k)]

    def _next_class(self, entity: str) -> str:
        cycle = self._cycles.get(entity)
        if not cycle:
            names = [d.name for d in self.classes_for(entity)]
            cycle = [names[i] for i in self.rng.permutation(len(names))]
            self._cycles[entity] = cycle
        return cycle.pop()

    def resend_count(self, n: int) -> int:
        """Re-sends run at half the dirty rate (1% at the default 2%)."""
        return int(self.rng.binomial(n, min(self.rate / 2, 1.0))) if self.rate > 0 and n else 0

    # ---------------------------------------------------------------- apply
    def apply(self, name: str, row: dict[str, str], ctx: RowContext) -> tuple[str, str]:
        """Dirty one row with class `name`; returns (line text, class actually applied)."""
        if name == "incident_after_reported" and ctx.day_end - ctx.reported < 120:
            name = "future_timestamp"  # no room for an incident after the report within the day
        getattr(self, "_" + name)(row, ctx)
        if name == "malformed_row":
            return self._malformed_line(row), name
        return ",".join(csv_field(v) for v in row.values()), name

    def _malformed_row(self, row, ctx):
        pass  # handled at line level

    def _malformed_line(self, row: dict[str, str]) -> str:
        fields = [csv_field(v) for v in row.values()]
        if self.rng.random() < 0.5:
            fields.insert(int(self.rng.integers(1, len(fields) + 1)), "EXTRA")
        else:
            fields.pop(int(self.rng.integers(1, len(fields))))
        return ",".join(fields)

    def _invalid_encoding(self, row, ctx):
        col = FREE_TEXT[ctx.entity]
        value = row[col]
        for vowel in "aeAE":
            if vowel in value:
                row[col] = value.replace(vowel, ENCODING_PLACEHOLDER, 1)
                return
        row[col] = value + ENCODING_PLACEHOLDER

    def _unparseable_number(self, row, ctx):
        col = AMOUNT[ctx.entity]
        whole = f"{int(float(row[col])):,}"
        garbled = whole.replace("0", "O", 1) if "0" in whole else "O" + whole[1:]
        row[col] = str(self.rng.choice([garbled, "abc", "1.2.3"]))

    def _unparseable_timestamp(self, row, ctx):
        col = EVENT_TS[ctx.entity] if ctx.entity != "complaints" or self.rng.random() < 0.5 else "updated_at"
        year = row[col][:4]
        row[col] = str(self.rng.choice([f"31/02/{year} 10:00", f"{year}-13-45T10:00:00+05:30",
                                        f"{year}-02-30T25:61:00+05:30", "yesterday 10am"]))

    def _duplicate_key_in_file(self, row, ctx):
        pass  # the copy is placed by the assembler

    def _incident_after_reported(self, row, ctx):
        room = min(48 * 3600, ctx.day_end - ctx.reported)
        incident = ctx.reported + int(self.rng.integers(60, room + 1))
        row["incident_at"] = _ts(incident, ctx.style)

    def _future_timestamp(self, row, ctx):
        future = ctx.day_end + int(self.rng.integers(1, 11)) * DAY_S - int(self.rng.integers(0, 6 * 3600))
        row[EVENT_TS[ctx.entity]] = _ts(future, ctx.style)
        if ctx.entity == "complaints":
            row["updated_at"] = _ts(future + int(self.rng.integers(0, 1800)), ctx.style)

    def _negative_amount(self, row, ctx):
        row[AMOUNT[ctx.entity]] = "-" + row[AMOUNT[ctx.entity]]

    def _amount_above_ceiling(self, row, ctx):
        row[AMOUNT[ctx.entity]] = fmt.decimals(np.array([10 ** self.rng.uniform(10, 12)]), 2)[0]

    def _coords(self, row, ctx, lat: float, lon: float, places: int = 6):
        la, lo = LAT_LON[ctx.entity]
        row[la], row[lo] = (fmt.decimals(np.array([lat, lon]), places)).tolist()

    def _coords_outside_india(self, row, ctx):
        while True:
            lat, lon = ABROAD[int(self.rng.integers(len(ABROAD)))]
            lat, lon = lat + self.rng.uniform(-0.5, 0.5), lon + self.rng.uniform(-0.5, 0.5)
            if not in_india([lat, lon], [lon, lat]).any():
                break
        self._coords(row, ctx, lat, lon)

    def _coords_swapped(self, row, ctx):
        self._coords(row, ctx, ctx.lon, ctx.lat)

    def _coords_zero(self, row, ctx):
        la, lo = LAT_LON[ctx.entity]
        row[la], row[lo] = ("0", "0") if self.rng.random() < 0.5 else ("0.0", "0.0")

    def _unknown_pincode(self, row, ctx):
        while True:
            pin = f"{int(self.rng.integers(100000, 1000000)):06d}"
            if pin not in self._known_pins:
                break
        row[PINCODE[ctx.entity]] = pin

    def _pincode_region_mismatch(self, row, ctx):
        """The victim types a state (and district) of another postal region than the PIN's."""
        region = row["victim_pincode"][0]
        other = np.flatnonzero(self._victim_pin_region != region)
        i = int(other[self.rng.integers(len(other))])
        state, state_title, district, district_title = (a[i] for a in self._victim_names)
        upper = row["victim_state"].isupper()
        row["victim_state"] = state if upper else state_title
        row["victim_district"] = district if upper else district_title

    def _unknown_code(self, row, ctx):
        col = CODE[ctx.entity]
        if ctx.entity == "complaints" and self.rng.random() < 0.3:
            col = "status"
        row[col] = str(self.rng.choice(UNKNOWN_CODES[col]))

    def _code_case(self, row, ctx):
        col = CODE[ctx.entity]
        if ctx.entity == "complaints" and self.rng.random() < 0.2:
            col = "status"
        row[col] = row[col].title() if self.rng.random() < 0.6 else row[col].lower()

    def _mobile_invalid(self, row, ctx):
        digits = row["victim_mobile"] or f"9{int(self.rng.integers(0, 10**9)):09d}"
        row["victim_mobile"] = digits[:9] if self.rng.random() < 0.5 else digits + str(self.rng.integers(0, 100))


def _ts(second: int, style: int) -> str:
    return str(fmt.timestamps(np.array([second]), np.array([style]))[0])
