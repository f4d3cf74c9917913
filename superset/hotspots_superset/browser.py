"""Headless Chromium through Selenium (runs in .venv-superset, where Selenium is pinned): log in to
Superset, open dashboards, wait for charts, read the deck.gl canvas, switch a native filter, use the
acknowledgement page. Used by tests/superset (as a subprocess printing one JSON object), by the
render-time bench (bench.py) and for the screenshots in docs/.

    python superset/hotspots_superset/browser.py SCENARIO BASE_URL USER PASSWORD OUT_DIR [ARGS...]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-unsafe-swiftshader", "--disable-dev-shm-usage", "--window-size=1500,1300"]


def driver() -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    # a page busy drawing the national map on software WebGL, on a loaded machine, can hold a
    # script for longer than Selenium's default 30 s
    d.set_script_timeout(180)
    return d


def login(d, base: str, user: str, password: str) -> None:
    d.get(f"{base}/login/")
    w = WebDriverWait(d, 60)
    w.until(EC.presence_of_element_located((By.CSS_SELECTOR, "input#username"))).send_keys(user)
    d.find_element(By.CSS_SELECTOR, "input#password").send_keys(password)
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    w.until(lambda d: "/login" not in d.current_url)


# In the page: how many chart holders there are, which are still loading, which show an error.
CHART_STATE_JS = """
const holders = [...document.querySelectorAll('.dashboard-chart, [data-test="chart-grid-component"]')];
const errs = [...document.querySelectorAll('[data-test="chart-error"], .alert-danger, [role="alert"], .ant-alert-error')]
  .map(e => e.innerText.slice(0, 300)).filter(t => t.trim().length);
const loading = document.querySelectorAll('.loading, [data-test="loading-indicator"], .ant-skeleton').length;
return {holders: holders.length, loading: loading, errors: errs};
"""

# Non-blank pixels of every WebGL canvas (deck.gl), read back through a 2D copy.
CANVAS_JS = """
const out = [];
for (const c of document.querySelectorAll('canvas')) {
  if (c.width < 50 || c.height < 50) continue;
  const t = document.createElement('canvas'); t.width = c.width; t.height = c.height;
  const g = t.getContext('2d'); g.fillStyle = '#fff'; g.fillRect(0, 0, t.width, t.height);
  try { g.drawImage(c, 0, 0); } catch (e) { out.push({error: String(e)}); continue; }
  const px = g.getImageData(0, 0, t.width, t.height).data;
  let nonwhite = 0, hash = 0;
  for (let i = 0; i < px.length; i += 16) {
    const v = px[i] + px[i+1] + px[i+2];
    if (v < 740) nonwhite++;
    hash = (hash * 31 + px[i] * 7 + px[i+1] * 3 + px[i+2]) % 1000000007;
  }
  out.push({w: c.width, h: c.height, nonwhite: nonwhite, hash: hash,
            webgl: !!(c.getContext('webgl2') || c.getContext('webgl'))});
}
return out;
"""

# The same question, cheaply, for polling: the canvases scaled down to 64 x 64 (reading every pixel
# of a 1500 x 1000 software-rendered canvas four times a second took CPU from the page it measures).
CANVAS_PROBE_JS = """
const out = [];
for (const c of document.querySelectorAll('canvas')) {
  if (c.width < 50 || c.height < 50) continue;
  const t = document.createElement('canvas'); t.width = 64; t.height = 64;
  const g = t.getContext('2d'); g.fillStyle = '#fff'; g.fillRect(0, 0, 64, 64);
  try { g.drawImage(c, 0, 0, 64, 64); } catch (e) { continue; }
  const px = g.getImageData(0, 0, 64, 64).data; let n = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i] + px[i+1] + px[i+2] < 740) n++;
  out.push(n);
}
return out;
"""


def wait_charts(d, timeout: float = 90, t0: float | None = None) -> dict:
    """Waits until no chart is loading (checked again 2 s later); `ready_s`: when that was first seen."""
    t0 = t0 or time.time()
    state, ready = {}, None
    while time.time() - t0 < timeout:
        state = d.execute_script(CHART_STATE_JS)
        if state["holders"] and not state["loading"]:
            ready = ready or time.time() - t0
            time.sleep(2)
            state = d.execute_script(CHART_STATE_JS)
            if not state["loading"]:
                break
            ready = None
        time.sleep(0.25)
    state["seconds"] = round(time.time() - t0, 2)
    state["ready_s"] = round(ready, 2) if ready is not None else None
    return state


def wait_canvas(d, timeout: float = 60, t0: float | None = None) -> tuple[list[dict], float | None]:
    """Waits until a canvas shows non-blank pixels; returns the canvases (2 s later, every layer
    landed) and when the first pixels were seen (seconds since t0)."""
    t0 = t0 or time.time()
    while time.time() - t0 < timeout:
        if any(n >= 4 for n in d.execute_script(CANVAS_PROBE_JS)):
            seen = time.time() - t0
            time.sleep(2)
            return d.execute_script(CANVAS_JS), round(seen, 2)
        time.sleep(0.25)
    return d.execute_script(CANVAS_JS), None


def open_dashboard(d, base: str, slug: str, out: Path, shot: str | None = None, map_canvas: bool = True) -> dict:
    t0 = time.time()
    d.get(f"{base}/superset/dashboard/{slug}/")
    WebDriverWait(d, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".dashboard, #app")))
    state = wait_charts(d, t0=t0)
    res = {"slug": slug, "charts": state, "url": d.current_url, "ready_s": state["ready_s"]}
    if slug == "national-risk-map" and map_canvas:
        res["canvas"], drawn = wait_canvas(d, t0=t0)
        res["ready_s"] = None if drawn is None or state["ready_s"] is None else max(drawn, state["ready_s"])
    res["seconds"] = round(time.time() - t0, 2)
    if shot:
        out.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(out / shot))
        res["screenshot"] = str(out / shot)
    return res


def pick_filter(d, name: str, value: str) -> None:
    """Selects `value` in the native filter called `name` (the filter bar on the left)."""
    bar = WebDriverWait(d, 30).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, '[data-test="filter-bar"], .filter-bar, [data-test="filter-bar__expand-button"]')))
    del bar
    box = None
    for cont in d.find_elements(By.CSS_SELECTOR, '[data-test="form-item-value"], .ant-form-item'):
        if name.lower() in cont.text.lower():
            box = cont
            break
    if box is None:
        raise RuntimeError(f"no native filter {name!r} in the filter bar")
    sel = box.find_element(By.CSS_SELECTOR, ".ant-select-selector")
    sel.click()
    inp = box.find_element(By.CSS_SELECTOR, "input")
    inp.send_keys(value)
    time.sleep(1.5)
    opts = [o for o in d.find_elements(By.CSS_SELECTOR, ".ant-select-item-option") if o.is_displayed()]
    match = [o for o in opts if o.text.strip() == value] or opts
    if not match:
        raise RuntimeError(f"filter {name!r} offers no option {value!r}")
    match[0].click()
    time.sleep(0.5)
    # apply
    for b in d.find_elements(By.CSS_SELECTOR, '[data-test="filter-bar__apply-button"]'):
        if b.is_enabled():
            b.click()
            break


def scenario_dashboards(base, user, pw, out, slugs, prefix=""):
    d = driver()
    try:
        login(d, base, user, pw)
        return {"dashboards": [open_dashboard(d, base, s, out, f"{prefix}{s}.png") for s in slugs]}
    finally:
        d.quit()


def scenario_map_filter(base, user, pw, out, filter_name, value):
    d = driver()
    try:
        login(d, base, user, pw)
        before = open_dashboard(d, base, "national-risk-map", out, f"{user}-map-before.png")
        pick_filter(d, filter_name, value)
        time.sleep(2)
        state = wait_charts(d)
        after_canvas, _ = wait_canvas(d)
        d.save_screenshot(str(out / f"{user}-map-after.png"))
        return {"before": before, "after": {"charts": state, "canvas": after_canvas}}
    finally:
        d.quit()


def layer_counts(d) -> list[dict]:
    """The deck.gl layer responses (GET explore_json) the page received: viz type, dataset, rows."""
    out = []
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        if m["method"] != "Network.responseReceived" or "/explore_json" not in m["params"]["response"]["url"]:
            continue
        try:
            body = json.loads(d.execute_cdp_cmd("Network.getResponseBody",
                                                {"requestId": m["params"]["requestId"]})["body"])
        except Exception:  # noqa: BLE001 - a response without a body
            continue
        feats = (body.get("data") or {}).get("features") if isinstance(body.get("data"), dict) else None
        if isinstance(feats, list):
            out.append({"viz_type": body["form_data"].get("viz_type"), "datasource": body["form_data"].get("datasource"),
                        "rows": len(feats)})
    return out


def scenario_layers(base, user, pw, out):
    d = driver()
    try:
        login(d, base, user, pw)
        res = open_dashboard(d, base, "national-risk-map", out)
        return {"layers": layer_counts(d), "charts": res["charts"]}
    finally:
        d.quit()


def scenario_ack(base, user, pw, out, alert_id, action, outcome, note):
    d = driver()
    try:
        login(d, base, user, pw)
        d.get(f"{base}/hotspots/ack/")
        WebDriverWait(d, 30).until(EC.presence_of_element_located((By.ID, "alerts")))
        rows = [r.get_attribute("data-alert-id") for r in d.find_elements(By.CSS_SELECTOR, "tr[data-alert-id]")]
        res = {"visible_alerts": rows}
        row = d.find_element(By.CSS_SELECTOR, f'tr[data-alert-id="{alert_id}"]')
        Select(row.find_element(By.NAME, "action")).select_by_value(action)
        if outcome:
            Select(row.find_element(By.NAME, "outcome")).select_by_value(outcome)
        row.find_element(By.NAME, "note").send_keys(note)
        row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(d, 30).until(EC.presence_of_element_located((By.ID, "message")))
        res["message"] = d.find_element(By.ID, "message").text
        res["row_after"] = d.find_element(By.CSS_SELECTOR, f'tr[data-alert-id="{alert_id}"] td.ack').text
        d.save_screenshot(str(out / f"{user}-ack.png"))
        return res
    finally:
        d.quit()


if __name__ == "__main__":
    scenario, base, user, pw, out, *rest = sys.argv[1:]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if scenario == "dashboards":
        result = scenario_dashboards(base, user, pw, out, rest[0].split(","), rest[1] if len(rest) > 1 else "")
    elif scenario == "map-filter":
        result = scenario_map_filter(base, user, pw, out, rest[0], rest[1])
    elif scenario == "layers":
        result = scenario_layers(base, user, pw, out)
    elif scenario == "ack":
        result = scenario_ack(base, user, pw, out, *rest)
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print("RESULT " + json.dumps(result, default=str))
