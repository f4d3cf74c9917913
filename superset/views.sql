-- Views the dashboards read, created at provisioning by the warehouse's owner (not by dbt).
-- They read raw, ingest and ref on the owner's rights and expose only aggregates or
-- pseudonymous keys (never a mobile number), so the read-only role Superset uses needs
-- SELECT on marts and alerts only. They depend on tables dbt never rebuilds (raw.*, ingest.*,
-- ref.*, the forecast tables), so a dbt run does not drop them. Idempotent.
create schema if not exists marts;
create schema if not exists alerts;

-- Bank of an account: the 4-letter IFSC prefix of the branch that received complaint money.
create or replace view marts.v_account_banks as
select distinct on (to_account) to_account as account, left(to_ifsc, 4) as bank
from raw.transactions
where to_ifsc is not null
order by to_account, txn_at desc;

-- Cells whose withdrawals came from accounts of a bank (bank liaisons see only these).
create or replace view marts.v_cell_banks as
select w.h3_cell, b.bank, count(*)::integer as n_withdrawals
from raw.withdrawals w
join marts.v_account_banks b on b.account = w.account
where w.h3_cell is not null
group by 1, 2;

-- District centres (mean of the India Post offices) for arcs and labels.
create or replace view marts.v_district_centres as
select state, district, avg(lat) as lat, avg(lon) as lon, count(*)::integer as n_post_offices
from ref.post_offices
group by 1, 2;

-- Money trail: complaint money from the victims' districts to the districts where the receiving
-- accounts took cash out. Jurisdiction (state, district) = the cash-out side.
create or replace view marts.v_money_trail_flows as
with cash as (
    select w.account, c.state, c.district, count(*) as n
    from raw.withdrawals w
    join ref.h3_cells c on c.h3_cell = w.h3_cell
    group by 1, 2, 3
)
select
    cm.victim_state,
    cm.victim_district,
    cash.state,
    cash.district,
    cm.category,
    count(distinct cm.ack_no)::integer as n_complaints,
    count(distinct t.to_account)::integer as n_accounts,
    sum(t.amount_inr)::double precision as amount_inr,
    array_agg(distinct b.bank) filter (where b.bank is not null) as banks,
    vs.lat as victim_lat, vs.lon as victim_lon, cs.lat as cashout_lat, cs.lon as cashout_lon
from raw.transactions t
join raw.complaints cm on cm.ack_no = t.ack_no
join cash on cash.account = t.to_account
left join marts.v_account_banks b on b.account = t.to_account
join marts.v_district_centres vs on vs.state = cm.victim_state and vs.district = cm.victim_district
join marts.v_district_centres cs on cs.state = cash.state and cs.district = cash.district
where cm.victim_district is not null
group by 1, 2, 3, 4, 5, vs.lat, vs.lon, cs.lat, cs.lon;

-- Complaints per IST day, victim's district and category (no personal data).
create or replace view marts.v_complaints_daily as
select
    (reported_at at time zone 'Asia/Kolkata')::date as day,
    victim_state as state,
    victim_district as district,
    category,
    count(*)::integer as n_complaints,
    sum(amount_lost_inr)::double precision as amount_lost_inr
from raw.complaints
group by 1, 2, 3, 4;

-- Withdrawals per IST day, cell, channel and bank of the account.
create or replace view marts.v_withdrawals_daily as
select
    (w.withdrawn_at at time zone 'Asia/Kolkata')::date as day,
    c.state,
    c.district,
    w.h3_cell,
    w.channel,
    b.bank,
    count(*)::integer as n_withdrawals,
    sum(w.amount_inr)::double precision as amount_inr
from raw.withdrawals w
join ref.h3_cells c on c.h3_cell = w.h3_cell
left join marts.v_account_banks b on b.account = w.account
group by 1, 2, 3, 4, 5, 6;

-- Terminals in each cell with channel and the banks whose accounts withdrew there.
create or replace view marts.v_cell_terminals as
select
    w.h3_cell,
    c.state,
    c.district,
    w.terminal_id,
    w.channel,
    b.bank,
    count(*)::integer as n_withdrawals,
    sum(w.amount_inr)::double precision as amount_inr,
    max(w.withdrawn_at) as last_withdrawal_at
from raw.withdrawals w
join ref.h3_cells c on c.h3_cell = w.h3_cell
left join marts.v_account_banks b on b.account = w.account
where w.terminal_id is not null
group by 1, 2, 3, 4, 5, 6;

-- Cases behind a cell: complaints whose money reached accounts that took cash out there.
-- Pseudonymous: complaint number, category, amounts, the mule account; never the victim's mobile.
create or replace view marts.v_cell_cases as
select distinct on (w.h3_cell, cm.ack_no, t.to_account)
    w.h3_cell,
    c.state,
    c.district,
    cm.ack_no,
    cm.category,
    cm.status as complaint_status,
    (cm.reported_at at time zone 'Asia/Kolkata')::date as reported_day,
    cm.amount_lost_inr::double precision as amount_lost_inr,
    (select coalesce(sum(x.amount_inr), 0) from raw.transactions x
      where x.ack_no = cm.ack_no and x.status = 'ON_HOLD')::double precision as amount_on_hold_inr,
    t.to_account as mule_account,
    b.bank
from raw.withdrawals w
join ref.h3_cells c on c.h3_cell = w.h3_cell
join raw.transactions t on t.to_account = w.account
join raw.complaints cm on cm.ack_no = t.ack_no
left join marts.v_account_banks b on b.account = t.to_account
order by w.h3_cell, cm.ack_no, t.to_account;

-- Ingest record per extract date and file: loaded, repaired, quarantined, and when.
create or replace view marts.v_ingest_health as
select
    e.extract_date,
    f.entity,
    e.status,
    f.rows_read,
    f.rows_loaded,
    f.rows_repaired,
    f.rows_quarantined,
    e.finished_at
from ingest.extract_ledger e
join ingest.file_ledger f on f.delivery_id = e.delivery_id;

create or replace view marts.v_quarantine_reasons as
select extract_date, entity, reason, count(*)::integer as n_rows
from ingest.quarantine
group by 1, 2, 3;

-- Freshness of each source: the newest extract loaded and how old it is.
create or replace view marts.v_source_freshness as
select
    f.entity,
    max(e.extract_date) as last_extract_date,
    max(e.finished_at) as last_loaded_at,
    (current_date - max(e.extract_date))::integer as days_old,
    sum(f.rows_loaded)::bigint as rows_loaded
from ingest.extract_ledger e
join ingest.file_ledger f on f.delivery_id = e.delivery_id
where e.status = 'loaded'
group by 1;

-- The promoted model and its gate decision, copied from MLflow's registry at provisioning
-- (MLflow keeps them in its own database).
create table if not exists marts.model_registry_snapshot (
    model_name text not null,
    version text not null,
    alias text,
    decision text,
    metric text,
    created_at timestamptz,
    copied_at timestamptz not null default now(),
    primary key (model_name, version)
);

-- ------------------------------------------------------------------ dashboard tables
-- What the dashboards read, precomputed: at national volume (two years: 16 M transfers, 6 M
-- complaints, 1.9 M withdrawals) the views above take seconds to minutes per request, so every
-- chart that aggregated raw rows reads one of these small indexed tables instead.
-- marts.refresh_dashboard_tables() rebuilds them all in one transaction (each built beside the
-- old one and swapped in, so open dashboards never wait on the build); provisioning calls it,
-- and so does the refresh_dashboards DAG after every scoring run (Asset hotspot_forecast).
-- The outlines depend on the gazetteer only and are rebuilt when it changes.

-- Builds marts.<t>__new from a query, with indexes (named <t>__new_<i>), analysed.
create or replace function marts.dashboard_build(t text, body text, idx text[] default '{}')
returns bigint language plpgsql as $$
declare
    i integer := 0;
    c text;
    n bigint;
begin
    execute format('drop table if exists marts.%I', t || '__new');
    execute format('create table marts.%I as %s', t || '__new', body);
    foreach c in array idx loop
        i := i + 1;
        execute format('create index %I on marts.%I (%s)', t || '__new_' || i, t || '__new', c);
    end loop;
    execute format('analyze marts.%I', t || '__new');
    execute format('select count(*) from marts.%I', t || '__new') into n;
    return n;
end $$;

-- Replaces marts.<t> by marts.<t>__new (indexes renamed <t>_<i>).
create or replace function marts.dashboard_swap(t text, n_idx integer)
returns void language plpgsql as $$
begin
    execute format('drop table if exists marts.%I', t);
    execute format('alter table marts.%I rename to %I', t || '__new', t);
    for i in 1 .. n_idx loop
        execute format('alter index marts.%I rename to %I', t || '__new_' || i, t || '_' || i);
    end loop;
end $$;

create or replace function marts.refresh_dashboard_tables()
returns table (dashboard_table text, n_rows bigint, seconds numeric) language plpgsql as $$
declare
    t0 timestamptz;
    spec record;
    built text[][] := '{}';
begin
    -- one transaction: the dashboards see all tables of one refresh
    for spec in select * from (values
        -- bank (IFSC prefix of the receiving branch, latest transfer) of each account that withdrew
        -- (as v_account_banks, by a hash aggregate: the newest transfer's bank is the greatest of
        -- "time|bank", which takes a fraction of distinct on's sort of every transfer)
        ('dash_account_banks', $q$
            select t.to_account as account,
                   split_part(max(to_char(t.txn_at at time zone 'UTC', 'YYYYMMDDHH24MISSUS') || '|'
                                  || left(t.to_ifsc, 4)), '|', 2) as bank
            from raw.transactions t
            where t.to_ifsc is not null and t.to_account in (select account from raw.withdrawals)
            group by 1 $q$, array['account']),
        ('dash_cell_banks', $q$
            select w.h3_cell, array_agg(distinct b.bank order by b.bank) as banks
            from (select distinct h3_cell, account from raw.withdrawals where h3_cell is not null) w
            join marts.dash_account_banks__new b on b.account = w.account
            group by 1 $q$, array['h3_cell']),
        -- as marts.v_money_trail_flows (the district centres joined before aggregating, which keeps
        -- the aggregation to complaints of known districts), banks from the table just built
        ('dash_money_trail_flows', $q$
            with cash as (
                select w.account, c.state, c.district
                from raw.withdrawals w join ref.h3_cells c on c.h3_cell = w.h3_cell
                group by 1, 2, 3
            ), flows as (
            select cm.victim_state, cm.victim_district, cash.state, cash.district, cm.category,
                   count(distinct cm.ack_no)::integer as n_complaints,
                   count(distinct t.to_account)::integer as n_accounts,
                   sum(t.amount_inr)::double precision as amount_inr,
                   array_agg(distinct b.bank) filter (where b.bank is not null) as banks,
                   vs.lat as victim_lat, vs.lon as victim_lon, cs.lat as cashout_lat, cs.lon as cashout_lon
            from raw.transactions t
            join raw.complaints cm on cm.ack_no = t.ack_no
            join cash on cash.account = t.to_account
            left join marts.dash_account_banks__new b on b.account = t.to_account
            join marts.v_district_centres vs on vs.state = cm.victim_state and vs.district = cm.victim_district
            join marts.v_district_centres cs on cs.state = cash.state and cs.district = cash.district
            where cm.victim_district is not null
            group by 1, 2, 3, 4, 5, vs.lat, vs.lon, cs.lat, cs.lon
            )
            -- the largest flows into each cash-out district first (the map draws the top ones)
            select f.*, rank() over (partition by state, district order by amount_inr desc)::integer as flow_rank
            from flows f $q$,
         array['state, district', 'category', 'flow_rank']),
        ('dash_complaints_daily', $q$ select * from marts.v_complaints_daily $q$,
         array['state, district', 'day']),
        ('dash_district_daily', $q$
            with c as (select day, state, district, sum(n_complaints) as n_complaints,
                              sum(amount_lost_inr) as amount_lost_inr
                       from marts.v_complaints_daily group by 1, 2, 3),
                 w as (select (w.withdrawn_at at time zone 'Asia/Kolkata')::date as day, c.state, c.district,
                              count(*) as n_withdrawals
                       from raw.withdrawals w join ref.h3_cells c on c.h3_cell = w.h3_cell group by 1, 2, 3),
                 -- issued 1-day forecasts, and the backtest's for the days no issued forecast covers
                 f as (select forecast_date as day, state, district, sum(expected_withdrawals) as expected_withdrawals
                       from (select forecast_date, state, district, expected_withdrawals
                             from marts.hotspot_forecast_history where horizon_days = 1
                             union all
                             select b.forecast_date, b.state, b.district, b.expected_withdrawals
                             from marts.backtest_forecast b where b.horizon_days = 1
                               and b.forecast_date not in (select forecast_date from marts.hotspot_forecast_history)) x
                       group by 1, 2, 3)
            select day, state, district, coalesce(n_complaints, 0)::bigint as n_complaints,
                   coalesce(amount_lost_inr, 0)::double precision as amount_lost_inr,
                   coalesce(n_withdrawals, 0)::bigint as n_withdrawals, expected_withdrawals
            from c full join w using (day, state, district) full join f using (day, state, district) $q$,
         array['state, district', 'day']),
        ('dash_cell_terminals', $q$
            select w.h3_cell, c.state, c.district, w.terminal_id, w.channel, b.bank,
                   count(*)::integer as n_withdrawals, sum(w.amount_inr)::double precision as amount_inr,
                   max(w.withdrawn_at) as last_withdrawal_at
            from raw.withdrawals w
            join ref.h3_cells c on c.h3_cell = w.h3_cell
            left join marts.dash_account_banks__new b on b.account = w.account
            where w.terminal_id is not null
            group by 1, 2, 3, 4, 5, 6 $q$, array['h3_cell', 'state, district'])
    ) s(name, body, idx) loop
        t0 := clock_timestamp();
        dashboard_table := spec.name;
        begin
            n_rows := marts.dashboard_build(spec.name, spec.body, spec.idx);
            built := built || array[[spec.name, cardinality(spec.idx)::text]];
        exception when undefined_table then  -- a warehouse not scored yet: that table waits
            raise notice 'refresh_dashboard_tables: % skipped: %', spec.name, sqlerrm;
            n_rows := null;
        end;
        seconds := round(extract(epoch from clock_timestamp() - t0)::numeric, 2);
        return next;
    end loop;
    -- all built: swap them in together (readers wait only for the renames, then see one refresh)
    for i in 1 .. coalesce(array_length(built, 1), 0) loop
        perform marts.dashboard_swap(built[i][1], built[i][2]::integer);
    end loop;
end $$;

-- State and district outlines for the map, built from the India Post directory: each post office's
-- Voronoi cell (cut to ~20 km around it), dissolved per district (so neighbouring districts share
-- their border, no gaps or overlaps), simplified, one row per polygon (its outer ring as a JSON
-- array of [lon, lat]). Rebuilt only when the directory changes (its fingerprint is the tables'
-- comment); about a minute on 2 cores.
create or replace function marts.refresh_dashboard_outlines(force boolean default false)
returns bigint language plpgsql as $$
declare
    fp text;
    n bigint;
begin
    select count(*) || '/' || coalesce(sum(hashtext(concat_ws('|', state, district, lat, lon)))::text, '')
      into fp from ref.post_offices;
    if not force and obj_description(to_regclass('marts.dash_district_outlines'), 'pg_class')
                     = 'ref.post_offices ' || fp then
        return 0;
    end if;
    -- one point per location; its district by majority of its 7 nearest offices (a misplaced office
    -- would otherwise make an island of its district inside another)
    create temp table _pts on commit drop as
        select distinct on (geom) state, district, geom from ref.post_offices where geom is not null
        order by geom, state, district;
    create index on _pts using gist (geom);
    create temp table _po on commit drop as
        select v.state, v.district, p.geom
        from _pts p, lateral (select n.state, n.district from (select state, district from _pts q
                                                               order by q.geom <-> p.geom limit 7) n
                              group by 1, 2 order by count(*) desc, (n.state = p.state and n.district = p.district) desc
                              limit 1) v;
    create index on _po using gist (geom);
    -- Voronoi cells, each cut to 0.2 degrees (~20 km) around its office: coasts and borders follow the
    -- offices, not a hull
    create temp table _cells on commit drop as
        select p.state, p.district, st_intersection(v.geom, st_buffer(p.geom, 0.2, 4)) as geom
        from (select (st_dump(st_voronoipolygons(st_collect(geom)))).geom from _po) v
        join _po p on st_intersects(v.geom, p.geom);
    -- parts smaller than a quarter of the district's largest are dropped (stray offices far away)
    create temp table _districts on commit drop as
        select state, district, st_collect(geom) as geom
        from (select state, district, p.geom, max(st_area(p.geom)) over (partition by state, district) as biggest
              from (select state, district, st_union(geom) as geom from _cells group by 1, 2) d,
                   lateral st_dump(d.geom) p) x
        where st_area(geom) >= 0.25 * biggest
        group by 1, 2;
    perform marts.dashboard_build('dash_district_outlines', $q$
        select d.state, d.district, (st_asgeojson(st_exteriorring(p.geom), 3)::json -> 'coordinates')::text as ring
        from _districts d, lateral st_dump(st_simplifypreservetopology(d.geom, 0.02)) p
        where st_area(p.geom) > 0.0005 $q$, array['state, district']);
    perform marts.dashboard_build('dash_state_outlines', $q$
        select s.state, (st_asgeojson(st_exteriorring(p.geom), 3)::json -> 'coordinates')::text as ring
        from (select state, st_union(geom) as geom from _districts group by 1) s,
             lateral st_dump(st_simplifypreservetopology(s.geom, 0.02)) p
        where st_area(p.geom) > 0.002 $q$, array['state']);
    perform marts.dashboard_swap('dash_district_outlines', 1);
    perform marts.dashboard_swap('dash_state_outlines', 1);
    execute format('comment on table marts.dash_district_outlines is %L', 'ref.post_offices ' || fp);
    select count(*) into n from marts.dash_district_outlines;
    return n;
end $$;
