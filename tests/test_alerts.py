"""Churn alerts from two hand-built score partitions (values by hand)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from clv.decisions import alerts
from clv.decisions.segments import CHURN_THRESHOLD


def _scores(rows):
    return pd.DataFrame(rows, columns=["customer_id", "p_churn", "predicted_clv"]).assign(
        clv_model_version="3", churn_model_version="4")


CURRENT = _scores([
    ("a", 0.60, 100.0),   # was 0.40: crossed
    ("b", 0.70, 50.0),    # was 0.80: at risk already, no alert
    ("c", 0.50, 10.0),    # not scored before: new, at exactly the threshold
    ("d", 0.30, 1000.0),  # was 0.20: not at risk
    ("e", 0.90, 200.0),   # was 0.50 (on the line = at risk): no alert
    ("f", 0.55, 400.0),   # was 0.49999: crossed
])
PREVIOUS = pd.DataFrame({"customer_id": ["a", "b", "d", "e", "f", "gone"],
                         "p_churn": [0.40, 0.80, 0.20, 0.50, 0.49999, 0.1]})


def test_alerts_are_the_customers_who_crossed_or_are_new_sorted_by_value_at_risk():
    assert CHURN_THRESHOLD == 0.5  # the values below were chosen around it
    reasons = pd.DataFrame({"customer_id": ["a", "a", "a", "f", "f", "b"],
                            "rank": [1, 2, 3, 1, 2, 1],
                            "description": ["r1a", "r2a", "r3a", "r1f", "r2f", "r1b"]})
    plan = pd.DataFrame({"customer_id": ["a", "f", "b"],
                         "action": ["retention_coupon", "none", "winback_email"]})
    out = alerts.churn_alerts(CURRENT, PREVIOUS, reasons, plan, dt.date(2021, 1, 1))
    assert list(out.columns) == alerts.ALERT_COLUMNS
    # value at risk: f 0.55 x 400 = 220, a 0.6 x 100 = 60, c 0.5 x 10 = 5
    assert out["customer_id"].tolist() == ["f", "a", "c"]
    assert out["value_at_risk"].tolist() == pytest.approx([220.0, 60.0, 5.0])
    assert out["alert_type"].tolist() == [alerts.CROSSED, alerts.CROSSED, alerts.NEW]
    assert out["previous_p_churn"].tolist()[:2] == pytest.approx([0.49999, 0.40])
    assert pd.isna(out["previous_p_churn"].iat[2])
    assert out[["reason_1", "reason_2", "reason_3"]].values.tolist() == [
        ["r1f", "r2f", None], ["r1a", "r2a", "r3a"], [None, None, None]]
    assert out["suggested_action"].tolist()[:2] == ["none", "retention_coupon"]
    assert pd.isna(out["suggested_action"].iat[2])  # c is not in the plan
    assert set(out["previous_as_of_date"]) == {dt.date(2021, 1, 1)}


def test_without_a_previous_partition_every_at_risk_customer_is_new():
    out = alerts.churn_alerts(CURRENT, None)
    # at risk: a b c e f; value at risk 60, 35, 5, 180, 220
    assert out["customer_id"].tolist() == ["f", "e", "a", "b", "c"]
    assert set(out["alert_type"]) == {alerts.NEW}
    assert out["reason_1"].isna().all() and out["suggested_action"].isna().all()


def test_no_one_crossing_gives_an_empty_frame_with_the_columns():
    out = alerts.churn_alerts(CURRENT, CURRENT[["customer_id", "p_churn"]])
    assert out.empty and list(out.columns) == alerts.ALERT_COLUMNS


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"missing columns \['predicted_clv'"):
        alerts.churn_alerts(CURRENT.drop(columns="predicted_clv"), None)
    with pytest.raises(ValueError, match="customer_id must be present and unique"):
        alerts.churn_alerts(pd.concat([CURRENT, CURRENT]), None)


@pytest.mark.parametrize("ids_sorted", [True, False])
def test_alerts_order_by_value_at_risk_then_customer_id_whatever_order_they_come_in(ids_sorted):
    from clv.decisions.alerts import _by_value_at_risk

    rng = np.random.default_rng(3)
    ids = np.array([f"c{k:05d}" for k in range(3000)], dtype=object)
    if not ids_sorted:
        ids = rng.permutation(ids)
    # few distinct values: most rows tie, so the customer_id order decides
    frame = pd.DataFrame({"customer_id": ids,
                          "value_at_risk": rng.integers(0, 7, 3000) * 0.5})
    got = _by_value_at_risk(frame)
    want = sorted(zip(frame["value_at_risk"], frame["customer_id"], strict=True),
                  key=lambda r: (-r[0], r[1]))
    assert list(zip(got["value_at_risk"], got["customer_id"], strict=True)) == want
