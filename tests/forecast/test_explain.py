"""Sentences for forecast explanations, and picking each row's top SHAP contributions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hotspots.forecast.explain import (
    COLUMNS,
    KNOWN_FEATURES,
    describe,
    format_inr,
    format_number,
    summary,
    top_contributions,
)

# Every model feature (marts.fct_cell_daily_features), a value and what its sentence must show.
CASES = {
    "wd_1d": (2, "2 fraud-linked withdrawals", "yesterday"),
    "wd_7d": (3, "3 fraud-linked withdrawals", "last 7 days"),
    "wd_28d": (11, "11 fraud-linked withdrawals", "last 28 days"),
    "wd_90d": (40, "40 fraud-linked withdrawals", "last 90 days"),
    "wd_trend_7d": (-4, "down by 4", "7 days before"),
    "wd_ratio_7d_28d": (2.5, "2.5 times", "28-day pace"),
    "amount_7d": (125000, "₹1,25,000", "last 7 days"),
    "amount_28d": (1_240_000, "₹12.4 lakh", "last 28 days"),
    "days_since_last_withdrawal": (6, "6 days ago", "last fraud-linked withdrawal"),
    "ring1_wd_7d": (5, "5 fraud-linked withdrawals", "6 adjacent cells"),
    "ring1_wd_28d": (6, "6 fraud-linked withdrawals", "~1 km"),
    "ring1_wd_90d": (7, "7 fraud-linked withdrawals", "last 90 days"),
    "ring2_wd_7d": (8, "8 fraud-linked withdrawals", "~2 km"),
    "ring2_wd_28d": (9, "9 fraud-linked withdrawals", "last 28 days"),
    "ring2_wd_90d": (12, "12 fraud-linked withdrawals", "2 rings"),
    "res6_wd_7d": (13, "13 fraud-linked withdrawals", "~36 km²"),
    "res6_wd_28d": (14, "14 fraud-linked withdrawals", "last 28 days"),
    "res6_wd_90d": (123456, "1,23,456 fraud-linked withdrawals", "last 90 days"),
    "terminals_known": (4, "4 terminals", "fraud cash-outs"),
    "pressure_1d": (2.46, "2.5 transfers", "reported yesterday went to mule accounts that cashed out here"),
    "pressure_7d": (7, "7 transfers", "last 7 days"),
    "pressure_28d": (19.25, "19.2 transfers", "last 28 days"),
    "pressure_amount_7d": (12_000_000, "₹1.2 crore", "mule accounts that cashed out here before"),
    "pressure_accounts_max_7d": (3, "3 mule accounts that cashed out here before", "single day"),
    "ring1_pressure_7d": (1.5, "1.5 transfers", "6 adjacent cells"),
    "ring2_pressure_7d": (2.75, "2.8 transfers", "~2 km"),
    "mix_payment_fraud": (0.3, "30%", "UPI, card and net-banking"),
    "mix_impersonation": (0.62, "62%", "impersonation scams (customer care, KYC, digital arrest)"),
    "mix_scheme": (0.05, "5%", "investment, job and loan-app"),
    "mix_other": (1.0, "100%", "sextortion"),
    "day_of_week": (1, "Monday", "day 1 of the week"),
    "day_of_month": (22, "22nd", "of the month"),
    "is_month_end": (1, "starts on a salary day", "first 2 or last 3 days"),
    "is_holiday": (1, "starts on a public holiday", "forecast"),
}


def test_every_feature_has_its_own_sentence_with_its_number():
    assert set(CASES) == KNOWN_FEATURES
    for feature, (value, number, words) in CASES.items():
        text = describe(feature, value, 0.4)
        assert number in text, (feature, text)
        assert words in text, (feature, text)
        assert feature not in text and " = " not in text, (feature, text)
        assert text.endswith(" (raises the forecast ×1.5)"), (feature, text)


def test_effect_suffix_follows_the_factor():
    assert describe("wd_7d", 3, math.log(2.3)).endswith(" (raises the forecast ×2.3)")
    assert describe("wd_7d", 3, math.log(0.6)).endswith(" (lowers the forecast ×0.6)")
    assert describe("wd_7d", 3, math.log(1.04)).endswith("×1.04)")
    assert describe("wd_7d", 3, math.log(25)).endswith("×25)")
    assert describe("wd_7d", 3, 0.0) == "3 fraud-linked withdrawals reported here in the last 7 days"


def test_pluralisation():
    assert describe("wd_1d", 1, 0).startswith("1 fraud-linked withdrawal reported")
    assert describe("wd_1d", 0, 0).startswith("0 fraud-linked withdrawals reported")
    assert describe("pressure_1d", 1.0, 0).startswith("1 transfer from")
    assert describe("pressure_1d", 1.5, 0).startswith("1.5 transfers from")
    assert describe("terminals_known", 1, 0).startswith("1 terminal (ATM, branch or POS) here")
    assert describe("pressure_accounts_max_7d", 1, 0).startswith("1 mule account that cashed out here before")
    assert describe("days_since_last_withdrawal", 1, 0) == "last fraud-linked withdrawal here 1 day ago"
    # booleans arrive as 0/1 floats
    assert "does not start on a public holiday" in describe("is_holiday", 0.0, 0)
    assert "does not start on a salary day" in describe("is_month_end", False, 0)


def test_special_values():
    assert "no fraud-linked withdrawal reported here in the last 90 days" in describe(
        "days_since_last_withdrawal", 365, -0.2
    )
    assert "up by 4" in describe("wd_trend_7d", 4, 0)
    assert "change of 0" in describe("wd_trend_7d", 0, 0)
    assert "1.0 times their 28-day pace (steady)" in describe("wd_ratio_7d_28d", 1.0, 0)
    assert "no fraud-linked withdrawals here in the last 28 days" in describe("wd_ratio_7d_28d", np.nan, 0)
    assert "0.04 transfers" in describe("ring2_pressure_7d", 0.04, 0)


def test_numbers_and_rupees():
    assert [format_number(x) for x in (3, 3.0, 2.46, 2.96, -4, 0, 1234567)] == [
        "3", "3", "2.5", "3", "-4", "0", "12,34,567"
    ]
    assert format_inr(0) == "₹0"
    assert format_inr(85_000) == "₹85,000"
    assert format_inr(125_000) == "₹1,25,000"
    assert format_inr(999_999) == "₹9,99,999"
    assert format_inr(1_000_000) == "₹10 lakh"
    assert format_inr(1_240_000) == "₹12.4 lakh"
    assert format_inr(9_996_000) == "₹1 crore"  # 99.96 lakh rounds up to a crore
    assert format_inr(12_000_000) == "₹1.2 crore"
    assert format_inr(1.25e11) == "₹12,500 crore"


def test_unknown_feature_and_unusable_values_fall_back():
    assert describe("new_feature", 2.5, -0.5) == "new_feature = 2.5 (lowers the forecast ×0.6)"
    assert describe("day_of_week", 9, 0) == "day_of_week = 9"
    assert describe("wd_7d", np.nan, 0) == "wd_7d = missing"


def test_summary_joins_and_capitalises():
    texts = ["fraud-linked withdrawals here up", "3 transfers"]
    assert summary(texts) == "Fraud-linked withdrawals here up; 3 transfers"
    assert summary([]) == ""


NAMES = ["wd_7d", "pressure_1d", "is_holiday", "mystery"]


def _frame(contrib: np.ndarray, **kw) -> pd.DataFrame:
    values = pd.DataFrame(
        {"wd_7d": [3, 0, 1], "pressure_1d": [2.5, 1, 0], "is_holiday": [True, False, True],
         "mystery": [7.0, 8.0, 9.0], "h3_cell": ["a", "b", "c"]}
    )
    return top_contributions(contrib, NAMES, values, **kw)


# Last column is the bias: large, and must never be picked.
CONTRIB = np.array(
    [
        [0.5, 1.2, -0.3, 0.1, 9.0],
        [-0.2, -0.1, -0.4, -0.05, 9.0],
        [0.0, 0.3, 0.3, 0.7, 9.0],
    ]
)


def test_top_contributions_ranks_and_ignores_bias():
    out = _frame(CONTRIB, top=2)
    assert list(out.columns) == COLUMNS
    assert out[["row", "rank", "feature"]].values.tolist() == [
        [0, 1, "pressure_1d"], [0, 2, "wd_7d"],
        [2, 1, "mystery"], [2, 2, "pressure_1d"],  # tie 0.3/0.3: the earlier feature wins
    ]
    assert out["value"].tolist() == [2.5, 3.0, 9.0, 0.0]
    assert out["contribution"].tolist() == [1.2, 0.5, 0.7, 0.3]
    np.testing.assert_allclose(out["factor"], np.exp([1.2, 0.5, 0.7, 0.3]))
    assert out["text"].iloc[0].startswith("2.5 transfers from complaints reported yesterday")
    assert out["text"].iloc[2] == "mystery = 9 (raises the forecast ×2.0)"
    assert out["row"].dtype == np.int64 and out["value"].dtype == float


def test_positive_only_drops_non_positive_and_top_caps_at_features():
    out = _frame(CONTRIB, top=10)
    # row 0: 3 positive of 4; row 1: none; row 2: three positive (0.0 is not > 0)
    assert out.groupby("row")["rank"].apply(list).to_dict() == {0: [1, 2, 3], 2: [1, 2, 3]}
    assert (out["contribution"] > 0).all()

    both = _frame(CONTRIB, top=2, positive_only=False)
    assert len(both) == 6
    row1 = both[both["row"] == 1]
    assert row1["feature"].tolist() == ["mystery", "pressure_1d"]
    assert row1["factor"].round(3).tolist() == [round(math.exp(-0.05), 3), round(math.exp(-0.1), 3)]
    assert "lowers the forecast" in row1["text"].iloc[0]


def test_top_contributions_edge_cases():
    assert _frame(CONTRIB[:, :4], top=1)["feature"].tolist() == ["pressure_1d", "mystery"]  # no bias column
    none = _frame(-np.abs(CONTRIB))
    assert none.empty and list(none.columns) == COLUMNS
    nan = CONTRIB.copy()
    nan[0, 1] = np.nan
    assert _frame(nan, top=1)["feature"].tolist() == ["wd_7d", "mystery"]
    with pytest.raises(ValueError):
        _frame(CONTRIB[:, :3])
    with pytest.raises(ValueError):
        _frame(CONTRIB[:2])
