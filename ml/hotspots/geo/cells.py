"""Registers H3 res-8 cells in ref.h3_cells / ref.h3_neighbours.

PostgreSQL has no H3 extension in Debian's packages, so the hexagon, the parent
cells and the k-ring neighbours are computed here with the h3 library, for every
cell a withdrawal can be located in that is not registered yet. State and district
come from the nearest India Post office.

Where a withdrawal is located is decided in one place, dbt's int_withdrawals_located
(a fixed terminal's registry position, else the row's coordinates, else a mobile
terminal's position, else the PIN centroid). This runs before dbt and does not choose:
it registers every cell that rule can pick, the cell of each row's coordinates (a
terminal's position is one of these) and, for a row without coordinates, its PIN
centroid's cell. dbt's relationships test on int_withdrawals_located.h3_cell fails if
the rule ever picks a cell this left out.
"""

from __future__ import annotations

import io

import h3

from hotspots.geo.gazetteer import H3_RES

# The cells int_withdrawals_located can choose (coord_cell and pincode_cell of
# stg_raw__withdrawals, the PIN cell where coord_cell is null), not registered yet.
NEW_CELLS_SQL = """
select distinct s.h3_cell from (
    select h3_cell from raw.withdrawals where h3_cell is not null
    union
    select p.h3_cell from raw.withdrawals w join ref.pincodes p on p.pincode = w.pincode
    where w.h3_cell is null and p.h3_cell is not null
) s
where not exists (select 1 from ref.h3_cells c where c.h3_cell = s.h3_cell)
"""


def _polygon_wkt(cell: str) -> str:
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
    ring.append(ring[0])
    return "SRID=4326;POLYGON((" + ",".join(f"{x:.7f} {y:.7f}" for x, y in ring) + "))"


def register_cells(conn) -> int:
    """Adds cells that appeared since the last call; returns how many. Idempotent."""
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('hotspots.register_cells'))")
        cur.execute(NEW_CELLS_SQL)
        new = sorted(r[0] for r in cur.fetchall() if h3.is_valid_cell(r[0]) and h3.get_resolution(r[0]) == H3_RES)
        if not new:
            conn.commit()
            return 0
        buf = io.StringIO()
        for c in new:
            lat, lon = h3.cell_to_latlng(c)
            buf.write("\t".join([c, f"{lat:.7f}", f"{lon:.7f}", h3.cell_to_parent(c, 7), h3.cell_to_parent(c, 6),
                                 h3.cell_to_parent(c, 5), _polygon_wkt(c)]) + "\n")
        buf.seek(0)
        cur.copy_expert("copy ref.h3_cells (h3_cell, lat, lon, h3_res7, h3_res6, h3_res5, geom) from stdin", buf)
        cur.execute("""
            update ref.h3_cells c set state = po.state, district = po.district
            from (select c2.h3_cell, n.state, n.district from ref.h3_cells c2
                  cross join lateral (select state, district from ref.post_offices po
                                      order by po.geom <-> st_setsrid(st_makepoint(c2.lon, c2.lat), 4326)
                                      limit 1) n
                  where c2.district is null) po
            where c.h3_cell = po.h3_cell
        """)
        # Neighbour pairs (both directions) between each new cell and every registered cell within k = 2.
        cur.execute("select h3_cell from ref.h3_cells")
        known = {r[0] for r in cur.fetchall()}
        pairs = set()
        for c in new:
            for n in h3.grid_disk(c, 2):
                if n != c and n in known:
                    k = h3.grid_distance(c, n)
                    pairs.add((c, n, k))
                    pairs.add((n, c, k))
        buf = io.StringIO("".join(f"{a}\t{b}\t{k}\n" for a, b, k in sorted(pairs)))
        cur.execute("create temp table new_pairs (like ref.h3_neighbours) on commit drop")
        cur.copy_expert("copy new_pairs from stdin", buf)
        cur.execute("insert into ref.h3_neighbours select * from new_pairs on conflict do nothing")
    conn.commit()
    return len(new)
