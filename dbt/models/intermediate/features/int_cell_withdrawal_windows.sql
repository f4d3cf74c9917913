{{ config(indexes=[
    {'columns': ['feature_date', 'h3_cell'], 'unique': true}, {'columns': ['h3_cell']}, {'columns': ['built_at']},
]) }}
-- Withdrawals per cell over windows ending the day before feature_date, counting only
-- what had arrived in extracts dated before feature_date (records arrive days late;
-- counting by event date alone would leak). Grain: (h3_cell, feature_date), cells
-- with at least one such withdrawal in the last 90 days.
with

bounds as (
    select {{ build_date_start() }} as first_date, {{ build_date_end() }} as last_date
),

feature_dates as (
    select generate_series(first_date, last_date, interval '1 day')::date as feature_date
    from bounds
),

arrived as (
    select
        d.feature_date,
        a.h3_cell,
        a.event_date,
        a.n_withdrawals,
        a.amount_inr
    from feature_dates as d
    inner join {{ ref('int_withdrawals_arrived_by_cell') }} as a
        on
            a.extract_date < d.feature_date
            and a.event_date >= d.feature_date - {{ var('max_window_days') }}
            and a.event_date < d.feature_date
)

select
    h3_cell,
    feature_date,
    coalesce(sum(n_withdrawals) filter (where event_date >= feature_date - 1), 0)::integer as wd_1d,
    coalesce(sum(n_withdrawals) filter (where event_date >= feature_date - 7), 0)::integer as wd_7d,
    coalesce(sum(n_withdrawals) filter (where event_date >= feature_date - 28), 0)::integer as wd_28d,
    sum(n_withdrawals)::integer as wd_90d,
    coalesce(sum(n_withdrawals) filter (
        where event_date between feature_date - 14 and feature_date - 8
    ), 0)::integer as wd_prev_7d,
    coalesce(sum(amount_inr) filter (where event_date >= feature_date - 7), 0) as amount_7d,
    coalesce(sum(amount_inr) filter (where event_date >= feature_date - 28), 0) as amount_28d,
    sum(amount_inr) as amount_90d,
    max(event_date) as last_event_date,
    now() as built_at
from arrived
group by 1, 2
