"""Scenario variants of the simulator (issue 8): producer behaviours the default never shows.

Withdrawals with a terminal but no coordinates, jittered coordinates, rings that move their
cash-out after going dark, money forwarded to second-layer accounts, late reports; the truth
stays the terminal's true position. Small runs (a month at 2-3% of national volume).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from hotspots import contract as C
from hotspots.simulate import VARIANTS, Scenario, simulate
from hotspots.simulate.core import _world
from hotspots.simulate.world import km_between

ROOT = Path(__file__).resolve().parents[2]
CHECK_EXTRACTS = ROOT.parent / "shared" / "tools" / "check_extracts.py"
START = "2025-01-01"
# (days, scale, seed) per variant: layered runs longer so that 10-30 day delays are seen whole.
RUNS = {"default": (30, 0.03, 11), "pin_terminals": (30, 0.03, 12), "moving_rings": (30, 0.03, 13),
        "layered": (45, 0.02, 14)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run per variant, dirty as usual: (landing, truth, summary, days)."""
    out = {}
    for name, (days, scale, seed) in RUNS.items():
        base = tmp_path_factory.mktemp(name)
        summary = simulate(base / "landing", START, days, scale, seed=seed, dirty_rate=0.02, progress=False,
                           variant=name)
        out[name] = (base / "landing", base / "truth", summary, days, seed)
    return out


def read_entity(landing: Path, truth: Path, entity: str) -> pd.DataFrame:
    """Every row of an entity in the extracts that the dirt log does not mention, with its date."""
    dirt = pd.read_csv(truth / "dirt.csv.gz", dtype=str, keep_default_na=False)
    logged = set(zip(dirt["extract_date"], dirt["file"], dirt["line_no"].astype(int), strict=True))
    frames = []
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        manifest = json.loads((folder / C.MANIFEST).read_text())
        name = next(n for n in manifest["files"] if n in C.file_candidates(entity))
        data = (folder / name).read_bytes()
        lines = (gzip.decompress(data) if name.endswith(".gz") else data).decode("utf-8", "replace").splitlines()
        keep = [line for n, line in enumerate(lines[1:], start=2) if (folder.name, name, n) not in logged]
        df = pd.read_csv(io.StringIO("\n".join([lines[0], *keep])), dtype=str, keep_default_na=False)
        frames.append(df.assign(extract_date=folder.name))
    return pd.concat(frames, ignore_index=True)


def truth_withdrawals(truth: Path) -> pd.DataFrame:
    return pd.read_csv(truth / "withdrawals.csv.gz", dtype=str, keep_default_na=False)


# ---------------------------------------------------------------- the registry of variants
def test_variants_are_named_scenarios_and_default_is_the_old_simulator():
    assert {"default", "pin_terminals", "moving_rings", "layered"} <= set(VARIANTS)
    assert VARIANTS["default"] == Scenario() and VARIANTS["default"].knobs() == {}
    for name, s in VARIANTS.items():
        assert isinstance(s, Scenario) and s.name == name
        if name != "default":
            assert 0.2 <= s.coordless_share <= 0.3 and s.jitter_m > 0, name
    assert VARIANTS["moving_rings"].after_dark[1] > Scenario().after_dark[1]
    assert VARIANTS["layered"].forward_hours == (1.0, 96.0) and VARIANTS["layered"].late_share > 0
    with pytest.raises(ValueError):
        simulate("/tmp/never-written", START, 1, 0.01, seed=1, progress=False, variant="no_such_variant")
    with pytest.raises(ValueError):
        Scenario(name="bad", coordless_share=1.5)


# Recorded before the variants were added (commit b17e066): the default's bytes for this seed.
DEFAULT_DIGEST = "e8d9cffa1317daec4f9feee967d985ecdb4189ea4303fb9bf7f32143b4c41074"
DEFAULT_COUNTS = {"complaints": 1398, "transactions": 2403, "withdrawals": 343, "dirty_rows": 80,
                  "resent_rows": 16, "withdrawals_realised": 1310, "withdrawals_reported": 341}


def _digest(root: Path) -> str:
    files = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(root.rglob("*")) if p.is_file()}
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("variant", ["default", VARIANTS["default"]], ids=["name", "scenario"])
def test_default_variant_is_unchanged(tmp_path, variant):
    summary = simulate(tmp_path / "landing", "2025-02-01", 5, 0.02, seed=3, progress=False, variant=variant)
    assert {k: summary[k] for k in DEFAULT_COUNTS} == DEFAULT_COUNTS
    assert _digest(tmp_path) == DEFAULT_DIGEST


# ---------------------------------------------------------------- every variant
@pytest.mark.parametrize("name", list(RUNS))
def test_share_of_withdrawals_with_terminal_but_no_coordinates(runs, name):
    landing, truth, summary, _, seed = runs[name]
    w = read_entity(landing, truth, "withdrawals")
    assert (w["terminal_id"] != "").all() and (w["pincode"][w["lat"] == ""] != "").all()
    none = (w["lat"] == "") & (w["terminal_id"] != "")
    share = none.mean()
    # Terminals the default producer knows only by PIN (placed at the PIN centroid, their truth).
    pin_only = ~_world(seed).terminals.set_index("terminal_id")["has_coords"].reindex(w["terminal_id"]).to_numpy()
    s = VARIANTS[name]
    if name == "default":
        assert 0.03 < share < 0.2 and (none == pin_only).all()
    else:
        assert abs(share - s.coordless_share) < 0.03 and 0.18 < share < 0.32, (name, share)
        assert summary["withdrawals_coordless"] >= none.sum()
        # Not only the PIN-only terminals: mostly terminals whose true position is not the centroid.
        assert (none & ~pin_only).sum() > 0.7 * none.sum()
        # The same terminals come with coordinates in other rows of the window (a registry learns them).
        located = set(w.loc[w["lat"] != "", "terminal_id"])
        assert w.loc[none, "terminal_id"].isin(located).mean() > 0.6
        # Per-terminal tendency: among terminals seen often, some are coordless far more than others.
        per = w.groupby("terminal_id")["lat"].agg(n="size", none=lambda s: (s == "").mean())
        busy = per[per["n"] >= 10]
        assert busy["none"].max() - busy["none"].min() > 0.3


@pytest.mark.parametrize("name", list(RUNS))
def test_reported_coordinates_stay_near_the_true_terminal_and_truth_is_the_true_cell(runs, name):
    landing, truth, _, _, seed = runs[name]
    t = _world(seed).terminals.set_index("terminal_id")
    tw = truth_withdrawals(truth)
    # Truth: the terminal's true position and cell, whatever was reported.
    true = t.loc[tw["terminal_id"]]
    assert np.allclose(tw["lat"].astype(float), true["lat"], atol=1e-6)
    assert (tw["h3_cell"].to_numpy() == np.array([h3.latlng_to_cell(a, b, 8) for a, b in
                                                   zip(true["lat"], true["lon"], strict=True)])).all()
    w = read_entity(landing, truth, "withdrawals")
    w = w[w["lat"] != ""].merge(tw[["withdrawal_id", "terminal_id", "h3_cell", "lat", "lon"]],
                                on="withdrawal_id", suffixes=("", "_true"))
    assert (w["terminal_id"] == w["terminal_id_true"]).all() and len(w) > 500
    km = km_between(w["lat_true"].astype(float).to_numpy(), w["lon_true"].astype(float).to_numpy(),
                    w["lat"].astype(float).to_numpy(), w["lon"].astype(float).to_numpy())
    cell = np.array([h3.latlng_to_cell(a, b, 8) for a, b in zip(w["lat"].astype(float), w["lon"].astype(float),
                                                                strict=True)])
    moved = (cell != w["h3_cell"].to_numpy()).mean()
    if name == "default":
        assert km.max() < 1e-3 and moved == 0
    else:
        s = VARIANTS[name]
        bound = 3 * np.sqrt(2) * max(s.jitter_m, s.jitter_far_m) / 1000
        assert km.max() <= bound + 1e-3
        assert 0.01 < np.median(km) < 0.08  # tens of metres
        assert (km > 0.1).mean() > 0.005    # a few hundred metres off
        assert 0.005 < moved < 0.25, moved  # a few reports fall in a neighbouring cell
        # The same terminal is reported at different positions, all close to each other.
        spread = w.groupby("terminal_id")["lat"].nunique()
        assert (spread[spread.index.isin(w["terminal_id"].value_counts()[lambda c: c >= 5].index)] > 1).all()


@pytest.mark.parametrize("name", list(RUNS))
def test_truth_intensity_is_still_the_expected_value_of_realised_withdrawals(runs, name):
    """Forwarded money arrives days later and rings move: the intensity must still be exact."""
    _, truth, summary, _, _ = runs[name]
    it = pd.read_csv(truth / "intensity.csv.gz")
    w = truth_withdrawals(truth)
    w["date"] = w["withdrawn_at"].str[:10]
    daily = it.groupby("date")["expected_withdrawals"].sum()
    per_day = w.groupby("date").size().reindex(daily.index, fill_value=0)
    assert (((per_day - daily) / np.sqrt(daily)).abs() < 5).all()
    assert abs(len(w) - daily.sum()) < max(4 * np.sqrt(daily.sum()), 0.03 * daily.sum())
    cells = set(zip(it["h3_cell"], it["date"], strict=True))
    assert all(k in cells for k in zip(w["h3_cell"], w["date"], strict=True))
    assert summary["withdrawals_realised"] == len(w)


@pytest.mark.skipif(not CHECK_EXTRACTS.exists(), reason="shared/tools/check_extracts.py not beside the repo")
@pytest.mark.parametrize("name", list(RUNS))
def test_contract_checker_accepts_every_variant(runs, name):
    landing, _, _, days, _ = runs[name]
    p = subprocess.run([sys.executable, str(CHECK_EXTRACTS), str(landing)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().splitlines()[-1].startswith(f"OK: {days} extract dates")


# ---------------------------------------------------------------- moving rings
def relocations_after_dark(truth: Path) -> list[tuple[str, str, str, str, str]]:
    """(ring, dark date, relocation date, district before, district after) for rings that went
    dark (raid or lying low) and came back in another district."""
    rings = pd.read_csv(truth / "rings.csv.gz", keep_default_na=False).sort_values(["ring_id", "date"])
    out = []
    for ring_id, g in rings.groupby("ring_id"):
        dark = None
        for row in g.itertuples():
            if row.event in ("disrupted", "dark"):
                dark = (row.date, row.district)
            elif row.event.startswith("relocated from") and dark is not None:
                out.append((ring_id, dark[0], row.date, dark[1], row.district))
                dark = None
    return out


def test_rings_relocate_their_cash_out_after_going_dark(runs):
    moved = relocations_after_dark(runs["moving_rings"][1])
    assert len(moved) >= 3
    assert len(moved) > 2 * len(relocations_after_dark(runs["default"][1]))
    assert all(before != after for _, _, _, before, after in moved)
    truth = runs["moving_rings"][1]
    w = truth_withdrawals(truth)
    w["date"] = w["withdrawn_at"].str[:10]
    rings = pd.read_csv(truth / "rings.csv.gz", keep_default_na=False)
    checked = 0
    for ring_id, dark, back, _, _ in moved:
        mine = w[w["ring_id"] == ring_id]
        before, after = mine[mine["date"] < dark], mine[mine["date"] > back]
        if len(before) < 5 or len(after) < 5:
            continue
        base = rings[(rings["ring_id"] == ring_id) & (rings["date"] == dark)].iloc[0]
        km = km_between(base["base_lat"], base["base_lon"], after["lat"].astype(float).to_numpy(),
                        after["lon"].astype(float).to_numpy())
        # The cash-out left the old base: few withdrawals near it, few in the cells used before.
        assert (km < 15).mean() < 0.3, ring_id
        assert after["h3_cell"].isin(set(before["h3_cell"])).mean() < 0.3, ring_id
        checked += 1
    assert checked >= 2


# ---------------------------------------------------------------- layered money
def test_money_is_forwarded_to_second_layer_accounts_which_withdraw_it(runs):
    landing, truth, summary, _, _ = runs["layered"]
    f = pd.read_csv(truth / "forwards.csv.gz", dtype=str, keep_default_na=False)
    assert summary["forwards"] == len(f) > 100
    hours = (pd.to_datetime(f["forwarded_at"]) - pd.to_datetime(f["received_at"])).dt.total_seconds() / 3600
    assert hours.between(1, 96).all() and hours.min() < 6 and hours.max() > 80
    # Forwards are contract transactions: from the first account to the second-layer account.
    t = read_entity(landing, truth, "transactions")
    seen = t.merge(f, on="txn_id", suffixes=("", "_truth"))
    assert len(seen) > 0.5 * len(f[f["forwarded_at"] >= START])
    assert (seen["from_account"] == seen["from_account_truth"]).all()
    assert (seen["to_account"] == seen["to_account_truth"]).all()
    assert (seen["layer"].astype(int) >= 2).all()
    # The first account received that money in an earlier transaction of the same complaint.
    into = t[~t["txn_id"].isin(f["txn_id"])]
    assert seen[["from_account", "ack_no"]].apply(tuple, axis=1).isin(
        set(zip(into["to_account"], into["ack_no"], strict=True))).mean() > 0.8
    # Second-layer accounts receive only forwards, and do the withdrawing.
    second = set(f["to_account"])
    assert not into["to_account"].isin(second).any() and not t["from_account"].isin(second).any()
    w = truth_withdrawals(truth)
    from_second = w["account"].isin(second)
    assert 0.5 < from_second.mean() < 0.95
    first_in = pd.to_datetime(f.groupby("to_account")["forwarded_at"].min())
    at = pd.to_datetime(w.loc[from_second, "withdrawn_at"], utc=True)
    assert (at.to_numpy() >= first_in.reindex(w.loc[from_second, "account"]).dt.tz_convert("UTC").to_numpy()).all()


def test_heavier_tail_of_reporting_delay(runs):
    landing, truth, _, days, _ = runs["layered"]
    s = VARIANTS["layered"]
    first = pd.Timestamp(START)
    last = first + pd.Timedelta(days=days - 1)
    w = truth_withdrawals(truth)
    day = pd.to_datetime(w["withdrawn_at"].str[:10])
    # Withdrawals whose every possible report date (1-30 days later) lies within the window.
    whole = w[(day >= first - pd.Timedelta(days=1)) & (day <= last - pd.Timedelta(days=s.late_days[1]))
              & (w["fate"] != "never")]
    delay = (pd.to_datetime(whole["extract_date"]) - day[whole.index]).dt.days
    assert len(whole) > 500 and (whole["fate"] == "reported").all()
    assert delay.between(1, s.late_days[1]).all()
    assert abs((delay >= s.late_days[0] + 1).mean() - s.late_share * 20 / 21) < 0.03
    assert (delay > 20).mean() > 0.01
    # Transactions too: some arrive 10-30 days after they happened (the default: 0-5 days).
    t = read_entity(landing, truth, "transactions")
    lag = (pd.to_datetime(t["extract_date"]) - pd.to_datetime(t["txn_at"], format="ISO8601", utc=True)
           .dt.tz_convert("Asia/Kolkata").dt.tz_localize(None).dt.normalize()).dt.days
    assert lag.between(0, s.late_days[1]).all() and (lag >= s.late_days[0]).mean() > 0.02
    # The default has no such tail.
    dl, dt_, _, _, _ = runs["default"]
    dw = truth_withdrawals(dt_)
    rep = dw[dw["fate"] == "reported"]
    assert ((pd.to_datetime(rep["extract_date"]) - pd.to_datetime(rep["withdrawn_at"].str[:10])).dt.days <= 10).all()


def test_cli_and_make_take_a_variant(tmp_path):
    out = tmp_path / "landing"
    p = subprocess.run([sys.executable, "-m", "hotspots.simulate", "--out", str(out), "--start", "2025-03-01",
                        "--days", "2", "--scale", "0.01", "--seed", "2", "--variant", "pin_terminals", "--quiet"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "variant=pin_terminals" in p.stderr and "withdrawals_coordless=" in p.stderr
    bad = subprocess.run([sys.executable, "-m", "hotspots.simulate", "--out", str(out), "--start", "2025-03-01",
                          "--days", "1", "--variant", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "nope" in bad.stderr
    assert "--variant $(or $(VARIANT),default)" in (ROOT / "Makefile").read_text()
