"""The reader splits plain lines (no quote, no carriage return inside, not longer than the field
limit) itself instead of through the csv module: for any file, hostile ones included, its result
must be exactly the csv module's (read_file(..., fast=False) sends every line through it)."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from hotspots import contract
from hotspots.ingest import reader
from tests.ingest.hostile import examples, hostile_file


def _same(path, entity, limit=65536):
    fast = reader.read_file(entity, path, limit)
    slow = reader.read_file(entity, path, limit, fast=False)
    assert (fast.rows_read, fast.lines, fast.records, fast.raw, fast.extra_columns) == \
        (slow.rows_read, slow.lines, slow.records, slow.raw, slow.extra_columns)
    assert [(r.line_no, r.reason, r.raw_text, r.details) for r in fast.rejects] == \
        [(r.line_no, r.reason, r.raw_text, r.details) for r in slow.rejects]
    return fast


@hsettings(max_examples=examples(300))
@given(data=st.data(), entity=st.sampled_from(contract.ENTITIES))
def test_fast_path_equals_the_csv_module_on_hostile_files(tmp_path_factory, data, entity):
    spec = data.draw(hostile_file(entity, 1, [], max_rows=10))
    path = tmp_path_factory.mktemp("fast") / spec.name
    path.write_bytes(spec.data())
    _same(path, entity)


LINES = st.lists(st.text(st.sampled_from(list('ab,"\r \x00\t;') + ["\u00e9", "\udc80"]), max_size=40), max_size=12)


@hsettings(max_examples=examples(300))
@given(lines=LINES, eol=st.sampled_from(["\n", "\r\n"]), limit=st.sampled_from([16, 65536]))
def test_fast_path_equals_the_csv_module_on_any_lines(tmp_path_factory, lines, eol, limit):
    """Lines made of the characters that matter to CSV (commas, quotes, carriage returns, NUL,
    undecodable bytes), with a field limit just above the header's longest name too."""
    header = ",".join(contract.COLUMNS["withdrawals"])
    text = header + eol + "".join(line + eol for line in lines)
    path = tmp_path_factory.mktemp("lines") / "withdrawals.csv.gz"
    path.write_bytes(gzip.compress(text.encode("utf-8", "surrogateescape")))
    _same(path, "withdrawals", limit)


@pytest.mark.parametrize("body", [
    "",                                   # no data rows
    "\n\n",                               # blank lines: records without fields
    "W1,A,,ATM,T,1,2,110001,5,2026-03-14\rW2,A,,ATM,T,1,2,110001,5,2026-03-14\n",  # a bare CR inside
    "W1,A,,ATM,T,1,2,110001,5,2026-03-14\r\n",                                     # CRLF
    "W1,A,,ATM,T,1,2,110001,5,2026-03-14,extra\n,,,,,,,,,\n",                      # too many, all empty
    'W1,"A\nB",,ATM,T,1,2,110001,5,2026-03-14\nW2,A,,ATM,T,1,2,110001,5,2026-03-14\n',  # a line break in quotes
    'W1,A"B,,ATM,T,1,2,110001,5,2026-03-14\n',                                     # a stray quote
])
def test_fast_path_equals_the_csv_module_on_edge_cases(tmp_path, body):
    header = ",".join(contract.COLUMNS["withdrawals"])
    path = tmp_path / "withdrawals.csv"
    path.write_text(header + "\n" + body)
    _same(path, "withdrawals")
    _same(path, "withdrawals", limit=16)
