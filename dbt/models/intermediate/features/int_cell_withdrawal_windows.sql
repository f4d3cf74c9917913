{{ config(indexes=[
    {'columns': ['feature_date', 'h3_cell'], 'unique': true}, {'columns': ['h3_cell']}, {'columns': ['built_at']},
]) }}
-- Withdrawals per cell over windows ending the day before feature_date, counting only
-- what had arrived in extracts dated before feature_date (records arrive days late;
-- counting by event date alone would leak). Grain: (h3_cell, feature_date), cells
-- with at least one such withdrawal in the last 90 days.
--
-- Two ways to the same rows. An incremental run (a few new feature dates) joins each date
-- to the arrivals of its 90 days. A full build would join every date to its 90 days of
-- arrivals (two years: 730 dates x 1.2 M arrivals, 100 M joined rows); it reads each
-- arrival once instead. An arrival of event day e in the extract of day x counts for a
-- window of k days at the feature dates D with x < D, e < D and e >= D - k: from
-- s = greatest(x, e) + 1 to e + k. So it adds its count on day s and takes it back on day
-- e + k + 1, and a window's value on a day is the running sum of those changes per cell.
with

bounds as (
    select {{ build_date_start() }} as first_date, {{ build_date_end() }} as last_date
),

-- An incremental run: each new feature date joined to its arrivals.
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
),

-- The incremental run's result (the final select picks one of the two).
by_date as (  -- noqa: ST03
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
        max(event_date) as last_event_date
    from arrived
    group by 1, 2
),

-- A full build: each arrival read once, its changes to the windows summed per cell.
arrivals as (
    select
        h3_cell,
        event_date,
        greatest(extract_date, event_date) + 1 as first_counted,
        n_withdrawals,
        -- Exact running sums (a float sum that adds and takes back leaves residues).
        amount_inr::numeric as amount_inr
    from {{ ref('int_withdrawals_arrived_by_cell') }}
),

-- Per arrival and window: the feature dates it counts for, from its first day to its last
-- (window 'prev_7' is days 8 to 14 before the feature date); none when it arrived too late.
spans as (
    select
        a.h3_cell,
        a.event_date,
        a.n_withdrawals,
        a.amount_inr,
        w.window_name,
        w.first_day,
        w.last_day
    from arrivals as a
    cross join
        lateral (
            values
            ('1', a.first_counted, a.event_date + 1),
            ('7', a.first_counted, a.event_date + 7),
            ('28', a.first_counted, a.event_date + 28),
            ('90', a.first_counted, a.event_date + {{ var('max_window_days') }}),
            ('prev_7', greatest(a.first_counted, a.event_date + 8), a.event_date + 14)
        ) as w (window_name, first_day, last_day)
    where w.first_day <= w.last_day
),

-- A span adds its count on its first day and takes it back the day after its last.
changes as (
    select
        s.h3_cell,
        c.change_date,
        s.window_name,
        c.sign * s.n_withdrawals as n_withdrawals,
        c.sign * s.amount_inr as amount_inr,
        case when s.window_name = '90' and c.sign = 1 then s.event_date end as started_event_date
    from spans as s
    cross join lateral (values (s.first_day, 1), (s.last_day + 1, -1)) as c (change_date, sign)
),

daily as (
    select
        h3_cell,
        change_date,
        sum(n_withdrawals) filter (where window_name = '1') as n_1,
        sum(n_withdrawals) filter (where window_name = '7') as n_7,
        sum(n_withdrawals) filter (where window_name = '28') as n_28,
        sum(n_withdrawals) filter (where window_name = '90') as n_90,
        sum(n_withdrawals) filter (where window_name = 'prev_7') as n_prev_7,
        sum(amount_inr) filter (where window_name = '7') as amount_7,
        sum(amount_inr) filter (where window_name = '28') as amount_28,
        sum(amount_inr) filter (where window_name = '90') as amount_90,
        max(started_event_date) as started_event_date
    from changes
    group by 1, 2
),

-- The windows' values from each change date until the cell's next one. The latest event
-- counted is the latest of the arrivals started by then: each of them happened before the
-- day, so when any is still in the 90 days the latest is.
running as (
    select
        h3_cell,
        change_date,
        lead(change_date) over by_day as next_change_date,
        coalesce(sum(n_1) over by_day, 0) as wd_1d,
        coalesce(sum(n_7) over by_day, 0) as wd_7d,
        coalesce(sum(n_28) over by_day, 0) as wd_28d,
        coalesce(sum(n_90) over by_day, 0) as wd_90d,
        coalesce(sum(n_prev_7) over by_day, 0) as wd_prev_7d,
        coalesce(sum(amount_7) over by_day, 0) as amount_7d,
        coalesce(sum(amount_28) over by_day, 0) as amount_28d,
        coalesce(sum(amount_90) over by_day, 0) as amount_90d,
        max(started_event_date) over by_day as last_event_date
    from daily
    -- (h3_cell, change_date) is unique here: the default frame (up to the current row) sums the
    -- changes so far.
    window by_day as (partition by h3_cell order by change_date)
),

-- A full build's result.
by_change as (  -- noqa: ST03
    select
        r.h3_cell,
        d.feature_date::date as feature_date,
        r.wd_1d::integer as wd_1d,
        r.wd_7d::integer as wd_7d,
        r.wd_28d::integer as wd_28d,
        r.wd_90d::integer as wd_90d,
        r.wd_prev_7d::integer as wd_prev_7d,
        r.amount_7d::double precision as amount_7d,
        r.amount_28d::double precision as amount_28d,
        r.amount_90d::double precision as amount_90d,
        r.last_event_date
    from running as r
    cross join bounds as b
    cross join
        lateral generate_series(
            greatest(r.change_date, b.first_date),
            least(coalesce(r.next_change_date - 1, b.last_date), b.last_date),
            interval '1 day'
        ) as d (feature_date)
    where r.wd_90d > 0
)

select
    *,
    now() as built_at
from {{ 'by_date' if is_incremental() else 'by_change' }}
