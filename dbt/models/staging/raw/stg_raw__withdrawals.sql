-- Withdrawals as delivered, with the two locations staging can give on its own: the
-- res-8 cell of the reported coordinates (coord_cell, computed at ingest; null when the
-- row had none usable: missing, zero or outside India, which ingest repairs to null)
-- and the cell of the PIN code's centroid (pincode_cell). Where a withdrawal happened
-- is decided downstream, in int_withdrawals_located, with the terminal registry between
-- the two. The one join in staging: a look-up of the reference directory.
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
        nullif(trim(w.terminal_id), '') as terminal_id,
        w.amount_inr::double precision as amount_inr,
        w.withdrawn_at,
        (w.withdrawn_at at time zone 'Asia/Kolkata')::date as withdrawn_date,
        w.first_extract_date as extract_date,
        w.extract_date as latest_extract_date,
        w.pincode,
        w.h3_cell as coord_cell,
        case when w.h3_cell is not null then w.lat end as lat,
        case when w.h3_cell is not null then w.lon end as lon,
        p.h3_cell as pincode_cell,
        p.lat as pincode_lat,
        p.lon as pincode_lon,
        w.dq_flags
    from source as w
    left join pincodes as p on w.pincode = p.pincode
)

select * from renamed
