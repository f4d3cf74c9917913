"""Baseline forecasts, checked on small synthetic frames worked out by hand.

Days are written as offsets from BASE (a Monday); the origin of every fit is day 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hotspots.forecast import baselines
from hotspots.forecast.baselines import (
    BASELINES,
    KernelBaseline,
    LagGBMBaseline,
    PersistenceBaseline,
    kernel_scores,
    kernel_time_weights,
    lag_features,
    p_any_from_mu,
    persistence_mu,
)

BASE = pd.Timestamp("2024-03-04")  # a Monday


def day(i: int) -> pd.Timestamp:
    return BASE + pd.Timedelta(days=int(i))


def arrived_frame(records) -> pd.DataFrame:
    """(cell, event day, extract day, n) records -> an ``arrived`` frame."""
    records = list(records)
    return pd.DataFrame({
        "h3_cell": pd.Series([r[0] for r in records], dtype=object),
        "event_date": pd.to_datetime([day(r[1]) for r in records]),
        "extract_date": pd.to_datetime([day(r[2]) for r in records]),
        "n_withdrawals": np.array([r[3] for r in records], dtype=np.int64),
    })


def rows_frame(pairs) -> pd.DataFrame:
    """(cell, feature day) pairs -> a ``rows`` frame (plus an unrelated column to ignore)."""
    pairs = list(pairs)
    return pd.DataFrame({
        "h3_cell": pd.Series([p[0] for p in pairs], dtype=object),
        "feature_date": pd.to_datetime([day(p[1]) for p in pairs]),
        "some_feature": np.ones(len(pairs)),
    })


def neighbours_frame(pairs) -> pd.DataFrame:
    """(a, b, k) -> both directions."""
    pairs = list(pairs)
    a = [p[0] for p in pairs] + [p[1] for p in pairs]
    b = [p[1] for p in pairs] + [p[0] for p in pairs]
    k = [p[2] for p in pairs] * 2
    return pd.DataFrame({"h3_cell": pd.Series(a, dtype=object), "neighbour_cell": pd.Series(b, dtype=object),
                         "k": np.array(k, dtype=np.int64)})


NO_NEIGHBOURS = neighbours_frame([])


@pytest.fixture(autouse=True)
def one_lightgbm_thread(monkeypatch):
    """One LightGBM thread: on a busy 2-core machine two OpenMP threads can spin for minutes."""
    monkeypatch.setitem(baselines.GBM_PARAMS, "num_threads", 1)
CELLS = [f"c{i}" for i in range(10)]


@pytest.fixture(scope="module")
def scenario():
    """10 cells on a line (c_i next to c_i+1), rates rising with i; each withdrawal arrives
    1-10 days after it happened. Events from day -150 to day 9."""
    rng = np.random.default_rng(7)
    recs = []
    for i, c in enumerate(CELLS):
        for e in range(-150, 10):
            n = rng.poisson(0.2 + 0.6 * i)
            if n:
                lags, counts = np.unique(rng.integers(1, 11, size=n), return_counts=True)
                recs += [(c, e, e + int(lag), int(k)) for lag, k in zip(lags, counts, strict=True)]
    arrived = arrived_frame(recs)
    nb = neighbours_frame([(CELLS[i], CELLS[i + 1], 1) for i in range(9)]
                          + [(CELLS[i], CELLS[i + 2], 2) for i in range(8)])
    train = rows_frame((c, d) for d in range(-100, 0) for c in CELLS)
    test = rows_frame((c, d) for d in (0, 3) for c in CELLS)
    return arrived, nb, train, test


# ---------------------------------------------------------------- helpers
def test_p_any_from_mu():
    np.testing.assert_allclose(p_any_from_mu([0.0, 1.0, np.log(2)]), [0.0, 1 - np.exp(-1), 0.5])
    assert float(p_any_from_mu(0.0)) == 0.0


def test_factory_names_and_interface():
    assert set(BASELINES) == {"persistence", "kernel", "lag_gbm"}
    for name, make in BASELINES.items():
        b = make()
        assert b.name == name
        assert callable(b.fit) and callable(b.predict)


# ---------------------------------------------------------------- persistence
def test_persistence_hand_computed_with_per_date_cutoff():
    arrived = arrived_frame([
        ("A", -3, -1, 2),    # in D-7..D-1, arrived before D=0
        ("A", -7, -5, 5),    # D-7: in
        ("A", -8, -6, 100),  # D-8: out of the window for D=0
        ("A", -2, 0, 50),    # arrives in extract 0: invisible to D=0, visible to D=1
        ("A", 0, 0, 1000),   # day D itself: never used for D=0, and in extract 0
    ])
    rows = rows_frame([("A", 0), ("B", 0), ("A", 1)])
    np.testing.assert_allclose(persistence_mu(rows, arrived, 1), [7 / 7, 0.0, (2 + 50 + 1000) / 7])
    np.testing.assert_allclose(PersistenceBaseline().predict(rows, arrived, NO_NEIGHBOURS, 7),
                               [7.0, 0.0, 1052.0])


# ---------------------------------------------------------------- kernel
def test_kernel_weights_hand_computed():
    nb = neighbours_frame([("A", "B", 1), ("A", "C", 2), ("A", "E", 3)])
    arrived = arrived_frame([
        ("A", -2, -1, 2),   # self, this week: 2 * 1
        ("B", -8, -6, 1),   # k=1 one week ago (D-8): 1/2 * 1/2
        ("B", -7, -6, 1),   # k=1 D-7 is still this week: 1/2 * 1
        ("C", -15, -14, 1),  # k=2 two weeks ago: 1/3 * 1/3
        ("A", -56, -50, 1),  # self, D-56 = seven weeks ago: 1/8
        ("A", -57, -50, 9),  # beyond T = 56 days: 0
        ("E", -3, -2, 9),   # k=3: out of range
        ("D", -3, -2, 9),   # not a neighbour
        ("A", -3, 0, 9),    # arrives in extract D: invisible
    ])
    rows = rows_frame([("A", 0), ("B", 0), ("D", 0)])
    expected_a = 2 + 0.25 + 0.5 + 1 / 9 + 1 / 8
    # B: itself (1/2 + 1) + A at k=1 (1/2 * (2 + 1/8)); D: itself 9
    np.testing.assert_allclose(kernel_scores(rows, arrived, nb), [expected_a, 1.5 + 0.5 * 2.125, 9.0])
    assert kernel_time_weights()[[0, 6, 7, 13, 14, 55]].tolist() == [1, 1, 0.5, 0.5, 1 / 3, 1 / 8]


def _scale_example():
    # One cell, every withdrawal arrives one day later -> settle = max(1, 2) = 2, so with
    # horizon 1 at origin 0 the trainable rows are those dated <= -3.
    arrived = arrived_frame([("A", -12, -11, 1), ("A", -10, -9, 2), ("A", -3, -2, 4),
                             ("A", -2, -1, 8), ("A", -1, 0, 16)])
    rows = rows_frame([("A", -10), ("A", -3), ("A", -2), ("A", -1)])
    return arrived, rows


def test_kernel_scale_fitted_on_trainable_rows_only():
    arrived, rows = _scale_example()
    # trainable: -10 (score 1: day -12 at j=2; label 2) and -3 (score 1/2 + 2: days -12 (j=9), -10 (j=7);
    # label 4). Rows -2 and -1 (labels 8 and 16, the latter only known at day 1) must not count.
    m = KernelBaseline().fit(rows, arrived, NO_NEIGHBOURS, 1, day(0))
    assert m.scale == pytest.approx(6 / 3.5)
    assert not m.fallback
    # at D=0: days -12, -10 (1/2 each week-old) + -3, -2 (this week) -> 0.5 + 1 + 4 + 8
    np.testing.assert_allclose(m.predict(rows_frame([("A", 0)]), arrived, NO_NEIGHBOURS, 1), [13.5 * 6 / 3.5])


def test_kernel_scale_ignores_extracts_on_or_after_origin():
    arrived, rows = _scale_example()
    late = arrived_frame([("A", -10, 0, 50), ("A", -3, 2, 50), ("A", -20, 5, 50), ("A", 1, 3, 50)])
    m = KernelBaseline().fit(rows, pd.concat([arrived, late], ignore_index=True), NO_NEIGHBOURS, 1, day(0))
    assert m.scale == pytest.approx(6 / 3.5)


def test_kernel_fallback_scale_without_training_rows():
    arrived, _ = _scale_example()
    m = KernelBaseline().fit(rows_frame([("A", -1)]), arrived, NO_NEIGHBOURS, 7, day(0))
    assert m.fallback
    assert m.scale == pytest.approx(7 / kernel_time_weights().sum())
    assert kernel_time_weights().sum() == pytest.approx(7 * sum(1 / (1 + w) for w in range(8)))


# ---------------------------------------------------------------- lag features / GBM
def test_lag_features_hand_computed():
    arrived = arrived_frame([
        ("A", -1, -1, 3),    # D-1, arrived the same day
        ("A", -7, -2, 5),    # D-7
        ("A", -30, -20, 7),  # D-30: only in lag_30 (and outside both means)
        ("A", -20, -19, 14),  # in mean_28 only
        ("A", -2, 0, 100),   # arrives in extract 0: invisible
    ])
    f = lag_features(rows_frame([("A", 0), ("B", 0)]), arrived)
    assert list(f.columns) == ["lag_1", "lag_7", "lag_30", "mean_7", "mean_28", "dow"]
    np.testing.assert_allclose(f.iloc[0], [3, 5, 7, 8 / 7, 22 / 28, 0])  # BASE is a Monday
    np.testing.assert_allclose(f.iloc[1], [0, 0, 0, 0, 0, 0])


def test_lag_gbm_fits_ranks_and_is_deterministic(scenario):
    arrived, nb, train, test = scenario
    m = LagGBMBaseline().fit(train, arrived, nb, 7, day(0))
    assert m.mode == "model"
    p = m.predict(test, arrived, nb, 7)
    assert p.shape == (len(test),) and (p >= 0).all() and np.isfinite(p).all()
    by_cell = pd.Series(p, index=test["h3_cell"].to_numpy()).groupby(level=0).mean()
    assert by_cell["c9"] > 3 * by_cell["c0"]
    assert by_cell["c9"] == pytest.approx(7 * (0.2 + 0.6 * 9), rel=0.3)
    again = LagGBMBaseline().fit(train, arrived, nb, 7, day(0)).predict(test, arrived, nb, 7)
    np.testing.assert_array_equal(p, again)


def test_lag_gbm_learns_from_the_history_window_only(scenario):
    arrived, nb, train, test = scenario
    windowed = LagGBMBaseline(history_days=30).fit(train, arrived, nb, 7, day(0))
    recent = LagGBMBaseline().fit(train[train["feature_date"] >= day(-30)], arrived, nb, 7, day(0))
    np.testing.assert_array_equal(windowed.predict(test, arrived, nb, 7), recent.predict(test, arrived, nb, 7))
    everything = LagGBMBaseline().fit(train, arrived, nb, 7, day(0)).predict(test, arrived, nb, 7)
    assert not np.array_equal(windowed.predict(test, arrived, nb, 7), everything)


def test_lag_gbm_samples_zero_labels_with_weights(scenario, monkeypatch):
    arrived, nb, train, test = scenario
    import lightgbm as lgb

    seen = {}
    real = lgb.Dataset

    def spy(x, label=None, weight=None, **kw):
        seen.update(n=len(x), label=np.asarray(label), weight=None if weight is None else np.asarray(weight))
        return real(x, label=label, weight=weight, **kw)

    monkeypatch.setattr(lgb, "Dataset", spy)
    LagGBMBaseline().fit(train, arrived, nb, 1, day(0))
    full_n, full_pos = seen["n"], int((seen["label"] > 0).sum())
    assert seen["weight"] is None and full_n > full_pos > 0
    m = LagGBMBaseline(negative_rate=0.3).fit(train, arrived, nb, 1, day(0))
    lab, w = seen["label"], seen["weight"]
    assert int((lab > 0).sum()) == full_pos  # every positive kept, weight 1
    np.testing.assert_array_equal(w[lab > 0], 1.0)
    np.testing.assert_allclose(w[lab == 0], 1 / 0.3)
    zeros = full_n - full_pos
    assert 0.2 * zeros < (lab == 0).sum() < 0.4 * zeros
    assert w.sum() == pytest.approx(full_n, rel=0.1)  # the weighted rows stand for all of them
    p = m.predict(test, arrived, nb, 1)
    assert (p >= 0).all() and np.isfinite(p).all()
    np.testing.assert_array_equal(p, LagGBMBaseline(negative_rate=0.3).fit(train, arrived, nb, 1, day(0))
                                  .predict(test, arrived, nb, 1))  # seeded: the same sample every time


def test_configured_lag_gbm_follows_the_model_settings():
    cfg = {"train": {"negative_rate": 0.3, "history_days": 365}}
    b = baselines.configured("lag_gbm", cfg)
    assert (b.negative_rate, b.history_days) == (0.3, 365)
    assert isinstance(baselines.configured("kernel", cfg), KernelBaseline)


def test_lag_gbm_without_training_rows_falls_back_to_persistence(scenario):
    arrived, nb, _, test = scenario
    m = LagGBMBaseline().fit(rows_frame([("c0", -1)]), arrived, nb, 1, day(0))
    assert m.mode == "persistence"
    np.testing.assert_allclose(m.predict(test, arrived, nb, 1), persistence_mu(test, arrived, 1))


# ---------------------------------------------------------------- all three
@pytest.mark.parametrize("name", list(BASELINES))
def test_leak_rule(name, scenario):
    arrived, nb, train, test = scenario
    origin = day(0)
    m = BASELINES[name]().fit(train, arrived, nb, 7, origin)
    base = m.predict(test, arrived, nb, 7)
    at0 = (test["feature_date"] == day(0)).to_numpy()

    # fitting sees nothing from extracts on or after the origin
    m_cut = BASELINES[name]().fit(train, arrived[arrived["extract_date"] < origin], nb, 7, origin)
    np.testing.assert_allclose(m_cut.predict(test, arrived, nb, 7), base)

    # records arriving in extract >= 3, whatever their event day, change nothing for D = 0 or 3
    future = arrived_frame((c, e, x, 40) for c in CELLS for e, x in [(-40, 9), (-5, 3), (-1, 3), (2, 3), (3, 4)])
    more = pd.concat([arrived, future], ignore_index=True)
    np.testing.assert_allclose(m.predict(test, more, nb, 7), base)
    np.testing.assert_allclose(BASELINES[name]().fit(train, more, nb, 7, origin).predict(test, more, nb, 7), base)

    # arriving in extract 0 (the origin, = D) or 1: invisible to D = 0 and to the fit, visible to D = 3
    mid = pd.concat([arrived, arrived_frame([("c0", -2, 1, 40), ("c1", -3, 0, 40)])], ignore_index=True)
    p = m.predict(test, mid, nb, 7)
    np.testing.assert_allclose(p[at0], base[at0])
    for c in ("c0", "c1"):
        at3 = ~at0 & (test["h3_cell"] == c).to_numpy()
        assert p[at3][0] > base[at3][0]
    np.testing.assert_allclose(BASELINES[name]().fit(train, mid, nb, 7, origin).predict(test, arrived, nb, 7),
                               base)

    # one arriving in extract -1: visible to both dates
    past = pd.concat([arrived, arrived_frame([("c0", -3, -1, 40)])], ignore_index=True)
    p = m.predict(test, past, nb, 7)
    c0 = (test["h3_cell"] == "c0").to_numpy()
    assert (p[c0] > base[c0]).all()


@pytest.mark.parametrize("name", list(BASELINES))
def test_output_aligned_with_rows(name, scenario):
    arrived, nb, train, test = scenario
    m = BASELINES[name]().fit(train, arrived, nb, 1, day(0))
    p = m.predict(test, arrived, nb, 1)
    perm = np.random.default_rng(3).permutation(len(test))
    shuffled = test.iloc[perm].set_index(np.arange(len(test)) * 10)  # odd index on purpose
    np.testing.assert_allclose(m.predict(shuffled, arrived, nb, 1), p[perm])
    dup = pd.concat([test.iloc[[5]], test.iloc[[2]], test.iloc[[5]]])
    np.testing.assert_allclose(m.predict(dup, arrived, nb, 1), p[[5, 2, 5]])


@pytest.mark.parametrize("name", list(BASELINES))
def test_empty_inputs(name, scenario):
    arrived, nb, train, test = scenario
    empty_arrived = arrived.iloc[:0]
    empty_rows = test.iloc[:0]
    # nothing to learn from, nothing arrived: zeros
    m = BASELINES[name]().fit(train, empty_arrived, nb, 7, day(0))
    np.testing.assert_array_equal(m.predict(test, empty_arrived, nb, 7), np.zeros(len(test)))
    m = BASELINES[name]().fit(empty_rows, empty_arrived, NO_NEIGHBOURS, 7, day(0))
    np.testing.assert_array_equal(m.predict(test, empty_arrived, NO_NEIGHBOURS, 7), np.zeros(len(test)))
    out = m.predict(empty_rows, arrived, nb, 7)
    assert isinstance(out, np.ndarray) and out.shape == (0,)
    # no neighbours at all is fine too
    p = BASELINES[name]().fit(train, arrived, NO_NEIGHBOURS, 7, day(0)).predict(test, arrived, NO_NEIGHBOURS, 7)
    assert p.shape == (len(test),) and (p >= 0).all()


@pytest.mark.parametrize("make", [KernelBaseline, LagGBMBaseline])
def test_fitted_baselines_check_horizon(make, scenario):
    arrived, nb, train, test = scenario
    with pytest.raises(RuntimeError):
        make().predict(test, arrived, nb, 7)
    m = make().fit(train, arrived, nb, 7, day(0))
    with pytest.raises(ValueError):
        m.predict(test, arrived, nb, 1)
