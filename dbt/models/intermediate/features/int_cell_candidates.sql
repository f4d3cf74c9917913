{{ config(indexes=[{'columns': ['feature_date', 'h3_cell'], 'unique': true}, {'columns': ['built_at']}]) }}
-- The cells the forecast of feature_date covers (every other cell is taken as zero risk):
-- cells with an arrived withdrawal in the last 90 days, their ring-1 neighbours that had
-- a withdrawal arrive before feature_date, and cells under complaint pressure in the last
-- 7 days. Grain: (h3_cell, feature_date).
with

bounds as (
    select {{ build_date_start() }} as first_date, {{ build_date_end() }} as last_date
),

windows as (
    select w.h3_cell, w.feature_date
    from {{ ref('int_cell_withdrawal_windows') }} as w, bounds as b
    where w.feature_date between b.first_date and b.last_date
),

pressure as (
    select p.h3_cell, p.feature_date, p.pressure_7d
    from {{ ref('int_cell_pressure_windows') }} as p, bounds as b
    where p.feature_date between b.first_date and b.last_date
),

neighbours as (
    select * from {{ ref('stg_ref__h3_neighbours') }}
    where k = 1
),

cell_first_seen as (
    select h3_cell, min(extract_date) as first_extract_date
    from {{ ref('int_withdrawals_arrived_by_cell') }}
    group by 1
)

select h3_cell, feature_date, now() as built_at
from (
    select h3_cell, feature_date from windows
    union
    select n.neighbour_cell, w.feature_date
    from windows as w
    inner join neighbours as n on w.h3_cell = n.h3_cell
    inner join cell_first_seen as f
        on n.neighbour_cell = f.h3_cell and f.first_extract_date < w.feature_date
    union
    select h3_cell, feature_date from pressure
    where pressure_7d > 0
) as candidates
