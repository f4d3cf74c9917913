{{ config(indexes=[{'columns': ['feature_date', 'h3_res6'], 'unique': true}, {'columns': ['built_at']}]) }}
-- Withdrawal windows summed over each res-6 parent cell (about 7 x 7 res-8 cells), for the
-- same feature_date. Grain: (h3_res6, feature_date).
with

bounds as (
    select {{ build_date_start() }} as first_date, {{ build_date_end() }} as last_date
),

windows as (
    select w.*
    from {{ ref('int_cell_withdrawal_windows') }} as w, bounds as b
    where w.feature_date between b.first_date and b.last_date
),

cells as (
    select * from {{ ref('stg_ref__h3_cells') }}
)

select
    h.h3_res6,
    w.feature_date,
    sum(w.wd_7d) as res6_wd_7d,
    sum(w.wd_28d) as res6_wd_28d,
    sum(w.wd_90d) as res6_wd_90d,
    now() as built_at
from windows as w
inner join cells as h on w.h3_cell = h.h3_cell
group by 1, 2
