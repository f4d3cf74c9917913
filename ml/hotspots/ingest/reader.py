"""Reads one extract file into records, keeping the physical line of each.

The CSV dialect is the contract's (comma, double-quote quoting, header row).
Rows that cannot be records of the file (wrong number of fields, bytes that
are not UTF-8, characters PostgreSQL cannot store such as NUL) are returned as
rejects with their raw text, never dropped. The raw text is as read (undecodable
bytes as surrogates, NULs kept): validate makes it storable and hashes its mobiles.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hotspots import contract
from hotspots.ingest.pii import UNSTORABLE, unstorable


@dataclass
class Reject:
    line_no: int
    reason: str
    raw_text: str
    details: dict = field(default_factory=dict)


@dataclass
class RawFile:
    entity: str
    file_name: str
    header: list[str]
    lines: list[int]            # physical start line of each good-width record
    records: list[list[str]]    # fields in contract column order
    raw: list[str]              # raw text of each record
    rejects: list[Reject]
    rows_read: int              # data records, header excluded (what the manifest counts)
    extra_columns: list[str]


class ContractViolation(Exception):
    """The file cannot be read as the contract's file at all (a whole-delivery problem)."""


def read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ContractViolation(f"{path.name}: not a readable gzip file ({exc})") from exc
    return data


def _has_surrogates(fields: list[str]) -> bool:
    try:
        "\x1f".join(fields).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _dirty_lines(text: str) -> set[int]:
    """Indexes (in text.split("\\n")) of the lines that hold a character PostgreSQL cannot store:
    one pass over the whole text, instead of a search in every line of a file that holds any."""
    out, line, prev = set(), 0, 0
    for m in UNSTORABLE.finditer(text):
        line += text.count("\n", prev, m.start())
        prev = m.start()
        out.add(line)
    return out


def _special_lines(data: bytes, field_size_limit: int) -> np.ndarray:
    """Sorted indexes (in text.split("\\n")) of the lines the plain path must not take whole: those
    holding a quote or a carriage return, or longer in bytes than the field limit (the per-line
    path measures those in characters). Found on the bytes, in numpy: a byte below 0x80 is one
    character of the decoded text and never part of another's UTF-8 sequence, so a quote, a CR or
    a line break lies in the same line of both."""
    buf = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(buf == 10)
    marked = np.flatnonzero((buf == 34) | (buf == 13))
    lines = np.searchsorted(breaks, marked)  # a byte's line: the line breaks before it
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(buf)]))
    long = np.flatnonzero(ends - starts > field_size_limit)
    return np.union1d(lines, long)


def _plain_run(out: RawFile, lines: list[str], a: int, b: int, width: int, index: list[int] | None) -> None:
    """lines[a:b], each a whole plain record (no quote, no CR, not too long, clean) starting at a
    record boundary: its comma-separated parts, as the per-line path takes them, in bulk."""
    chunk = lines[a:b]
    recs = [line.split(",") if line else [] for line in chunk]
    out.rows_read += len(recs)
    bad = [k for k, rec in enumerate(recs) if len(rec) != width]
    lo = 0
    for k in bad + [len(recs)]:
        if k > lo:
            out.lines.extend(range(a + lo + 1, a + k + 1))
            out.records.extend(recs[lo:k] if index is None else [[rec[i] for i in index] for rec in recs[lo:k]])
            out.raw.extend(chunk[lo:k])
        if k < len(recs):
            out.rejects.append(Reject(a + k + 1, contract.Q_MALFORMED_ROW, _printable(chunk[k]),
                                      {"fields": len(recs[k]), "expected": width}))
        lo = k + 1


def _printable(text: str) -> str:
    """Raw text of a rejected record, without its line ending."""
    return text.rstrip("\r\n")


def read_file(entity: str, path: Path, field_size_limit: int = 65536, fast: bool = True) -> RawFile:
    """The file's records and rejects. fast=False sends every line through the csv reader (what
    the fast path for plain lines must equal: tests/ingest/test_reader_fast_path.py)."""
    data = read_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark is legal UTF-8, not a header character
    text = data.decode("utf-8", errors="surrogateescape")
    lines = text.split("\n")
    special = _special_lines(data, field_size_limit) if fast else None
    if lines and lines[-1] == "":
        lines.pop()
    pos = 0

    def feed():
        nonlocal pos
        while pos < len(lines):
            pos += 1
            yield lines[pos - 1] + "\n"

    csv.field_size_limit(field_size_limit)
    reader = csv.reader(feed(), dialect="excel", strict=False)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration as exc:
        raise ContractViolation(f"{path.name}: empty file, no header row") from exc
    except csv.Error as exc:
        raise ContractViolation(f"{path.name}: unreadable header ({exc})") from exc
    if _has_surrogates(header):
        raise ContractViolation(f"{path.name}: header is not UTF-8")
    if any(unstorable(h) for h in header):
        raise ContractViolation(f"{path.name}: header holds a NUL character")
    wanted = contract.COLUMNS[entity]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ContractViolation(f"{path.name}: header lacks required columns {missing}")
    if len(set(header)) != len(header):
        raise ContractViolation(f"{path.name}: header repeats a column name")
    index = [header.index(c) for c in wanted]
    width = len(header)

    out = RawFile(entity, path.name, header, [], [], [], [], 0, [h for h in header if h not in wanted])
    # A record's fields are made of its lines' characters: when those (or the whole file) hold
    # no undecodable byte and no NUL, neither does any field, and the per-field checks are skipped.
    dirty = _dirty_lines(text) if unstorable(text) else set()
    identity = index == list(range(width))
    if special is not None and dirty:
        special = np.union1d(special, np.fromiter(dirty, dtype=np.int64, count=len(dirty)))
    while pos < len(lines):
        if special is not None:
            # From a record boundary, the lines up to the next special one are whole plain records.
            i = int(np.searchsorted(special, pos))
            stop = min(int(special[i]), len(lines)) if i < len(special) else len(lines)
            if stop > pos:
                _plain_run(out, lines, pos, stop, width, None if identity else index)
                pos = stop
                continue
        start = pos + 1
        line = lines[pos]
        body = line[:-1] if line.endswith("\r") else line
        if fast and '"' not in line and "\r" not in body and len(line) <= field_size_limit:
            # A line without quotes or carriage returns, at a record boundary, is one whole record
            # whose fields are its comma-separated parts: exactly what the csv reader returns for
            # it (a blank line: no fields), without its per-character state machine.
            pos += 1
            rec = body.split(",") if body else []
            raw = line
        else:
            try:
                rec = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                out.rows_read += 1
                raw = "\n".join(lines[start - 1:pos])
                out.rejects.append(Reject(start, contract.Q_MALFORMED_ROW, _printable(raw), {"error": str(exc)}))
                continue
            raw = "\n".join(lines[start - 1:pos])
        out.rows_read += 1
        if len(rec) != width:
            out.rejects.append(Reject(start, contract.Q_MALFORMED_ROW, _printable(raw),
                                      {"fields": len(rec), "expected": width}))
            continue
        if not dirty or dirty.isdisjoint(range(start - 1, pos)):  # the record's lines are clean
            pass
        elif _has_surrogates(rec):
            bad = [header[i] for i, v in enumerate(rec) if _has_surrogates([v])]
            out.rejects.append(Reject(start, contract.Q_INVALID_ENCODING, _printable(raw), {"columns": bad}))
            continue
        elif any(unstorable(v) for v in rec):
            bad = [header[i] for i, v in enumerate(rec) if unstorable(v)]
            out.rejects.append(Reject(start, contract.Q_UNSTORABLE_BYTES, _printable(raw), {"columns": bad}))
            continue
        out.lines.append(start)
        out.records.append(rec if identity else [rec[i] for i in index])
        out.raw.append(raw.rstrip("\r"))
    return out
