-- Withdrawals located by their coordinates, or else by their PIN code's centroid
-- (located_by says which; null when neither is usable). The one join in staging:
-- a look-up of the reference directory, not a business join.
with

source as (
    select * from {{ source('raw', 'withdrawals') }}
),

pincodes as (
    select * from {{ source('ref', 'pincodes') }}
),

renamed as (
    select
        w.withdrawal_id,
        w.account,
        w.ack_no,
        w.channel,
        w.terminal_id,
        w.amount_inr::double precision as amount_inr,
        w.withdrawn_at,
        (w.withdrawn_at at time zone 'Asia/Kolkata')::date as withdrawn_date,
        w.first_extract_date as extract_date,
        w.extract_date as latest_extract_date,
        w.pincode,
        coalesce(w.h3_cell, p.h3_cell) as h3_cell,
        case
            when w.h3_cell is not null then 'coordinates'
            when p.h3_cell is not null then 'pincode'
        end as located_by,
        case
            when w.lon is not null then st_setsrid(st_makepoint(w.lon, w.lat), 4326)
            when p.lon is not null then st_setsrid(st_makepoint(p.lon, p.lat), 4326)
        end as geom,
        w.dq_flags
    from source as w
    left join pincodes as p on w.pincode = p.pincode
)

select * from renamed
