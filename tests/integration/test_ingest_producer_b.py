"""Another producer's delivery (../shared/samples/producer-b), loaded by the real ingest DAG.

Every data row must be accounted for, loaded or quarantined with a reason, and a
second load must change nothing.
"""

from __future__ import annotations

import csv
import gzip
import io

import pytest

from hotspots import contract
from tests.conftest import PRODUCER_B, run_dag

pytestmark = pytest.mark.integration


def keyed_rows(path, key):
    """{line number: key value} of every data row, read with the plain csv module."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    r = csv.reader(io.StringIO(data.decode("utf-8", "replace")))
    header = next(r)
    out = {}
    for rec in r:
        out[r.line_num] = rec[header.index(key)] if len(rec) == len(header) else None
    return out


def snapshot(sql):
    """Content fingerprint of every table the ingest writes."""
    out = {}
    for table in ("raw.complaints", "raw.complaint_versions", "raw.transactions", "raw.withdrawals",
                  "ingest.quarantine", "ingest.extract_ledger", "ingest.file_ledger"):
        out[table] = sql(f"select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "
                         f"from {table} t")[0]
    return out


def test_producer_b_every_row_accounted_and_reload_is_noop(warehouse, sql):
    out = run_dag("ingest_extracts", {"landing": str(PRODUCER_B), "warehouse": warehouse})
    assert "summary: 4 extract dates {'loaded': 4}" in out

    for day in sorted(p for p in PRODUCER_B.iterdir() if p.is_dir()):
        for f in sorted(day.glob("*.csv*")):
            entity = f.name.split(".")[0]
            key = contract.TABLE_KEYS[entity][0]
            keyed = keyed_rows(f, key)
            rows = len(keyed)
            ledger = sql("""select fl.rows_read, fl.rows_loaded, fl.rows_quarantined from ingest.file_ledger fl
                            join ingest.extract_ledger el using (delivery_id)
                            where el.extract_date = %s and fl.file_name = %s""", (day.name, f.name))
            assert ledger, f"{day.name}/{f.name} not in the ledger"
            read, loaded, quarantined = ledger[0]
            assert read == rows and loaded + quarantined == rows, f"{day.name}/{f.name}"
            q = sql("select count(*) from ingest.quarantine where extract_date = %s and file_name = %s",
                    (day.name, f.name))[0][0]
            assert q == quarantined
            # Every row not quarantined is in its raw table (as this row or a newer version of its key).
            qlines = {n for (n,) in sql("select line_no from ingest.quarantine where extract_date = %s "
                                        "and file_name = %s", (day.name, f.name))}
            assert qlines <= set(keyed)
            loaded_keys = {k for n, k in keyed.items() if n not in qlines}
            assert len(keyed) - len(qlines) == loaded
            found = {k for (k,) in sql(f"select {key} from raw.{entity} where {key} = any(%s)",
                                       (list(loaded_keys),))}
            assert found == loaded_keys, f"{day.name}/{f.name}: lost {sorted(loaded_keys - found)[:5]}"

    reasons = {r for (r,) in sql("select distinct reason from ingest.quarantine")}
    assert reasons <= set(contract.QUARANTINE_REASONS)
    # The sample holds every class of the contract's dirt list; each shows up where it should.
    for expected in (contract.Q_MALFORMED_ROW, contract.Q_INVALID_ENCODING, contract.Q_UNPARSEABLE_NUMBER,
                     contract.Q_UNPARSEABLE_TIMESTAMP, contract.Q_DUPLICATE_KEY, contract.Q_FUTURE_TIMESTAMP,
                     contract.Q_NEGATIVE_AMOUNT, contract.Q_AMOUNT_ABOVE_CEILING, contract.Q_UNKNOWN_CODE):
        assert expected in reasons, expected
    flags = {f for (f,) in sql("""select distinct unnest(dq_flags) from raw.complaints union
                                  select distinct unnest(dq_flags) from raw.withdrawals""")}
    for expected in (contract.R_COORDS_SWAPPED, contract.R_COORDS_ZERO, contract.R_COORDS_OUTSIDE_INDIA,
                     contract.R_INCIDENT_AFTER_REPORTED, contract.R_UNKNOWN_PINCODE,
                     contract.R_PINCODE_REGION_MISMATCH):
        assert expected in flags, expected
    # Offsets Z / +00:00 are converted: no loaded timestamp is off by the IST offset.
    assert sql("select count(*) from raw.complaints where reported_at > updated_at + interval '1 minute'")[0][0] == 0
    # Withdrawals that arrived before their complaint are kept.
    assert sql("select count(*) from ingest.unlinked_withdrawals")[0][0] > 0

    before = snapshot(sql)
    out = run_dag("ingest_extracts", {"landing": str(PRODUCER_B), "warehouse": warehouse})
    assert "{'unchanged': 4}" in out
    assert snapshot(sql) == before
