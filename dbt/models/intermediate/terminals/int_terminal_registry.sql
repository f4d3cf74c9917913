{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    unique_key='terminal_id',
    indexes=[{'columns': ['terminal_id', 'valid_from'], 'unique': true}, {'columns': ['built_at']}],
) }}
-- Where each terminal is, as known from each extract date on: the res-8 cell most of its
-- reports with good coordinates fell in (repaired swaps included; ties go to the cell
-- seen first), and the mean position of those reports. A report counts from the extract
-- it first arrived in, so a location is usable from the first extract that reported it
-- and never before (no look-ahead). One row per terminal and change of cell, valid from
-- valid_from (inclusive) to valid_to (exclusive). Grain: (terminal_id, valid_from).
-- Incremental: the terminals with located reports in newly loaded extracts are
-- recomputed whole (delete+insert on terminal_id).
with

{% if is_incremental() %}
touched as (
    select distinct terminal_id
    from {{ ref('stg_raw__withdrawals') }}
    where
        terminal_id is not null and coord_cell is not null
        and (extract_date >= {{ build_date_start('valid_from', 0) }}
             or latest_extract_date >= {{ build_date_start('valid_from', 0) }})
),
{% endif %}

reports as (
    select
        w.terminal_id,
        w.coord_cell as h3_cell,
        w.extract_date,
        count(*) as n,
        -- Exact sums (numeric): a float sum depends on the order its rows come in, which a
        -- parallel plan varies from run to run (incremental and full refresh differed in the
        -- last bit of a position under load).
        sum(w.lat::numeric) as sum_lat,
        sum(w.lon::numeric) as sum_lon
    from {{ ref('stg_raw__withdrawals') }} as w
    {% if is_incremental() %}
        inner join touched as t on w.terminal_id = t.terminal_id
    {% endif %}
    where w.terminal_id is not null and w.coord_cell is not null
    group by 1, 2, 3
),

report_dates as (
    select distinct terminal_id, extract_date from reports
),

terminal_cells as (
    select terminal_id, h3_cell, min(extract_date) as first_seen
    from reports
    group by 1, 2
),

-- Every cell a terminal has been reported in, at every extract date that brought reports
-- of it, with the running count of reports in that cell.
running as (
    select
        d.terminal_id,
        d.extract_date,
        c.h3_cell,
        c.first_seen,
        sum(coalesce(r.n, 0)) over by_cell as n_known,
        sum(coalesce(r.sum_lat, 0)) over by_cell as lat_known,
        sum(coalesce(r.sum_lon, 0)) over by_cell as lon_known
    from report_dates as d
    inner join terminal_cells as c
        on d.terminal_id = c.terminal_id and c.first_seen <= d.extract_date
    left join reports as r
        on d.terminal_id = r.terminal_id and c.h3_cell = r.h3_cell and d.extract_date = r.extract_date
    window by_cell as (partition by d.terminal_id, c.h3_cell order by d.extract_date)
),

modal as (
    select
        *,
        row_number() over by_date as rank_in_date,
        sum(n_known) over (partition by terminal_id, extract_date) as reports_known,
        count(*) over (partition by terminal_id, extract_date) as cells_seen
    from running
    window by_date as (partition by terminal_id, extract_date order by n_known desc, first_seen asc, h3_cell asc)
),

changes as (
    select
        *,
        lag(h3_cell) over (partition by terminal_id order by extract_date) as previous_cell
    from modal
    where rank_in_date = 1
),

kept as (
    select * from changes
    where previous_cell is distinct from h3_cell
)

select
    terminal_id,
    extract_date as valid_from,
    coalesce(lead(extract_date) over (partition by terminal_id order by extract_date), date '9999-12-31')
        as valid_to,
    h3_cell,
    (lat_known / n_known)::double precision as lat,
    (lon_known / n_known)::double precision as lon,
    n_known::integer as reports_in_cell,
    reports_known::integer as reports_known,
    cells_seen::integer as cells_seen,
    now() as built_at
from kept
