"""From numeric rows to extract folders: the waiting room, text formatting, files, manifest.

Rows wait, numeric, in an outbox keyed by the extract date that will carry them
(reporting delays). On that date they are formatted as the contract's text
columns, dirt is injected, and the folder is written with `_MANIFEST.json`
last, so a reader never sees a half-written extract as complete.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from hotspots.contract import (
    CATEGORIES,
    CHANNELS,
    COMPLAINT_STATUSES,
    CONTRACT,
    ENTITIES,
    MANIFEST,
    TXN_STATUSES,
    file_candidates,
)

from . import formats as fmt
from .fraud import MULE_TOKEN_BASE
from .rings import MuleAccounts
from .world import World

ENCODING_PLACEHOLDER = "\ue000"  # stands for a latin-1 byte until the file is encoded
LATIN1_BYTE = b"\xe9"            # 'é' in latin-1: not valid UTF-8 where it lands
P_PLAIN_DATE = 0.2               # share of extract dates with some files not gzipped


class Outbox:
    """Numeric rows per entity waiting for the extract date that carries them."""

    def __init__(self, first_day: int, last_day: int):
        self.first, self.last = first_day, last_day
        self._rows: dict[int, dict[str, list[pd.DataFrame]]] = defaultdict(lambda: defaultdict(list))

    def add(self, entity: str, rows: pd.DataFrame, extract_day: np.ndarray) -> None:
        keep = (extract_day >= self.first) & (extract_day <= self.last)
        if not keep.any():
            return
        rows = rows[keep].assign(_extract=extract_day[keep])
        for day, part in rows.groupby("_extract", sort=True):
            self._rows[int(day)][entity].append(part.drop(columns="_extract"))

    def take(self, day: int, entity: str) -> pd.DataFrame | None:
        parts = self._rows.get(day, {}).get(entity, [])
        return pd.concat(parts, ignore_index=True) if parts else None

    def forget(self, day: int) -> None:
        self._rows.pop(day, None)


def sort_rows(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return df.sort_values(by, kind="stable").reset_index(drop=True)


def complaint_text(c: pd.DataFrame, world: World) -> dict[str, np.ndarray]:
    v = world.v
    victim = c["victim"].to_numpy()
    style = c["style"].to_numpy()
    state = np.stack([v["state"][victim], v["state_title"][victim], v["state_amp"][victim]])
    district = np.stack([v["district"][victim], v["district_title"][victim]])
    has_coords = c["has_coords"].to_numpy()
    return {
        "ack_no": fmt.ints(c["ack"]),
        "reported_at": fmt.timestamps(c["reported"].to_numpy(), style),
        "incident_at": fmt.optional_timestamps(c["incident"].to_numpy(), style, c["has_incident"].to_numpy()),
        "category": np.array(CATEGORIES)[c["cat"].to_numpy()],
        "amount_lost_inr": fmt.decimals(c["amount"].to_numpy(), 2),
        "victim_pincode": v["pincode"][victim],
        "victim_state": np.take_along_axis(state, c["state_style"].to_numpy()[None, :], 0)[0],
        "victim_district": np.take_along_axis(district, c["district_style"].to_numpy()[None, :], 0)[0],
        "victim_lat": fmt.optional_decimals(c["vlat"].to_numpy(), has_coords, 6),
        "victim_lon": fmt.optional_decimals(c["vlon"].to_numpy(), has_coords, 6),
        "victim_mobile": fmt.optional_ints(c["mobile"].to_numpy(), c["has_mobile"].to_numpy()),
        "status": np.array(COMPLAINT_STATUSES)[c["status"].to_numpy()],
        "updated_at": fmt.timestamps(c["updated"].to_numpy(), style),
    }


def txn_ids(serial: np.ndarray) -> np.ndarray:
    body = (np.asarray(serial, dtype=np.int64) % 10**12) * 3_141_593 % 10**12
    return np.strings.add("TXN", np.strings.zfill(body.astype(str), 12))


def withdrawal_ids(serial: np.ndarray) -> np.ndarray:
    body = (np.asarray(serial, dtype=np.int64) % 10**12) * 2_718_281 % 10**12
    return np.strings.add("WD", np.strings.zfill(body.astype(str), 12))


def mule_tokens(mule: np.ndarray) -> np.ndarray:
    return fmt.hex_tokens("AC", MULE_TOKEN_BASE + np.asarray(mule, dtype=np.int64))


def txn_text(t: pd.DataFrame, mules: MuleAccounts) -> dict[str, np.ndarray]:
    to = t["to"].to_numpy()
    return {
        "txn_id": txn_ids(t["serial"].to_numpy()),
        "ack_no": fmt.ints(t["ack"]),
        "layer": fmt.ints(t["layer"]),
        "from_account": fmt.hex_tokens("AC", t["from"].to_numpy()),
        "to_account": mule_tokens(to),
        "to_ifsc": mules.ifsc[to],
        "amount_inr": fmt.decimals(t["amount"].to_numpy(), 2),
        "txn_at": fmt.timestamps(t["at"].to_numpy(), t["style"].to_numpy()),
        "status": np.array(TXN_STATUSES)[t["status"].to_numpy()],
    }


def withdrawal_text(w: pd.DataFrame, world: World) -> dict[str, np.ndarray]:
    term = w["terminal"].to_numpy()
    t = world.t
    # How the producer reported the terminal (core._reported_position): without coordinates
    # (terminal and PIN only), or at coordinates off the true position by (dlat, dlon).
    has_coords = ~w["coordless"].to_numpy()
    has_ack = w["ack"].to_numpy() >= 0
    return {
        "withdrawal_id": withdrawal_ids(w["serial"].to_numpy()),
        "account": mule_tokens(w["mule"].to_numpy()),
        "ack_no": fmt.optional_ints(w["ack"].to_numpy(), has_ack),
        "channel": np.array(CHANNELS)[t["channel"][term]],
        "terminal_id": t["terminal_id"][term],
        "lat": fmt.optional_decimals(t["lat"][term] + w["dlat"].to_numpy(), has_coords, 6),
        "lon": fmt.optional_decimals(t["lon"][term] + w["dlon"].to_numpy(), has_coords, 6),
        "pincode": np.where(w["has_pin"].to_numpy() | ~has_coords, t["pincode"][term], ""),
        "amount_inr": fmt.decimals(w["amount"].to_numpy(), 2),
        "withdrawn_at": fmt.timestamps(w["at"].to_numpy(), w["style"].to_numpy()),
    }


def csv_field(value: str) -> str:
    """Double-quote a field only when it needs it, as the contract's CSV dialect does."""
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def join_lines(columns: dict[str, np.ndarray]) -> list[str]:
    """Clean fields never contain a comma or a quote, so joining is quoting-correct."""
    return [",".join(fields) for fields in zip(*(np.asarray(c).tolist() for c in columns.values()), strict=True)]


def file_bytes(header: tuple[str, ...], lines: list[str]) -> bytes:
    text = ",".join(header) + "\n" + "".join(line + "\n" for line in lines)
    data = text.encode("utf-8")
    return data.replace(ENCODING_PLACEHOLDER.encode("utf-8"), LATIN1_BYTE)


def choose_file_names(rng: np.random.Generator) -> dict[str, str]:
    """Mostly gzip; on about one date in five some files come as plain CSV."""
    plain = np.zeros(len(ENTITIES), dtype=bool)
    if rng.random() < P_PLAIN_DATE:
        plain = rng.random(len(ENTITIES)) < 0.5
        if not plain.any():
            plain[rng.integers(len(ENTITIES))] = True
    return {e: file_candidates(e)[0 if p else 1] for e, p in zip(ENTITIES, plain, strict=True)}


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip: no file name, mtime 0."""
    return gzip.compress(data, compresslevel=5, mtime=0)


def write_extract(folder: Path, date: str, files: dict[str, tuple[bytes, int]]) -> None:
    """Write the data files, then the manifest (atomically, last): only then is the date complete."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST
    if manifest_path.exists():
        manifest_path.unlink()
    for entity in ENTITIES:
        for name in file_candidates(entity):
            if name not in files and (folder / name).exists():
                (folder / name).unlink()
    entries = {}
    for name, (data, rows) in files.items():
        (folder / name).write_bytes(data)
        entries[name] = {"rows": rows, "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"contract": CONTRACT, "extract_date": date, "files": entries}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest) + "\n")
    os.replace(tmp, manifest_path)


class GzCsv:
    """A gzip CSV written day by day (deterministic bytes: no file name, mtime 0)."""

    def __init__(self, path: Path, columns: list[str]):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = columns
        self._raw = open(path, "wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
        self._gz.write((",".join(columns) + "\n").encode())

    def write(self, df: pd.DataFrame, float_format: str | None = None) -> None:
        if len(df):
            self._gz.write(df[self.columns].to_csv(header=False, index=False, lineterminator="\n",
                                                   float_format=float_format).encode())

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


SORT_KEYS = {"complaints": ["updated", "ack"], "transactions": ["at", "serial"], "withdrawals": ["at", "serial"]}
