"""Segments and budget allocation against hand-worked examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.decisioning import (
    DEFAULT_ACTIONS,
    Action,
    allocate_budget,
    assign_segments,
    expected_incremental_value,
)


def _scores(clv: list[float], p_churn: list[float], ids: list | None = None) -> pd.DataFrame:
    ids = ids if ids is not None else list(range(1, len(clv) + 1))
    return pd.DataFrame({"customer_id": ids, "predicted_clv": clv, "p_churn": p_churn})


# --------------------------------------------------------------------------- segments


def test_terciles_on_six_customers_by_hand():
    # clv 10..60, linear quantiles at positions (n - 1) * q of the sorted values:
    #   1/3: position 5/3  -> 20 + (2/3) * 10 = 26.667
    #   2/3: position 10/3 -> 40 + (1/3) * 10 = 43.333
    # -> 10, 20 low; 30, 40 mid; 50, 60 high
    seg = assign_segments(_scores([10, 20, 30, 40, 50, 60], [0.1] * 6))
    assert seg["value_tier"].tolist() == ["low", "low", "mid", "mid", "high", "high"]
    assert seg["value_low_max"].iloc[0] == pytest.approx(20 + 20 / 3)
    assert seg["value_mid_max"].iloc[0] == pytest.approx(40 + 10 / 3)


def test_value_equal_to_a_threshold_goes_to_the_lower_tier():
    # sorted 10, 10, 10, 20, 20, 30: 1/3 quantile between 10 and 10 = 10,
    # 2/3 quantile between 20 and 20 = 20 -> the 10s are low, the 20s mid, 30 high
    seg = assign_segments(_scores([10, 20, 10, 30, 20, 10], [0.1] * 6))
    assert seg["value_tier"].tolist() == ["low", "mid", "low", "high", "mid", "low"]
    assert (seg["value_low_max"] == 10).all() and (seg["value_mid_max"] == 20).all()


def test_segment_table_and_lost_rule():
    # tiers as in the six-customer case: ids 1, 2 low; 3, 4 mid; 5, 6 high
    clv = [10, 20, 30, 40, 50, 60]
    p_churn = [0.2, 0.5, 0.49, 0.9, 0.1, 0.99]
    seg = assign_segments(_scores(clv, p_churn))
    assert seg["churn_risk"].tolist() == ["low", "high", "low", "high", "low", "high"]
    assert seg["segment"].tolist() == [
        "promising",           # low, p 0.2
        "hibernating",         # low, p 0.5 (>= 0.5 is high risk, < 0.9 not lost)
        "loyal",               # mid, p 0.49
        "lost",                # mid, p 0.9 (>= lost threshold)
        "champions",           # high, p 0.1
        "at_risk_high_value",  # high, p 0.99: high value is never written off as lost
    ]


def test_all_six_table_segments_and_custom_thresholds():
    clv = [10, 20, 30, 40, 50, 60]
    p_churn = [0.35, 0.25, 0.35, 0.25, 0.35, 0.25]
    seg = assign_segments(_scores(clv, p_churn), churn_threshold=0.3, lost_threshold=0.3)
    # p 0.35 >= 0.3 is high risk and, with lost_threshold 0.3, lost unless high tier
    assert seg["segment"].tolist() == [
        "lost", "promising", "lost", "loyal", "at_risk_high_value", "champions"
    ]
    seg = assign_segments(_scores(clv, p_churn), churn_threshold=0.3, lost_threshold=1.0)
    assert seg["segment"].tolist() == [
        "hibernating", "promising", "needs_attention", "loyal", "at_risk_high_value", "champions"
    ]


def test_segment_definition_is_readable():
    seg = assign_segments(_scores([10, 20, 30, 40, 50, 60], [0.2, 0.95, 0.6, 0.1, 0.1, 0.7]))
    assert seg["segment_definition"].tolist() == [
        "value tier low (predicted_clv <= 26.67) and churn risk low (p_churn < 0.50)",
        "value tier low (predicted_clv <= 26.67) and churn risk lost (p_churn >= 0.90)",
        "value tier mid (26.67 < predicted_clv <= 43.33) and churn risk high (p_churn >= 0.50)",
        "value tier mid (26.67 < predicted_clv <= 43.33) and churn risk low (p_churn < 0.50)",
        "value tier high (predicted_clv > 43.33) and churn risk low (p_churn < 0.50)",
        "value tier high (predicted_clv > 43.33) and churn risk high (p_churn >= 0.50)",
    ]
    assert list(seg.columns) == [
        "customer_id", "value_tier", "churn_risk", "segment", "segment_definition",
        "value_low_max", "value_mid_max",
    ]


def test_segments_do_not_depend_on_row_order():
    scores = _scores([10, 20, 30, 40, 50, 60], [0.2, 0.95, 0.6, 0.1, 0.1, 0.7])
    shuffled = scores.sample(frac=1.0, random_state=5)
    pd.testing.assert_frame_equal(assign_segments(shuffled), assign_segments(scores))


def test_segments_reject_bad_input():
    with pytest.raises(ValueError, match="missing"):
        assign_segments(pd.DataFrame({"customer_id": [1], "predicted_clv": [1.0]}))
    with pytest.raises(ValueError, match="unique"):
        assign_segments(_scores([1.0, 2.0], [0.1, 0.2], ids=[7, 7]))
    with pytest.raises(ValueError, match="threshold"):
        assign_segments(_scores([1.0, 2.0], [0.1, 0.2]), churn_threshold=0.8, lost_threshold=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        assign_segments(_scores([1.0, 2.0], [0.1, 1.2]))
    with pytest.raises(ValueError, match="NaN"):
        assign_segments(_scores([1.0, np.nan], [0.1, 0.2]))


# --------------------------------------------------------------------------- actions


def test_expected_incremental_value_by_hand():
    perk = next(a for a in DEFAULT_ACTIONS if a.name == "loyalty_perk")
    # 100 * (0.03 * 0.4 + 0.05 * 0.6) = 100 * (0.012 + 0.030) = 4.2
    assert expected_incremental_value(perk, 100.0, 0.4) == pytest.approx(4.2)


def test_default_catalogue():
    assert [(a.name, a.cost, a.retention_uplift, a.spend_uplift) for a in DEFAULT_ACTIONS] == [
        ("winback_email", 0.50, 0.02, 0.00),
        ("retention_coupon", 5.00, 0.10, 0.00),
        ("loyalty_perk", 8.00, 0.03, 0.05),
    ]


def test_action_needs_positive_cost():
    with pytest.raises(ValueError, match="cost"):
        Action("free_lunch", cost=0.0, retention_uplift=0.1, spend_uplift=0.0)


# --------------------------------------------------------------------------- allocation

# Five customers with the default catalogue. Expected value (EV) per action:
#   winback (cost 0.5): clv * 0.02 * p
#   coupon  (cost 5.0): clv * 0.10 * p
#   perk    (cost 8.0): clv * (0.03 * p + 0.05 * (1 - p))
# id  clv   p     winback EV, v/c       coupon EV      perk EV, v/c                  best
# 1   1000  0.05  1.0,  2.0             5.0 (not > 5)  1000 * .049 = 49, 6.125       perk 6.125
# 2   200   0.80  3.2,  6.4             16, 3.2        200 * .034 = 6.8 (< 8)        winback 6.4
# 3   100   0.50  1.0,  2.0             5.0 (not > 5)  100 * .040 = 4 (< 8)          winback 2.0
# 4   400   0.10  0.8,  1.6             4 (< 5)        400 * .048 = 19.2, 2.4        perk 2.4
# 5   20    0.90  0.36 (< 0.5)          1.8 (< 5)      20 * .032 = 0.64 (< 8)        none
# Greedy order by value per cost: 2 (6.4, cost 0.5), 1 (6.125, 8), 4 (2.4, 8), 3 (2.0, 0.5).
ALLOC = _scores([1000, 200, 100, 400, 20], [0.05, 0.80, 0.50, 0.10, 0.90])


def test_allocation_by_hand_skips_what_does_not_fit_and_continues():
    # budget 10: take 2 (spent 0.5), take 1 (8.5), 4 needs 8 -> 16.5 > 10, skip;
    # take 3 (9.0). Customer 5 has no profitable action.
    plan = allocate_budget(ALLOC, budget=10.0)
    assert plan["customer_id"].tolist() == [1, 2, 3, 4, 5]
    assert plan["action"].tolist() == ["loyalty_perk", "winback_email", "winback_email",
                                       "none", "none"]
    assert plan["rank"].tolist() == [2, 1, 3, pd.NA, pd.NA]
    assert plan["cost"].tolist() == pytest.approx([8.0, 0.5, 0.5, 0.0, 0.0])
    assert plan["expected_incremental_value"].tolist() == pytest.approx([49.0, 3.2, 1.0, 0, 0])
    assert plan["value_per_cost"].iloc[:3].tolist() == pytest.approx([6.125, 6.4, 2.0])
    assert plan["value_per_cost"].iloc[3:].isna().all()
    assert (plan["budget"] == 10.0).all()
    assert plan["cost"].sum() == pytest.approx(9.0)


def test_allocation_budget_too_small_for_the_big_item():
    # budget 8.4: take 2 (0.5), 1 needs 8 -> 8.5 > 8.4 skip, 4 skip, take 3 (1.0)
    plan = allocate_budget(ALLOC, budget=8.4)
    assert plan.loc[plan["rank"].notna(), "customer_id"].tolist() == [2, 3]
    assert plan["rank"].dropna().tolist() == [1, 2]
    assert plan["cost"].sum() == pytest.approx(1.0)


def test_allocation_large_budget_takes_every_profitable_candidate():
    # 8 + 0.5 + 0.5 + 8 = 17 <= 100, rank in value-per-cost order 2, 1, 4, 3
    plan = allocate_budget(ALLOC, budget=100.0).set_index("customer_id")
    assert plan["rank"].tolist() == [2, 1, 4, 3, pd.NA]
    assert plan["cost"].sum() == pytest.approx(17.0)


def test_zero_budget_chooses_nothing():
    plan = allocate_budget(ALLOC, budget=0.0)
    assert (plan["action"] == "none").all()
    assert plan["rank"].isna().all()
    assert plan["cost"].sum() == 0.0


def test_allocation_is_independent_of_row_order():
    shuffled = ALLOC.sample(frac=1.0, random_state=3)
    assert shuffled["customer_id"].tolist() != ALLOC["customer_id"].tolist()
    pd.testing.assert_frame_equal(allocate_budget(shuffled, 10.0), allocate_budget(ALLOC, 10.0))


def test_equal_value_per_cost_goes_to_the_lower_customer_id():
    # Two identical customers (winback v/c 6.4, cost 0.5 each), room for one.
    plan = allocate_budget(_scores([200, 200], [0.8, 0.8], ids=[7, 3]), budget=0.7)
    assert plan["customer_id"].tolist() == [3, 7]
    assert plan["action"].tolist() == ["winback_email", "none"]


def test_rounding_does_not_reject_an_exact_fit():
    # 0.1 + 0.1 + 0.1 is 0.30000000000000004 in binary floating point.
    sms = Action("sms", cost=0.1, retention_uplift=0.5, spend_uplift=0.0)
    plan = allocate_budget(_scores([10, 10, 10], [0.5, 0.5, 0.5]), 0.3, actions=(sms,))
    assert plan["action"].tolist() == ["sms", "sms", "sms"]


def test_budget_is_never_exceeded_on_random_scores():
    rng = np.random.default_rng(0)
    scores = _scores(rng.gamma(1.0, 150.0, 300).tolist(), rng.random(300).tolist())
    for budget in (0.4, 3.0, 37.5, 250.0):
        plan = allocate_budget(scores, budget)
        assert plan["cost"].sum() <= budget + 1e-9
        chosen = plan[plan["action"] != "none"]
        assert (chosen["expected_incremental_value"] > chosen["cost"]).all()
        assert chosen["rank"].sort_values().tolist() == list(range(1, len(chosen) + 1))


def test_allocation_rejects_bad_input():
    with pytest.raises(ValueError, match="budget"):
        allocate_budget(ALLOC, budget=-1.0)
    with pytest.raises(ValueError, match="missing"):
        allocate_budget(ALLOC.drop(columns="p_churn"), budget=1.0)
    with pytest.raises(ValueError, match="unique"):
        allocate_budget(ALLOC, 1.0, actions=(DEFAULT_ACTIONS[0], DEFAULT_ACTIONS[0]))
