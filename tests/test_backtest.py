"""Score back-tests on hand-built scores and realised spend (values by hand)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from clv.models import backtest

SCORED = dt.date(2021, 1, 1)


def _scores() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"], "predicted_clv": [100.0, 50.0, 30.0, 20.0],
        "clv_p10": 0.0, "clv_p50": [60.0, 20.0, 10.0, 5.0],
        "clv_p90": [90.0, 40.0, 30.0, 10.0], "horizon_days": 90, "clv_model_version": "7"})


def test_backtest_by_hand():
    # a spent 50 + 30; c 40; b and d nothing; x was not scored (first seen later)
    realised = pd.DataFrame({"customer_id": ["a", "a", "c", "x"],
                             "spend_next": [50.0, 30.0, 40.0, 999.0]})
    out = backtest.backtest_scores(_scores(), realised, SCORED)
    assert list(out.columns) == backtest.BACKTEST_COLUMNS and len(out) == 1
    row = out.iloc[0]
    assert (row["n_customers"], row["n_buyers"]) == (4, 2)
    assert (row["predicted_total"], row["realised_total"]) == (200.0, 120.0)
    assert row["aggregate_error"] == pytest.approx(80 / 120)
    # gain by predicted order (80, 0, 40, 0)/120: 2/3, 2/3, 1, 1 -> (2*10/3 - 1)/4 - 1 = 5/12;
    # perfect order (80, 40, 0, 0): 2/3, 1, 1, 1 -> (2*11/3 - 1)/4 - 1 = 7/12
    assert row["normalized_gini"] == pytest.approx(5 / 7)
    assert np.isnan(row["decile_mape"])  # fewer than 10 customers
    # a 80 <= 90, b 0 in [0, 40], c 40 > 30, d 0 in [0, 10]
    assert row["interval_coverage_80"] == pytest.approx(0.75)
    assert row["window_end"] == dt.date(2021, 4, 1)
    assert bool(row["alert"]) and row["alert_reason"] == "aggregate error +66.7% beyond +/-25%"


def test_partition_without_intervals_has_no_coverage_and_one_row_per_version():
    scores = _scores().drop(columns=["clv_p10", "clv_p50", "clv_p90"])
    scores.loc[2:, "clv_model_version"] = "8"
    realised = pd.DataFrame({"customer_id": ["a", "b", "c", "d"],
                             "spend_next": [100.0, 50.0, 25.0, 20.0]})
    out = backtest.backtest_scores(scores, realised, SCORED)
    assert out["clv_model_version"].tolist() == ["7", "8"]
    assert out["interval_coverage_80"].isna().all()
    assert out["aggregate_error"].tolist() == pytest.approx([0.0, 5 / 45])
    assert not out["alert"].any()


def test_flags_and_due_dates():
    assert backtest.flag_reasons(-0.3, 0.5) == ["aggregate error -30.0% beyond +/-25%"]
    assert backtest.flag_reasons(0.1, 0.1) == ["normalized Gini 0.100 below the floor 0.2"]
    assert backtest.flag_reasons(float("nan"), float("nan")) == []
    end = dt.date(2021, 4, 1)  # 2021-01-01 + 90 days
    assert backtest.is_due(SCORED, 90, end, dt.date(2021, 3, 31))
    assert not backtest.is_due(SCORED, 90, end, dt.date(2021, 3, 30))  # orders stop short
    assert not backtest.is_due(SCORED, 90, end - dt.timedelta(days=1), dt.date(2021, 3, 31))
    assert not backtest.is_due(SCORED, 90, end, None)


def test_missing_columns_name_the_table():
    with pytest.raises(ValueError, match=r"customer_scores as_of_date=2021-01-01: missing "
                                         r"\['predicted_clv'\]"):
        backtest.backtest_scores(_scores().drop(columns="predicted_clv"),
                                 pd.DataFrame({"customer_id": [], "spend_next": []}), SCORED)
