-- What happened: located withdrawals per candidate cell on feature_date (horizon 1)
-- and on feature_date .. feature_date + 6 (horizon 7), as known to the warehouse now.
-- For training and evaluation only; never joined into features.
-- Grain: (h3_cell, feature_date), the rows of fct_cell_daily_features.
with

daily as (
    select h3_cell, withdrawn_date, count(*)::integer as n
    from {{ ref('int_withdrawals_located') }}
    where h3_cell is not null
    group by h3_cell, withdrawn_date
),

last_extract as (
    select max(extract_date) as last_extract_date
    from {{ source('ingest', 'extract_ledger') }}
    where status = 'loaded'
)

select
    f.cell_day_key,
    f.h3_cell,
    f.feature_date,
    coalesce(sum(d.n) filter (where d.withdrawn_date = f.feature_date), 0)::integer as y_1d,
    coalesce(sum(d.n), 0)::integer as y_7d,
    f.feature_date <= l.last_extract_date as y_1d_observed,
    f.feature_date + 6 <= l.last_extract_date as y_7d_observed
from {{ ref('fct_cell_daily_features') }} as f
cross join last_extract as l
left join daily as d
    on
        f.h3_cell = d.h3_cell
        and d.withdrawn_date between f.feature_date and f.feature_date + 6
group by f.cell_day_key, f.h3_cell, f.feature_date, l.last_extract_date
