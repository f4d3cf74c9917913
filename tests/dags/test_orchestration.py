"""The scheduling plumbing without a scheduler: which warehouse a run is for, the landing
setting's errors, what the landing trigger counts as new (hotspots.orchestration)."""

from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace

import pytest

from hotspots import orchestration as o


def event(wh, ts, id_=0):
    return SimpleNamespace(extra={"warehouse": wh} if wh else {}, timestamp=ts, id=id_)


def test_warehouse_comes_from_conf_then_events_then_the_param():
    params = {"warehouse": "hotspots"}
    events = {"raw_extracts": [event("b", "2026-01-02"), event("a", "2026-01-01"), event("b", "2026-01-03")],
              "other": [event(None, "2026-01-04")]}
    ctx = {"params": params, "dag_run": SimpleNamespace(conf={}), "triggering_asset_events": events}
    assert o.resolve_warehouses(ctx) == ["a", "b"]
    ctx["dag_run"] = SimpleNamespace(conf={"warehouse": "c"})
    assert o.resolve_warehouses(ctx) == ["c"]
    assert o.resolve_warehouses({"params": params, "dag_run": SimpleNamespace(conf=None),
                                 "triggering_asset_events": {}}) == ["hotspots"]


def test_a_missing_landing_names_the_setting(tmp_path):
    for bad in ("", "relative/dir", str(tmp_path / "absent")):
        with pytest.raises(o.LandingNotConfigured, match="HOTSPOTS_LANDING"):
            o.check_landing(bad)
    assert o.check_landing(str(tmp_path)) == tmp_path


def test_landing_setting_and_its_warehouse(monkeypatch):
    monkeypatch.delenv("HOTSPOTS_LANDING", raising=False)
    monkeypatch.delenv("HOTSPOTS_LANDING_WAREHOUSE", raising=False)
    monkeypatch.setenv("WAREHOUSE", "w1")
    assert o.landing_folder() == "" and o.landing_warehouse() == "w1"
    monkeypatch.setenv("HOTSPOTS_LANDING_WAREHOUSE", "w2")
    assert o.landing_warehouse() == "w2"


def deliver(landing, d, manifest=True):
    (landing / d).mkdir()
    (landing / d / "complaints.csv").write_text("x\n")
    if manifest:
        (landing / d / "_MANIFEST.json").write_text("{}")


def test_new_dates_are_complete_unseen_or_resent(tmp_path):
    deliver(tmp_path, "2026-01-01")
    deliver(tmp_path, "2026-01-02")
    deliver(tmp_path, "2026-01-03", manifest=False)
    seen = time.time() + 60
    assert o.new_dates(str(tmp_path), {}) == (["2026-01-01", "2026-01-02"], ["2026-01-03"])
    assert o.new_dates(str(tmp_path), {"2026-01-01": seen, "2026-01-02": seen}) == ([], ["2026-01-03"])
    m = tmp_path / "2026-01-02" / "_MANIFEST.json"
    os.utime(m, (seen + 10, seen + 10))  # re-sent after it was loaded
    assert o.new_dates(str(tmp_path), {"2026-01-01": seen, "2026-01-02": seen})[0] == ["2026-01-02"]


def test_the_trigger_fires_when_a_new_date_lands(tmp_path):
    deliver(tmp_path, "2026-01-01")
    trigger = o.NewExtractTrigger(str(tmp_path), {"2026-01-01": time.time() + 60}, poll_seconds=0.05)
    classpath, kwargs = trigger.serialize()
    assert classpath == "hotspots.orchestration.NewExtractTrigger"
    assert o.NewExtractTrigger(**kwargs).known == trigger.known

    async def run():
        gen = trigger.run()
        task = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0.2)
        assert not task.done()  # nothing new: still waiting
        deliver(tmp_path, "2026-01-02")
        return await asyncio.wait_for(task, 5)

    ev = asyncio.run(run())
    assert ev.payload == {"status": "new", "dates": ["2026-01-02"]}


def test_the_trigger_reports_a_vanished_folder(tmp_path):
    trigger = o.NewExtractTrigger(str(tmp_path / "gone"), {}, poll_seconds=0.05)

    async def run():
        return await trigger.run().__anext__()

    ev = asyncio.run(run())
    assert ev.payload["status"] == "error" and "HOTSPOTS_LANDING" in ev.payload["message"]
