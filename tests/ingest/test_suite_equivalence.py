"""The vectorised suite evaluation (validate.evaluate_suite) gives exactly what Great Expectations
gives (validate.run_suite) on the frames check_file hands it: per expectation, the same meta and
the same failing lines. Frames come from hostile deliveries (Hypothesis) and from a simulated
extract with its dirt, so every expectation of every suite fails on some rows."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from hotspots import contract, settings
from hotspots.ingest import reader, validate
from tests.ingest.hostile import csv_bytes, examples, hostile_file

KEY = b"unit-test-key-0123456789"
D = date(2026, 3, 14)


def _compare_on(monkeypatch, raw: reader.RawFile, extract_date: date = D) -> int:
    """Runs check_file with an evaluator that computes both and asserts they agree; returns how
    many (expectation, line) failures were compared."""
    seen = []
    fast = validate.evaluate_suite

    def both(entity, frame, parameters):
        monkeypatch.delenv("HOTSPOTS_INGEST_GX", raising=False)
        got = fast(entity, frame, parameters)
        want = validate.run_suite(entity, frame, parameters)
        assert [m for m, _ in got] == [m for m, _ in want]
        for (meta, a), (_, b) in zip(got, want, strict=True):
            assert sorted(a) == sorted(b), meta
        seen.append(sum(len(a) for _, a in got))
        return got

    monkeypatch.setattr(validate, "evaluate_suite", both)
    validate.check_file(raw, extract_date, settings.ingest_config(), KEY)
    return sum(seen)


@hsettings(max_examples=examples(6))  # each runs Great Expectations: seconds
@given(data=st.data(), entity=st.sampled_from(contract.ENTITIES))
def test_hostile_files_give_the_same_failures(tmp_path_factory, monkeypatch, data, entity):
    spec = data.draw(hostile_file(entity, 1, [], max_rows=12))
    path = tmp_path_factory.mktemp("suite") / spec.name
    path.write_bytes(spec.data())
    try:
        raw = reader.read_file(entity, path)
    except reader.ContractViolation:
        return
    _compare_on(monkeypatch, raw)


@pytest.fixture(scope="module")
def simulated_day(tmp_path_factory):
    from hotspots.simulate import simulate

    base = tmp_path_factory.mktemp("sim")
    simulate(base / "x", "2026-03-10", 2, 0.02, 5, truth=base / "t", progress=False, dirty_rate=0.2)
    return sorted(p for p in (base / "x").iterdir() if p.is_dir())[-1]


@pytest.mark.parametrize("entity", contract.ENTITIES)
def test_simulated_dirt_gives_the_same_failures(simulated_day, monkeypatch, entity):
    day = simulated_day
    path = next(p for p in day.iterdir() if p.name.startswith(entity))
    raw = reader.read_file(entity, path)
    assert _compare_on(monkeypatch, raw, date.fromisoformat(day.name)) > 0


def test_every_threshold_edge(tmp_path, monkeypatch):
    """Amounts at, above and below the bounds; timestamps at the extract's end, just after it,
    naive ones; incident equal to reported; empty and long identifiers."""
    end = validate.extract_end(D) + timedelta(minutes=settings.ingest_config().future_tolerance_minutes)
    ceiling = settings.ingest_config().amount_ceiling_inr
    cols = list(contract.COLUMNS["withdrawals"])
    rows = []
    for i, (amount, at) in enumerate([("0", end), ("0.01", end), (str(ceiling), end - timedelta(seconds=1)),
                                      (str(ceiling + 0.01), end + timedelta(seconds=1)), ("-0", end)]):
        rows.append([f"W{i}", "A" * (250 + 2 * i), "", "ATM", "T" * (254 + i), "", "", "110001", amount,
                     pd.Timestamp(at).isoformat()])
    path = tmp_path / "withdrawals.csv"
    path.write_bytes(csv_bytes(cols, rows))
    assert _compare_on(monkeypatch, reader.read_file("withdrawals", path)) > 0
