-- District outlines approximated from the India Post directory (concave hull of its
-- post offices, slightly buffered), so maps have context without an online base map.
-- Grain: (state, district).
select
    state,
    district,
    count(*)::integer as n_post_offices,
    st_multi(
        st_buffer(st_concavehull(st_collect(geom), 0.3), 0.02)
    )::geometry(MultiPolygon, 4326) as geom  -- noqa: LT01, CP01
from {{ ref('stg_ref__post_offices') }}
group by 1, 2
