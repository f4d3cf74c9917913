-- Every H3 res-8 cell that has had a located withdrawal (and so a terminal), with its
-- hexagon, parents, state and district (from the nearest India Post office, not from
-- free text). Grain: h3_cell.
with

cells as (
    select * from {{ ref('stg_ref__h3_cells') }}
),

activity as (
    select
        h3_cell,
        min(withdrawn_date) as first_withdrawal_date,
        max(withdrawn_date) as last_withdrawal_date,
        min(extract_date) as first_extract_date,
        count(*)::integer as n_withdrawals,
        count(distinct terminal_id)::integer as n_terminals
    from {{ ref('int_withdrawals_located') }}
    where h3_cell is not null
    group by 1
)

select
    c.h3_cell,
    c.h3_res,
    c.h3_res7,
    c.h3_res6,
    c.h3_res5,
    c.state,
    c.district,
    a.first_withdrawal_date,
    a.last_withdrawal_date,
    a.first_extract_date,
    coalesce(a.n_withdrawals, 0) as n_withdrawals,
    coalesce(a.n_terminals, 0) as n_terminals,
    c.geom,
    st_asgeojson(c.geom) as geojson
from cells as c
left join activity as a on c.h3_cell = a.h3_cell
