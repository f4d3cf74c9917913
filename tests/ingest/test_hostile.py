"""Hostile input without a database: NUL and other unstorable characters, mobile numbers in
any writing, and property-based tests (Hypothesis) of the reader and the PII scrubbing."""

from __future__ import annotations

import gzip
import re
from datetime import date

import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from hotspots import contract, settings
from hotspots.ingest import pii, reader, validate
from tests.ingest.hostile import (
    ANY_TEXT,
    BOUNDARIES,
    FUZZ_BYTES,
    ROOT,
    csv_bytes,
    examples,
    hostile_file,
    in_clear,
    mobile,
    valid_row,
)

KEY = b"unit-test-key-0123456789"
D = date(2026, 3, 14)
COLS = list(contract.COLUMNS["complaints"])
# The writings of issue 11 (and a few more) with the number they stand for.
WRITINGS = [
    ("+91 98765 01235", "9876501235"), ("098765-01236", "9876501236"), ("(98765) 01242", "9876501242"),
    ("91 9876501241", "9876501241"), ("98765.01240", "9876501240"), ("98765 01240", "9876501240"),
    ("+919876501237", "9876501237"), ("0091 98765 01238", "9876501238"), ("+91-98765-01239", "9876501239"),
    ("(+91) 98765 01243", "9876501243"), ("+91 (0) 98765 01244", "9876501244"), ("98 76 50 12 45", "9876501245"),
    ("98765 - 01246", "9876501246"), ("+91.98765.01247", "9876501247"), ("९८७६५ ०१२४८", "9876501248"),
]


def complaint_values(**over) -> list[str]:
    row = valid_row("complaints", 1)
    row.update(over)
    return [row[c] for c in COLS]


def check_bytes(tmp_path, data: bytes, entity="complaints", gz=True):
    path = tmp_path / (f"{entity}.csv" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    raw = reader.read_file(entity, path)
    return raw, validate.check_file(raw, D, settings.ingest_config(), KEY)


def token(core: str) -> str:
    return f"<mobile:{pii.mobile_hash(core, KEY)[:12]}>"


# ---------------------------------------------------------------- NUL and unstorable characters


def test_nul_in_a_field_quarantines_only_that_row(tmp_path):
    """Issue 11, defect 1: `Mys\\x00uru` written by csv.writer, gzipped."""
    rows = [complaint_values(ack_no="31260314000001"),
            complaint_values(ack_no="31260314000002", victim_district="Mys\x00uru"),
            complaint_values(ack_no="31260314000003")]
    raw, chk = check_bytes(tmp_path, csv_bytes(COLS, rows))
    assert raw.rows_read == 3
    assert [(r.line_no, r.reason) for r in chk.quarantine] == [(3, contract.Q_UNSTORABLE_BYTES)]
    q = chk.quarantine[0]
    assert "Mys\\x00uru" in q.raw_text and not pii.unstorable(q.raw_text)
    assert q.details == {"columns": ["victim_district"]}
    assert list(chk.rows["_line"]) == [2, 4]


def test_nul_in_a_malformed_row_gives_storable_raw_text(tmp_path):
    rows = [complaint_values() + ["x\x00y"], complaint_values(ack_no="31260314000002")]
    _, chk = check_bytes(tmp_path, csv_bytes(COLS, rows))
    assert [(r.line_no, r.reason) for r in chk.quarantine] == [(2, contract.Q_MALFORMED_ROW)]
    assert "x\\x00y" in chk.quarantine[0].raw_text and "\x00" not in chk.quarantine[0].raw_text


def test_nul_and_undecodable_bytes_in_one_row(tmp_path):
    line = ",".join(complaint_values(victim_district="KHEDA")).encode().replace(b"KHEDA", b"K\x00H\xe9DA")
    _, chk = check_bytes(tmp_path, ",".join(COLS).encode() + b"\n" + line + b"\n")
    assert chk.quarantine[0].reason == contract.Q_INVALID_ENCODING
    assert "K\\x00H\\xe9DA" in chk.quarantine[0].raw_text


def test_nul_in_header_is_a_contract_violation(tmp_path):
    data = ",".join(COLS).replace("status", "sta\x00tus").encode() + b"\n"
    with pytest.raises(reader.ContractViolation, match="NUL"):
        check_bytes(tmp_path, data)


def test_storable_escapes_nul_and_surrogates_only():
    assert pii.storable("a\x00b\udce9c\u2028d") == "a\\x00b\\xe9c\u2028d"
    assert pii.storable("plain") == "plain"
    assert not pii.unstorable(pii.storable("\x00\ud800\udfff"))


# ---------------------------------------------------------------- mobiles in any writing


def test_formatted_mobiles_in_quarantined_rows_are_hashed(tmp_path):
    """Issue 11, defect 2: category BOGUS, victim_mobile formatted: raw text keeps no clear number."""
    rows = [complaint_values(ack_no=f"312603140000{i:02d}", category="BOGUS", victim_mobile=writing)
            for i, (writing, _) in enumerate(WRITINGS)]
    _, chk = check_bytes(tmp_path, csv_bytes(COLS, rows))
    assert [q.reason for q in chk.quarantine] == [contract.Q_UNKNOWN_CODE] * len(WRITINGS)
    for q, (writing, core) in zip(chk.quarantine, WRITINGS, strict=True):
        assert not in_clear(core, q.raw_text) and token(core) in q.raw_text, writing


def test_formatted_mobiles_in_loaded_rows_hash_like_the_plain_number(tmp_path):
    rows = [complaint_values(ack_no=f"312603140000{i:02d}", victim_mobile=writing)
            for i, (writing, _) in enumerate(WRITINGS)]
    _, chk = check_bytes(tmp_path, csv_bytes(COLS, rows))
    assert not chk.quarantine
    assert list(chk.rows["victim_mobile_hash"]) == [pii.mobile_hash(core, KEY) for _, core in WRITINGS]
    assert all(f == [] for f in chk.rows["dq_flags"])


def test_mobile_in_free_text_of_a_loaded_row_is_hashed(tmp_path):
    rows = [complaint_values(victim_district="Mysuru call 98765 01235", victim_state="Karnataka")]
    _, chk = check_bytes(tmp_path, csv_bytes(COLS, rows))
    assert not chk.quarantine
    assert chk.rows.iloc[0]["victim_district"] == f"Mysuru call {token('9876501235')}"


def test_mobile_in_a_malformed_line_next_to_a_nul_is_hashed(tmp_path):
    line = b"\x009876501235\x00,(98765) 01242"
    _, chk = check_bytes(tmp_path, ",".join(COLS).encode() + b"\n" + line + b"\n")
    (q,) = chk.quarantine
    assert q.reason == contract.Q_MALFORMED_ROW
    assert not in_clear("9876501235", q.raw_text) and not in_clear("9876501242", q.raw_text)
    assert "\x00" not in q.raw_text


def test_mobile_in_details_is_hashed(tmp_path):
    header = ",".join([*COLS, "note 98765 01235"]).encode()
    line = ",".join([*complaint_values(), "ab\xe9"]).encode("latin-1")
    _, chk = check_bytes(tmp_path, header + b"\n" + line + b"\n")
    (q,) = chk.quarantine
    assert q.reason == contract.Q_INVALID_ENCODING
    assert not in_clear("9876501235", str(q.details))


def test_a_nul_or_quote_inside_a_number_does_not_hide_it():
    """Found by Hypothesis: a NUL inserted into a planted (Devanagari) number."""
    for text, core in (("६\x00०००००००००", "6000000000"), ('98765"01235', "9876501235"),
                       ("98765\x0001235", "9876501235")):
        out = pii.safe_text(text, KEY)
        assert out == token(core) and not in_clear(core, out)


def test_a_hash_token_is_not_scrubbed_again():
    """Found by Hypothesis: the hex of a hash (a6058833516c) holds 10 digits starting with 6."""
    assert pii.safe_text("९७०९८०९५५२", KEY) == token("9709809552") == "<mobile:a6058833516c>"


def test_scrub_leaves_non_mobiles_alone():
    for text in ("31260314000001", "2026-03-14T10:00:00+05:30", "28.6227,77.2195", "2500.50", "110001",
                 "TXN078056576584", "AC144facb302f3a8c4", "987650123550", "5987650123"):
        assert pii.scrub_mobiles(text, KEY) == text


def test_long_identifier_is_quarantined_not_a_failed_load(tmp_path):
    """A 60 KB key would pass the CSV field limit but not PostgreSQL's btree index."""
    cols = list(contract.COLUMNS["transactions"])
    rows = [[valid_row("transactions", 1)[c] for c in cols],
            [{**valid_row("transactions", 2), "txn_id": "T" * 60000}[c] for c in cols],
            [{**valid_row("transactions", 3), "to_account": "A" * 300}[c] for c in cols]]
    _, chk = check_bytes(tmp_path, csv_bytes(cols, rows), entity="transactions")
    assert {r.line_no: r.reason for r in chk.quarantine} == {3: contract.Q_INVALID_FORMAT,
                                                             4: contract.Q_INVALID_FORMAT}


# ---------------------------------------------------------------- docs/ingest.md


def test_every_reason_is_documented_with_an_example_that_gets_it(tmp_path):
    """docs/ingest.md lists every quarantine reason with an example line; each example, as
    line 3 after the documented line 2, is quarantined with exactly that reason."""
    doc = (ROOT / "docs" / "ingest.md").read_text()
    base = re.search(r"whose line 2 is\n\n```\n(.+)\n```", doc).group(1)
    examples_ = re.findall(r"^\| `(\w+)` \|.*\| complaints: `(.+)` \|$", doc, flags=re.M)
    assert sorted(r for r, _ in examples_) == sorted(contract.QUARANTINE_REASONS)

    def as_bytes(text: str) -> bytes:
        return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode())

    for reason, line in examples_:
        data = b"\n".join([",".join(COLS).encode(), base.encode(), as_bytes(line), b""])
        _, chk = check_bytes(tmp_path, data, gz=False)
        assert [(q.line_no, q.reason) for q in chk.quarantine] == [(3, reason)], line
        assert list(chk.rows["_line"]) == [2]


# ---------------------------------------------------------------- properties


@hsettings(max_examples=examples(300))
@given(m=mobile(), left=ANY_TEXT, right=ANY_TEXT, b1=st.sampled_from(BOUNDARIES), b2=st.sampled_from(BOUNDARIES))
@example(m=("9876501235", "+91 98765 01235"), left="", right="", b1=" ", b2=" ")
@example(m=("9876501235", "9876501235"), left="7", right="", b1="\x00", b2=" ")
@example(m=("9709809552", "९७०९८०९५५२"), left="", right="", b1=" ", b2=" ")  # found: hash hex read as a number
@example(m=("6000000000", "६०००००००० ०"), left="6", right="", b1=" ", b2=" ")  # found: an earlier window
def test_any_writing_anywhere_is_hashed(m, left, right, b1, b2):
    core, writing = m
    assert pii.normalise_mobile(writing) == core
    out = pii.safe_text(left + b1 + writing + b2 + right, KEY)
    assert not in_clear(core, out), out
    if not any(c.isdecimal() for c in left[-4:]):
        # With digits just before it, a window may start earlier ("6 ६०००००००० ०": 6600000000):
        # the number is still not in clear, but its token is another one.
        assert token(core) in out
    assert not pii.unstorable(out)


@hsettings(max_examples=examples(300))
@given(data=st.data(), entity=st.sampled_from(contract.ENTITIES))
def test_reader_accounts_for_every_record_of_any_file(tmp_path_factory, data, entity):
    """Any mix of valid rows, bytes, NULs, quotes and field counts: the reader never raises,
    every record is a record or a reject, and rejects' raw text is made safe."""
    planted: list[str] = []
    spec = data.draw(hostile_file(entity, 1, planted, max_rows=10))
    path = tmp_path_factory.mktemp("r") / spec.name
    path.write_bytes(spec.data())
    raw = reader.read_file(entity, path)
    assert raw.rows_read == len(raw.records) + len(raw.rejects)
    if not spec.chaotic:
        assert raw.rows_read == len(spec.lines)
    for r in raw.rejects:
        text = pii.safe_text(r.raw_text, KEY)
        assert not pii.unstorable(text)
        assert not any(in_clear(core, text) for core in planted), text
    for rec in raw.records:
        assert len(rec) == len(contract.COLUMNS[entity]) and not any(pii.unstorable(v) for v in rec)


@hsettings(max_examples=examples(100))
@given(junk=FUZZ_BYTES)
def test_bytes_around_a_valid_row(tmp_path_factory, junk):
    """A valid row followed by any bytes: the valid row is still a record."""
    line = ",".join(complaint_values()).encode()
    path = tmp_path_factory.mktemp("b") / "complaints.csv"
    path.write_bytes(",".join(COLS).encode() + b"\n" + line + b"\n" + junk.replace(b'"', b"'") + b"\n")
    raw = reader.read_file("complaints", path)
    assert raw.records and raw.records[0][0] == "31260310000001"
