"""The fixed world of the simulation: where people live, where cash can be taken out, banks.

Built once per run from the India Post gazetteer: victims are spread like post
offices (a population proxy, town offices weigh more), cash terminals stand
near post offices (several per town office, few in villages), and bank branches
per district give the IFSC codes of mule accounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import h3
import numpy as np
import pandas as pd

from hotspots.contract import CATEGORIES, CHANNELS
from hotspots.geo.gazetteer import in_india, pin_directory, post_offices

KM_PER_DEG = 111.2
H3_RES = 8

# Population proxy per office type: a head office town, a sub-office town, a village.
_VICTIM_WEIGHT = {"HO": 25.0, "PO": 6.0, "BO": 1.0}
# Mean number of cash terminals per office, and their channel mix.
_TERMINALS_PER_OFFICE = {"HO": 5.0, "PO": 1.8, "BO": 0.35}
_TOWN_CHANNELS = {"ATM": 0.78, "BRANCH": 0.07, "POS_CASH": 0.07, "AEPS": 0.04, "MICRO_ATM": 0.04}
_VILLAGE_CHANNELS = {"ATM": 0.45, "BRANCH": 0.02, "POS_CASH": 0.07, "AEPS": 0.25, "MICRO_ATM": 0.21}
# Share of terminals known only by PIN code (no coordinates in the bank's report).
_PIN_ONLY = {"ATM": 0.05, "BRANCH": 0.05, "POS_CASH": 0.10, "AEPS": 0.30, "MICRO_ATM": 0.30}
_TERMINAL_PREFIX = {"ATM": "ATM", "BRANCH": "BRN", "POS_CASH": "POS", "AEPS": "AEPS", "MICRO_ATM": "MATM"}

BANKS = ("SBIN", "PUNB", "BARB", "CNRB", "UBIN", "BKID", "IOBA", "HDFC", "ICIC", "UTIB", "KKBK",
         "YESB", "INDB", "IDIB", "AIRP", "FINO", "IPOS", "PYTM")
_BANK_WEIGHTS = np.array([20, 8, 8, 6, 6, 4, 3, 9, 8, 7, 5, 3, 3, 3, 4, 3, 3, 2], dtype=float)
BRANCHES_PER_DISTRICT = 8


@dataclass(frozen=True)
class Hotspot:
    """A district widely reported as a base of cyber-fraud gangs, and what its gangs run."""

    district: str
    state: str
    rings: int
    profile: str


# Names as the India Post directory spells them (Deeg and Mewat fall under BHARATPUR and NUH).
HOTSPOTS = (
    Hotspot("JAMTARA", "JHARKHAND", 3, "jharkhand"),
    Hotspot("NUH", "HARYANA", 3, "mewat"),
    Hotspot("BHARATPUR", "RAJASTHAN", 2, "mewat"),
    Hotspot("DEOGHAR", "JHARKHAND", 2, "jharkhand"),
    Hotspot("ALWAR", "RAJASTHAN", 2, "mewat"),
    Hotspot("MATHURA", "UTTAR PRADESH", 1, "mewat"),
    Hotspot("GIRIDIH", "JHARKHAND", 1, "jharkhand"),
    Hotspot("GURUGRAM", "HARYANA", 1, "city"),
    Hotspot("DUMKA", "JHARKHAND", 1, "jharkhand"),
    Hotspot("AHMADABAD", "GUJARAT", 1, "city"),
    Hotspot("KOLKATA", "WEST BENGAL", 1, "city"),
    Hotspot("HYDERABAD", "TELANGANA", 1, "city"),
    Hotspot("24 PARAGANAS NORTH", "WEST BENGAL", 1, "city"),
    Hotspot("NALANDA", "BIHAR", 1, "bihar"),
    Hotspot("PALWAL", "HARYANA", 1, "mewat"),
    Hotspot("DHANBAD", "JHARKHAND", 1, "jharkhand"),
    Hotspot("GAUTAM BUDDHA NAGAR", "UTTAR PRADESH", 1, "city"),
    Hotspot("24 PARAGANAS SOUTH", "WEST BENGAL", 1, "city"),
    Hotspot("BENGALURU URBAN", "KARNATAKA", 1, "city"),
    Hotspot("MUMBAI", "MAHARASHTRA", 1, "city"),
)

# Category mix per modus operandi (weights over contract.CATEGORIES), and the share of
# stolen money a gang of that kind takes out as cash (city gangs favour crypto and cards).
PROFILES: dict[str, tuple[dict[str, float], float]] = {
    "jharkhand": ({"KYC_IMPERSONATION": 35, "CUSTOMER_CARE": 25, "UPI": 20, "CARD": 10, "NET_BANKING": 10}, 1.0),
    "mewat": ({"SEXTORTION": 35, "OTHER": 35, "UPI": 15, "CUSTOMER_CARE": 15}, 1.0),
    "city": ({"INVESTMENT": 30, "JOB": 25, "DIGITAL_ARREST": 15, "LOAN_APP": 15, "NET_BANKING": 5, "UPI": 10}, 0.35),
    "bihar": ({"LOAN_APP": 30, "OTHER": 30, "UPI": 20, "JOB": 20}, 0.9),
    "national": ({"UPI": 22, "CARD": 6, "NET_BANKING": 4, "INVESTMENT": 12, "CUSTOMER_CARE": 7,
                  "KYC_IMPERSONATION": 8, "DIGITAL_ARREST": 4, "JOB": 10, "LOAN_APP": 5,
                  "SEXTORTION": 5, "OTHER": 17}, 0.7),
}
PROFILE_NAMES = tuple(PROFILES)


def profile_matrix() -> np.ndarray:
    """Rows: PROFILE_NAMES; columns: CATEGORIES; rows sum to 1."""
    m = np.array([[PROFILES[p][0].get(c, 0.0) for c in CATEGORIES] for p in PROFILE_NAMES], dtype=float)
    return m / m.sum(axis=1, keepdims=True)


def km_between(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Equirectangular distance in km: accurate to a few percent over the distances we use."""
    dlat = (np.asarray(lat2) - lat1) * KM_PER_DEG
    dlon = (np.asarray(lon2) - lon1) * KM_PER_DEG * np.cos(np.radians(lat1))
    return np.hypot(dlat, dlon)


def h3_cells(lat: np.ndarray, lon: np.ndarray, res: int = H3_RES) -> np.ndarray:
    return np.array([h3.latlng_to_cell(a, b, res) for a, b in zip(lat.tolist(), lon.tolist(), strict=True)], dtype=object)


def _title(names: pd.Series) -> pd.Series:
    return names.str.title().str.replace(" And ", " and ", regex=False).str.replace(" Of ", " of ", regex=False)


@dataclass
class World:
    victims: pd.DataFrame      # one row per post office victims can live near
    victim_cum: np.ndarray     # cumulative sampling weights over victims
    terminals: pd.DataFrame    # cash terminals
    cells: np.ndarray          # distinct H3 cells of terminals; terminals.cell_idx points here
    districts: pd.DataFrame    # district, state, lat, lon (centroid)
    anchors: pd.DataFrame      # town offices a ring can be based at: district_idx, lat, lon, weight
    branch_ifsc: np.ndarray    # (n_districts, BRANCHES_PER_DISTRICT) IFSC codes
    pins: pd.DataFrame         # the PIN directory (pincode, state, district, lat, lon)
    state_codes: dict[str, int]

    def __post_init__(self) -> None:
        # Plain numpy columns (text as object arrays): fast fancy indexing in the daily loop.
        self.v = {c: self.victims[c].to_numpy(dtype=object if self.victims[c].dtype == "str" else None)
                  for c in self.victims.columns}
        self.t = {c: self.terminals[c].to_numpy(dtype=object if self.terminals[c].dtype == "str" else None)
                  for c in self.terminals.columns}


def build_world(rng: np.random.Generator) -> World:
    """Everything that stays fixed for a run; deterministic given the generator state."""
    offices = post_offices()
    pins = pin_directory()
    victims = _victim_offices(offices, pins)
    districts, district_of = _districts(offices)
    terminals, cells = _terminals(offices, pins, district_of, rng)
    anchors = _anchors(offices, district_of)
    states = sorted(districts["state"].unique())
    return World(
        victims=victims,
        victim_cum=np.cumsum(victims["weight"].to_numpy()) / victims["weight"].sum(),
        terminals=terminals,
        cells=cells,
        districts=districts,
        anchors=anchors,
        branch_ifsc=_branches(len(districts), rng),
        pins=pins,
        state_codes={s: 10 + i for i, s in enumerate(states)},
    )


def _victim_offices(offices: pd.DataFrame, pins: pd.DataFrame) -> pd.DataFrame:
    """Offices whose PIN is in the directory with a centroid near the office: a victim there has
    a PIN, state and district that a strict reader finds consistent."""
    df = offices.merge(pins[["pincode", "state", "district", "lat", "lon"]], on="pincode",
                       suffixes=("", "_pin"))
    near = km_between(df["lat"].to_numpy(), df["lon"].to_numpy(), df["lat_pin"].to_numpy(),
                      df["lon_pin"].to_numpy()) < 30
    df = df[near & in_india(df["lat"].to_numpy(), df["lon"].to_numpy())].reset_index(drop=True)
    out = pd.DataFrame({
        "pincode": df["pincode"].astype(str),
        "lat": df["lat"].astype(float),
        "lon": df["lon"].astype(float),
        "state": df["state_pin"].astype(str),
        "district": df["district_pin"].astype(str),
        "weight": df["office_type"].map(_VICTIM_WEIGHT).astype(float),
    })
    # How victims type their state and district: as the directory, in Title Case, with '&'.
    out["state_title"] = _title(out["state"])
    out["state_amp"] = out["state_title"].str.replace(" and ", " & ", regex=False)
    out["district_title"] = _title(out["district"])
    return out


def _districts(offices: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    keys = offices["state"] + "|" + offices["district"]
    codes, uniques = pd.factorize(keys, sort=True)
    g = pd.DataFrame({"code": codes, "lat": offices["lat"], "lon": offices["lon"]}).groupby("code")
    cent = g[["lat", "lon"]].mean()
    parts = pd.Series(uniques).str.split("|", expand=True)
    districts = pd.DataFrame({"state": parts[0], "district": parts[1],
                              "lat": cent["lat"].to_numpy(), "lon": cent["lon"].to_numpy()})
    return districts, codes


def _anchors(offices: pd.DataFrame, district_of: np.ndarray) -> pd.DataFrame:
    """Offices a gang can operate from: towns weigh more than villages."""
    w = offices["office_type"].map({"HO": 8.0, "PO": 4.0, "BO": 1.0}).to_numpy()
    return pd.DataFrame({"district_idx": district_of, "lat": offices["lat"].to_numpy(),
                         "lon": offices["lon"].to_numpy(), "weight": w})


def _terminals(offices: pd.DataFrame, pins: pd.DataFrame, district_of: np.ndarray,
               rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """ATMs and other cash points near post offices. A PIN-only terminal (a micro-ATM, a banking
    correspondent) is placed at its PIN centroid, which is all anyone knows of it."""
    per_office = offices["office_type"].map(_TERMINALS_PER_OFFICE).to_numpy()
    n = rng.poisson(per_office)
    idx = np.repeat(np.arange(len(offices)), n)
    town = np.isin(offices["office_type"].to_numpy()[idx], ("HO", "PO"))
    channel = np.where(
        town,
        _draw_codes(rng, _TOWN_CHANNELS, len(idx)),
        _draw_codes(rng, _VILLAGE_CHANNELS, len(idx)),
    )
    names = np.array(CHANNELS)[channel]
    pin_only_p = pd.Series(names).map(_PIN_ONLY).to_numpy()
    pin_only = rng.random(len(idx)) < pin_only_p
    lat = offices["lat"].to_numpy()[idx] + np.clip(rng.normal(0, 0.004, len(idx)), -0.01, 0.01)
    lon = offices["lon"].to_numpy()[idx] + np.clip(rng.normal(0, 0.004, len(idx)), -0.01, 0.01)
    pincode = offices["pincode"].to_numpy()[idx]
    centroid = pins.set_index("pincode").reindex(pincode)
    pin_only &= centroid["lat"].notna().to_numpy()
    lat = np.where(pin_only, centroid["lat"].to_numpy(), lat)
    lon = np.where(pin_only, centroid["lon"].to_numpy(), lon)
    keep = in_india(lat, lon)
    df = pd.DataFrame({
        "lat": lat, "lon": lon, "has_coords": ~pin_only, "pincode": pincode,
        "channel": channel.astype(np.int8), "district_idx": district_of[idx],
    })[keep].reset_index(drop=True)
    prefixes = np.array([_TERMINAL_PREFIX[c] for c in CHANNELS])[df["channel"].to_numpy()]
    # Bijective scramble of the serial over 8 digits: stable, unique, not visibly sequential.
    serial = (np.arange(len(df), dtype=np.int64) * 7_654_321 + 13_579) % 100_000_000
    df["terminal_id"] = np.strings.add(prefixes, np.strings.zfill(serial.astype(str), 8))
    cell = h3_cells(df["lat"].to_numpy(), df["lon"].to_numpy())
    cell_idx, cells = pd.factorize(pd.Series(cell), sort=True)
    df["cell_idx"] = cell_idx
    return df, np.asarray(cells, dtype=object)


def _draw_codes(rng: np.random.Generator, weights: dict[str, float], n: int) -> np.ndarray:
    p = np.array([weights.get(c, 0.0) for c in CHANNELS])
    return rng.choice(len(CHANNELS), size=n, p=p / p.sum())


def _branches(n_districts: int, rng: np.random.Generator) -> np.ndarray:
    """IFSC = 4-letter bank code, '0', 6 characters for the branch (mostly digits)."""
    bank = rng.choice(len(BANKS), size=(n_districts, BRANCHES_PER_DISTRICT), p=_BANK_WEIGHTS / _BANK_WEIGHTS.sum())
    digits = rng.integers(0, 1_000_000, size=bank.shape)
    alnum = rng.random(bank.shape) < 0.15
    alphabet = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ0123456789"))
    letters = alphabet[rng.integers(0, len(alphabet), size=bank.shape + (6,))]
    alnum_code = np.strings.add(np.strings.add(letters[..., 0], letters[..., 1]), letters[..., 2])
    alnum_code = np.strings.add(alnum_code, np.strings.add(np.strings.add(letters[..., 3], letters[..., 4]),
                                                           letters[..., 5]))
    code = np.where(alnum, alnum_code, np.strings.zfill(digits.astype(str), 6))
    return np.strings.add(np.strings.add(np.array(BANKS)[bank], "0"), code)
