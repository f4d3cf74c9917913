"""Hostile deliveries for property-based tests (Hypothesis): valid rows mixed with arbitrary
bytes, NULs, random quoting, random field counts and Indian mobile numbers in random writings.

Profiles (env HYPOTHESIS_PROFILE): `ci` (default, what `make test` runs: derandomised, a few
hundred examples over the suite) and `fuzz` (`make fuzz`: random, many more examples).
`examples(n)` scales a test's CI count by the profile.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

from hotspots import contract

ROOT = Path(__file__).resolve().parents[2]
# Hypothesis's own files (example database of `make fuzz`, patches of found examples) stay in .local.
set_hypothesis_home_dir(str(ROOT / ".local" / "hypothesis"))
_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture])
settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("fuzz", database=DirectoryBasedExampleDatabase(str(ROOT / ".local" / "hypothesis" / "examples")),
                          **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
FUZZ_FACTOR = int(os.environ.get("HOTSPOTS_FUZZ_FACTOR", "20")) if PROFILE == "fuzz" else 1


def examples(n: int) -> int:
    return n * FUZZ_FACTOR


EXTRACT_DATE = "2026-03-14"
TS = "2026-03-14T10:00:00+05:30"

# ---------------------------------------------------------------- mobile numbers in any writing

PREFIXES = ["", "", "", "+91", "+91 ", "+91-", "91", "91 ", "0", "0 ", "0091 ", "(+91) ", "+91 (0) ", "+91.", "0091-"]
SEPARATORS = [" ", "-", ".", "  ", " - ", "\u2013", " ", "\u00a0"]
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
# Characters that may stand next to a number without making it a longer number.
BOUNDARIES = [" ", ",", ";", ":", "\"", "|", "\t", "x", "/", "\x00", "#", "="]


@st.composite
def mobile(draw) -> tuple[str, str]:
    """(10-digit number, a writing of it): +91 / 0 / 0091 prefixes, groups split by spaces,
    hyphens, dots, dashes, the first group in brackets, sometimes Devanagari digits."""
    core = str(draw(st.integers(6_000_000_000, 9_999_999_999)))
    cuts = sorted(draw(st.sets(st.integers(1, 9), max_size=4)))
    groups = [core[a:b] for a, b in zip([0, *cuts], [*cuts, 10], strict=True)]
    if len(groups) > 1 and draw(st.booleans()):
        text = f"({groups[0]}){draw(st.sampled_from(['', ' ', '-']))}"
        text += "".join(g + draw(st.sampled_from(SEPARATORS)) for g in groups[1:-1]) + groups[-1]
    else:
        text = "".join(g + draw(st.sampled_from(SEPARATORS)) for g in groups[:-1]) + groups[-1]
    text = draw(st.sampled_from(PREFIXES)) + text
    if draw(st.integers(0, 9)) == 0:
        text = text.translate(DEVANAGARI)
    return core, text


_DIGITS = {c: str(int(c)) for c in map(chr, range(0x20000)) if c.isdecimal()}


def in_clear(core: str, text: str) -> bool:
    """True when the 10 digits of `core` appear in `text` in order, at most 3 non-digits apart
    (any writing of the number: prefixes, separators, other scripts' digits)."""
    ascii_text = text.translate(str.maketrans(_DIGITS))
    return re.search(r"[^0-9]{0,3}".join(core), ascii_text) is not None


# ---------------------------------------------------------------- rows

@dataclass
class FileSpec:
    entity: str
    lines: list[bytes] = field(default_factory=list)   # physical records, without line ending
    chaotic: bool = False                               # quotes or line breaks that may merge records
    eol: bytes = b"\n"
    bom: bool = False
    gz: bool = False
    order: list[str] = field(default_factory=list)      # header columns in file order
    valid_keys: list[str] = field(default_factory=list)  # keys of rows written valid and untouched

    @property
    def name(self) -> str:
        return f"{self.entity}.csv" + (".gz" if self.gz else "")

    def data(self) -> bytes:
        body = (b"\xef\xbb\xbf" if self.bom else b"") + ",".join(self.order).encode() + self.eol
        body += b"".join(line + self.eol for line in self.lines)
        return gzip.compress(body, mtime=0) if self.gz else body


# Fields where a planted number ends up hashed, checked (quarantined) or dropped, never loaded
# as is. Not identifiers (tokens by contract, loaded as delivered) and not decimal columns,
# where "98765012.35" is a valid amount or coordinate, not a telephone number.
PLANTABLE = {
    "complaints": ["ack_no", "reported_at", "incident_at", "category", "victim_pincode", "victim_state",
                   "victim_district", "victim_mobile", "status", "updated_at"],
    "transactions": ["ack_no", "layer", "to_ifsc", "txn_at", "status"],
    "withdrawals": ["ack_no", "channel", "pincode", "withdrawn_at"],
}


def valid_row(entity: str, n: int) -> dict[str, str]:
    if entity == "complaints":
        return {"ack_no": f"3126031{n:07d}", "reported_at": TS, "incident_at": "2026-03-13T22:00:00+05:30",
                "category": "UPI", "amount_lost_inr": "2500.50", "victim_pincode": "110001",
                "victim_state": "Delhi", "victim_district": "New Delhi", "victim_lat": "28.6227",
                "victim_lon": "77.2195", "victim_mobile": "", "status": "REGISTERED", "updated_at": TS}
    if entity == "transactions":
        return {"txn_id": f"TX{n}", "ack_no": f"3126031{n:07d}", "layer": "1", "from_account": f"VA{n}",
                "to_account": f"MULE{n}", "to_ifsc": "SBIN0001234", "amount_inr": "100.00", "txn_at": TS,
                "status": "COMPLETED"}
    return {"withdrawal_id": f"W{n}", "account": f"MULE{n}", "ack_no": "", "channel": "ATM",
            "terminal_id": f"ATM{n}", "lat": "28.6227", "lon": "77.2195", "pincode": "110001",
            "amount_inr": "500.00", "withdrawn_at": TS}


def _quote(value: str, force: bool) -> str:
    if force or any(c in value for c in ',"\r\n') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


# Arbitrary text: any code point but surrogates (Python text), NULs and control characters included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=["Cs"]), max_size=12)
FUZZ_BYTES = st.binary(max_size=24)


@st.composite
def hostile_file(draw, entity: str, first_key: int, planted: list[str], max_rows: int = 7) -> FileSpec:
    cols = list(contract.COLUMNS[entity])
    order = cols[:]
    if draw(st.booleans()):
        order = draw(st.permutations(cols))
    extra = draw(st.sampled_from([None, None, None, "note"]))
    if extra:
        order = [*order, extra]
    spec = FileSpec(entity, eol=draw(st.sampled_from([b"\n", b"\r\n"])), bom=draw(st.booleans()),
                    gz=draw(st.booleans()), order=order)
    n_rows = draw(st.integers(0, max_rows))
    for i in range(n_rows):
        key = first_key + i
        row = valid_row(entity, key)
        if extra:
            row[extra] = draw(st.sampled_from(["", "free text", "a,b", "mobile"]))
            if row[extra] == "mobile":  # an ignored column: read, never stored
                core, row[extra] = draw(mobile())
                planted.append(core)
        if entity == "complaints" and draw(st.booleans()):
            core, text = draw(mobile())
            planted.append(core)
            row["victim_mobile"] = text
        kind = draw(st.sampled_from(["clean", "clean", "mobile_in_text", "field_text", "field_bytes",
                                     "fields_count", "quotes", "raw_bytes", "nul"]))
        raw_line: bytes | None = None
        touched = kind not in ("clean",)
        if kind == "mobile_in_text":
            core, text = draw(mobile())
            planted.append(core)
            col = draw(st.sampled_from(PLANTABLE[entity]))
            b1, b2 = draw(st.sampled_from(BOUNDARIES)), draw(st.sampled_from(BOUNDARIES))
            row[col] = draw(st.sampled_from(["", "call ", "Mysuru"])) + b1 + text + b2 + draw(ANY_TEXT)
        elif kind == "field_text":
            row[draw(st.sampled_from(cols))] = draw(ANY_TEXT)
        elif kind == "nul":
            col = draw(st.sampled_from(cols))
            v = row[col] or "x"
            at = draw(st.integers(0, len(v)))
            row[col] = v[:at] + "\x00" + v[at:]
        fields = [row[c] for c in order]
        if kind == "fields_count":
            delta = draw(st.sampled_from([-2, -1, 1, 2, 5]))
            for _ in range(-delta):
                del fields[draw(st.integers(0, len(fields) - 1))]
            for _ in range(delta):
                if draw(st.booleans()):
                    core, text = draw(mobile())
                    planted.append(core)
                else:
                    text = draw(ANY_TEXT)
                fields.insert(draw(st.integers(0, len(fields))), text)
        encoded = [_quote(f, draw(st.integers(0, 5)) == 0).encode("utf-8") for f in fields]
        if kind == "field_bytes":
            junk = draw(FUZZ_BYTES).replace(b"\n", b"").replace(b"\r", b"")
            if b'"' in junk or b"," in junk:
                junk = b'"' + junk.replace(b'"', b'""') + b'"'
            encoded[draw(st.integers(0, len(encoded) - 1))] = junk
        line = b",".join(encoded)
        if kind == "quotes":
            at = draw(st.integers(0, len(line)))
            line = line[:at] + b'"' + line[at:]
            spec.chaotic = True
        if kind == "raw_bytes":
            raw_line = draw(FUZZ_BYTES).replace(b"\n", b"")
            if draw(st.booleans()):
                # Fewer fields than a record: the number can only reach a stored field through a
                # stray quote merging lines (then the field holds a line break: invalid_format).
                raw_line = raw_line.replace(b",", b";")
                core, text = draw(mobile())
                planted.append(core)
                raw_line += draw(st.sampled_from(BOUNDARIES)).encode() + text.encode() + b" "
            if b'"' in raw_line or b"\r" in raw_line:
                spec.chaotic = True
            line = raw_line
        if b"\r" in line and not line.endswith(b'"'):
            spec.chaotic = True
        spec.lines.append(line)
        if not touched:
            spec.valid_keys.append(row[contract.TABLE_KEYS[entity][0]])
    return spec


@st.composite
def hostile_delivery(draw, max_rows: int = 7) -> tuple[dict[str, FileSpec], list[str]]:
    planted: list[str] = []
    files = {}
    for k, entity in enumerate(contract.ENTITIES):
        files[entity] = draw(hostile_file(entity, 1000 * (k + 1), planted, max_rows))
    return files, planted


def write_delivery(folder: Path, files: dict[str, FileSpec], rows: dict[str, int]) -> None:
    """Writes the files and a manifest with their checksums and the given data-row counts."""
    folder.mkdir(parents=True, exist_ok=True)
    man = {"contract": contract.CONTRACT, "extract_date": folder.name, "files": {}}
    for entity, spec in files.items():
        data = spec.data()
        (folder / spec.name).write_bytes(data)
        man["files"][spec.name] = {"rows": rows[entity], "sha256": hashlib.sha256(data).hexdigest()}
    (folder / contract.MANIFEST).write_text(json.dumps(man))


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    """A CSV file as Python's csv.writer writes it (the issue's way of building hostile rows)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogateescape")
