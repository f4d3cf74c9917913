with

source as (
    select * from {{ source('ref', 'h3_neighbours') }}
),

renamed as (
    select h3_cell, neighbour as neighbour_cell, k from source
)

select * from renamed
