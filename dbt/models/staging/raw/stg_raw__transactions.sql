with

source as (
    select * from {{ source('raw', 'transactions') }}
),

renamed as (
    select
        txn_id,
        ack_no,
        layer,
        from_account,
        to_account,
        to_ifsc,
        amount_inr::double precision as amount_inr,
        txn_at,
        (txn_at at time zone 'Asia/Kolkata')::date as txn_date,
        status,
        first_extract_date as extract_date,
        extract_date as latest_extract_date
    from source
)

select * from renamed
