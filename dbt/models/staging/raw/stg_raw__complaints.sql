with

source as (
    select * from {{ source('raw', 'complaints') }}
),

renamed as (
    select
        ack_no,
        category,
        status,
        amount_lost_inr::double precision as amount_lost_inr,
        reported_at,
        incident_at,
        updated_at,
        (reported_at at time zone 'Asia/Kolkata')::date as reported_date,
        victim_pincode,
        victim_h3_cell,
        victim_mobile_hash,
        case
            when victim_lon is not null
                then st_setsrid(st_makepoint(victim_lon, victim_lat), 4326)
        end as victim_geom,
        first_extract_date as extract_date,
        extract_date as latest_extract_date,
        dq_flags
    from source
)

select * from renamed
