with

source as (
    select * from {{ source('ref', 'h3_cells') }}
),

renamed as (
    select
        h3_cell,
        8::smallint as h3_res,
        h3_res7,
        h3_res6,
        h3_res5,
        state,
        district,
        lat,
        lon,
        geom
    from source
)

select * from renamed
