{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    unique_key='withdrawal_id',
    indexes=[{'columns': ['withdrawal_id'], 'unique': true}, {'columns': ['extract_date']},
             {'columns': ['account']}, {'columns': ['h3_cell', 'withdrawn_date']}, {'columns': ['built_at']}],
) }}
-- Every withdrawal with where it happened, by the first rule that applies (located_by):
--   terminal     at a fixed terminal (channels in var fixed_terminal_channels: ATMs,
--                branches, shop tills), the terminal's position in the registry as known
--                in the extract the row first arrived in (int_terminal_registry; no
--                look-ahead): the consensus of its reports, which beats one report's
--                jittered coordinates;
--   coordinates  the row's own coordinates (after ingest's repairs); for mobile
--                terminals (AEPS, micro-ATMs) these come first, the device moves;
--   terminal     a mobile terminal's registry position, for a row without coordinates;
--   pincode      the centroid of its PIN code, the last resort;
--   null         none of these (h3_cell null; not counted anywhere).
-- Rows without usable coordinates (missing, or repaired at ingest: zero, outside India)
-- all go through the same rule. Grain: withdrawal_id.
with

withdrawals as (
    select
        *,
        channel in ({{ "'" ~ var('fixed_terminal_channels') | join("', '") ~ "'" }}) as fixed
    from {{ ref('stg_raw__withdrawals') }}
    {% if is_incremental() %}
        where
            extract_date >= {{ build_date_start('extract_date', 0) }}
            or latest_extract_date >= {{ build_date_start('extract_date', 0) }}
    {% endif %}
),

registry as (
    select * from {{ ref('int_terminal_registry') }}
)

select
    w.withdrawal_id,
    w.account,
    w.ack_no,
    w.channel,
    w.terminal_id,
    w.amount_inr,
    w.withdrawn_at,
    w.withdrawn_date,
    w.extract_date,
    w.latest_extract_date,
    w.pincode,
    case
        when w.fixed and t.h3_cell is not null then t.h3_cell
        else coalesce(w.coord_cell, t.h3_cell, w.pincode_cell)
    end as h3_cell,
    case
        when w.fixed and t.h3_cell is not null then 'terminal'
        when w.coord_cell is not null then 'coordinates'
        when t.h3_cell is not null then 'terminal'
        when w.pincode_cell is not null then 'pincode'
    end as located_by,
    case
        when w.fixed and t.h3_cell is not null then st_setsrid(st_makepoint(t.lon, t.lat), 4326)
        when w.coord_cell is not null then st_setsrid(st_makepoint(w.lon, w.lat), 4326)
        when t.h3_cell is not null then st_setsrid(st_makepoint(t.lon, t.lat), 4326)
        when w.pincode_lon is not null then st_setsrid(st_makepoint(w.pincode_lon, w.pincode_lat), 4326)
    end as geom,
    w.dq_flags,
    now() as built_at
from withdrawals as w
left join registry as t
    on
        w.terminal_id = t.terminal_id
        and {{ var('locate_by_terminal') }}
        and w.extract_date >= t.valid_from
        and w.extract_date < t.valid_to
