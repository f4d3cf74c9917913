"""db.copy_rows (the outbox's COPY): every value comes back from PostgreSQL as it was written:
text with tabs, newlines, backslashes and quotes, NULL against the empty string, text arrays
whose elements hold commas, braces and quotes, dates, timestamps, floats and JSON."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotspots import db

pytestmark = pytest.mark.skipif(not os.environ.get("PGPORT"), reason="needs the local cluster: run through make")

# PostgreSQL text holds any character but NUL; UTF-8 holds no lone surrogate.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
COLUMNS = ["t", "arr", "d", "ts", "f", "n", "b", "j"]


@pytest.fixture(scope="module")
def conn():
    c = psycopg2.connect(dbname="postgres")
    yield c
    c.close()


def _round_trip(conn, rows):
    with conn.cursor() as cur:
        cur.execute("create temp table copied (i serial, t text, arr text[], d date, ts timestamptz, "
                    "f double precision, n integer, b boolean, j jsonb)")
        try:
            db.copy_rows(cur, "copied", COLUMNS, rows)
            cur.execute(f"select {', '.join(COLUMNS)} from copied order by i")
            return cur.fetchall()
        finally:
            conn.rollback()


def test_hostile_values_and_nulls(conn):
    ts = datetime(2026, 3, 1, 4, 5, 6, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    rows = [
        ("a\tb\nc\rd\\e\\N\"'", ["x,y", "{z}", 'q"uote', "back\\slash", "", "NULL", "t\tab"], date(2026, 3, 1),
         ts, 0.1 + 0.2, -7, True, json.dumps({"k": "v\n\t\\", "n": [1, 2.5]})),
        ("", [], None, None, None, None, False, None),
        (None, None, None, None, float("inf"), 0, None, "[]"),
    ]
    got = _round_trip(conn, rows)
    assert got[0][:7] == rows[0][:7]
    assert got[0][7] == json.loads(rows[0][7])
    assert got[1] == ("", [], None, None, None, None, False, None)
    assert got[2][:7] == (None, None, None, None, float("inf"), 0, None) and got[2][7] == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.none() | TEXT, st.none() | st.lists(TEXT, max_size=4),
                          st.floats(allow_nan=False, width=64)), min_size=1, max_size=5))
def test_any_text_round_trips(conn, values):
    rows = [(t, arr, None, None, f, None, None, None) for t, arr, f in values]
    got = _round_trip(conn, rows)
    assert [(r[0], r[1], r[4]) for r in got] == [(t, arr, f) for t, arr, f in values]
