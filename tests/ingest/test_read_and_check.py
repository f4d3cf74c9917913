"""Reader and row checks of one extract file, without a database."""

from __future__ import annotations

import gzip
from datetime import date

import pandas as pd
import pytest

from hotspots import contract, settings
from hotspots.ingest import reader, validate

KEY = b"unit-test-key-0123456789"
D = date(2026, 3, 14)
HEADER = ",".join(contract.COLUMNS["complaints"])


def complaint(**over) -> str:
    row = {"ack_no": "31260314000001", "reported_at": "2026-03-14T10:00:00+05:30",
           "incident_at": "2026-03-13T22:00:00+05:30", "category": "UPI", "amount_lost_inr": "2500.50",
           "victim_pincode": "110001", "victim_state": "Delhi", "victim_district": "New Delhi",
           "victim_lat": "28.6227", "victim_lon": "77.2195", "victim_mobile": "9876543210",
           "status": "REGISTERED", "updated_at": "2026-03-14T10:00:00+05:30"}
    row.update(over)
    return ",".join(row[c] for c in contract.COLUMNS["complaints"])


def check(tmp_path, lines, entity="complaints", name="complaints.csv", header=HEADER, gz=False):
    body = (header + "\n" + "\n".join(lines) + "\n").encode() if isinstance(lines[0], str) else \
        header.encode() + b"\n" + b"\n".join(lines) + b"\n"
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(body) if gz else body)
    raw = reader.read_file(entity, path)
    return raw, validate.check_file(raw, D, settings.ingest_config(), KEY)


def reasons(chk):
    return {r.line_no: r.reason for r in chk.quarantine}


def flags(chk):
    return {int(line): f for line, f in zip(chk.rows["_line"], chk.rows["dq_flags"], strict=False)}


def test_clean_row_loads_without_flags_and_mobile_is_hashed(tmp_path):
    raw, chk = check(tmp_path, [complaint()])
    assert raw.rows_read == 1 and not chk.quarantine
    row = chk.rows.iloc[0]
    assert row["dq_flags"] == []
    assert "victim_mobile" not in chk.rows.columns
    assert row["victim_mobile_hash"] == validate.mobile_hash("9876543210", KEY)
    assert row["reported_at"] == pd.Timestamp("2026-03-14T04:30:00Z")


def test_offsets_are_converted_not_rejected(tmp_path):
    _, chk = check(tmp_path, [complaint(reported_at="2026-03-14T04:30:00Z", updated_at="2026-03-14T04:30:00+00:00")])
    assert not chk.quarantine
    assert chk.rows.iloc[0]["reported_at"] == pd.Timestamp("2026-03-14T04:30:00Z")


def test_each_dirt_class_gets_its_reason(tmp_path):
    lines = [
        complaint(),                                                   # 2 clean
        complaint(ack_no="31260314000002") + ",extra",                 # 3 malformed
        complaint(ack_no="31260314000003", amount_lost_inr="12x"),     # 4
        complaint(ack_no="31260314000004", reported_at="31/02/2025 10:00"),  # 5
        complaint(ack_no="31260314000005", reported_at="2026-03-20T10:00:00+05:30"),  # 6 future
        complaint(ack_no="31260314000006", amount_lost_inr="-5"),      # 7
        complaint(ack_no="31260314000007", amount_lost_inr="1e12"),    # 8
        complaint(ack_no="31260314000008", category="CRYPTO"),         # 9
        complaint(),                                                   # 10 duplicate of line 2
        complaint(ack_no="3126031400000"),                             # 11 13 digits
        complaint(ack_no="31260314000009", status=""),                 # 12 missing
    ]
    _, chk = check(tmp_path, lines)
    assert reasons(chk) == {
        3: contract.Q_MALFORMED_ROW, 4: contract.Q_UNPARSEABLE_NUMBER, 5: contract.Q_UNPARSEABLE_TIMESTAMP,
        6: contract.Q_FUTURE_TIMESTAMP, 7: contract.Q_NEGATIVE_AMOUNT, 8: contract.Q_AMOUNT_ABOVE_CEILING,
        9: contract.Q_UNKNOWN_CODE, 10: contract.Q_DUPLICATE_KEY, 11: contract.Q_INVALID_FORMAT,
        12: contract.Q_MISSING_REQUIRED,
    }
    assert list(chk.rows["_line"]) == [2]


def test_repairs_are_flagged_and_applied(tmp_path):
    lines = [
        complaint(ack_no="31260314000011", victim_lat="77.2195", victim_lon="28.6227"),   # 2 swapped
        complaint(ack_no="31260314000012", victim_lat="0", victim_lon="0"),               # 3 zero
        complaint(ack_no="31260314000013", victim_lat="48.85", victim_lon="2.35"),        # 4 Paris
        complaint(ack_no="31260314000014", incident_at="2026-03-14T11:00:00+05:30"),      # 5
        complaint(ack_no="31260314000015", victim_pincode="999999"),                      # 6
        complaint(ack_no="31260314000016", victim_state="Kerala", victim_district="Ernakulam"),  # 7
        complaint(ack_no="31260314000017", category="Investment"),                        # 8
        complaint(ack_no="31260314000018", victim_mobile="98765"),                        # 9
        complaint(ack_no="31260314000019", victim_mobile="+91 98765 43210"),              # 10 fine
        complaint(ack_no="31260314000020", reported_at="2026-03-14T10:00:00"),            # 11 no offset
    ]
    _, chk = check(tmp_path, lines)
    assert not chk.quarantine
    f = flags(chk)
    assert f[2] == [contract.R_COORDS_SWAPPED] and f[3] == [contract.R_COORDS_ZERO]
    assert f[4] == [contract.R_COORDS_OUTSIDE_INDIA] and f[5] == [contract.R_INCIDENT_AFTER_REPORTED]
    assert f[6] == [contract.R_UNKNOWN_PINCODE] and f[7] == [contract.R_PINCODE_REGION_MISMATCH]
    assert f[8] == [contract.R_CODE_CASE] and f[9] == [contract.R_MOBILE_INVALID]
    assert f[10] == [] and f[11] == [contract.R_TIMESTAMP_NO_OFFSET]
    rows = chk.rows.set_index("_line")
    assert rows.loc[2, "victim_lat"] == pytest.approx(28.6227)
    import h3

    assert rows.loc[2, "victim_h3_cell"] == h3.latlng_to_cell(28.6227, 77.2195, 8)
    assert pd.isna(rows.loc[3, "victim_h3_cell"])
    assert pd.isna(rows.loc[3, "victim_lat"]) and pd.isna(rows.loc[4, "victim_lon"])
    assert pd.isna(rows.loc[5, "incident_at"])
    assert rows.loc[8, "category"] == "INVESTMENT"
    assert rows.loc[9, "victim_mobile_hash"] is None
    assert rows.loc[10, "victim_mobile_hash"] == validate.mobile_hash("9876543210", KEY)
    assert chk.repaired == 9


def test_non_utf8_row_is_quarantined_with_escaped_raw_text(tmp_path):
    good = complaint().encode()
    bad = complaint(ack_no="31260314000002", victim_district="KHEDA").encode().replace(b"KHEDA", b"KH\xe9DA")
    _, chk = check(tmp_path, [good, bad], gz=True, name="complaints.csv")
    assert reasons(chk) == {3: contract.Q_INVALID_ENCODING}
    assert "KH\\xe9DA" in chk.quarantine[0].raw_text


def test_quarantined_raw_text_never_holds_a_clear_mobile(tmp_path):
    _, chk = check(tmp_path, [complaint(amount_lost_inr="-1"), complaint(ack_no="31260314000002") + ",x"])
    assert len(chk.quarantine) == 2
    for r in chk.quarantine:
        assert "9876543210" not in r.raw_text and "<mobile:" in r.raw_text


def test_complaint_versions_are_not_duplicates(tmp_path):
    _, chk = check(tmp_path, [complaint(), complaint(status="CLOSED", updated_at="2026-03-14T12:00:00+05:30")])
    assert not chk.quarantine and len(chk.rows) == 2


def test_shuffled_header_and_extra_columns(tmp_path):
    cols = list(contract.COLUMNS["complaints"])[::-1] + ["note"]
    values = complaint().split(",")[::-1] + ["hello"]
    raw, chk = check(tmp_path, [",".join(values)], header=",".join(cols))
    assert raw.extra_columns == ["note"] and not chk.quarantine
    assert chk.rows.iloc[0]["ack_no"] == "31260314000001"


def test_missing_column_is_a_contract_violation(tmp_path):
    header = HEADER.replace(",status", "")
    with pytest.raises(reader.ContractViolation, match="status"):
        check(tmp_path, [complaint()], header=header)


def test_transactions_layer_ifsc_and_positive_amount(tmp_path):
    h = ",".join(contract.COLUMNS["transactions"])
    base = ["TX1", "31260314000001", "1", "VA1", "AC1", "SBIN0001234", "100.00", "2026-03-14T09:00:00+05:30",
            "COMPLETED"]

    def t(i, **over):
        row = dict(zip(contract.COLUMNS["transactions"], base, strict=False))
        row["txn_id"] = f"TX{i}"
        row.update(over)
        return ",".join(row.values())

    _, chk = check(tmp_path, [t(1), t(2, layer="0"), t(3, layer="x"), t(4, to_ifsc="SBIN001"),
                              t(5, amount_inr="0"), t(6, to_ifsc="sbin0001234"), t(7, status="SUCCESS")],
                   entity="transactions", name="transactions.csv", header=h)
    assert reasons(chk) == {3: contract.Q_INVALID_FORMAT, 4: contract.Q_UNPARSEABLE_NUMBER,
                            5: contract.Q_INVALID_FORMAT, 6: contract.Q_NEGATIVE_AMOUNT, 8: contract.Q_UNKNOWN_CODE}
    assert flags(chk)[7] == [contract.R_CODE_CASE]
    assert chk.rows["layer"].tolist() == [1, 1]
