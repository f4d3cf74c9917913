{{ config(indexes=[{'columns': ['feature_date', 'h3_cell'], 'unique': true}, {'columns': ['built_at']}]) }}
-- Complaint pressure on a cell over windows ending the day before feature_date (1, 3, 7
-- and 28 days of arrivals; int_cell_pressure_daily is keyed by the extract the money
-- arrived in, so only what had arrived before feature_date counts), and the 28-day
-- category mix. Grain: (h3_cell, feature_date), cells with pressure in the last 28 days.
--
-- Two ways to the same rows. An incremental run (a few new feature dates) joins each date to
-- the arrivals of its 28 days and sums them. A full build would join every date to its 28
-- days (29 M joined rows at two years); it reads each daily row once instead: an arrival on
-- day a counts from feature date a + 1, so the windows are frames over a cell's feature dates
-- (1 day: the date itself; 3, 7, 28 days: the date and the 2, 6, 27 before it). A window with
-- no arrival in it is NULL, as the sum of nothing. Both sum in the order of the arrival days,
-- so their floating-point sums are the same to the last bit. (For one new national date the
-- frames spread 28 days of arrivals over 230 k generated dates, 3.4 s; the join makes 73 k
-- rows, 0.8-0.95 s.)
{%- set first_date = build_date_start() %}
{%- set last_date = build_date_end() %}
with

bounds as (
    select {{ first_date }} as first_date, {{ last_date }} as last_date
),

-- An incremental run: each new feature date joined to the arrivals of its 28 days.
feature_dates as (
    select generate_series(first_date, last_date, interval '1 day')::date as feature_date
    from bounds
),

arrived as (
    select
        d.feature_date,
        p.*
    from {{ ref('int_cell_pressure_daily') }} as p
    inner join feature_dates as d
        on p.arrival_date >= d.feature_date - 28 and p.arrival_date < d.feature_date
    -- The bounds as values, for the planner (an index scan of the few days read).
    where p.arrival_date >= {{ first_date }} - 28 and p.arrival_date < {{ last_date }}
),

-- The incremental run's result (the final select picks one of the two).
by_date as (  -- noqa: ST03
    select
        h3_cell,
        feature_date,
        max(pressure_transfers) filter (where arrival_date = feature_date - 1) as pressure_1d,
        max(pressure_weighted) filter (where arrival_date = feature_date - 1) as pressure_weighted_1d,
        sum(pressure_weighted order by arrival_date) filter (
            where arrival_date >= feature_date - 3
        ) as pressure_weighted_3d,
        sum(pressure_weighted order by arrival_date) filter (
            where arrival_date >= feature_date - 7
        ) as pressure_weighted_7d,
        max(pressure_fresh) filter (where arrival_date = feature_date - 1) as pressure_fresh_1d,
        sum(pressure_fresh order by arrival_date) filter (where arrival_date >= feature_date - 3) as pressure_fresh_3d,
        sum(pressure_transfers order by arrival_date) filter (where arrival_date >= feature_date - 7) as pressure_7d,
        sum(pressure_transfers order by arrival_date) as pressure_28d,
        sum(pressure_amount_inr order by arrival_date) filter (
            where arrival_date >= feature_date - 7
        ) as pressure_amount_7d,
        max(pressure_accounts) filter (where arrival_date >= feature_date - 7) as pressure_accounts_max_7d,
        sum(pressure_payment_fraud order by arrival_date) as mix_payment_fraud,
        sum(pressure_impersonation order by arrival_date) as mix_impersonation,
        sum(pressure_scheme order by arrival_date) as mix_scheme,
        sum(pressure_other order by arrival_date) as mix_other
    from arrived
    group by 1, 2
),

-- A full build: each daily row read once.

-- The arrivals the built dates can see, each with the cell's next arrival.
arrivals as (
    select
        p.*,
        lead(p.arrival_date) over (partition by p.h3_cell order by p.arrival_date) as next_arrival_date
    from {{ ref('int_cell_pressure_daily') }} as p
    cross join bounds as b
    where p.arrival_date >= b.first_date - 28 and p.arrival_date < b.last_date
),

-- A cell's feature dates with an arrival in their 28 days, each once: a date belongs to the
-- latest arrival before it (from the day after that arrival up to the next arrival or 28
-- days on, whichever comes first); only the day after an arrival carries its values.
dates as (
    select
        a.*,
        d.feature_date::date as feature_date,
        d.feature_date = a.arrival_date + 1 as arrived
    from arrivals as a
    cross join
        lateral generate_series(
            a.arrival_date + 1, least(a.next_arrival_date, a.arrival_date + 28), interval '1 day'
        ) as d (feature_date)
),

windows as (
    select
        h3_cell,
        feature_date,
        case when arrived then pressure_transfers end as pressure_1d,
        case when arrived then pressure_weighted end as pressure_weighted_1d,
        sum(pressure_weighted) filter (where arrived) over last_3 as pressure_weighted_3d,
        sum(pressure_weighted) filter (where arrived) over last_7 as pressure_weighted_7d,
        case when arrived then pressure_fresh end as pressure_fresh_1d,
        sum(pressure_fresh) filter (where arrived) over last_3 as pressure_fresh_3d,
        sum(pressure_transfers) filter (where arrived) over last_7 as pressure_7d,
        sum(pressure_transfers) filter (where arrived) over last_28 as pressure_28d,
        sum(pressure_amount_inr) filter (where arrived) over last_7 as pressure_amount_7d,
        max(pressure_accounts) filter (where arrived) over last_7 as pressure_accounts_max_7d,
        sum(pressure_payment_fraud) filter (where arrived) over last_28 as mix_payment_fraud,
        sum(pressure_impersonation) filter (where arrived) over last_28 as mix_impersonation,
        sum(pressure_scheme) filter (where arrived) over last_28 as mix_scheme,
        sum(pressure_other) filter (where arrived) over last_28 as mix_other
    from dates
    window
        cell_dates as (partition by h3_cell order by feature_date),
        last_3 as (cell_dates range between interval '2 days' preceding and current row),
        last_7 as (cell_dates range between interval '6 days' preceding and current row),
        last_28 as (cell_dates range between interval '27 days' preceding and current row)
),

-- A full build's result.
by_frame as (  -- noqa: ST03
    select w.*
    from windows as w
    cross join bounds as b
    where w.feature_date between b.first_date and b.last_date
)

select
    *,
    now() as built_at
from {{ 'by_date' if is_incremental() else 'by_frame' }}
