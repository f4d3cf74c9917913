"""Forecast evaluation metrics, checked against small examples worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hotspots.forecast.metrics import (
    brier_score,
    capture_rate,
    evaluate,
    pai,
    pei,
    pei_against,
    poisson_deviance,
    reliability_table,
    summarise,
)

# A 4-cell day used by the ranking tests.
# rank by score: idx0 (0.9), idx2 (0.5), idx3 (0.3), idx1 (0.1); realised total = 2+5+1+0 = 8
SCORE = [0.9, 0.1, 0.5, 0.3]
REAL = [2, 5, 1, 0]


# ---------------------------------------------------------------- capture rate
def test_capture_rate_hand_computed():
    assert capture_rate(SCORE, REAL, 1) == pytest.approx(2 / 8)  # idx0 -> 2
    assert capture_rate(SCORE, REAL, 2) == pytest.approx(3 / 8)  # idx0, idx2 -> 2+1
    assert capture_rate(SCORE, REAL, 3) == pytest.approx(3 / 8)  # + idx3 (0)
    assert capture_rate(SCORE, REAL, 4) == pytest.approx(1.0)
    assert capture_rate(SCORE, REAL, 0) == 0.0


def test_capture_rate_k_above_candidates_is_all_cells():
    assert capture_rate(SCORE, REAL, 1000) == pytest.approx(1.0)


def test_capture_rate_ties_go_to_the_earlier_cell():
    # all three tied at 1: k=1 takes position 0, k=2 positions 0 and 1
    assert capture_rate([1, 1, 1, 0], [0, 3, 1, 0], 1) == 0.0  # 0/4
    assert capture_rate([1, 1, 1, 0], [0, 3, 1, 0], 2) == pytest.approx(3 / 4)
    assert capture_rate([1, 1, 1, 0], [1, 3, 0, 0], 1) == pytest.approx(1 / 4)


def test_capture_rate_zero_realised_is_nan():
    assert math.isnan(capture_rate(SCORE, [0, 0, 0, 0], 2))


def test_capture_rate_unscored_cells_count_but_are_never_selected():
    # idx0 unscored with 4 withdrawals: total 5; k=1 -> idx1 (1) = 1/5; k=5 still only idx1, idx2 -> 1/5
    assert capture_rate([np.nan, 0.2, 0.1], [4, 1, 0], 1) == pytest.approx(0.2)
    assert capture_rate([np.nan, 0.2, 0.1], [4, 1, 0], 5) == pytest.approx(0.2)


def test_capture_rate_rejects_bad_input():
    with pytest.raises(ValueError):
        capture_rate(SCORE, [1, -1, 0, 0], 2)
    with pytest.raises(ValueError):
        capture_rate(SCORE, REAL[:3], 2)
    with pytest.raises(ValueError):
        capture_rate(SCORE, REAL, -1)


# ---------------------------------------------------------------- PAI
def test_pai_hand_computed():
    assert pai(SCORE, REAL, 2) == pytest.approx((3 / 8) / (2 / 4))  # 0.75
    assert pai(SCORE, REAL, 1) == pytest.approx((2 / 8) / (1 / 4))  # 1.0
    assert pai(SCORE, REAL, 2, n_candidates=8) == pytest.approx((3 / 8) / (2 / 8))  # 1.5


def test_pai_k_capped_at_candidates():
    # k=10 on 4 candidates: area 4/4, capture 1 -> 1 (uncapped would give 1 / (10/4) = 0.4)
    assert pai(SCORE, REAL, 10) == pytest.approx(1.0)


def test_pai_nan_cases_and_checks():
    assert math.isnan(pai(SCORE, [0, 0, 0, 0], 2))
    assert math.isnan(pai(SCORE, REAL, 0))
    with pytest.raises(ValueError):
        pai(SCORE, REAL, 2, n_candidates=3)  # fewer than the 4 scored cells


# ---------------------------------------------------------------- PEI
def test_pei_hand_computed():
    # k=2: model takes idx0, idx2 = 2+1 = 3; best 2 cells = 5+2 = 7
    assert pei(SCORE, REAL, 2) == pytest.approx(3 / 7)
    # k=1: model 2, best 5
    assert pei(SCORE, REAL, 1) == pytest.approx(2 / 5)


def test_pei_is_one_for_a_perfect_ranking_and_less_for_a_worse_one():
    perfect = [2.0, 5.0, 1.0, 0.0]  # same order as the realised counts
    for k in (1, 2, 3, 4):
        assert pei(perfect, REAL, k) == pytest.approx(1.0)
    assert pei(SCORE, REAL, 1) < 1.0
    assert pei(SCORE, REAL, 2) < 1.0


def test_pei_zero_realised_is_nan():
    assert math.isnan(pei(SCORE, [0, 0, 0, 0], 2))


def test_pei_with_reference_uses_the_reference_on_both_sides():
    ref = [1.0, 4.0, 2.0, 0.5]
    # model top-2 idx0, idx2 -> 1+2 = 3; best 2 by ref -> 4+2 = 6; realised plays no part
    assert pei(SCORE, REAL, 2, reference=ref) == pytest.approx(0.5)
    assert pei(SCORE, [0, 0, 0, 0], 2, reference=ref) == pytest.approx(0.5)
    assert pei(ref, REAL, 2, reference=ref) == pytest.approx(1.0)


def test_pei_unscored_cell_competes_in_the_best_ranking():
    # idx2 unscored with reference 5: model k=1 takes idx0 (1); best single cell is idx2 (5)
    assert pei([0.3, 0.2, np.nan], [0, 0, 0], 1, reference=[1, 2, 5]) == pytest.approx(1 / 5)


def test_pei_against_truth_with_a_cell_the_model_never_scored():
    # truth a=0 (absent), b=3, c=1, z=6 (never scored). Model top-2: a, b -> 0+3 = 3;
    # best 2 of all cells: z, b -> 6+3 = 9
    v = pei_against(["a", "b", "c"], [0.9, 0.5, 0.1], ["b", "c", "z"], [3.0, 1.0, 6.0], 2)
    assert v == pytest.approx(3 / 9)
    # without z the best is b, c = 4, so z really entered the denominator
    assert pei_against(["a", "b", "c"], [0.9, 0.5, 0.1], ["b", "c"], [3.0, 1.0], 2) == pytest.approx(3 / 4)
    # perfect ranking of the scored cells still pays for missing z: (3+1) / (6+3)
    assert pei_against(["b", "c"], [0.9, 0.5], ["b", "c", "z"], [3.0, 1.0, 6.0], 2) == pytest.approx(4 / 9)
    # perfect ranking of all truth cells -> 1
    assert pei_against(["z", "b", "c"], [3, 2, 1], ["b", "c", "z"], [3.0, 1.0, 6.0], 2) == pytest.approx(1.0)


def test_pei_against_ties_follow_score_cell_order_and_rejects_duplicates():
    assert pei_against(["x", "y"], [1, 1], ["x", "y"], [0.0, 2.0], 1) == 0.0
    assert pei_against(["y", "x"], [1, 1], ["x", "y"], [0.0, 2.0], 1) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        pei_against(["x", "x"], [1, 2], ["x"], [1.0], 1)


# ---------------------------------------------------------------- deviance and Brier
def test_poisson_deviance_hand_computed():
    # (mu=1, y=0): 2*(0 - (0-1)) = 2
    # (mu=2, y=2): 2*(2 log 1 - 0) = 0
    # (mu=0.5, y=3): 2*(3 log 6 - 2.5) = 6 log 6 - 5
    # mean = (2 + 0 + 6 log 6 - 5) / 3 = 2 log 6 - 1 = 2.5835189...
    d = poisson_deviance([1.0, 2.0, 0.5], [0, 2, 3])
    assert d == pytest.approx(2 * math.log(6) - 1)
    assert d == pytest.approx(2.583518938, rel=1e-9)


def test_poisson_deviance_perfect_and_clipped_mu():
    assert poisson_deviance([0.5, 3.0], [0.5, 3.0]) == pytest.approx(0.0, abs=1e-12)
    # mu 0 -> 1e-9: y=0 gives 2*(0 - (0 - 1e-9)) = 2e-9; y=1 gives 2*(log(1e9) - 1 + 1e-9) = 39.4465...
    assert poisson_deviance([0.0], [0]) == pytest.approx(2e-9)
    assert poisson_deviance([0.0], [1]) == pytest.approx(2 * (9 * math.log(10) - 1 + 1e-9))
    assert math.isfinite(poisson_deviance([0.0], [1]))
    assert math.isnan(poisson_deviance([], []))
    with pytest.raises(ValueError):
        poisson_deviance([-1.0], [0])


def test_brier_score_hand_computed():
    # outcomes 1,0,0,1: (0.9-1)^2 + 0.2^2 + 0.5^2 + (0-1)^2 = 0.01+0.04+0.25+1 = 1.3; /4 = 0.325
    assert brier_score([0.9, 0.2, 0.5, 0.0], [1, 0, 0, 2]) == pytest.approx(0.325)
    assert brier_score([1.0, 0.0], [3, 0]) == 0.0
    assert math.isnan(brier_score([], []))
    with pytest.raises(ValueError):
        brier_score([1.2], [1])


# ---------------------------------------------------------------- reliability
def test_reliability_table_bins():
    # edges 0, .2, .4, .6, .8, 1; 0.2 sits on an inner edge -> bin 1; 1.0 -> last bin (closed)
    p = [0.05, 0.15, 0.2, 0.9, 1.0, 0.45]
    y = [0, 1, 1, 2, 1, 0]
    t = reliability_table(p, y, bins=5)
    assert list(t.columns) == ["bin", "lower", "upper", "n", "mean_predicted", "observed_frequency"]
    assert t["lower"].tolist() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    assert t["upper"].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert t["n"].tolist() == [2, 1, 1, 0, 2]
    # bin0: mean(.05,.15) = .1, outcomes 0,1 -> .5; bin1: .2, 1; bin2: .45, 0; bin3 empty; bin4: .95, 1
    mp, of = t["mean_predicted"].to_numpy(), t["observed_frequency"].to_numpy()
    np.testing.assert_allclose(mp[[0, 1, 2, 4]], [0.1, 0.2, 0.45, 0.95])
    np.testing.assert_allclose(of[[0, 1, 2, 4]], [0.5, 1.0, 0.0, 1.0])
    assert np.isnan(mp[3]) and np.isnan(of[3])


def test_reliability_table_default_and_custom_edges():
    assert len(reliability_table([0.5], [1])) == 10
    t = reliability_table([0.1, 0.3, 0.6], [0, 1, 1], bins=[0.0, 0.5, 1.0])
    assert t["n"].tolist() == [2, 1]
    assert t["observed_frequency"].tolist() == pytest.approx([0.5, 1.0])
    with pytest.raises(ValueError):
        reliability_table([0.9], [1], bins=[0.0, 0.5])  # 0.9 not covered


# ---------------------------------------------------------------- evaluate / summarise
D1, D2 = pd.Timestamp("2025-01-01"), pd.Timestamp("2025-01-02")
EW = {"a": 4.0, "b": 2.0, "c": 1.0, "d": 3.0, "e": 0.5}  # rank a, d, b, c, e
P = {"a": 0.9, "b": 0.5, "c": 0.5, "d": 0.8, "e": 0.1}
DISTRICT = {"a": "D1", "b": "D1", "c": "D1", "d": "D2", "e": "D2"}


def toy_forecasts():
    return pd.DataFrame([{"h3_cell": c, "forecast_date": d, "horizon_days": h, "expected_withdrawals": EW[c],
                          "p_any": P[c], "district": DISTRICT[c]}
                         for d in (D1, D2) for h in (1, 7) for c in EW])


def toy_realised():
    rows = {(D1, 1): {"a": 1, "c": 2, "d": 1},              # total 4
            (D1, 7): {"a": 3, "b": 1, "c": 2, "d": 4},      # total 10
            (D2, 1): {},                                    # no withdrawals
            (D2, 7): {"a": 2, "e": 3, "x": 1},              # x: no forecast; total 6
            (pd.Timestamp("2025-01-03"), 1): {"a": 9}}      # no forecast for that date: ignored
    return pd.DataFrame([{"h3_cell": c, "forecast_date": d, "horizon_days": h, "realised": n}
                         for (d, h), cells in rows.items() for c, n in cells.items()])


def toy_truth():
    # only (D1, 1); z is a true hotspot the model never scored
    t = {"a": 0.5, "b": 0.2, "c": 2.5, "d": 1.0, "z": 3.0}
    return pd.DataFrame([{"h3_cell": c, "forecast_date": D1, "horizon_days": 1, "expected": v} for c, v in t.items()])


def row(m, d, h, **extra):
    sel = (m["forecast_date"] == d) & (m["horizon_days"] == h)
    for k, v in extra.items():
        sel &= m[k] == v
    assert sel.sum() == 1
    return m[sel].iloc[0]


def test_evaluate_overall():
    m = evaluate(toy_forecasts(), toy_realised(), ks=(1, 3))
    assert len(m) == 4  # 2 dates x 2 horizons; the 2025-01-03 realised row is ignored
    for col in ("capture_rate_1", "capture_rate_3", "pai_1", "pai_3", "pei_1", "pei_3", "poisson_deviance", "brier"):
        assert col in m.columns
    assert not any(c.startswith("pei_truth") for c in m.columns)

    # (D1, 1): realised a1 c2 d1, total 4. k=1: a -> 1/4, PAI .25/(1/5), best cell c=2 -> PEI 1/2
    # k=3: a, d, b -> 2/4, PAI .5/(3/5) = 5/6, best 3 = 2+1+1 -> PEI 2/4
    r = row(m, D1, 1)
    assert r["n_candidates"] == 5 and r["realised_total"] == 4
    assert (r["capture_rate_1"], r["pai_1"], r["pei_1"]) == pytest.approx((0.25, 1.25, 0.5))
    assert (r["capture_rate_3"], r["pai_3"], r["pei_3"]) == pytest.approx((0.5, 5 / 6, 0.5))

    # (D1, 7): a3 b1 c2 d4, total 10. k=1: a 3 -> .3, PAI 1.5, PEI 3/4; k=3: a,d,b 8 -> .8, PAI 4/3, PEI 8/9
    r = row(m, D1, 7)
    assert (r["capture_rate_1"], r["pai_1"], r["pei_1"]) == pytest.approx((0.3, 1.5, 0.75))
    assert (r["capture_rate_3"], r["pai_3"], r["pei_3"]) == pytest.approx((0.8, 4 / 3, 8 / 9))

    # (D2, 1): nothing realised -> ranking metrics NaN; deviance = mean(2 mu) = 2 * 10.5 / 5 = 4.2;
    # Brier = mean(p^2) = (.81+.25+.25+.64+.01)/5 = .392
    r = row(m, D2, 1)
    assert all(math.isnan(r[c]) for c in ("capture_rate_1", "pai_1", "pei_1", "capture_rate_3"))
    assert r["poisson_deviance"] == pytest.approx(4.2)
    assert r["brier"] == pytest.approx(0.392)

    # (D2, 7): a2 e3 x1 (x unscored), total 6. k=1: a -> 2/6, PAI (1/3)/(1/5) = 5/3, best cell e=3 -> PEI 2/3
    # k=3: a, d, b -> 2/6, PAI (1/3)/(3/5) = 5/9, best 3 = e, a, x = 3+2+1 -> PEI 2/6
    r = row(m, D2, 7)
    assert r["n_candidates"] == 5 and r["realised_total"] == 6 and r["realised_unscored"] == 1
    assert (r["capture_rate_1"], r["pai_1"], r["pei_1"]) == pytest.approx((1 / 3, 5 / 3, 2 / 3))
    assert (r["capture_rate_3"], r["pai_3"], r["pei_3"]) == pytest.approx((1 / 3, 5 / 9, 1 / 3))
    # deviance over a..e and x (x forecast as mu=0 -> 1e-9):
    # a (mu4,y2): 2(2 log .5 + 2) = 4 - 4 log 2; b: 2*2 = 4; c: 2; d: 6; e (mu .5, y3): 6 log 6 - 5;
    # x (1e-9, 1): 2(log 1e9 - 1 + 1e-9); mean of the 6
    dev = (4 - 4 * math.log(2) + 4 + 2 + 6 + 6 * math.log(6) - 5 + 2 * (9 * math.log(10) - 1 + 1e-9)) / 6
    assert r["poisson_deviance"] == pytest.approx(dev)
    # Brier: p .9 .5 .5 .8 .1 0 vs 1 0 0 0 1 1: .01+.25+.25+.64+.81+1 = 2.96 / 6
    assert r["brier"] == pytest.approx(2.96 / 6)


def test_evaluate_with_truth_counts_an_unscored_true_hotspot():
    f, rl = toy_forecasts(), toy_realised()
    m = evaluate(f, rl, ks=(1, 3), truth=toy_truth())
    r = row(m, D1, 1)
    # truth a .5 b .2 c 2.5 d 1 z 3 (z unscored). k=1: a .5 / best z 3 = 1/6
    # k=3: a+d+b = 1.7 / best z+c+d = 6.5
    assert r["pei_truth_1"] == pytest.approx(0.5 / 3)
    assert r["pei_truth_3"] == pytest.approx(1.7 / 6.5)
    assert math.isnan(row(m, D1, 7)["pei_truth_1"])  # no truth given for that group: nothing to rank
    # truth-only cells do not enter deviance, Brier or the realised metrics
    plain = evaluate(f, rl, ks=(1, 3))
    for col in ("poisson_deviance", "brier", "capture_rate_3", "pei_3", "pai_3", "n_candidates"):
        np.testing.assert_allclose(m[col].to_numpy(float), plain[col].to_numpy(float))


def test_evaluate_by_district():
    m = evaluate(toy_forecasts(), toy_realised(), ks=(1, 3), truth=toy_truth(), by="district",
                 groups={"x": "D2", "z": "D2"})
    assert len(m) == 8  # 4 groups x 2 districts, no NaN district
    assert set(m["district"]) == {"D1", "D2"}

    # (D1, 1) D1: a1 b0 c2, rank a b c. k=1: 1/3, PAI (1/3)/(1/3) = 1, PEI 1/2; k=3: everything -> 1, 1, 1
    r = row(m, D1, 1, district="D1")
    assert r["n_candidates"] == 3 and r["realised_total"] == 3
    assert (r["capture_rate_1"], r["pai_1"], r["pei_1"]) == pytest.approx((1 / 3, 1.0, 0.5))
    assert (r["capture_rate_3"], r["pai_3"], r["pei_3"]) == pytest.approx((1.0, 1.0, 1.0))
    # truth D1: a .5 b .2 c 2.5: k=1 a .5 / c 2.5 = .2; k=3 all -> 1
    assert (r["pei_truth_1"], r["pei_truth_3"]) == pytest.approx((0.2, 1.0))

    # (D1, 1) D2: d1 e0, rank d e. k=1: 1, PAI 1/(1/2) = 2; k=3 capped at 2 cells: 1, PAI 1/(2/2) = 1
    # (uncapped area 3/2 would give 2/3)
    r = row(m, D1, 1, district="D2")
    assert r["n_candidates"] == 2
    assert (r["capture_rate_1"], r["pai_1"], r["pei_1"]) == pytest.approx((1.0, 2.0, 1.0))
    assert (r["capture_rate_3"], r["pai_3"], r["pei_3"]) == pytest.approx((1.0, 1.0, 1.0))
    # truth D2: d 1, e 0, z 3 (unscored). k=1: d 1 / z 3; k=3 -> 2 cells: d+e = 1 / z+d = 4
    assert (r["pei_truth_1"], r["pei_truth_3"]) == pytest.approx((1 / 3, 0.25))

    # (D2, 7) D2: d0 e3 x1 (x unscored, mapped to D2), total 4. k=1: d -> 0, PAI 0, PEI 0;
    # k=3 -> 2 cells d, e: 3/4, PAI .75/(2/2), best 2 of d, e, x = 3+1 -> PEI 3/4
    r = row(m, D2, 7, district="D2")
    assert r["realised_total"] == 4 and r["realised_unscored"] == 1
    assert (r["capture_rate_1"], r["pai_1"], r["pei_1"]) == pytest.approx((0.0, 0.0, 0.0))
    assert (r["capture_rate_3"], r["pai_3"], r["pei_3"]) == pytest.approx((0.75, 0.75, 0.75))
    # (D2, 7) D1: a2 b0 c0: k=1 a -> 1, PAI 1/(1/3) = 3, PEI 1
    r = row(m, D2, 7, district="D1")
    assert (r["capture_rate_1"], r["pai_1"], r["pei_1"]) == pytest.approx((1.0, 3.0, 1.0))


def test_evaluate_by_district_without_a_mapping_shows_unmapped_cells():
    m = evaluate(toy_forecasts(), toy_realised(), ks=(1,), by="district")
    lost = m[m["district"].isna()]
    # x is the only cell without a district: one NaN-district row, for (D2, 7), holding its 1 withdrawal
    assert len(lost) == 1
    r = lost.iloc[0]
    assert (r["forecast_date"], r["horizon_days"], r["realised_total"], r["n_candidates"]) == (D2, 7, 1, 0)
    assert r["capture_rate_1"] == 0.0 and math.isnan(r["pai_1"])


@pytest.mark.parametrize("dtype", ["string[pyarrow]", "string"])
def test_evaluate_by_district_is_the_same_with_nullable_string_districts(dtype):
    """Districts read from the warehouse may come as a nullable string dtype (missing = NA): the
    groups, the unmapped cells' NaN row included, are those of plain Python strings."""
    plain = evaluate(toy_forecasts(), toy_realised(), ks=(1, 3), by="district")
    f = toy_forecasts()
    f["district"] = f["district"].astype(dtype)
    typed = evaluate(f, toy_realised(), ks=(1, 3), by="district")
    assert typed["district"].isna().sum() == plain["district"].isna().sum() == 1
    pd.testing.assert_frame_equal(typed.drop(columns="district"), plain.drop(columns="district"))
    names = [[d if isinstance(d, str) else None for d in m["district"]] for m in (typed, plain)]
    assert names[0] == names[1]


def test_evaluate_ties_go_to_the_smaller_cell_id_whatever_the_row_order():
    f = pd.DataFrame({"h3_cell": ["c", "a"], "forecast_date": D1, "horizon_days": 1,
                      "expected_withdrawals": [1.0, 1.0], "p_any": [0.5, 0.5]})
    rl = pd.DataFrame({"h3_cell": ["a"], "forecast_date": [D1], "horizon_days": [1], "realised": [1]})
    assert evaluate(f, rl, ks=(1,))["capture_rate_1"].iloc[0] == 1.0  # a beats c
    rl2 = rl.assign(h3_cell=["c"])
    assert evaluate(f, rl2, ks=(1,))["capture_rate_1"].iloc[0] == 0.0


def test_evaluate_rejects_duplicates():
    f = toy_forecasts()
    with pytest.raises(ValueError):
        evaluate(pd.concat([f, f.head(1)]), toy_realised(), ks=(1,))


def test_summarise_means_over_dates_skipping_nan():
    m = evaluate(toy_forecasts(), toy_realised(), ks=(1, 3))
    s = summarise(m)
    assert s["horizon_days"].tolist() == [1, 7]
    assert s["n_dates"].tolist() == [2, 2]
    # h1: capture_1 .25 and NaN -> .25; h7: .3 and 1/3 -> .316667
    assert s["capture_rate_1"].tolist() == pytest.approx([0.25, (0.3 + 1 / 3) / 2])
    # h1 brier: mean of (D1,1) and .392
    b = row(m, D1, 1)["brier"]
    assert s.loc[0, "brier"] == pytest.approx((b + 0.392) / 2)


def test_summarise_by_district():
    m = evaluate(toy_forecasts(), toy_realised(), ks=(1, 3), by="district", groups={"x": "D2"})
    s = summarise(m)
    assert len(s) == 4 and set(s.columns) >= {"horizon_days", "district", "n_dates", "pai_3"}
    r = s[(s["horizon_days"] == 7) & (s["district"] == "D2")].iloc[0]
    # h7 D2: (D1,7) d4 e0 -> k=1 d: 4/4 = 1; (D2,7) 0 -> mean .5
    assert r["capture_rate_1"] == pytest.approx(0.5)
