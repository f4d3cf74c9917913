"""Ingest benchmark for `make bench`: every extract date through the ingest and, side by side
in the same run, a plain COPY of the same rows into tables of the same shape.

- The reference: for each date and file, the records the reader accepts (right field count,
  UTF-8, no NUL: COPY would stop at the others), written once as plain CSV in the contract's
  column order (untimed, cached beside the landing folder). Timed: reading that file and COPY
  into `bench_copy.<entity>` (the file's columns as text, an index on the key and on the columns
  raw.<entity> indexes), one transaction per date, in the same warehouse, after the ingest
  (all dates at once into the empty warehouse, `hotspots.ingest.bulk`): the reference's tables
  grow with the history as it goes.
- The ratio printed is ingest rows/s over COPY rows/s (issue 12: at least 0.5).
- Growth: seconds per 1,000 rows of the young warehouse (the first third of the dates, the
  first date left out: it pays the process's start-up) against the old one (the last third),
  for the ingest and its phases (read + check, upserts or appends, quarantine + ledger) and for
  COPY. All at once, a date's ingest seconds are its checking (in a worker) and its appends; the
  winners and the index builds come once at the end and are printed apart.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from hotspots import contract, db, settings
from hotspots.ingest import load, reader

# Indexes of raw.<entity> on columns the files carry (schema.sql), besides the key.
_INDEXED = {"complaints": (), "transactions": ("ack_no", "to_account"), "withdrawals": ("account",)}


def _reference_file(folder: Path, entity: str, out: Path) -> int:
    """The reader's accepted records of one delivered file as plain CSV; returns the row count."""
    name = next(p for p in folder.iterdir() if p.name in contract.file_candidates(entity))
    raw = reader.read_file(entity, name, settings.ingest_config().csv_field_size_limit)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(raw.records)
    out.write_text(buf.getvalue())
    return len(raw.records)


def prepare_reference(landing: Path, dates: list[str], cache: Path) -> None:
    for d in dates:
        target = cache / d
        if (target / ".done").exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        rows = sum(_reference_file(Path(landing) / d, entity, target / f"{entity}.csv") for entity in contract.ENTITIES)
        (target / ".done").write_text(str(rows))


def create_reference_tables(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("drop schema if exists bench_copy cascade; create schema bench_copy")
        for entity in contract.ENTITIES:
            cols = ", ".join(f"{c} text" for c in contract.COLUMNS[entity])
            cur.execute(f"create table bench_copy.{entity} ({cols})")
            key = ", ".join(contract.TABLE_KEYS[entity])
            cur.execute(f"create index on bench_copy.{entity} ({key})")
            for c in _INDEXED[entity]:
                cur.execute(f"create index on bench_copy.{entity} ({c})")
    conn.commit()


def copy_date(conn, cache: Path, extract_date: str) -> tuple[int, float]:
    """(rows, seconds) of one date's plain COPY, committed."""
    t0 = time.perf_counter()
    rows = int((cache / extract_date / ".done").read_text())
    with conn.cursor() as cur:
        for entity in contract.ENTITIES:
            data = (cache / extract_date / f"{entity}.csv").read_bytes()
            cur.copy_expert(f"copy bench_copy.{entity} ({', '.join(contract.COLUMNS[entity])}) "
                            "from stdin with (format csv)", io.BytesIO(data))
    conn.commit()
    return rows, time.perf_counter() - t0


def side_by_side(landing: Path, warehouse: str, cache: Path, figures: dict) -> None:
    """Ingests every complete date of the landing folder and COPYs the same rows; prints the
    throughputs, their ratio and the growth; adds them to figures.

    The warehouse's raw tables are empty here, so the ingest is the first load, all dates at once
    (`hotspots.ingest.bulk`, what `hotspots ingest` does on a new warehouse), timed from its start
    to its commit: checking in worker processes, the appends, the winners and the index builds.
    The reference then COPYs the same rows date by date into its own keyed tables, which grow
    with the history as they go. Were the raw tables not empty, the dates are ingested one by one,
    each followed by its COPY."""
    import resource

    from hotspots.ingest import bulk

    dates, _ = load.discover(landing)
    t0 = time.perf_counter()
    prepare_reference(landing, dates, cache)
    print(f"bench: COPY reference files ready in {time.perf_counter() - t0:.1f} s (untimed)")
    conn = db.connect(warehouse)
    create_reference_tables(conn)
    per_date = []

    def progress(i: int, r: load.DeliveryResult) -> None:
        if i == 1 or i % 25 == 0 or i == len(dates):
            print(f"progress: {i}/{len(dates)} {r.extract_date} {r.status} rows={r.rows_read} "
                  f"read+check {r.phases.get('read_check', 0):.2f} s, append {r.phases.get('upsert', 0):.2f} s")

    t0 = time.perf_counter()
    done = bulk.load_all(landing, dates, warehouse, on_result=progress)
    ingest_wall = time.perf_counter() - t0
    if done is not None:
        workers_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        figures["ingest_at_once"] = {"phases": {k: round(v, 1) for k, v in done["phases"].items()},
                                     "workers": bulk.workers_for(len(dates)), "worker_peak_gib": round(workers_gib, 3)}
        print("bench: the first load, all dates at once: " +
              ", ".join(f"{k} {v:.1f} s" for k, v in done["phases"].items()) +
              f"; each worker's peak memory {workers_gib:.2f} GiB")
        for i, (d, r) in enumerate(zip(dates, done["results"], strict=True), 1):
            rows_c, secs_c = copy_date(conn, cache, d)
            per_date.append({"date": d, "status": r.status, "rows": r.rows_read, "ingest_s": r.seconds,
                             "copy_rows": rows_c, "copy_s": secs_c, **{f"{k}_s": v for k, v in r.phases.items()}})
            if i == 1 or i % 100 == 0 or i == len(dates):
                print(f"progress: COPY reference {i}/{len(dates)} {d} {secs_c:.2f} s")
    else:
        for i, d in enumerate(dates, 1):
            r = load.load_extract(landing, d, warehouse)
            rows_c, secs_c = copy_date(conn, cache, d)
            per_date.append({"date": d, "status": r.status, "rows": r.rows_read, "ingest_s": r.seconds,
                             "copy_rows": rows_c, "copy_s": secs_c, **{f"{k}_s": v for k, v in r.phases.items()}})
            if i == 1 or i % 25 == 0 or i == len(dates):
                print(f"progress: {i}/{len(dates)} {d} {r.status} rows={r.rows_read} ingest {r.seconds:.2f} s, "
                      f"COPY {secs_c:.2f} s")
    conn.close()
    loaded = [p for p in per_date if p["status"] == "loaded"]
    rows = sum(p["rows"] for p in loaded)
    # All at once, the dates overlap (two are checked while a third is stored): the ingest's time is
    # the whole load's wall time, not the sum over its dates.
    ingest_s = ingest_wall if done is not None else sum(p["ingest_s"] for p in loaded)
    copy_rows = sum(p["copy_rows"] for p in loaded)
    copy_s = sum(p["copy_s"] for p in loaded)
    ratio = (rows / ingest_s) / (copy_rows / copy_s)
    figures.update({"ingest_s": round(ingest_s, 1), "ingest_rows": rows, "ingest_dates": len(loaded),
                    "ingest_rows_per_s": round(rows / ingest_s), "copy_rows": copy_rows, "copy_s": round(copy_s, 1),
                    "copy_rows_per_s": round(copy_rows / copy_s), "ingest_copy_ratio": round(ratio, 3)})
    print(f"bench: ingest {len(loaded)} extract dates, {rows} rows in {ingest_s:.1f} s ({rows / ingest_s:,.0f} rows/s, "
          f"{ingest_s / len(loaded):.2f} s per date)")
    print(f"bench: plain COPY of the same rows into tables of the same shape: {copy_rows} rows in {copy_s:.1f} s "
          f"({copy_rows / copy_s:,.0f} rows/s)")
    print(f"bench: ingest / COPY = {ratio:.3f} (target >= 0.5)")
    growth(loaded, figures)


def growth(per_date: list[dict], figures: dict) -> None:
    """Seconds per 1,000 rows, young warehouse (the first third of the dates, the first left out:
    it pays the process's start-up) against old (the last third), for the ingest, its phases and
    COPY: a ratio above 1 is a cost that grows with the history already loaded."""
    n = len(per_date)
    if n < 4:
        print("bench: growth needs at least 4 dates")
        return
    k = max(1, n // 3)
    young, old = per_date[1:1 + k], per_date[-k:]
    keys = ["ingest_s", "read_check_s", "upsert_s", "quarantine_ledger_s", "copy_s"]
    span = f"dates 2..{k + 1} vs the last {k} of {n}"
    out: dict = {}
    print(f"bench: growth, seconds per 1,000 rows: young warehouse ({span})")
    for key in keys:
        rows_key = "copy_rows" if key == "copy_s" else "rows"
        y = 1000 * sum(p.get(key, 0.0) for p in young) / max(1, sum(p[rows_key] for p in young))
        o = 1000 * sum(p.get(key, 0.0) for p in old) / max(1, sum(p[rows_key] for p in old))
        out[key] = {"young": round(y, 4), "old": round(o, 4), "ratio": round(o / y, 2) if y else None}
        print(f"  {key[:-2]:20s} young {y:8.4f}  old {o:8.4f}  old/young {o / y if y else float('nan'):5.2f}")
    out["_span"] = span
    figures["ingest_growth"] = out
