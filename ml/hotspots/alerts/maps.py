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
    outline = None
    cur.execute("select to_regclass('marts.dim_districts') is not null")
    if cur.fetchone()[0]:
        cur.execute("select st_asbinary(geom) from marts.dim_districts where state = %s and district = %s",
                    (state, district))
        r = cur.fetchone()
        outline = wkb.loads(bytes(r[0])) if r else None
    crs = "EPSG:4326"
    return (gpd.GeoSeries([wkb.loads(bytes(geom))], crs=crs), gpd.GeoSeries(neighbours, crs=crs),
            gpd.GeoDataFrame({"terminal_id": [t[0] for t in terms], "channel": [t[1] for t in terms],
                              "n": [t[4] for t in terms]},
                             geometry=gpd.points_from_xy([t[2] for t in terms], [t[3] for t in terms]), crs=crs),
            gpd.GeoSeries([outline], crs=crs) if outline is not None else None, state, district)


def render_png(cur, cell: str) -> bytes:
    from matplotlib.figure import Figure

    me, ring, terms, outline, state, district = _frames(cur, cell)
    fig = Figure(figsize=(7.2, 3.6), dpi=90)
    ax0, ax1 = fig.subplots(1, 2)
    with _RENDER:
        if outline is not None:
            outline.boundary.plot(ax=ax0, color="#555555", linewidth=0.8)
        c = me.iloc[0].centroid
        ax0.plot([c.x], [c.y], marker="o", color="#d62728", markersize=7)
        ax0.set_title(f"{district}, {state}", fontsize=8)
        ring.plot(ax=ax1, facecolor="#fdd0a2", edgecolor="#e6550d", linewidth=0.6, alpha=0.6)
        me.plot(ax=ax1, facecolor="#d62728", edgecolor="#67000d", linewidth=1.0, alpha=0.75)
        if outline is not None:
            outline.boundary.plot(ax=ax1, color="#555555", linewidth=0.8, linestyle="--")
        colours = {"ATM": "#08519c", "BRANCH": "#006d2c", "POS": "#54278f"}
        for channel, g in terms.groupby("channel") if len(terms) else []:
            g.plot(ax=ax1, color=colours.get(str(channel).upper(), "#000000"), markersize=18, marker="^",
                   label=f"{channel} ({len(g)})", zorder=3)
        if len(terms):
            ax1.legend(fontsize=6, loc="lower right", title="terminals", title_fontsize=6)
        minx, miny, maxx, maxy = ring.total_bounds
        pad = 0.15 * max(maxx - minx, maxy - miny)
        ax1.set_xlim(minx - pad, maxx + pad)
        ax1.set_ylim(miny - pad, maxy + pad)
        ax1.set_title(f"cell {cell} and ring-1 neighbours", fontsize=8)
        for ax in (ax0, ax1):
            ax.set_aspect("equal")
            ax.set_axis_off()  # no ticks: their text layout is most of a render's time
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.92, wspace=0.05)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
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


def prerender(conn) -> float:
    """Renders the maps every due email message needs and that are not there yet; seconds spent."""
    with conn.cursor() as cur:
        cur.execute("""select forecast_date, array_agg(distinct c) from alerts.messages, unnest(map_cells) c
                       where status in ('pending', 'failed', 'sending') and channel_kind = 'email'
                       group by 1""")
        todo = cur.fetchall()
    conn.commit()
    return sum(ensure_maps(conn, sorted(cells), d)[1] for d, cells in todo)
