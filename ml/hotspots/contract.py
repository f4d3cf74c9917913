"""The extracts/v1 contract (../shared/contract/EXTRACTS.md) as data.

One place for file names, columns, code sets and the vocabulary of quarantine
reasons and repair flags, shared by the simulator, the ingest and the tests.
"""

from __future__ import annotations

CONTRACT = "extracts/v1"
MANIFEST = "_MANIFEST.json"
ENTITIES = ("complaints", "transactions", "withdrawals")

CATEGORIES = (
    "UPI", "CARD", "NET_BANKING", "INVESTMENT", "CUSTOMER_CARE", "KYC_IMPERSONATION",
    "DIGITAL_ARREST", "JOB", "LOAN_APP", "SEXTORTION", "OTHER",
)
COMPLAINT_STATUSES = ("REGISTERED", "UNDER_PROCESS", "FUNDS_ON_HOLD", "CLOSED")
TXN_STATUSES = ("COMPLETED", "ON_HOLD", "REVERSED")
CHANNELS = ("ATM", "BRANCH", "AEPS", "MICRO_ATM", "POS_CASH")

COLUMNS: dict[str, tuple[str, ...]] = {
    "complaints": (
        "ack_no", "reported_at", "incident_at", "category", "amount_lost_inr", "victim_pincode",
        "victim_state", "victim_district", "victim_lat", "victim_lon", "victim_mobile", "status",
        "updated_at",
    ),
    "transactions": (
        "txn_id", "ack_no", "layer", "from_account", "to_account", "to_ifsc", "amount_inr", "txn_at",
        "status",
    ),
    "withdrawals": (
        "withdrawal_id", "account", "ack_no", "channel", "terminal_id", "lat", "lon", "pincode",
        "amount_inr", "withdrawn_at",
    ),
}

# Key of one row version inside a file. Complaints carry one row per version:
# the same ack_no with another updated_at is a new version, not a duplicate.
FILE_KEYS: dict[str, tuple[str, ...]] = {
    "complaints": ("ack_no", "updated_at"),
    "transactions": ("txn_id",),
    "withdrawals": ("withdrawal_id",),
}
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "complaints": ("ack_no",),
    "transactions": ("txn_id",),
    "withdrawals": ("withdrawal_id",),
}

# Quarantine reasons: the row is not loaded; it is kept in ingest.quarantine.
Q_MALFORMED_ROW = "malformed_row"              # wrong number of fields
Q_INVALID_ENCODING = "invalid_encoding"        # bytes that are not UTF-8
Q_UNSTORABLE_BYTES = "unstorable_bytes"        # characters PostgreSQL cannot store (NUL)
Q_MISSING_REQUIRED = "missing_required"        # a required field is empty
Q_INVALID_FORMAT = "invalid_format"            # ack_no, PIN, IFSC, layer of the wrong shape
Q_UNPARSEABLE_NUMBER = "unparseable_number"
Q_UNPARSEABLE_TIMESTAMP = "unparseable_timestamp"
Q_FUTURE_TIMESTAMP = "future_timestamp"        # after the end of the extract date
Q_NEGATIVE_AMOUNT = "negative_amount"          # below 0 (complaints) or not above 0
Q_AMOUNT_ABOVE_CEILING = "amount_above_ceiling"
Q_UNKNOWN_CODE = "unknown_code"                # category, status or channel outside the code set
Q_DUPLICATE_KEY = "duplicate_key_in_file"      # a later copy of a key already seen in the file
QUARANTINE_REASONS = (
    Q_MALFORMED_ROW, Q_INVALID_ENCODING, Q_UNSTORABLE_BYTES, Q_MISSING_REQUIRED, Q_INVALID_FORMAT, Q_UNPARSEABLE_NUMBER,
    Q_UNPARSEABLE_TIMESTAMP, Q_FUTURE_TIMESTAMP, Q_NEGATIVE_AMOUNT, Q_AMOUNT_ABOVE_CEILING,
    Q_UNKNOWN_CODE, Q_DUPLICATE_KEY,
)

# Repair flags: the row is loaded after a documented repair, listed in its dq_flags.
R_COORDS_SWAPPED = "coords_swapped"            # latitude and longitude exchanged back
R_COORDS_ZERO = "coords_zero"                  # 0,0 treated as missing
R_COORDS_OUTSIDE_INDIA = "coords_outside_india"  # dropped, location falls back to the PIN
R_INCIDENT_AFTER_REPORTED = "incident_after_reported"  # incident_at dropped
R_UNKNOWN_PINCODE = "unknown_pincode"          # PIN not in the India Post directory
R_PINCODE_REGION_MISMATCH = "pincode_region_mismatch"  # typed state/district disagree with the PIN
R_CODE_CASE = "code_case_normalised"           # e.g. 'Investment' read as INVESTMENT
R_MOBILE_INVALID = "mobile_invalid"            # not a 10-digit mobile: dropped, never stored
R_TIMESTAMP_NO_OFFSET = "timestamp_no_offset"  # read as IST
REPAIR_FLAGS = (
    R_COORDS_SWAPPED, R_COORDS_ZERO, R_COORDS_OUTSIDE_INDIA, R_INCIDENT_AFTER_REPORTED,
    R_UNKNOWN_PINCODE, R_PINCODE_REGION_MISMATCH, R_CODE_CASE, R_MOBILE_INVALID, R_TIMESTAMP_NO_OFFSET,
)

# Rough bounding box of India (with island territories); finer checks use the gazetteer.
INDIA_LAT = (6.0, 37.6)
INDIA_LON = (68.0, 97.6)


def file_candidates(entity: str) -> tuple[str, str]:
    """The two names a file of this entity may have in an extract folder."""
    return (f"{entity}.csv", f"{entity}.csv.gz")
