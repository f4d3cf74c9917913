{{ config(indexes=[{'columns': ['feature_date', 'h3_cell'], 'unique': true}, {'columns': ['built_at']}]) }}
-- How many terminals each candidate cell had been seen with in extracts dated before
-- feature_date. Grain: (h3_cell, feature_date), candidates with at least one.
with

bounds as (
    select {{ build_date_start() }} as first_date, {{ build_date_end() }} as last_date
),

candidates as (
    select c.h3_cell, c.feature_date
    from {{ ref('int_cell_candidates') }} as c, bounds as b
    where c.feature_date between b.first_date and b.last_date
)

select
    c.h3_cell,
    c.feature_date,
    count(*)::integer as terminals_known,
    now() as built_at
from candidates as c
inner join {{ ref('int_cell_terminals') }} as t
    on c.h3_cell = t.h3_cell and t.first_extract_date < c.feature_date
group by 1, 2
