{{ config(indexes=[{'columns': ['feature_date', 'h3_cell'], 'unique': true}, {'columns': ['built_at']}]) }}
-- Withdrawals and complaint pressure around each candidate cell: sums over its registered
-- neighbours at k = 1 (ring1_*) and k <= 2 (ring2_*), of their windows for the same
-- feature_date. Null where no neighbour has any. Grain: (h3_cell, feature_date).
with

bounds as (
    select {{ build_date_start() }} as first_date, {{ build_date_end() }} as last_date
),

candidates as (
    select c.h3_cell, c.feature_date
    from {{ ref('int_cell_candidates') }} as c, bounds as b
    where c.feature_date between b.first_date and b.last_date
),

neighbours as (
    select * from {{ ref('stg_ref__h3_neighbours') }}
),

windows as (
    select w.*
    from {{ ref('int_cell_withdrawal_windows') }} as w, bounds as b
    where w.feature_date between b.first_date and b.last_date
),

pressure as (
    select p.*
    from {{ ref('int_cell_pressure_windows') }} as p, bounds as b
    where p.feature_date between b.first_date and b.last_date
),

ring_withdrawals as (
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
    inner join pressure as p on n.neighbour_cell = p.h3_cell and c.feature_date = p.feature_date
    group by 1, 2
)

select
    coalesce(w.h3_cell, p.h3_cell) as h3_cell,
    coalesce(w.feature_date, p.feature_date) as feature_date,
    w.ring1_wd_7d,
    w.ring1_wd_28d,
    w.ring1_wd_90d,
    w.ring2_wd_7d,
    w.ring2_wd_28d,
    w.ring2_wd_90d,
    p.ring1_pressure_7d,
    p.ring2_pressure_7d,
    now() as built_at
from ring_withdrawals as w
full outer join ring_pressure as p on w.h3_cell = p.h3_cell and w.feature_date = p.feature_date
