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
