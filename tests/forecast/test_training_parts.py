"""Hand-computed checks of the pieces training and scoring rely on: labels as known at an
origin, the settle delay, forecast windows, ranking, the gate and the target check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hotspots.forecast import backtest, data, store
from hotspots.forecast.model import HotspotModel

D = pd.Timestamp


def arrived(rows):
    return pd.DataFrame(rows, columns=["h3_cell", "event_date", "extract_date", "n_withdrawals"]).assign(
        event_date=lambda d: pd.to_datetime(d["event_date"]), extract_date=lambda d: pd.to_datetime(d["extract_date"]))


A = arrived([
    ("c1", "2026-01-01", "2026-01-02", 2),
    ("c1", "2026-01-03", "2026-01-09", 1),   # arrives late
    ("c1", "2026-01-05", "2026-01-06", 4),
    ("c2", "2026-01-03", "2026-01-04", 3),
])


def test_labels_count_only_what_had_arrived_at_the_origin():
    rows = pd.DataFrame({"h3_cell": ["c1", "c1", "c2"], "feature_date": pd.to_datetime(["2026-01-01", "2026-01-03",
                                                                                          "2026-01-01"])})
    # Horizon 7 from 1 Jan covers 1..7 Jan. Known before 7 Jan: 2 + 4 (c1), 3 (c2); the late one is not.
    assert data.labels_as_of(rows, A, 7, "2026-01-07").tolist() == [6, 4, 3]
    assert data.labels_as_of(rows, A, 7, "2026-01-10").tolist() == [7, 5, 3]
    assert data.labels_as_of(rows, A, 1, "2026-01-10").tolist() == [2, 1, 0]


def test_trainable_waits_for_the_window_to_settle():
    rows = pd.DataFrame({"h3_cell": "c1", "feature_date": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"])})
    # Origin 10 Jan, settle 3: windows must end by 6 Jan.
    assert data.trainable(rows, 1, "2026-01-10", 3).tolist() == [True, True, True]
    assert data.trainable(rows, 5, "2026-01-10", 3).tolist() == [True, True, False]


def test_settle_days_is_the_weighted_quantile_of_the_reporting_delay():
    # Delays (days) weighted by counts: 1 x2, 6 x1, 1 x4, 1 x3 -> 9 of 10 within 1 day.
    assert data.settle_days(A, quantile=0.9, lo=0) == 1
    assert data.settle_days(A, quantile=0.95, lo=0) == 6
    assert data.settle_days(A.iloc[:0]) == 21


def test_windows_sum_each_forecast_window():
    w = data.realised_windows(A, "2026-01-01", "2026-01-03", horizons=(1, 7))
    got = {(r.h3_cell, r.forecast_date.day, r.horizon_days): r.realised for r in w.itertuples()}
    assert got == {("c1", 1, 1): 2, ("c1", 3, 1): 1, ("c2", 3, 1): 3,
                   ("c1", 1, 7): 7, ("c1", 2, 7): 5, ("c1", 3, 7): 5,
                   ("c2", 1, 7): 3, ("c2", 2, 7): 3, ("c2", 3, 7): 3}


def test_rank_is_1_to_n_per_date_and_horizon_with_deterministic_ties():
    df = pd.DataFrame({"h3_cell": ["b", "a", "c", "a"], "forecast_date": D("2026-01-05"), "horizon_days": [1, 1, 1, 7],
                       "expected_withdrawals": [2.0, 2.0, 5.0, 0.1], "p_any": [0.5, 0.5, 0.9, 0.1]})
    r = store.rank(df)
    assert r.set_index(["horizon_days", "h3_cell"])["risk_rank"].to_dict() == {
        (1, "c"): 1, (1, "a"): 2, (1, "b"): 3, (7, "a"): 1}


def summ(values: dict) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "horizon_days": h, "pei_200": v} for (m, h), v in values.items()])


def test_gate_needs_the_margin_on_average_and_no_loss_on_any_horizon():
    ok = backtest.gate(summ({("model", 1): 0.90, ("model", 7): 0.86, ("persistence", 1): 0.88,
                             ("persistence", 7): 0.86}), "pei_200", 0.005)
    assert ok["promote"] and not ok["blocked_by"]
    small = backtest.gate(summ({("model", 1): 0.883, ("model", 7): 0.86, ("persistence", 1): 0.88,
                                ("persistence", 7): 0.86}), "pei_200", 0.005)
    assert not small["promote"]
    lopsided = backtest.gate(summ({("model", 1): 0.99, ("model", 7): 0.84, ("kernel", 1): 0.88,
                                   ("kernel", 7): 0.86}), "pei_200", 0.005)
    assert not lopsided["promote"] and any("horizon 7" in r for r in lopsided["blocked_by"])


def test_target_check_is_half_the_distance_to_perfect():
    lines = backtest.target_check(summ({("model", 1): 0.95, ("persistence", 1): 0.9, ("kernel", 1): 0.8}), "pei_200")
    assert lines == ["horizon 1: pei_200 model 0.9500, best baseline persistence 0.9000, target 0.9500: reached"]


def test_gate_k_shrinks_when_k_would_flag_most_candidates():
    f = pd.DataFrame({"h3_cell": [f"c{i}" for i in range(120)], "feature_date": D("2026-01-01")})
    cfg = {"evaluation": {"primary_k": 200}}
    assert backtest.gate_k(cfg, f) == 12
    assert backtest.gate_k({"evaluation": {"primary_k": 50}}, f) == 50


def test_model_fits_from_the_past_only_and_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    days = pd.date_range("2026-01-01", periods=40)
    cells = [f"c{i}" for i in range(30)]
    rows = pd.DataFrame([(c, d) for d in days for c in cells], columns=["h3_cell", "feature_date"])
    rows["x"] = rng.random(len(rows)).astype("float32")
    rate = 0.2 + 3 * rows["x"]
    events = rows.assign(n_withdrawals=rng.poisson(rate)).query("n_withdrawals > 0")
    arr = pd.DataFrame({"h3_cell": events["h3_cell"], "event_date": events["feature_date"],
                        "extract_date": events["feature_date"] + pd.Timedelta(days=2),
                        "n_withdrawals": events["n_withdrawals"]})
    params = {"learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 20, "num_threads": 1, "seed": 1,
              "deterministic": True, "force_row_wise": True, "verbose": -1}
    origin = D("2026-02-01")
    m = HotspotModel(features=["x"], params=params, rounds=30).fit(rows, arr, origin)
    assert m.card["train"]["1"]["last_date"] < str(origin.date())
    # Records arriving on or after the origin change nothing.
    late = pd.concat([arr, arr.assign(extract_date=origin + pd.Timedelta(days=1), n_withdrawals=50)])
    m2 = HotspotModel(features=["x"], params=params, rounds=30).fit(rows, late, origin)
    test = rows[rows["feature_date"] >= origin]
    np.testing.assert_allclose(m.predict(test, 7)[0], m2.predict(test, 7)[0])
    mu, p = m.predict(test, 1)
    assert np.corrcoef(mu, test["x"])[0, 1] > 0.8 and ((p >= 0) & (p <= 1)).all()
    back = HotspotModel.load(m.save(tmp_path / "m"))
    np.testing.assert_allclose(back.predict(test, 1)[0], mu)
    assert back.recipe() == m.recipe() and back.clone().boosters == {}
    # How many threads train it is not part of the recipe (the trees are the same), and a
    # champion refitted for comparison runs with the current configuration's threads.
    two = HotspotModel(features=["x"], params={**params, "num_threads": 2}, rounds=30).fit(rows, arr, origin)
    assert two.recipe() == m.recipe()
    np.testing.assert_array_equal(two.predict(test, 1)[0], mu)
    assert two.clone({"num_threads": 1}).params["num_threads"] == 1 and two.clone().params["num_threads"] == 2
    assert HotspotModel(features=["x"], params={**params, "num_leaves": 7}).recipe() != m.recipe()
    # Boosters trained two at a time (train.fit_workers) are the same trees, in the same order.
    par = HotspotModel(features=["x"], params=params, rounds=30, workers=2).fit(rows, arr, origin)
    assert par.recipe() == m.recipe() and list(par.boosters) == list(m.boosters) == ["mu_1", "p_1", "mu_7", "p_7"]
    for name, b in m.boosters.items():
        assert par.boosters[name].model_to_string() == b.model_to_string(), name
    assert par.clone().workers == 2 and par.clone(workers=1).workers == 1
    with pytest.raises(ValueError, match="no settled labels"):
        HotspotModel(features=["x"], params=params, rounds=5).fit(rows, arr, D("2026-01-03"))


def test_clairvoyant_references_read_the_window_the_day_before_and_the_week_before(tmp_path):
    days = pd.date_range("2025-01-01", "2025-01-20")
    truth = pd.DataFrame([(c, d, v) for d in days for c, v in (("a", 1.0 + d.day), ("b", 100.0 - d.day))],
                         columns=["h3_cell", "date", "expected_withdrawals"])
    path = tmp_path / "intensity.csv.gz"
    truth.to_csv(path, index=False, compression="gzip")
    feats = pd.DataFrame([(c, d) for d in days for c in ("a", "b")], columns=["h3_cell", "feature_date"])
    fc = backtest.clairvoyant(feats, path, "2025-01-10", "2025-01-10")
    got = {name: f.set_index(["horizon_days", "h3_cell"])["expected_withdrawals"] for name, f in fc.items()}
    assert got["oracle"][(1, "a")] == 11.0            # the day itself
    assert got["oracle"][(7, "b")] == sum(100.0 - d for d in range(10, 17))
    assert got["truth_last_day"][(1, "a")] == 10.0    # the day before, for either horizon
    assert got["truth_last_day"][(7, "a")] == 10.0
    assert got["truth_last_7_days"][(1, "b")] == sum(100.0 - d for d in range(3, 10))


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_fit_workers_must_be_a_whole_number_of_at_least_one(bad):
    from hotspots import settings
    from hotspots.forecast.model import fit_workers, from_config

    cfg = settings.forecast_config()
    assert fit_workers(cfg) == from_config(cfg, ["x"]).workers >= 1
    cfg["train"]["fit_workers"] = bad
    with pytest.raises(ValueError, match="train.fit_workers"):
        fit_workers(cfg)


def test_baselines_fitted_side_by_side_forecast_as_one_at_a_time():
    """The evaluation fits an origin's baselines train.fit_workers at a time (threads): every
    (baseline, horizon) forecasts exactly as when fitted one after the other (lag_gbm's trees
    included)."""
    from hotspots import settings

    rng = np.random.default_rng(3)
    days = pd.date_range("2026-01-01", periods=60)
    cells = [f"c{i}" for i in range(40)]
    rows = pd.DataFrame([(c, d) for d in days for c in cells], columns=["h3_cell", "feature_date"])
    rows["x"] = rng.random(len(rows))
    events = rows.assign(n_withdrawals=rng.poisson(0.3 + 2 * rows["x"])).query("n_withdrawals > 0")
    arr = pd.DataFrame({"h3_cell": events["h3_cell"], "event_date": events["feature_date"],
                        "extract_date": events["feature_date"] + pd.Timedelta(days=1),
                        "n_withdrawals": events["n_withdrawals"]})
    neighbours = pd.DataFrame({"h3_cell": cells[:-1] + cells[1:], "neighbour_cell": cells[1:] + cells[:-1],
                               "k": 1})
    inputs = backtest.Inputs(rows, arr, neighbours, arr["extract_date"].max())
    origin = D("2026-02-15")
    train, test = rows[rows["feature_date"] < origin], rows[rows["feature_date"] >= origin]
    names, horizons = ["persistence", "kernel", "lag_gbm"], [1, 7]

    def forecasts(workers: int) -> dict:
        cfg = settings.forecast_config()
        cfg["train"]["fit_workers"] = workers
        fitted = backtest._fit_baselines(names, horizons, cfg, train, inputs, origin)
        assert set(fitted) == {(n, h) for n in names for h in horizons}
        assert fitted["lag_gbm", 7].mode == "model"
        return {k: b.predict(test, arr, neighbours, k[1]) for k, b in fitted.items()}

    one, two = forecasts(1), forecasts(2)
    for key, mu in one.items():
        np.testing.assert_array_equal(two[key], mu, err_msg=str(key))
