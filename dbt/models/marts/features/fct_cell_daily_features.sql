{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    unique_key='feature_date',
    indexes=[{'columns': ['feature_date', 'h3_cell'], 'unique': true}],
) }}
-- Daily features per candidate cell for the forecast of feature_date, from what had
-- arrived in extracts dated before feature_date only.
-- Grain: one row per (h3_cell, feature_date) for candidate cells: cells with an
-- arrived withdrawal in the last 90 days, their known ring-1 neighbours, and cells
-- under complaint pressure in the last 7 days. Other cells are taken as zero risk.
with

bounds as (
    select {{ build_date_start(requires=['pressure_fresh_3d']) }} as first_date, {{ build_date_end() }} as last_date
),

windows as (
    select w.*
    from {{ ref('int_cell_withdrawal_windows') }} as w, bounds as b
    where w.feature_date between b.first_date and b.last_date
),

pressure as (
    select * from {{ ref('int_cell_pressure_daily') }}
),

cells as (
    select * from {{ ref('stg_ref__h3_cells') }}
),

neighbours as (
    select * from {{ ref('stg_ref__h3_neighbours') }}
),

cell_first_seen as (
    select h3_cell, min(extract_date) as first_extract_date
    from {{ ref('int_withdrawals_arrived_by_cell') }}
    group by 1
),

feature_dates as (
    select generate_series(first_date, last_date, interval '1 day')::date as feature_date from bounds
),

pressure_windows as (
    select
        p.h3_cell,
        d.feature_date,
        sum(p.pressure_transfers) filter (where p.arrival_date = d.feature_date - 1) as pressure_1d,
        sum(p.pressure_weighted) filter (where p.arrival_date = d.feature_date - 1) as pressure_weighted_1d,
        sum(p.pressure_weighted) filter (where p.arrival_date >= d.feature_date - 3) as pressure_weighted_3d,
        sum(p.pressure_weighted) filter (where p.arrival_date >= d.feature_date - 7) as pressure_weighted_7d,
        sum(p.pressure_fresh) filter (where p.arrival_date = d.feature_date - 1) as pressure_fresh_1d,
        sum(p.pressure_fresh) filter (where p.arrival_date >= d.feature_date - 3) as pressure_fresh_3d,
        sum(p.pressure_transfers) filter (where p.arrival_date >= d.feature_date - 7) as pressure_7d,
        sum(p.pressure_transfers) as pressure_28d,
        sum(p.pressure_amount_inr) filter (where p.arrival_date >= d.feature_date - 7) as pressure_amount_7d,
        max(p.pressure_accounts) filter (where p.arrival_date >= d.feature_date - 7) as pressure_accounts_max_7d,
        sum(p.pressure_payment_fraud) filter (where p.arrival_date >= d.feature_date - 28) as mix_payment_fraud,
        sum(p.pressure_impersonation) filter (where p.arrival_date >= d.feature_date - 28) as mix_impersonation,
        sum(p.pressure_scheme) filter (where p.arrival_date >= d.feature_date - 28) as mix_scheme,
        sum(p.pressure_other) filter (where p.arrival_date >= d.feature_date - 28) as mix_other
    from feature_dates as d
    inner join pressure as p
        on p.arrival_date < d.feature_date and p.arrival_date >= d.feature_date - 28
    group by 1, 2
),

candidates as (
    select h3_cell, feature_date from windows
    union
    select n.neighbour_cell, w.feature_date
    from windows as w
    inner join neighbours as n on w.h3_cell = n.h3_cell and n.k = 1
    inner join cell_first_seen as f
        on n.neighbour_cell = f.h3_cell and f.first_extract_date < w.feature_date
    union
    select h3_cell, feature_date from pressure_windows where pressure_7d > 0
),

rings as (
    select
        c.h3_cell,
        c.feature_date,
        sum(w.wd_7d) filter (where n.k = 1) as ring1_wd_7d,
        sum(w.wd_28d) filter (where n.k = 1) as ring1_wd_28d,
        sum(w.wd_90d) filter (where n.k = 1) as ring1_wd_90d,
        sum(w.wd_7d) as ring2_wd_7d,
        sum(w.wd_28d) as ring2_wd_28d,
        sum(w.wd_90d) as ring2_wd_90d
    from candidates as c
    inner join neighbours as n on c.h3_cell = n.h3_cell
    inner join windows as w on n.neighbour_cell = w.h3_cell and c.feature_date = w.feature_date
    group by 1, 2
),

ring_pressure as (
    select
        c.h3_cell,
        c.feature_date,
        sum(p.pressure_7d) filter (where n.k = 1) as ring1_pressure_7d,
        sum(p.pressure_7d) as ring2_pressure_7d
    from candidates as c
    inner join neighbours as n on c.h3_cell = n.h3_cell
    inner join pressure_windows as p on n.neighbour_cell = p.h3_cell and c.feature_date = p.feature_date
    group by 1, 2
),

parents as (
    select
        w.feature_date,
        h.h3_res6,
        sum(w.wd_7d) as res6_wd_7d,
        sum(w.wd_28d) as res6_wd_28d,
        sum(w.wd_90d) as res6_wd_90d
    from windows as w
    inner join cells as h on w.h3_cell = h.h3_cell
    group by 1, 2
),

terminals as (
    select
        c.h3_cell,
        c.feature_date,
        count(*)::integer as terminals_known
    from candidates as c
    inner join {{ ref('int_cell_terminals') }} as t
        on c.h3_cell = t.h3_cell and t.first_extract_date < c.feature_date
    group by 1, 2
),

holidays as (
    select holiday_date from {{ ref('holidays') }}
)

select
    c.h3_cell || ':' || c.feature_date as cell_day_key,
    c.h3_cell,
    c.feature_date,
    h.h3_res6,
    h.state,
    h.district,
    coalesce(w.wd_1d, 0) as wd_1d,
    coalesce(w.wd_7d, 0) as wd_7d,
    coalesce(w.wd_28d, 0) as wd_28d,
    coalesce(w.wd_90d, 0) as wd_90d,
    coalesce(w.wd_7d, 0) - coalesce(w.wd_prev_7d, 0) as wd_trend_7d,
    coalesce(w.wd_7d, 0) * 4.0 / nullif(coalesce(w.wd_28d, 0), 0) as wd_ratio_7d_28d,
    coalesce(w.amount_7d, 0) as amount_7d,
    coalesce(w.amount_28d, 0) as amount_28d,
    coalesce(c.feature_date - w.last_event_date, 365) as days_since_last_withdrawal,
    coalesce(r.ring1_wd_7d, 0) as ring1_wd_7d,
    coalesce(r.ring1_wd_28d, 0) as ring1_wd_28d,
    coalesce(r.ring1_wd_90d, 0) as ring1_wd_90d,
    coalesce(r.ring2_wd_7d, 0) as ring2_wd_7d,
    coalesce(r.ring2_wd_28d, 0) as ring2_wd_28d,
    coalesce(r.ring2_wd_90d, 0) as ring2_wd_90d,
    coalesce(pa.res6_wd_7d, 0) as res6_wd_7d,
    coalesce(pa.res6_wd_28d, 0) as res6_wd_28d,
    coalesce(pa.res6_wd_90d, 0) as res6_wd_90d,
    coalesce(t.terminals_known, 0) as terminals_known,
    coalesce(p.pressure_1d, 0) as pressure_1d,
    coalesce(p.pressure_weighted_1d, 0) as pressure_weighted_1d,
    coalesce(p.pressure_weighted_3d, 0) as pressure_weighted_3d,
    coalesce(p.pressure_weighted_7d, 0) as pressure_weighted_7d,
    coalesce(p.pressure_fresh_1d, 0) as pressure_fresh_1d,
    coalesce(p.pressure_fresh_3d, 0) as pressure_fresh_3d,
    coalesce(p.pressure_7d, 0) as pressure_7d,
    coalesce(p.pressure_28d, 0) as pressure_28d,
    coalesce(p.pressure_amount_7d, 0) as pressure_amount_7d,
    coalesce(p.pressure_accounts_max_7d, 0) as pressure_accounts_max_7d,
    coalesce(rp.ring1_pressure_7d, 0) as ring1_pressure_7d,
    coalesce(rp.ring2_pressure_7d, 0) as ring2_pressure_7d,
    coalesce(p.mix_payment_fraud / nullif(p.pressure_28d, 0), 0) as mix_payment_fraud,
    coalesce(p.mix_impersonation / nullif(p.pressure_28d, 0), 0) as mix_impersonation,
    coalesce(p.mix_scheme / nullif(p.pressure_28d, 0), 0) as mix_scheme,
    coalesce(p.mix_other / nullif(p.pressure_28d, 0), 0) as mix_other,
    extract(isodow from c.feature_date)::smallint as day_of_week,
    extract(day from c.feature_date)::smallint as day_of_month,
    (
        extract(day from c.feature_date) <= 2
        or c.feature_date + 3 > (date_trunc('month', c.feature_date) + interval '1 month')::date
    ) as is_month_end,
    exists (select 1 from holidays as hd where hd.holiday_date = c.feature_date) as is_holiday,
    now() as built_at
from candidates as c
inner join cells as h on c.h3_cell = h.h3_cell
left join windows as w on c.h3_cell = w.h3_cell and c.feature_date = w.feature_date
left join rings as r on c.h3_cell = r.h3_cell and c.feature_date = r.feature_date
left join parents as pa on h.h3_res6 = pa.h3_res6 and c.feature_date = pa.feature_date
left join terminals as t on c.h3_cell = t.h3_cell and c.feature_date = t.feature_date
left join pressure_windows as p on c.h3_cell = p.h3_cell and c.feature_date = p.feature_date
left join ring_pressure as rp on c.h3_cell = rp.h3_cell and c.feature_date = rp.feature_date
