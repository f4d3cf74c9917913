"""A small PNG map per (cell, forecast date), from PostGIS geometries, no tiles.

Left: the district outline (marts.dim_districts) with the cell marked. Right: the cell, its
ring-1 neighbours (ref.h3_cells, or the h3 library for neighbours never registered), the
terminals seen in them (raw.withdrawals), and the district outline where it passes.
Rendered once per cell and kept in alerts.maps, so every email naming the cell attaches
the same bytes.
"""

from __future__ import annotations

import io
import threading
import time

_RENDER = threading.Lock()  # matplotlib is not thread-safe; one render at a time per process


_FIG = None
_OUTLINES: dict = {}  # (state, district) -> simplified outline, per process
COLOURS = {"ATM": "#08519c", "BRANCH": "#006d2c", "POS": "#54278f", "MICRO_ATM": "#a50f15"}


def _frames(cur, cell: str):
    import geopandas as gpd
    import h3
    from shapely import wkb
    from shapely.geometry import Polygon

    cur.execute("select state, district, st_asbinary(geom) from ref.h3_cells where h3_cell = %s", (cell,))
    row = cur.fetchone()
    if row is None:
        raise ValueError(f"cell {cell} is not registered in ref.h3_cells")
    state, district, geom = row
    ring = sorted(set(h3.grid_disk(cell, 1)) - {cell})
    cur.execute("select h3_cell, st_asbinary(geom) from ref.h3_cells where h3_cell = any(%s)", (ring,))
    known = {c: wkb.loads(bytes(g)) for c, g in cur.fetchall()}
    neighbours = [known.get(c) or Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(c)]) for c in ring]
    cur.execute("""select terminal_id, min(channel), avg(lon), avg(lat), count(*) from raw.withdrawals
                   where h3_cell = any(%s) and terminal_id is not null and lon is not null
                   group by 1""", ([cell, *ring],))
    terms = cur.fetchall()
    key = (state, district)
    if key not in _OUTLINES:
        outline = None
        cur.execute("select to_regclass('marts.dim_districts') is not null")
        if cur.fetchone()[0]:
            cur.execute("""select st_asbinary(st_simplifypreservetopology(geom, 0.002)) from marts.dim_districts
                           where state = %s and district = %s""", key)
            r = cur.fetchone()
            outline = wkb.loads(bytes(r[0])) if r and r[0] is not None else None
        _OUTLINES[key] = outline
    crs = "EPSG:4326"
    terminals = gpd.GeoDataFrame({"terminal_id": [t[0] for t in terms], "channel": [str(t[1]) for t in terms],
                                  "n": [t[4] for t in terms]},
                                 geometry=gpd.points_from_xy([t[2] for t in terms], [t[3] for t in terms]), crs=crs)
    return (gpd.GeoSeries([wkb.loads(bytes(geom))], crs=crs), gpd.GeoSeries(neighbours, crs=crs), terminals,
            _OUTLINES[key], state, district)


def _exteriors(geom) -> list:
    import numpy as np

    if geom is None or geom.is_empty:
        return []
    polys = getattr(geom, "geoms", [geom])
    return [np.asarray(p.exterior.coords) for p in polys]


def _figure():
    """One figure, its two axes made once per process and reused (making axes is most of a
    small render's cost); only the artists change between maps."""
    global _FIG
    if _FIG is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 3.2), dpi=80)
        ax0, ax1 = fig.subplots(1, 2)
        for ax in (ax0, ax1):
            ax.set_axis_off()
            ax.set_aspect("equal")
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.08, top=0.9, wspace=0.05)
        # Titles and the key as figure texts: axes titles and legends lay out tick labels each draw.
        texts = (fig.text(0.25, 0.95, "", ha="center", va="center", fontsize=8),
                 fig.text(0.75, 0.95, "", ha="center", va="center", fontsize=8),
                 fig.text(0.75, 0.03, "", ha="center", va="center", fontsize=7))
        _FIG = (fig, ax0, ax1, texts)
    return _FIG


def _clear(ax) -> None:
    for artist in [*ax.collections, *ax.lines, *ax.patches]:
        artist.remove()


def render_png(cur, cell: str) -> bytes:
    from matplotlib.collections import LineCollection, PolyCollection

    me, ring, terms, outline, state, district = _frames(cur, cell)
    with _RENDER:
        fig, ax0, ax1, (title0, title1, key) = _figure()
        _clear(ax0)
        _clear(ax1)
        edges = _exteriors(outline)
        c = me.iloc[0].centroid
        if edges:
            ax0.add_collection(LineCollection(edges, colors="#555555", linewidths=0.8))
            minx, miny, maxx, maxy = outline.bounds
        else:
            minx, miny, maxx, maxy = c.x - 0.2, c.y - 0.2, c.x + 0.2, c.y + 0.2
        ax0.plot([c.x], [c.y], marker="o", color="#d62728", markersize=7)
        pad = 0.05 * max(maxx - minx, maxy - miny, 0.01)
        ax0.set_xlim(min(minx, c.x) - pad, max(maxx, c.x) + pad)
        ax0.set_ylim(min(miny, c.y) - pad, max(maxy, c.y) + pad)
        title0.set_text(f"{district}, {state}")
        ax1.add_collection(PolyCollection([e for g in ring for e in _exteriors(g)], facecolors="#fdd0a2",
                                          edgecolors="#e6550d", linewidths=0.6, alpha=0.7))
        ax1.add_collection(PolyCollection(_exteriors(me.iloc[0]), facecolors="#d62728", edgecolors="#67000d",
                                          linewidths=1.0, alpha=0.75))
        if edges:
            ax1.add_collection(LineCollection(edges, colors="#555555", linewidths=0.8, linestyles="dashed"))
        seen = []
        for channel, g in terms.groupby("channel") if len(terms) else []:
            ax1.plot(g.geometry.x, g.geometry.y, linestyle="none", marker="^", markersize=6,
                     color=COLOURS.get(channel.upper(), "#000000"), zorder=3)
            seen.append(f"{channel} {len(g)}")
        key.set_text("terminals (triangles): " + (", ".join(seen) if seen else "none seen"))
        minx, miny, maxx, maxy = ring.total_bounds
        pad = 0.15 * max(maxx - minx, maxy - miny)
        ax1.set_xlim(minx - pad, maxx + pad)
        ax1.set_ylim(miny - pad, maxy + pad)
        title1.set_text(f"cell {cell} (red) and ring-1 neighbours")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})  # small image; speed over bytes
        return buf.getvalue()


def ensure_maps(conn, cells: list[str], forecast_date) -> tuple[dict[str, bytes], float]:
    """PNG per cell for the forecast date: read from alerts.maps, rendered (once) if missing.
    Returns the maps and the seconds spent rendering."""
    out: dict[str, bytes] = {}
    spent = 0.0
    if not cells:
        return out, spent
    with conn.cursor() as cur:
        cur.execute("select h3_cell, png from alerts.maps where forecast_date = %s and h3_cell = any(%s)",
                    (forecast_date, list(cells)))
        out = {c: bytes(p) for c, p in cur.fetchall()}
    conn.commit()
    for cell in cells:
        if cell in out:
            continue
        with conn.cursor() as cur:
            # One renderer per (cell, date) across threads and processes; the others wait and read it.
            cur.execute("select pg_advisory_xact_lock(hashtext('hotspots.alerts.map'), hashtext(%s || %s::text))",
                        (cell, forecast_date))
            cur.execute("select png from alerts.maps where h3_cell = %s and forecast_date = %s", (cell, forecast_date))
            row = cur.fetchone()
            if row is None:
                t0 = time.perf_counter()
                png = render_png(cur, cell)
                secs = time.perf_counter() - t0
                spent += secs
                cur.execute("""insert into alerts.maps (h3_cell, forecast_date, png, seconds)
                               values (%s, %s, %s, %s) on conflict do nothing""", (cell, forecast_date, png, secs))
            else:
                png = bytes(row[0])
        conn.commit()
        out[cell] = png
    return out, spent


def _render_chunk(args) -> float:
    """In a worker process: render the maps of some cells of one date (own connection)."""
    from hotspots import db

    warehouse, cells, forecast_date = args
    conn = db.connect(warehouse)
    try:
        return ensure_maps(conn, cells, forecast_date)[1]
    finally:
        conn.close()


def prerender(conn, warehouse: str | None = None, processes: int | None = None) -> float:
    """Renders the maps every due email message needs and that are not there yet, in
    `processes` forked workers (default: one per core) when there are many; seconds of
    rendering (summed over the workers)."""
    import multiprocessing
    import os

    with conn.cursor() as cur:
        cur.execute("""select m.forecast_date, array_agg(distinct c) from alerts.messages m, unnest(m.map_cells) c
                       where m.status in ('pending', 'failed', 'sending') and m.channel_kind = 'email'
                         and not exists (select 1 from alerts.maps p where p.h3_cell = c
                                         and p.forecast_date = m.forecast_date)
                       group by 1""")
        todo = cur.fetchall()
    conn.commit()
    processes = processes or os.cpu_count() or 1
    n = sum(len(c) for _, c in todo)
    if warehouse is None or processes < 2 or n < 8:
        return sum(ensure_maps(conn, sorted(cells), d)[1] for d, cells in todo)
    chunks = [(warehouse, sorted(cells)[i::processes], d) for d, cells in todo for i in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return sum(pool.map(_render_chunk, [c for c in chunks if c[1]]))
