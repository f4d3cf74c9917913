-- The terminal registry as known now: every terminal ever reported, where it is (the
-- registry's current cell, with the cell's district and state), its channel, the banks
-- whose accounts withdrew there (4-letter IFSC prefixes of the branches that received
-- those accounts' complaint money), first and last seen, and how its withdrawals were
-- located. Terminals never reported with usable coordinates have no cell.
-- Grain: terminal_id.
with

withdrawals as (
    select * from {{ ref('int_withdrawals_located') }}
    where terminal_id is not null
),

current_position as (
    select terminal_id, h3_cell, lat, lon, reports_known, cells_seen, valid_from as located_since
    from {{ ref('int_terminal_registry') }}
    where valid_to = date '9999-12-31'
),

account_banks as (
    select distinct to_account as account, left(to_ifsc, 4) as bank
    from {{ ref('stg_raw__transactions') }}
    where to_ifsc is not null
),

banks as (
    select w.terminal_id, array_agg(distinct b.bank order by b.bank) as banks
    from (select distinct terminal_id, account from withdrawals) as w
    inner join account_banks as b on w.account = b.account
    group by 1
),

activity as (
    select
        terminal_id,
        mode() within group (order by channel) as channel,
        min(extract_date) as first_extract_date,
        max(latest_extract_date) as last_extract_date,
        min(withdrawn_at) as first_withdrawn_at,
        max(withdrawn_at) as last_withdrawn_at,
        count(*)::integer as n_withdrawals,
        (count(*) filter (where located_by = 'coordinates'))::integer as n_by_coordinates,
        (count(*) filter (where located_by = 'terminal'))::integer as n_by_terminal,
        (count(*) filter (where located_by = 'pincode'))::integer as n_by_pincode,
        (count(*) filter (where located_by is null))::integer as n_unlocated
    from withdrawals
    group by 1
)

select
    a.terminal_id,
    a.channel,
    p.h3_cell,
    c.state,
    c.district,
    p.lat,
    p.lon,
    p.located_since,
    coalesce(p.reports_known, 0) as reports_with_coordinates,
    coalesce(p.cells_seen, 0) as cells_seen,
    coalesce(b.banks, '{}'::text[]) as banks,
    a.first_extract_date,
    a.last_extract_date,
    a.first_withdrawn_at,
    a.last_withdrawn_at,
    a.n_withdrawals,
    a.n_by_coordinates,
    a.n_by_terminal,
    a.n_by_pincode,
    a.n_unlocated,
    case when p.lon is not null then st_setsrid(st_makepoint(p.lon, p.lat), 4326) end as geom
from activity as a
left join current_position as p on a.terminal_id = p.terminal_id
left join banks as b on a.terminal_id = b.terminal_id
left join {{ ref('stg_ref__h3_cells') }} as c on p.h3_cell = c.h3_cell
