"""Render time of the dashboards in headless Chromium, with the slowest chart query named.

    scripts/superset.sh bench [SLUG ...]      (Superset running for WAREHOUSE; logs in as admin)

For each dashboard: seconds from opening its URL until every chart has finished loading (the
deck.gl canvas drawn, for the map), first (cold data cache) and second load, and the slowest
chart-data request of the first load from the browser's resource timings, by chart name. On a
loaded 2-core machine the figures include the browser's own rendering time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.parse
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from browser import driver, login, open_dashboard  # noqa: E402

DEFAULT_SLUGS = ("national-risk-map", "district-drilldown")

RESOURCES_JS = """
return performance.getEntriesByType('resource')
  .filter(e => e.name.includes('/api/v1/chart/data') || e.name.includes('/explore_json'))
  .map(e => ({url: e.name, ms: e.duration}));
"""


def _chart_names(base: str, user: str, password: str) -> dict[int, str]:
    s = requests.Session()
    r = s.post(f"{base}/api/v1/security/login", json={"username": user, "password": password, "provider": "db"},
               timeout=60)
    r.raise_for_status()
    s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    res = s.get(f"{base}/api/v1/chart/", params={"q": "(page_size:500)"}, timeout=60).json()["result"]
    return {c["id"]: c["slice_name"] for c in res}


def _slice_id(url: str) -> int | None:
    q = urllib.parse.unquote(url)
    m = re.search(r'"slice_id":\s*(\d+)', q)
    return int(m.group(1)) if m else None


def bench(base: str, user: str, password: str, slugs=DEFAULT_SLUGS, out: Path | None = None) -> dict:
    names = _chart_names(base, user, password)
    out = out or Path(os.environ.get("SUPERSET_LOCAL", ".")) / "bench"
    figures = {}
    d = driver()
    try:
        login(d, base, user, password)
        for slug in slugs:
            d.execute_script("performance.clearResourceTimings()")
            cold = open_dashboard(d, base, slug, out, f"bench-{slug}.png")
            res = d.execute_script(RESOURCES_JS)
            warm = open_dashboard(d, base, slug, out)
            slowest = max(res, key=lambda r: r["ms"]) if res else None
            figures[slug] = {
                "cold_s": cold["ready_s"], "warm_s": warm["ready_s"], "errors": cold["charts"]["errors"],
                "requests": len(res),
                "slowest_query": None if slowest is None else {
                    "chart": names.get(_slice_id(slowest["url"]),
                                       urllib.parse.urlsplit(slowest["url"]).path + " (form data in the body)"),
                    "seconds": round(slowest["ms"] / 1000, 2)}}
            f = figures[slug]
            print(f"bench: dashboard {slug}: rendered in {f['cold_s']:.1f} s (cold cache), {f['warm_s']:.1f} s "
                  f"(warm), {f['requests']} chart requests, slowest "
                  + (f"'{f['slowest_query']['chart']}' {f['slowest_query']['seconds']:.2f} s" if slowest else "n/a")
                  + (f"; ERRORS {f['errors']}" if f["errors"] else ""))
    finally:
        d.quit()
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hotspots_superset.bench")
    p.add_argument("slugs", nargs="*", default=list(DEFAULT_SLUGS))
    p.add_argument("--base", default=f"http://127.0.0.1:{os.environ.get('SUPERSET_PORT', '8088')}")
    p.add_argument("--user", default=os.environ.get("SUPERSET_ADMIN_USER", "admin"))
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = p.parse_args(argv)
    local = Path(os.environ.get("SUPERSET_LOCAL", Path(__file__).resolve().parents[2] / ".local" / "superset"))
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD") or (local / "passwords" / a.user).read_text().strip()
    t0 = time.perf_counter()
    figures = bench(a.base, a.user, password, a.slugs, local / "bench")
    if a.json:
        a.json.write_text(json.dumps(figures, indent=1))
    print(f"bench: dashboards measured in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
