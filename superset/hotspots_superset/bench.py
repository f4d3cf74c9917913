"""Render time of the dashboards in headless Chromium, with the slowest chart query named.

    scripts/superset.sh bench [SLUG ...] [--explain]   (Superset running for WAREHOUSE; logs in as admin)
    scripts/superset.sh bench-serve [...]              (the same on a Superset of its own, for make bench)

For each dashboard: seconds from opening its URL until every chart has finished loading (the
deck.gl canvas drawn, for the map), first (cold data cache) and second load; every chart-data
request of the first load from the browser's network log (Chrome's performance log), by chart
name (native filters' value requests by dataset): seconds to the last byte, seconds to the
response headers (the server's share) and bytes received; the load average beside each figure.
`--explain` also runs every dataset's SQL under EXPLAIN ANALYZE in the warehouse and names the
slowest. On a loaded 2-core machine the figures include the browser's own rendering time
(software WebGL) and the queueing of requests behind other work.
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
HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int | None) -> float:
    """CPU seconds (user + system) used so far by process `root` and all its descendants (from
    /proc): the browser's and the server's work, which a busy machine does not inflate the way it
    inflates wall time."""
    if root is None:
        return 0.0
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rfind(")") + 2:].split()
        stats[int(pid)] = f
        children.setdefault(int(f[1]), []).append(int(pid))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += (int(stats[pid][11]) + int(stats[pid][12])) / HZ
        todo.extend(children.get(pid, []))
    return total


def _server_pid() -> int | None:
    f = Path(os.environ.get("SUPERSET_LOCAL", ".")) / "run" / f"gunicorn-{os.environ.get('SUPERSET_PORT', '8088')}.pid"
    try:
        return int(f.read_text())
    except (OSError, ValueError):
        return None


def _api(base: str, user: str, password: str) -> requests.Session:
    """A logged-in session that may change charts (JWT and CSRF token)."""
    s = requests.Session()
    r = s.post(f"{base}/api/v1/security/login", json={"username": user, "password": password, "provider": "db"},
               timeout=60)
    r.raise_for_status()
    s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    s.headers["X-CSRFToken"] = s.get(f"{base}/api/v1/security/csrf_token/", timeout=60).json()["result"]
    s.headers["Referer"] = base
    return s


def _chart_names(base: str, user: str, password: str) -> dict[int, str]:
    s = _api(base, user, password)
    res = s.get(f"{base}/api/v1/chart/", params={"q": "(page_size:500)"}, timeout=60).json()["result"]
    names = {c["id"]: c["slice_name"] for c in res}
    res = s.get(f"{base}/api/v1/dataset/", params={"q": "(page_size:500)"}, timeout=60).json()["result"]
    names.update({-d["id"]: d["table_name"] for d in res})  # datasets under negative ids
    return names


def _request_name(names: dict[int, str], url: str, body: str | None) -> str:
    sid = _slice_id(url) or _slice_id(body)
    if sid is not None:
        return names.get(sid, f"chart {sid}")
    m = re.search(r'"datasource":\s*\{\s*"id":\s*(\d+)', urllib.parse.unquote_plus(body or ""))
    return f"filter values ({names.get(-int(m.group(1)), m.group(1)) if m else '?'})"


def _slice_id(text: str) -> int | None:
    q = urllib.parse.unquote_plus(text or "")
    m = re.search(r'"slice_id":\s*(\d+)', q)
    return int(m.group(1)) if m else None


def chart_requests(d, names: dict[int, str]) -> list[dict]:
    """The chart-data requests (/api/v1/chart/data, /superset/explore_json/) in the browser's
    performance log since it was last read: chart name, seconds from sending to the last byte,
    seconds to the response headers (the server's time), bytes received (compressed)."""
    reqs: dict[str, dict] = {}
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        p = m.get("params", {})
        rid = p.get("requestId")
        if m["method"] == "Network.requestWillBeSent":
            url = p["request"]["url"]
            if "/api/v1/chart/data" not in url and "/explore_json" not in url:
                continue
            body = p["request"].get("postData")
            if body is None and p["request"].get("hasPostData"):
                try:
                    body = d.execute_cdp_cmd("Network.getRequestPostData", {"requestId": rid})["postData"]
                except Exception:  # noqa: BLE001 - gone already
                    body = ""
            reqs[rid] = {"chart": _request_name(names, url, body), "path": urllib.parse.urlsplit(url).path,
                         "t0": p["timestamp"]}
        elif rid in reqs and m["method"] == "Network.responseReceived":
            t = p["response"].get("timing") or {}
            reqs[rid]["server_s"] = round((t.get("receiveHeadersEnd", 0) - t.get("sendEnd", 0)) / 1000, 3)
            reqs[rid]["status"] = p["response"].get("status")
        elif rid in reqs and m["method"] == "Network.loadingFinished":
            reqs[rid]["seconds"] = round(p["timestamp"] - reqs[rid]["t0"], 3)
            reqs[rid]["bytes"] = int(p.get("encodedDataLength", 0))
    out = [dict(r, t0=None) for r in reqs.values() if "seconds" in r]
    for r in out:
        r.pop("t0")
    return sorted(out, key=lambda r: -r["seconds"])


def bench(base: str, user: str, password: str, slugs=DEFAULT_SLUGS, out: Path | None = None) -> dict:
    names = _chart_names(base, user, password)
    out = out or Path(os.environ.get("SUPERSET_LOCAL", ".")) / "bench"
    figures = {}
    d = driver()
    try:
        login(d, base, user, password)
        browser_pid, server_pid = d.service.process.pid, _server_pid()
        for slug in slugs:
            d.get_log("performance")  # drop what came before
            cpu0 = cpu_seconds(browser_pid), cpu_seconds(server_pid)
            cold = open_dashboard(d, base, slug, out, f"bench-{slug}.png")
            cpu = (round(cpu_seconds(browser_pid) - cpu0[0], 1), round(cpu_seconds(server_pid) - cpu0[1], 1))
            reqs = chart_requests(d, names)
            warm = open_dashboard(d, base, slug, out)
            warm_reqs = chart_requests(d, names)
            load = os.getloadavg()
            slowest = reqs[0] if reqs else None
            figures[slug] = {
                "cold_s": cold["ready_s"], "warm_s": warm["ready_s"], "errors": cold["charts"]["errors"],
                "requests": len(reqs), "bytes": sum(r.get("bytes", 0) for r in reqs),
                "slowest_query": None if slowest is None else {
                    "chart": slowest["chart"], "seconds": slowest["seconds"], "server_s": slowest.get("server_s")},
                "browser_cpu_s": cpu[0], "server_cpu_s": cpu[1] if server_pid else None,
                "chart_requests": reqs, "warm_chart_requests": warm_reqs,
                "loadavg": [round(x, 2) for x in load]}
            f = figures[slug]
            print(f"bench: dashboard {slug}: rendered in {_s(f['cold_s'])} (cold cache), {_s(f['warm_s'])} (warm), "
                  f"{f['requests']} chart requests, {f['bytes'] / 1e3:.0f} kB, slowest "
                  + (f"'{slowest['chart']}' {slowest['seconds']:.2f} s (server {slowest.get('server_s')} s)"
                     if slowest else "n/a")
                  + f"; CPU of the cold load: browser {cpu[0]:.1f} s"
                  + (f", Superset {cpu[1]:.1f} s" if server_pid else "")
                  + f"; load average {load[0]:.2f}" + (f"; ERRORS {f['errors']}" if f["errors"] else ""))
            for r in reqs:
                print(f"bench:   {r['chart'][:40]:40s} {r['seconds']:6.2f} s  server {r.get('server_s', 0):6.2f} s  "
                      f"{r.get('bytes', 0) / 1e3:7.0f} kB  {r['path']}")
    finally:
        d.quit()
    return figures


def floor(base: str, user: str, password: str, slug: str = "national-risk-map", runs: int = 2) -> dict:
    """What the map dashboard costs without its map: the same dashboard (filters, big numbers, top
    cells) with the multi-layer chart's layers taken out for the measurement and put back after.
    The difference to the full dashboard is the map's; the rest is Superset's own page."""
    s = _api(base, user, password)
    charts = s.get(f"{base}/api/v1/chart/", params={"q": "(page_size:500)"}, timeout=60).json()["result"]
    multi = next(c["id"] for c in charts if c["viz_type"] == "deck_multi")
    saved = s.get(f"{base}/api/v1/chart/{multi}", timeout=60).json()["result"]["params"]
    s.put(f"{base}/api/v1/chart/{multi}", json={"params": json.dumps({**json.loads(saved), "deck_slices": []})},
          timeout=60).raise_for_status()
    d = driver()
    try:
        login(d, base, user, password)
        browser_pid, server_pid = d.service.process.pid, _server_pid()
        ready, cpu = [], []
        for _ in range(runs):
            c0 = cpu_seconds(browser_pid) + cpu_seconds(server_pid)
            ready.append(open_dashboard(d, base, slug, Path("."), None, map_canvas=False)["ready_s"])
            cpu.append(round(cpu_seconds(browser_pid) + cpu_seconds(server_pid) - c0, 1))
    finally:
        d.quit()
        s.put(f"{base}/api/v1/chart/{multi}", json={"params": saved}, timeout=60).raise_for_status()
    out = {"slug": slug, "ready_s": ready, "cpu_s": cpu, "loadavg": round(os.getloadavg()[0], 2)}
    print(f"bench: floor: {slug} without its map layers rendered in "
          + " / ".join(_s(r) for r in ready) + f" (CPU of browser and Superset {' / '.join(map(str, cpu))} s; "
          f"load average {out['loadavg']:.2f})")
    return out


def dataset_costs(warehouse: str, assets: Path = HERE.parent / "assets", user: str = "admin",
                  only: list[str] | None = None) -> list[dict]:
    """Every dataset's SQL (as the dashboards run it, for `user`) under EXPLAIN ANALYZE in the
    warehouse: execution time and rows, slowest first."""
    import psycopg2
    import yaml

    out = []
    conn = psycopg2.connect(dbname=warehouse)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("set statement_timeout = '300s'")
            for p in sorted((assets / "datasets").rglob("*.yaml")):
                doc = yaml.safe_load(p.read_text())
                if only and doc["table_name"] not in only:
                    continue
                sql = doc["sql"].replace("{{ current_username() }}", user)
                try:
                    cur.execute(f"explain (analyze, format json) select * from ({sql}) t")
                    plan = cur.fetchone()[0][0]
                    out.append({"dataset": doc["table_name"], "ms": round(plan["Execution Time"], 1),
                                "rows": plan["Plan"]["Actual Rows"]})
                except psycopg2.Error as e:
                    out.append({"dataset": doc["table_name"], "ms": None, "error": str(e).splitlines()[0]})
    finally:
        conn.close()
    return sorted(out, key=lambda r: -(r["ms"] if r["ms"] is not None else 1e9))


def _s(v) -> str:
    return "n/a (not ready)" if v is None else f"{v:.1f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hotspots_superset.bench")
    p.add_argument("slugs", nargs="*", default=list(DEFAULT_SLUGS))
    p.add_argument("--base", default=f"http://127.0.0.1:{os.environ.get('SUPERSET_PORT', '8088')}")
    p.add_argument("--user", default=os.environ.get("SUPERSET_ADMIN_USER", "admin"))
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--explain", action="store_true",
                   help="also time every dataset's SQL with EXPLAIN ANALYZE in WAREHOUSE (the slowest named)")
    p.add_argument("--assets", type=Path, default=HERE.parent / "assets", help="the export tree (for --explain)")
    p.add_argument("--datasets", default="", help="comma-separated datasets for --explain (default: all)")
    p.add_argument("--only-explain", action="store_true", help="--explain without the browser")
    p.add_argument("--floor", action="store_true",
                   help="also time the map dashboard without its map layers (Superset's own page: the floor)")
    a = p.parse_args(argv)
    local = Path(os.environ.get("SUPERSET_LOCAL", Path(__file__).resolve().parents[2] / ".local" / "superset"))
    password = None if a.only_explain else (
        os.environ.get("SUPERSET_ADMIN_PASSWORD") or (local / "passwords" / a.user).read_text().strip())
    t0 = time.perf_counter()
    a.explain = a.explain or a.only_explain
    figures = {} if a.only_explain else bench(a.base, a.user, password, a.slugs, local / "bench")
    if a.floor and not a.only_explain:
        figures["floor"] = floor(a.base, a.user, password)
    if a.explain:
        costs = dataset_costs(os.environ.get("WAREHOUSE", "hotspots"), a.assets,
                              only=a.datasets.split(",") if a.datasets else None)
        figures["dataset_costs"] = costs
        for c in costs:
            print(f"bench: dataset {c['dataset']:22s} " + (f"{c['ms'] / 1000:8.2f} s  {c['rows']:>9} rows"
                                                           if c["ms"] is not None else c["error"]))
        print(f"bench: slowest dataset query (EXPLAIN ANALYZE, as admin): {costs[0]['dataset']}")
    if a.json:
        a.json.write_text(json.dumps(figures, indent=1))
    print(f"bench: dashboards measured in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
