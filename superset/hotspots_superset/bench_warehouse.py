"""A national-size warehouse for the dashboards' render-time bench, built in minutes instead of the
hours a two-year scale-1.0 simulation and ingest take (docs/dashboards.md, "Render time").

It copies the tables the dashboards read from a smaller warehouse (default `hotspots`: 120 days at
scale 0.1) and inflates them to the size `make bench` reports for two years at national volume
(docs/features.md: 16.2 M transfers, 1.9 M withdrawals, 10,452 cells, 3,632 candidate cells):

- raw.complaints, raw.transactions, raw.withdrawals: COPIES copies (default 61 = 6 time shifts of
  121 days x ~10 volume copies), keys suffixed per copy; each volume copy moves its withdrawals to
  other res-8 cells (around real post offices, registered in ref.h3_cells with the h3 library), so
  the cells number ~10 k; terminals and accounts are new per copy;
- forecast.hotspot_forecast: the CANDIDATES busiest cells x 2 horizons for the day after the newest
  withdrawal, expected withdrawals from the last 28 days; forecast.hotspot_forecast_history: one such
  forecast per day over the whole history (geometry only on the newest day, to keep the build
  short); forecast.hotspot_explanations: the top 200 cells per horizon with the source's sentences.

Run in the pipeline's virtualenv (h3, psycopg2), with libpq's PG* variables:

    .venv/bin/python superset/hotspots_superset/bench_warehouse.py superset_bench_national [--source hotspots]

The target database must exist with PostGIS and hold a copy of the source's raw, ref, marts,
ingest and alerts schemas, e.g.:

    scripts/pg.sh ensure-db superset_bench_national postgis
    pg_dump -d hotspots -n raw -n ref -n marts -n forecast -n ingest -n alerts -T marts.fct_money_trail \
        -T marts.fct_cell_daily_features -T marts.fct_cell_targets -T raw.complaint_versions \
        -T marts.superset_user_scope -T marts.model_registry_snapshot --no-owner -Fc -f /tmp/src.dump
    pg_restore -d superset_bench_national --no-owner /tmp/src.dump

then this (~15 minutes on 2 shared cores, 8.5 GB), then `WAREHOUSE=superset_bench_national
scripts/superset.sh bench-serve --explain` (provisioning builds the dashboard tables).
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import psycopg2

SHIFTS, SHIFT_DAYS = 6, 121


def log(msg: str, t0: float) -> None:
    print(f"bench-warehouse: {msg} ({time.perf_counter() - t0:.0f} s)", flush=True)


def register_cells(cur, n_cells: int, seed: int) -> int:
    """Res-8 cells of India Post offices (one per office location, sampled) into ref.h3_cells."""
    import h3

    cur.execute("select lat, lon, state, district from ref.post_offices where lat is not null")
    rng = random.Random(seed)
    offices = cur.fetchall()
    rng.shuffle(offices)
    cur.execute("select h3_cell from ref.h3_cells")
    have = {r[0] for r in cur.fetchall()}
    rows = []
    for lat, lon, state, district in offices:
        if len(have) >= n_cells:
            break
        c = h3.latlng_to_cell(lat, lon, 8)
        if c in have:
            continue
        have.add(c)
        ring = [(lo, la) for la, lo in h3.cell_to_boundary(c)]
        wkt = "POLYGON((" + ", ".join(f"{lo} {la}" for lo, la in ring + ring[:1]) + "))"
        clat, clon = h3.cell_to_latlng(c)
        rows.append((c, clat, clon, h3.cell_to_parent(c, 7), h3.cell_to_parent(c, 6), h3.cell_to_parent(c, 5),
                     state, district, wkt))
    cur.executemany("""insert into ref.h3_cells (h3_cell, lat, lon, h3_res7, h3_res6, h3_res5, state, district, geom)
                       values (%s, %s, %s, %s, %s, %s, %s, %s, st_geomfromtext(%s, 4326))
                       on conflict do nothing""", rows)
    return len(have)


def build(db: str, copies: int, n_cells: int, candidates: int, seed: int) -> None:
    t0 = time.perf_counter()
    conn = psycopg2.connect(dbname=db)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("select count(*) from raw.withdrawals where withdrawal_id like '%~%'")
    if cur.fetchone()[0]:
        print(f"bench-warehouse: {db} is inflated already; the forecast tables only")
        forecast(cur, candidates, t0)
        return
    total = register_cells(cur, n_cells, seed)
    log(f"{total} cells in ref.h3_cells", t0)
    # every copy's cell for every source cell: volume copy v moves source cell i to another cell
    cur.execute("""create temp table cell_map as
        with src as (select h3_cell, row_number() over (order by h3_cell) - 1 as i from ref.h3_cells
                     where h3_cell in (select distinct h3_cell from raw.withdrawals where h3_cell is not null)),
             pool as (select h3_cell, row_number() over (order by md5(h3_cell)) - 1 as j,
                             count(*) over () as n from ref.h3_cells)
        select v, s.h3_cell as src_cell, p.h3_cell as cell
        from generate_series(1, 20) v cross join src s
        join pool p on p.j = (s.i * 7919 + v * 104729) % p.n""")
    cur.execute("create unique index on cell_map (v, src_cell)")
    shift = f"(((k % {SHIFTS}) * {SHIFT_DAYS}) || ' days')::interval"
    vol = f"(k / {SHIFTS})"
    ks = f"generate_series(1, {copies - 1}) k"
    for table, idx in (("complaints", None), ("transactions", None), ("withdrawals", None)):
        cur.execute("""select indexname, indexdef from pg_indexes where schemaname = 'raw' and tablename = %s
                       and indexname not like '%%pkey'""", (table,))
        idx = cur.fetchall()
        for name, _ in idx:
            cur.execute(f"drop index raw.{name}")
        if table == "complaints":
            cur.execute(f"""insert into raw.complaints select ack_no || '~' || k, reported_at - {shift},
                incident_at - {shift}, category, amount_lost_inr, victim_pincode, victim_state, victim_district,
                victim_lat, victim_lon, victim_mobile_hash || '~' || k, victim_h3_cell, status, updated_at - {shift},
                dq_flags, extract_date - (k % {SHIFTS}) * {SHIFT_DAYS}, first_extract_date - (k % {SHIFTS}) * {SHIFT_DAYS},
                source_file, source_line from raw.complaints, {ks}""")
        elif table == "transactions":
            cur.execute(f"""insert into raw.transactions select txn_id || '~' || k, ack_no || '~' || k, layer,
                from_account || '~' || k, to_account || '~' || k, to_ifsc, amount_inr, txn_at - {shift}, status,
                dq_flags, extract_date - (k % {SHIFTS}) * {SHIFT_DAYS}, first_extract_date - (k % {SHIFTS}) * {SHIFT_DAYS},
                source_file, source_line from raw.transactions, {ks}""")
        else:
            cur.execute(f"""insert into raw.withdrawals select w.withdrawal_id || '~' || k, w.account || '~' || k,
                w.ack_no || '~' || k, w.channel, w.terminal_id || '~' || {vol}, w.lat, w.lon, w.pincode,
                coalesce(m.cell, w.h3_cell), w.amount_inr, w.withdrawn_at - {shift}, w.dq_flags,
                w.extract_date - (k % {SHIFTS}) * {SHIFT_DAYS}, w.first_extract_date - (k % {SHIFTS}) * {SHIFT_DAYS},
                w.source_file, w.source_line
                from raw.withdrawals w cross join {ks} left join cell_map m on m.v = {vol} and m.src_cell = w.h3_cell""")
        for _, d in idx:
            cur.execute(d)
        cur.execute(f"analyze raw.{table}")
        cur.execute(f"select count(*) from raw.{table}")
        log(f"raw.{table}: {cur.fetchone()[0]} rows", t0)

    forecast(cur, candidates, t0)
    conn.close()


def forecast(cur, candidates: int, t0: float) -> None:
    # The forecast: the busiest cells of the last 28 days, both horizons, for the day after the newest withdrawal.
    cur.execute("select (max(withdrawn_at) at time zone 'Asia/Kolkata')::date + 1 from raw.withdrawals")
    day = cur.fetchone()[0]
    cur.execute("select max(model_version), max(issued_at) from marts.hotspot_forecast")
    version, issued = cur.fetchone()
    have_expl = _source_explanations(cur)
    cur.execute("truncate forecast.hotspot_forecast, forecast.hotspot_forecast_history, forecast.hotspot_explanations")
    cur.execute("""create temp table cand as
        select c.h3_cell, c.state, c.district, c.geom, count(w.*) as n28
        from ref.h3_cells c left join raw.withdrawals w on w.h3_cell = c.h3_cell
          and w.withdrawn_at >= %s::date - 28
        group by 1, 2, 3, 4 order by n28 desc, c.h3_cell limit %s""", (day, candidates))
    cur.execute("""insert into forecast.hotspot_forecast (h3_cell, h3_res, forecast_date, horizon_days, issued_at,
            expected_withdrawals, p_any, risk_rank, model_version, state, district, geom)
        select h3_cell, 8, %s, h, %s, e, 1 - exp(-e), row_number() over (partition by h order by e desc, h3_cell),
               %s, state, district, geom
        from (select c.*, h, (c.n28 / 28.0 * h + 0.01) * (0.6 + 0.8 * ((hashtext(h3_cell || h) & 1023) / 1023.0)) as e
              from cand c, (values (1), (7)) hh(h)) x""", (day, issued, version))
    cur.execute("alter table forecast.hotspot_forecast_history alter column geom drop not null")
    cur.execute(f"""insert into forecast.hotspot_forecast_history
        select f.h3_cell, f.h3_res, f.forecast_date - d, f.horizon_days, f.issued_at - d * interval '1 day',
               f.expected_withdrawals * (0.7 + 0.6 * ((hashtext(f.h3_cell || d) & 1023) / 1023.0)), f.p_any,
               f.risk_rank, f.model_version, f.state, f.district, case when d = 0 then f.geom end
        from forecast.hotspot_forecast f, generate_series(0, {SHIFTS * SHIFT_DAYS - 1}) d""")
    cur.execute("analyze forecast.hotspot_forecast_history")
    log("forecast.hotspot_forecast and _history", t0)
    # Explanations: the source's sentences for the top 200 cells per horizon.
    cur.execute("""insert into forecast.hotspot_explanations (forecast_date, horizon_days, h3_cell, risk_rank, rank,
            feature, value, contribution, factor, text, model_version, issued_at)
        select f.forecast_date, f.horizon_days, f.h3_cell, f.risk_rank, s.rank, s.feature, s.value, s.contribution,
               s.factor, s.text, f.model_version, f.issued_at
        from forecast.hotspot_forecast f
        join lateral (select * from source_explanations x
                      where x.k = f.risk_rank % (select max(k) + 1 from source_explanations)) s on true
        where f.risk_rank <= 200""") if have_expl else None
    cur.execute("analyze")
    log(f"forecast for {day}: {candidates} cells x 2 horizons; explanations", t0)


def _source_explanations(cur) -> bool:
    cur.execute("""create temp table source_explanations as
        select dense_rank() over (order by forecast_date, horizon_days, h3_cell) - 1 as k, rank, feature, value,
               contribution, factor, text
        from forecast.hotspot_explanations""")
    cur.execute("select count(*) from source_explanations")
    return cur.fetchone()[0] > 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_warehouse")
    p.add_argument("database")
    p.add_argument("--copies", type=int, default=61)
    p.add_argument("--cells", type=int, default=10452)
    p.add_argument("--candidates", type=int, default=3632)
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args(argv)
    build(a.database, a.copies, a.cells, a.candidates, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
