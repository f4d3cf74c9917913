{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    unique_key='feature_date',
    indexes=[{'columns': ['feature_date', 'h3_cell'], 'unique': true}, {'columns': ['built_at']}],
) }}
-- Daily features per candidate cell for the forecast of feature_date, from what had
-- arrived in extracts dated before feature_date only: one row per candidate
-- (int_cell_candidates) with its place, its own withdrawal and pressure windows, its
-- rings, its res-6 parent, its terminals and the calendar. Every rule lives in the
-- intermediate model it names; this model joins them and fills absences with zero.
-- Grain: (h3_cell, feature_date). docs/features.md lists the columns.
--
-- Built with the daily path (dbt ls +fct_cell_daily_features, build_features' dbt_features
-- group), so that forecasting finds its other inputs as soon as the features are published:
-- depends_on: {{ ref('fct_withdrawal_arrivals') }}, {{ ref('dim_cell_neighbours') }}, {{ ref('dim_registered_cells') }}
with

bounds as (
    select {{ build_date_start(requires=['pressure_fresh_3d']) }} as first_date, {{ build_date_end() }} as last_date
),

candidates as (
    select x.*
    from {{ ref('int_cell_candidates') }} as x, bounds as b
    where x.feature_date between b.first_date and b.last_date
),

windows as (
    select x.*
    from {{ ref('int_cell_withdrawal_windows') }} as x, bounds as b
    where x.feature_date between b.first_date and b.last_date
),

pressure as (
    select x.*
    from {{ ref('int_cell_pressure_windows') }} as x, bounds as b
    where x.feature_date between b.first_date and b.last_date
),

rings as (
    select x.*
    from {{ ref('int_cell_ring_windows') }} as x, bounds as b
    where x.feature_date between b.first_date and b.last_date
),

parents as (
    select x.*
    from {{ ref('int_parent_withdrawal_windows') }} as x, bounds as b
    where x.feature_date between b.first_date and b.last_date
),

terminals as (
    select x.*
    from {{ ref('int_cell_terminals_known') }} as x, bounds as b
    where x.feature_date between b.first_date and b.last_date
),

cells as (
    select * from {{ ref('stg_ref__h3_cells') }}
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
    coalesce(r.ring1_pressure_7d, 0) as ring1_pressure_7d,
    coalesce(r.ring2_pressure_7d, 0) as ring2_pressure_7d,
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
    exists(
        select 1 from holidays as hd
        where hd.holiday_date = c.feature_date
    ) as is_holiday,
    now() as built_at
from candidates as c
inner join cells as h on c.h3_cell = h.h3_cell
left join windows as w on c.h3_cell = w.h3_cell and c.feature_date = w.feature_date
left join rings as r on c.h3_cell = r.h3_cell and c.feature_date = r.feature_date
left join parents as pa on h.h3_res6 = pa.h3_res6 and c.feature_date = pa.feature_date
left join terminals as t on c.h3_cell = t.h3_cell and c.feature_date = t.feature_date
left join pressure as p on c.h3_cell = p.h3_cell and c.feature_date = p.feature_date
