with

source as (
    select * from {{ source('ref', 'post_offices') }}
),

renamed as (
    select pincode, office_name, office_type, state, district, geom from source
)

select * from renamed
