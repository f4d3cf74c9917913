"""The ingest's COPY (hotspots.ingest.load._copy, Arrow's CSV writer) into a real PostgreSQL
table: missing values and empty strings NULL, except an empty string in a force_not_null column;
text with commas, quotes and line ends intact; flags as arrays; timestamps the same instant;
a column of mixed Python values as their text."""

from __future__ import annotations

import math

import pandas as pd
import psycopg2
import pytest

from hotspots.ingest import load

pytestmark = pytest.mark.integration


def test_copy_stores_what_the_frame_holds(warehouse):
    texts = [None, "", "a,b", 'say "hi"', "two\nlines", "cr\rinside", "crlf\r\nend", " spaced ", "नई दिल्ली", "\\."]
    n = len(texts)
    df = pd.DataFrame({
        "t": pd.Series(texts, dtype=object),
        "keep": pd.Series(["" if v is None else v for v in texts], dtype=object),
        "f": [1.5, math.nan, 1e20, 0.1 + 0.2, -0.0, 12345.0, 28.6227, math.nan, 77.2195, 3.0],
        "i": list(range(n)),
        "ts": pd.to_datetime(["2026-03-14T10:00:00+05:30"] * (n - 1) + [None], utc=True),
        "flags": [[], ["code_case"], ["coords_swapped", "timestamp_no_offset"]] + [[]] * (n - 3),
        "mixed": pd.Series([1, "x", None, 2.5] + [None] * (n - 4), dtype=object),
    })
    conn = psycopg2.connect(dbname=warehouse)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("create temp table c (t text, keep text not null, f double precision, i bigint, "
                        "ts timestamptz, flags text[], mixed text)")
            load._copy(cur, "c", df, list(df.columns), not_null=("keep",))
            cur.execute("select t, keep, f, i, ts = '2026-03-14T04:30:00Z', flags, mixed from c order by i")
            got = cur.fetchall()
    finally:
        conn.close()
    assert [r[0] for r in got] == [None if v in (None, "") else v for v in texts]
    assert [r[1] for r in got] == ["" if v is None else v for v in texts]
    assert all((r[2] is None and math.isnan(f)) or r[2] == f for r, f in zip(got, df["f"], strict=True))
    assert [r[3] for r in got] == list(range(n))
    assert [r[4] for r in got] == [True] * (n - 1) + [None]
    assert [r[5] for r in got] == list(df["flags"])
    assert [r[6] for r in got] == ["1", "x", None, "2.5"] + [None] * (n - 4)
