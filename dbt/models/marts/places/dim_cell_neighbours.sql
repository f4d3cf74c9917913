{{ config(materialized='view') }}
-- Pairs of registered cells within two rings of each other (k = 1 or 2), both directions.
-- Grain: (h3_cell, neighbour_cell).
select
    h3_cell,
    neighbour_cell,
    k
from {{ ref('stg_ref__h3_neighbours') }}
