{{ config(materialized='view') }}
-- Every registered res-8 cell (hotspots.geo.cells registers each cell a withdrawal can be
-- located in, before dbt builds) with its hexagon, parents, state and district: where a
-- forecast cell lies. A view, so a cell is here as soon as it is registered (dim_cells adds
-- activity and is rebuilt with the other marts). Grain: h3_cell.
select
    h3_cell,
    h3_res,
    h3_res7,
    h3_res6,
    h3_res5,
    state,
    district,
    lat,
    lon,
    geom
from {{ ref('stg_ref__h3_cells') }}
