"""A small PNG map per (cell, forecast date), from PostGIS geometries, no tiles.

Left: the district outline (marts.dim_districts) with the cell marked. Right: the cell, its
ring-1 neighbours (ref.h3_cells, or the h3 library for neighbours never registered), the
terminals seen in them (raw.withdrawals), and the district outline where it passes.

Rendered once per (cell, forecast date) and kept in alerts.maps, so every email naming the
cell attaches the same bytes. The geometries of every cell to draw come from a few bulk
queries (cells and neighbours, terminals, district outlines: one each, whatever the number
of cells), and the drawing is Pillow's, straight into a 640x320 palette image (the text in
the DejaVu font matplotlib ships). A map costs a few milliseconds of CPU and about 5 KB;
matplotlib's figure machinery (50 ms a map, most of it layout and artist bookkeeping, as
measured before) is not needed for a dozen polygons.
"""

from __future__ import annotations

import io
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

WIDTH, HEIGHT = 640, 320
TITLE_H, KEY_H = 24, 20  # bands for the titles (top) and the key (bottom), in output pixels
COLOURS = {"ATM": "#08519c", "BRANCH": "#006d2c", "POS": "#54278f", "POS_CASH": "#54278f", "MICRO_ATM": "#a50f15",
           "AEPS": "#b15928"}
_FONTS: dict = {}


@dataclass
class Frame:
    """What one map shows, in lon/lat."""

    cell: str
    state: str | None
    district: str | None
    polygon: list  # the cell's exterior ring(s): list of (n, 2) arrays
    ring: list = field(default_factory=list)  # ring-1 neighbours' exteriors
    terminals: list = field(default_factory=list)  # (terminal_id, channel, lon, lat, n)
    outline: list = field(default_factory=list)  # the district's exterior rings


def _exteriors(geom) -> list:
    import numpy as np

    if geom is None or geom.is_empty:
        return []
    return [np.asarray(p.exterior.coords) for p in getattr(geom, "geoms", [geom])]


def _has_table(cur, name: str) -> bool:
    cur.execute("select to_regclass(%s) is not null", (name,))
    return cur.fetchone()[0]


def load_frames(cur, cells: list[str]) -> dict[str, Frame]:
    """Everything the maps of these cells show, in three queries (four with the outlines)."""
    import h3
    import numpy as np
    import shapely

    cells = sorted(set(cells))
    if not cells:
        return {}
    rings = {c: sorted(set(h3.grid_disk(c, 1)) - {c}) for c in cells}
    every = sorted(set(cells).union(*rings.values()))
    cur.execute("select h3_cell, state, district, st_asbinary(geom) from ref.h3_cells where h3_cell = any(%s)",
                (every,))
    rows = cur.fetchall()
    geoms = dict(zip([r[0] for r in rows], shapely.from_wkb([bytes(r[3]) for r in rows]) if rows else [], strict=True))
    place = {r[0]: (r[1], r[2]) for r in rows}
    missing = [c for c in cells if c not in place]
    if missing:
        raise ValueError(f"cell {missing[0]} is not registered in ref.h3_cells")

    def exterior(c):
        g = geoms.get(c)
        if g is not None:
            return _exteriors(g)
        pts = [(lon, lat) for lat, lon in h3.cell_to_boundary(c)]
        return [np.asarray(pts + pts[:1])]

    # Terminals seen in any of the disks: per (cell, terminal) sums, combined per disk below.
    cur.execute("""select h3_cell, terminal_id, min(channel), sum(lon), sum(lat), count(*) from raw.withdrawals
                   where h3_cell = any(%s) and terminal_id is not null and lon is not null
                   group by 1, 2""", (every,))
    seen = defaultdict(list)
    for cell, tid, channel, slon, slat, n in cur.fetchall():
        seen[cell].append((tid, channel, float(slon), float(slat), int(n)))
    places = sorted({place[c] for c in cells if place[c][0] and place[c][1]})
    outlines: dict = {}
    if places and _has_table(cur, "marts.dim_districts"):
        cur.execute("""select d.state, d.district, st_asbinary(st_simplifypreservetopology(d.geom, 0.002))
                       from marts.dim_districts d
                       join unnest(%s::text[], %s::text[]) as p(state, district) using (state, district)""",
                    ([s for s, _ in places], [d for _, d in places]))
        for state, district, g in cur.fetchall():
            if g is not None:
                outlines[(state, district)] = _exteriors(shapely.from_wkb(bytes(g)))
    out = {}
    for c in cells:
        agg: dict = {}
        for d in [c, *rings[c]]:
            for tid, channel, slon, slat, n in seen.get(d, []):
                a = agg.setdefault(tid, [channel, 0.0, 0.0, 0])
                a[0] = min(a[0], channel) if a[0] and channel else (a[0] or channel)
                a[1] += slon
                a[2] += slat
                a[3] += n
        terms = [(tid, str(ch), slon / n, slat / n, n) for tid, (ch, slon, slat, n) in sorted(agg.items())]
        state, district = place[c]
        out[c] = Frame(c, state, district, exterior(c), [e for r in rings[c] for e in exterior(r)], terms,
                       outlines.get((state, district), []))
    return out


# --- drawing -------------------------------------------------------------------------------


def _font(size: int):
    from PIL import ImageFont

    if size not in _FONTS:
        try:
            import matplotlib

            path = f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf"
            _FONTS[size] = ImageFont.truetype(path, size)
        except Exception:  # noqa: BLE001 - any font will do
            _FONTS[size] = ImageFont.load_default(size)
    return _FONTS[size]


class _View:
    """lon/lat -> pixels of one panel (x0..x1, y0..y1 at scale s), equal distances on both axes
    at the panel's latitude."""

    def __init__(self, bounds, box, s):
        minx, miny, maxx, maxy = bounds
        self.k = math.cos(math.radians((miny + maxy) / 2)) or 1.0
        x0, y0, x1, y1 = (v * s for v in box)
        w, h = max((maxx - minx) * self.k, 1e-9), max(maxy - miny, 1e-9)
        self.scale = min((x1 - x0) / w, (y1 - y0) / h)
        self.cx, self.cy = (minx + maxx) / 2, (miny + maxy) / 2
        self.px, self.py = (x0 + x1) / 2, (y0 + y1) / 2

    def __call__(self, xy):
        return [(self.px + (x - self.cx) * self.k * self.scale, self.py - (y - self.cy) * self.scale) for x, y in xy]


def _bounds(arrays, pad: float, around=None):
    import numpy as np

    pts = np.concatenate([a[:, :2] for a in arrays]) if arrays else np.asarray([around])
    if around is not None:
        pts = np.vstack([pts, [around]])
    minx, miny = pts.min(axis=0)
    maxx, maxy = pts.max(axis=0)
    p = pad * max(maxx - minx, maxy - miny, 0.01)
    return minx - p, miny - p, maxx + p, maxy + p


def _dashed(draw, pts, fill, width, dash, gap):
    """A dashed polyline (Pillow draws solid lines only)."""
    on, left = True, dash
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
        seg = math.hypot(x1 - x0, y1 - y0)
        pos = 0.0
        while seg - pos > 1e-9:
            step = min(left, seg - pos)
            if on:
                t0, t1 = pos / seg, (pos + step) / seg
                draw.line([(x0 + (x1 - x0) * t0, y0 + (y1 - y0) * t0), (x0 + (x1 - x0) * t1, y0 + (y1 - y0) * t1)],
                          fill=fill, width=width)
            pos += step
            left -= step
            if left <= 1e-9:
                on, left = not on, (gap if on else dash)


def _clip(pts, box, s):
    """Keeps the runs of a polyline near a panel (an outline can cross a whole state)."""
    x0, y0, x1, y1 = (v * s for v in box)
    m = 20 * s
    runs, run = [], []
    for x, y in pts:
        if x0 - m <= x <= x1 + m and y0 - m <= y <= y1 + m:
            run.append((x, y))
        elif run:
            runs.append(run + [(x, y)])
            run = []
    if run:
        runs.append(run)
    return [r for r in runs if len(r) > 1]


# One palette for every map: drawing straight into palette indices needs no colour
# reduction afterwards, and the PNG is a byte per pixel. Fills are opaque (the cell and its
# neighbours do not overlap), pre-mixed with white as the translucent originals looked.
_COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "outline": (85, 85, 85), "rule": (221, 221, 221),
            "ring": (254, 222, 193), "ring_edge": (230, 85, 13), "cell": (224, 93, 94), "cell_edge": (103, 0, 13),
            "marker": (214, 39, 40), **{k: tuple(int(v[i:i + 2], 16) for i in (1, 3, 5)) for k, v in COLOURS.items()}}
_INDEX = {name: i for i, name in enumerate(_COLOURS)}
_PALETTE = [c for rgb in _COLOURS.values() for c in rgb]


def _canvas(w: int, h: int):
    from PIL import Image, ImageDraw

    img = Image.new("P", (w, h), _INDEX["white"])
    img.putpalette(_PALETTE)
    return img, ImageDraw.Draw(img)


def draw_png(f: Frame) -> bytes:
    """The map of one frame as PNG bytes (palette image, a few milliseconds)."""
    ix = _INDEX
    half = WIDTH // 2
    left_box = (6, TITLE_H, half - 4, HEIGHT - KEY_H)
    right_box = (half + 4, TITLE_H, WIDTH - 6, HEIGHT - KEY_H)
    cx = sum(float(p[:, 0].mean()) for p in f.polygon) / max(len(f.polygon), 1)
    cy = sum(float(p[:, 1].mean()) for p in f.polygon) / max(len(f.polygon), 1)
    out, d = _canvas(WIDTH, HEIGHT)

    # Left: the district with the cell marked.
    if f.outline:
        v = _View(_bounds(f.outline, 0.05, (cx, cy)), left_box, 1)
        for e in f.outline:
            d.line(v(e), fill=ix["outline"], width=2, joint="curve")
    else:
        v = _View((cx - 0.2, cy - 0.2, cx + 0.2, cy + 0.2), left_box, 1)
    (px, py), = v([(cx, cy)])
    d.ellipse([px - 5, py - 5, px + 5, py + 5], fill=ix["marker"], outline=ix["cell_edge"], width=1)

    # Right, on its own canvas (whatever falls outside the panel is clipped): the cell, its
    # neighbours, the district outline where it passes, the terminals.
    x0, y0, x1, y1 = right_box
    panel, p = _canvas(x1 - x0, y1 - y0)
    box = (0, 0, x1 - x0, y1 - y0)
    v = _View(_bounds(f.ring or f.polygon, 0.15), box, 1)
    for e in f.ring:
        p.polygon(v(e), fill=ix["ring"], outline=ix["ring_edge"], width=1)
    for e in f.polygon:
        p.polygon(v(e), fill=ix["cell"], outline=ix["cell_edge"], width=2)
    for e in f.outline:
        for run in _clip(v(e), box, 1):
            _dashed(p, run, ix["outline"], 2, 6, 4)
    counts: dict[str, int] = defaultdict(int)
    for _tid, channel, lon, lat, _n in f.terminals:
        (x, y), = v([(lon, lat)])
        p.polygon([(x, y - 5), (x - 5, y + 4), (x + 5, y + 4)], fill=ix.get(channel.upper(), ix["black"]),
                  outline=ix["white"])
        counts[channel] += 1
    out.paste(panel, right_box[:2])

    # Text (crisp, not smoothed: a palette image has no shades to smooth with).
    small, tiny = _font(11), _font(10)
    d.text((half // 2, TITLE_H // 2), f"{f.district}, {f.state}", fill=ix["black"], font=small, anchor="mm")
    d.text((half + half // 2, TITLE_H // 2), f"cell {f.cell} (red) and ring-1 neighbours", fill=ix["black"],
           font=small, anchor="mm")
    seen = [f"{ch} {n}" for ch, n in sorted(counts.items())]
    d.text((WIDTH // 2, HEIGHT - KEY_H // 2), "terminals (triangles): " + (", ".join(seen) or "none seen"),
           fill=ix["black"], font=tiny, anchor="mm")
    d.line([(half, 4), (half, HEIGHT - 4)], fill=ix["rule"], width=1)
    buf = io.BytesIO()
    out.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def render_many(cur, cells: list[str]) -> dict[str, bytes]:
    frames = load_frames(cur, cells)
    return {c: draw_png(frames[c]) for c in cells}


def render_png(cur, cell: str) -> bytes:
    return render_many(cur, [cell])[cell]


# --- kept once per (cell, forecast date) --------------------------------------------------------


def ensure_maps(conn, cells: list[str], forecast_date) -> tuple[dict[str, bytes], float]:
    """PNG per cell for the forecast date: read from alerts.maps, rendered (once) if missing.
    Returns the maps and the seconds spent rendering. Whoever stores a map first wins: a
    render that lost the race reads the stored bytes, so every email attaches the same map."""
    out: dict[str, bytes] = {}
    spent = 0.0
    cells = list(dict.fromkeys(cells))
    if not cells:
        return out, spent
    with conn.cursor() as cur:
        cur.execute("select h3_cell, png from alerts.maps where forecast_date = %s and h3_cell = any(%s)",
                    (forecast_date, cells))
        out = {c: bytes(p) for c, p in cur.fetchall()}
        todo = [c for c in cells if c not in out]
        if todo:
            from psycopg2.extras import execute_values

            t0 = time.perf_counter()
            frames = load_frames(cur, todo)
            rows = []
            for c in todo:
                t1 = time.perf_counter()
                rows.append((c, forecast_date, draw_png(frames[c]), time.perf_counter() - t1))
            spent = time.perf_counter() - t0
            execute_values(cur, """insert into alerts.maps (h3_cell, forecast_date, png, seconds) values %s
                                   on conflict do nothing""", rows, page_size=500)
            cur.execute("select h3_cell, png from alerts.maps where forecast_date = %s and h3_cell = any(%s)",
                        (forecast_date, todo))
            out.update({c: bytes(p) for c, p in cur.fetchall()})
    conn.commit()
    return out, spent


def prerender(conn, warehouse: str | None = None, processes: int | None = None) -> float:
    """Renders, in this process, the maps every due email message needs and that are not there
    yet: once per (cell, forecast date), whatever the number of recipients naming the cell.
    Returns the seconds spent (queries and drawing). ``warehouse`` and ``processes`` are
    accepted for compatibility; a few milliseconds a map need no process pool."""
    with conn.cursor() as cur:
        cur.execute("""select m.forecast_date, array_agg(distinct c) from alerts.messages m, unnest(m.map_cells) c
                       where m.status in ('pending', 'failed', 'sending') and m.channel_kind = 'email'
                         and not exists (select 1 from alerts.maps p where p.h3_cell = c
                                         and p.forecast_date = m.forecast_date)
                       group by 1""")
        todo = cur.fetchall()
    conn.commit()
    return sum(ensure_maps(conn, sorted(cells), d)[1] for d, cells in todo)
