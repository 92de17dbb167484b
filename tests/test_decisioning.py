"""Segments and their summary against hand-worked examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.config import DEFAULT_ACTION_COSTS
from clv.decisions.segments import (
    DEFAULT_ACTIONS,
    Action,
    EffectPrior,
    assign_segments,
    segment_summary,
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


def test_default_catalogue_declares_absolute_channels():
    catalogue = {a.name: a for a in DEFAULT_ACTIONS}
    # every default offer at its cost; the recommendation e-mail is offered only with lists
    assert {n: a.cost for n, a in catalogue.items() if n in DEFAULT_ACTION_COSTS} == \
        DEFAULT_ACTION_COSTS
    assert set(catalogue) - set(DEFAULT_ACTION_COSTS) == {"recommendation_email"}
    # e-mails move revenue now and nothing else; the perk moves retention only
    for name in ("mens_email", "womens_email"):
        assert catalogue[name].retention == EffectPrior(0.0, 0.0, 0.0)
        assert catalogue[name].revenue.low > 0
    assert catalogue["loyalty_perk"].revenue.expected == 0.0
    assert catalogue["loyalty_perk"].retention.low > 0
    # every prior is a range around its expectation, and says where it comes from
    for action in DEFAULT_ACTIONS:
        for channel in (action.revenue, action.retention):
            assert channel.low <= channel.expected <= channel.high
        assert action.evidence


def test_action_needs_positive_cost_and_a_sane_prior():
    with pytest.raises(ValueError, match="cost"):
        Action("free_lunch", cost=0.0)
    with pytest.raises(ValueError, match="low <= expected <= high"):
        EffectPrior(0.5, 0.6, 1.0)
    with pytest.raises(ValueError, match="probability"):
        Action("miracle", cost=1.0, retention=EffectPrior(1.5, 1.0, 2.0))


# --------------------------------------------------------------------------- summary


def test_segment_summary_by_hand():
    # clv 10..60 -> low 10, 20; mid 30, 40; high 50, 60 (see the tercile test above).
    # p_churn: 0.1, 0.95 (low tier, lost), 0.2, 0.6, 0.1, 0.3
    scores = _scores([10, 20, 30, 40, 50, 60], [0.1, 0.95, 0.2, 0.6, 0.1, 0.3])
    scores["expected_revenue_30d"] = scores["predicted_clv"] / 6
    segments = assign_segments(scores)
    segments["cluster"] = [1, 2, 2, 1, 1, 2]
    segments["cluster_profile"] = ["big", "small", "small", "big", "big", "small"]
    table = segment_summary(segments, scores).set_index(["grouping", "segment"])
    vr = table.loc["value_risk"]
    assert vr.index.tolist() == ["champions", "lost", "loyal", "needs_attention", "promising"]
    assert vr["customers"].tolist() == [2, 1, 1, 1, 1]
    assert vr.loc["champions", "share"] == pytest.approx(2 / 6)
    assert vr.loc["champions", "avg_predicted_clv"] == pytest.approx(55.0)
    assert vr.loc["champions", "total_predicted_clv"] == pytest.approx(110.0)
    assert vr.loc["champions", "avg_p_churn"] == pytest.approx(0.2)
    assert vr.loc["champions", "total_expected_revenue_30d"] == pytest.approx(110 / 6)
    assert vr.loc["lost", "definition"].endswith("churn risk lost (p_churn >= 0.90)")
    bc = table.loc["behaviour_cluster"]
    assert bc.index.tolist() == ["cluster_1", "cluster_2"]
    assert bc["customers"].tolist() == [3, 3]
    # cluster 1 = customers 1, 4, 5: clv 10 + 40 + 50 = 100, p_churn (0.1 + 0.6 + 0.1) / 3
    assert bc.loc["cluster_1", "total_predicted_clv"] == pytest.approx(100.0)
    assert bc.loc["cluster_1", "avg_p_churn"] == pytest.approx(0.8 / 3)
    assert bc.loc["cluster_1", "definition"] == "big"
    assert table.groupby(level="grouping")["share"].sum().tolist() == pytest.approx([1.0, 1.0])


def test_segment_summary_without_clusters_and_with_a_missing_score():
    scores = _scores([1.0, 2.0, 3.0], [0.1, 0.2, 0.3])
    scores["expected_revenue_30d"] = 0.0
    segments = assign_segments(scores)
    assert set(segment_summary(segments, scores)["grouping"]) == {"value_risk"}
    with pytest.raises(ValueError, match="1 segmented customers have no score"):
        segment_summary(segments, scores.iloc[:2])
