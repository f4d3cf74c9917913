{{ config(indexes=[{'columns': ['feature_date', 'h3_cell'], 'unique': true}, {'columns': ['built_at']}]) }}
-- Complaint pressure on a cell over windows ending the day before feature_date (1, 3, 7
-- and 28 days of arrivals; int_cell_pressure_daily is keyed by the extract the money
-- arrived in, so only what had arrived before feature_date counts), and the 28-day
-- category mix. Grain: (h3_cell, feature_date), cells with pressure in the last 28 days.
with

bounds as (
    select {{ build_date_start() }} as first_date, {{ build_date_end() }} as last_date
),

feature_dates as (
    select generate_series(first_date, last_date, interval '1 day')::date as feature_date from bounds
),

pressure as (
    select * from {{ ref('int_cell_pressure_daily') }}
)

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
    sum(p.pressure_other) filter (where p.arrival_date >= d.feature_date - 28) as mix_other,
    now() as built_at
from feature_dates as d
inner join pressure as p
    on p.arrival_date < d.feature_date and p.arrival_date >= d.feature_date - 28
group by 1, 2
