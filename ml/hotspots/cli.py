"""Command line of the project: `python -m hotspots.cli COMMAND` (the Makefile calls these)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hotspots import db, settings
from hotspots.alerts import cli as alerts_cli
from hotspots.errors import HotspotsError


def init_warehouse(warehouse: str | None = None) -> None:
    from hotspots.alerts import store as alert_store
    from hotspots.forecast import store as forecast_store
    from hotspots.ingest import load

    conn = db.connect(warehouse)
    try:
        load.ensure_schema(conn)
        db.ensure_roles(conn)  # as scripts/pg.sh does for the warehouses it creates
        n = load.load_gazetteer(conn)
        with conn:  # schema forecast; moves the forecast tables an older warehouse kept in marts
            forecast_store.ensure_tables(conn)
        alert_store.ensure_schema(conn)
    finally:
        conn.close()
    name = settings.pg(warehouse).warehouse
    print(f"warehouse: {name} ready" + (f" (gazetteer: {n} PIN codes loaded)" if n else ""))


def ingest(landing: Path, warehouse: str | None = None) -> int:
    """Loads every complete extract in the landing folder, in date order, without Airflow."""
    from hotspots.ingest import load
    from hotspots.ingest.pii import safe_text

    complete, pending = load.discover(landing)
    failed = 0

    def progress(i: int, r) -> None:
        print(f"progress: {i}/{len(complete)} {r.extract_date} {r.status} read={r.rows_read} loaded={r.rows_loaded} "
              f"quarantined={r.rows_quarantined} {r.seconds:.1f}s" + (f" ({r.reason})" if r.reason else ""))

    bulk_done = _bulk_load(landing, complete, warehouse, progress)
    if bulk_done is not None:
        complete_left = []
        failed = sum(r.status == "rejected" for r in bulk_done)
    else:
        complete_left = complete
    for i, d in enumerate(complete_left, 1):
        try:
            r = load.load_extract(landing, d, warehouse)
        except Exception as exc:  # noqa: BLE001 - one date that fails never stops the others
            failed += 1
            print(f"progress: {i}/{len(complete)} {d} FAILED ({type(exc).__name__}: "
                  f"{safe_text(exc, settings.pii_key())})", file=sys.stderr)
            continue
        failed += r.status == "rejected"
        progress(i, r)
    for d in pending:
        print(f"progress: {d} waiting (no _MANIFEST.json yet)")
    return failed


def _bulk_load(landing: Path, dates: list[str], warehouse: str | None, progress) -> list | None:
    """The first load of an empty warehouse, all dates at once (hotspots.ingest.bulk): their
    results, or None when the raw tables hold rows, there are few dates, or it failed (then date
    by date, which rejects only the date at fault)."""
    from hotspots.ingest import bulk
    from hotspots.ingest.pii import safe_text

    if len(dates) < bulk.MIN_DATES:
        return None
    try:
        done = bulk.load_all(landing, dates, warehouse, on_result=progress)
    except Exception as exc:  # noqa: BLE001 - rolled back whole: date by date rejects only the date at fault
        print(f"ingest: loading all {len(dates)} dates at once failed, nothing kept ({type(exc).__name__}: "
              f"{safe_text(exc, settings.pii_key())}); loading them date by date", file=sys.stderr)
        return None
    if done is None:
        return None
    print("ingest: first load, all dates at once: " +
          ", ".join(f"{k} {v:.1f} s" for k, v in done["phases"].items()))
    return done["results"]


def report(landing: str | None = None, warehouse: str | None = None) -> None:
    """What the warehouse holds: rows per table, quarantine by reason, rejected deliveries."""
    conn = db.connect(warehouse)
    name = settings.pg(warehouse).warehouse
    with conn, conn.cursor() as cur:
        cur.execute("select to_regclass('ingest.extract_ledger') is not null")
        if not cur.fetchone()[0]:
            print(f"report: warehouse {name} has no ingest tables yet")
            return
        print(f"\n== warehouse {name}" + (f" (landing {landing})" if landing else ""))
        cur.execute("""select count(distinct extract_date) filter (where status = 'loaded'),
                              count(*) filter (where status = 'rejected'),
                              coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0),
                              coalesce(sum(rows_quarantined), 0), coalesce(sum(rows_repaired), 0)
                       from ingest.extract_ledger""")
        dates, rejected, read, loaded, quarantined, repaired = cur.fetchone()
        print(f"extracts: {dates} dates loaded, {rejected} deliveries rejected; rows read {read}, loaded {loaded} "
              f"({repaired} after a repair), quarantined {quarantined}")
        for table in ("raw.complaints", "raw.complaint_versions", "raw.transactions", "raw.withdrawals",
                      "ingest.unlinked_transactions", "ingest.unlinked_withdrawals"):
            cur.execute(f"select count(*) from {table}")
            print(f"  {table:32s} {cur.fetchone()[0]:>10}")
        cur.execute("select reason, entity, count(*) from ingest.quarantine group by 1, 2 order by 3 desc")
        rows = cur.fetchall()
        if rows:
            print("quarantine (ingest.quarantine) by reason:")
            for reason, entity, n in rows:
                print(f"  {reason:28s} {entity:14s} {n:>8}")
        cur.execute("""select f, count(*) from (select unnest(dq_flags) f from raw.complaints union all
                       select unnest(dq_flags) from raw.transactions union all
                       select unnest(dq_flags) from raw.withdrawals) s group by 1 order by 2 desc""")
        rows = cur.fetchall()
        if rows:
            print("repairs (dq_flags of loaded rows):")
            for flag, n in rows:
                print(f"  {flag:28s} {n:>8}")
        _print_locations(cur)
        cur.execute("""select extract_date, reason from ingest.extract_ledger where status = 'rejected'
                       order by extract_date, delivery_id""")
        for d, reason in cur.fetchall():
            print(f"rejected: {d} {reason}")
        _report_quarantine_per_delivery(cur)
        features = db.feature_summary(warehouse)
        if features is not None:
            cur.execute("select count(*) from marts.dim_cells")
            print(f"features (marts.fct_cell_daily_features): {features['rows']} rows, {features['cells']} candidate "
                  f"cells, feature dates {features['first']} .. {features['last']}; {cur.fetchone()[0]} cells in "
                  "marts.dim_cells")
        cur.execute("select to_regclass('marts.hotspot_forecast') is not null")
        if cur.fetchone()[0]:
            cur.execute("""select forecast_date, horizon_days, count(*), sum(expected_withdrawals), min(model_version)
                           from marts.hotspot_forecast group by 1, 2 order by 1, 2""")
            for d, h, n, total, version in cur.fetchall():
                print(f"forecast (marts.hotspot_forecast): {d}, {h} day(s): {n} cells scored by {version}, "
                      f"{total:.0f} withdrawals expected")
            cur.execute("""select f.risk_rank, f.h3_cell, f.district, f.state, f.expected_withdrawals, f.p_any,
                                  (select e.text from marts.hotspot_explanations e
                                   where e.forecast_date = f.forecast_date and e.horizon_days = f.horizon_days
                                     and e.h3_cell = f.h3_cell and e.rank = 1)
                           from marts.hotspot_forecast f where f.horizon_days = 1 and f.risk_rank <= 5
                           order by 1""")
            for rank, cell, district, state, mu, p, why in cur.fetchall():
                print(f"  #{rank} {cell} {district}, {state}: {mu:.1f} expected, P(any) {p:.2f}"
                      + (f"; {why}" if why else ""))
    conn.close()
    s = settings.pg(warehouse)
    print(f"\nwhere to look: eval \"$(make -s env WAREHOUSE={name})\"; psql   "
          f"(schemas raw, ingest, ref on {s.host}:{s.port}); Airflow logs in .local/airflow/logs; "
          f"`make up` for the Airflow UI and the MLflow UI (runs, models, backtest plots)")


LOCATION_DATES_SHOWN = 14


def _print_locations(cur) -> None:
    """How withdrawals were located, per extract date they first arrived in: by their own
    coordinates, by their terminal's registry position, by PIN centroid, or not at all; and the
    terminals seen for the first time. Read from the located model once features are built, else
    from the raw rows (then 'terminal' is what the registry would give)."""
    cur.execute("select to_regclass('intermediate.int_withdrawals_located') is not null")
    if cur.fetchone()[0]:
        source = "select extract_date, terminal_id, located_by from intermediate.int_withdrawals_located"
    else:
        source = """select w.first_extract_date as extract_date, w.terminal_id,
                           case when w.h3_cell is not null then 'coordinates'
                                when exists (select 1 from raw.withdrawals k
                                             where k.terminal_id = w.terminal_id and k.h3_cell is not null
                                               and k.first_extract_date <= w.first_extract_date) then 'terminal'
                                when p.h3_cell is not null then 'pincode' end as located_by
                    from raw.withdrawals w left join ref.pincodes p on p.pincode = w.pincode"""
    cur.execute(f"""with w as ({source}),
                    first_seen as (select terminal_id, min(extract_date) as d from w
                                   where terminal_id is not null group by 1)
                    select w.extract_date, count(*),
                           count(*) filter (where located_by = 'coordinates'),
                           count(*) filter (where located_by = 'terminal'),
                           count(*) filter (where located_by = 'pincode'),
                           count(*) filter (where located_by is null),
                           (select count(*) from first_seen f where f.d = w.extract_date)
                    from w group by 1 order by 1""")
    rows = cur.fetchall()
    if not rows:
        return
    print("withdrawals located (by first extract date): coordinates / terminal registry / PIN centroid / "
          "unlocated; terminals seen for the first time")
    print(f"  {'extract':10s} {'rows':>8} {'coords':>8} {'terminal':>9} {'pin':>7} {'none':>6} {'new term.':>10}")
    shown = rows[-LOCATION_DATES_SHOWN:]
    if len(rows) > len(shown):
        print(f"  ... {len(rows) - len(shown)} earlier dates")
    totals = [sum(r[i] for r in rows) for i in range(1, 7)]
    for d, n, by_coords, by_terminal, by_pin, none, new in [*shown, ("all", *totals)]:
        warn = "  <- many on PIN centroids" if n and by_pin / n > 0.10 else ""
        print(f"  {str(d):10s} {n:>8} {by_coords:>8} {by_terminal:>9} {by_pin:>7} {none:>6} {new:>10}{warn}")


def _report_quarantine_per_delivery(cur, last: int = 14) -> None:
    """Quarantined rows per reason of the current delivery of each date (ingest.extract_ledger.quarantine_reasons)."""
    cur.execute("""select count(*) from information_schema.columns where table_schema = 'ingest'
                   and table_name = 'extract_ledger' and column_name = 'quarantine_reasons'""")
    if not cur.fetchone()[0]:
        return
    cur.execute("""select extract_date, delivery_id, rows_read, rows_quarantined, quarantine_reasons
                   from (select distinct on (extract_date) * from ingest.extract_ledger where status = 'loaded'
                         order by extract_date, delivery_id desc) d
                   where rows_quarantined > 0 order by extract_date""")
    rows = cur.fetchall()
    if not rows:
        return
    print("quarantine per delivery (ingest.extract_ledger.quarantine_reasons; per file in ingest.file_ledger):")
    if len(rows) > last:
        print(f"  ... {len(rows) - last} earlier dates with quarantined rows")
    for d, delivery, read, quarantined, reasons in rows[-last:]:
        counts = " ".join(f"{k}={v}" for k, v in sorted((reasons or {}).items(), key=lambda kv: (-kv[1], kv[0])))
        print(f"  {d} delivery {delivery}: {quarantined} of {read} rows: {counts}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hotspots")
    p.add_argument("--warehouse", default=None, help="warehouse database (default: $WAREHOUSE or hotspots)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("init-warehouse", help="create schemas and load the gazetteer")
    pi = sub.add_parser("ingest", help="load a landing folder without Airflow")
    pi.add_argument("--landing", required=True, type=Path)
    pr = sub.add_parser("report", help="print what the warehouse holds")
    pr.add_argument("--landing", default=None)
    pt = sub.add_parser("train", help="train, evaluate, register, and promote if it beats champion and baselines")
    pt.add_argument("--landing", default=None, help="landing folder (its ../truth is used when present)")
    sub.add_parser("score", help="forecast the next day with the champion into marts.hotspot_forecast")
    pb = sub.add_parser("backtest", help="rolling-origin backtest into marts.backtest_forecast")
    pb.add_argument("--start", required=True)
    pb.add_argument("--end", required=True)
    pb.add_argument("--landing", default=None)
    alerts_cli.add_parser(sub)
    a = p.parse_args(argv)
    if a.cmd == "alerts":
        return alerts_cli.run(a, a.warehouse or settings.pg().warehouse)
    if a.cmd == "init-warehouse":
        init_warehouse(a.warehouse)
    elif a.cmd == "ingest":
        init_warehouse(a.warehouse)
        return 1 if ingest(a.landing, a.warehouse) else 0
    elif a.cmd == "report":
        report(a.landing, a.warehouse)
    elif a.cmd == "train":
        from hotspots.forecast.train import train

        train(a.warehouse or settings.pg().warehouse, a.landing)
    elif a.cmd == "score":
        from hotspots.forecast.score import score

        score(a.warehouse or settings.pg().warehouse)
    elif a.cmd == "backtest":
        from hotspots.forecast.backtest import run

        run(a.warehouse or settings.pg().warehouse, a.start, a.end, a.landing)
    return 0


def run(argv: list[str] | None = None) -> int:
    """main() for the command line: the package's errors become a message and exit status 1."""
    try:
        return main(argv)
    except HotspotsError as e:
        print(f"hotspots: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
