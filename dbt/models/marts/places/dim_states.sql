-- State and UT outlines from the same directory. Grain: state.
select
    state,
    count(*)::integer as n_post_offices,
    count(distinct district)::integer as n_districts,
    st_multi(
        st_buffer(st_concavehull(st_collect(geom), 0.3), 0.02)
    )::geometry(MultiPolygon, 4326) as geom  -- noqa: LT01, CP01
from {{ ref('stg_ref__post_offices') }}
group by 1
