"""Great Expectations suites over Spark DataFrames (clv.quality)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from clv.quality import DataQualityError, assert_valid, load_suite, validate_dataframe

SUITES = Path(__file__).resolve().parents[1] / "expectations"
ORDERS_SCHEMA = "order_id string, customer_id string, order_ts timestamp, amount double"
PERIODS = range(1, 13)
FEATURES_SCHEMA = ", ".join(
    [
        "customer_id string", "recency_days int", "tenure_days int", "n_orders int",
        "n_purchase_days int", "frequency int", "total_spend double", "avg_order_value double",
        "max_order_value double", "mean_ipt_days double", "std_ipt_days double",
    ]
    + [f"spend_p{i:02d} double" for i in PERIODS]
    + [f"orders_p{i:02d} int" for i in PERIODS]
)


def _n_required(suite: str) -> int:
    """Expectations of a suite that apply whatever optional columns are present."""
    data = json.loads((SUITES / f"{suite}.json").read_text())
    return sum(1 for e in data["expectations"] if not e.get("meta", {}).get("optional"))


def _orders(spark, rows):
    return spark.createDataFrame(rows, ORDERS_SCHEMA)


def _clean_rows():
    return [
        ("x1", "c1", dt.datetime(2020, 1, 5, 10, 0), 12.5),
        ("x2", "c1", dt.datetime(2020, 3, 1, 9, 30), -4.0),  # a refund
        ("x3", "c2", dt.datetime(1997, 1, 1), 99999.0),
    ]


def _feature_row(customer_id, recency_days, tenure_days):
    return (
        (customer_id, recency_days, tenure_days, 3, 2, 1, 60.0, 20.0, 30.0, 14.0, None)
        + (5.0,) * 12
        + (1,) * 12
    )


def test_suites_load_from_json_and_typos_are_refused(clv_home):
    names = sorted(p.stem for p in SUITES.glob("*.json"))
    assert names == ["action_effects", "allocation_frontier", "budget_allocation",
                     "budget_summary", "campaign_outcomes", "campaign_plan",
                     "campaign_responses", "churn_alerts", "contact_policy",
                     "contact_preferences", "customer_features",
                     "customer_scores", "customer_segments", "customers", "model_metrics",
                     "policy_evaluation", "raw_events", "raw_order_lines", "raw_orders",
                     "raw_reviews", "recommendations", "score_backtest", "score_reasons",
                     "segment_summary"]
    for name in names:
        data = json.loads((SUITES / f"{name}.json").read_text())
        suite = load_suite(name)
        assert suite.name == name
        assert len(suite.expectations) == len(data["expectations"])
    types = {e.expectation_type for e in load_suite("customer_features").expectations}
    assert "expect_column_pair_values_a_to_be_greater_than_b" in types

    # GX itself only logs and drops an expectation it cannot parse; load_suite refuses.
    folder = clv_home.home / "expectations"  # $CLV_HOME/expectations wins over the checkout's
    folder.mkdir()
    good = json.loads((SUITES / "customer_scores.json").read_text())
    typos = [
        {"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "clv_180d"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_valu": 0}},
    ]
    for typo in typos:
        bad = {**good, "expectations": good["expectations"] + [typo]}
        (folder / "customer_scores.json").write_text(json.dumps(bad))
        n = len(good["expectations"])
        with pytest.raises(ValueError, match=rf"expectation #{n} \('{typo['type']}'\) is not"):
            load_suite("customer_scores")
    with pytest.raises(FileNotFoundError, match="no suite 'nope'"):
        load_suite("nope")


def test_clean_orders_pass_and_optional_columns_are_checked_when_present(spark, caplog):
    caplog.set_level(logging.INFO, logger="clv.quality")
    report = assert_valid(_orders(spark, _clean_rows()), "raw_orders", "raw.orders", ["order_id"])
    assert report.success and report.failures == []
    assert report.n_expectations == _n_required("raw_orders")
    assert report.skipped == ["expect_column_values_to_be_between(quantity)"]
    assert any(
        r.name == "clv.quality" and "raw.orders passed suite raw_orders" in r.getMessage()
        for r in caplog.records
    )

    # With the optional columns present, their expectations run (and can fail).
    rows = [r + (1, "USD") for r in _clean_rows()]
    rows[1] = rows[1][:4] + (500_000, None)
    df = spark.createDataFrame(rows, ORDERS_SCHEMA + ", quantity int, currency string")
    report = validate_dataframe(df, "raw_orders", "raw.orders", ["order_id"])
    assert report.n_expectations == _n_required("raw_orders") + 1
    assert not report.skipped
    [failure] = report.failures
    assert (failure.expectation_type, failure.column) == (
        "expect_column_values_to_be_between", "quantity")
    assert failure.sample_rows == [{"order_id": "x2", "quantity": 500_000}]


def test_null_customer_id_fails_naming_table_column_and_order(spark):
    rows = _clean_rows() + [("x4", None, dt.datetime(2020, 2, 2), 10.0)]
    with pytest.raises(DataQualityError) as info:
        assert_valid(_orders(spark, rows), "raw_orders", "raw.orders", ["order_id"])
    message = str(info.value)
    page = info.value.report.data_docs_page  # every run is rendered to Data Docs
    assert page is not None and Path(page).is_file()
    assert message == (
        f"raw.orders failed 1 of {_n_required('raw_orders')} expectations in suite raw_orders:\n"
        "  - expect_column_values_to_not_be_null(customer_id): 1 unexpected row, "
        "e.g. [{'order_id': 'x4', 'customer_id': None}]\n"
        f"  Data Docs: {page}"
    )
    assert isinstance(info.value, ValueError)
    [failure] = info.value.report.failures
    assert failure.unexpected_count == 1


def test_duplicate_order_id_fails_naming_the_duplicate(spark):
    rows = _clean_rows() + [("x2", "c9", dt.datetime(2021, 6, 1), 5.0)]
    with pytest.raises(DataQualityError) as info:
        assert_valid(_orders(spark, rows), "raw_orders", "raw.orders", ["order_id"])
    message = str(info.value)
    assert "expect_column_values_to_be_unique(order_id): 2 unexpected rows" in message
    [failure] = info.value.report.failures
    assert failure.sample_rows == [{"order_id": "x2"}, {"order_id": "x2"}]
    assert "'x1'" not in message and "'x3'" not in message


def test_amount_out_of_range_or_not_finite_fails(spark):
    rows = _clean_rows() + [
        ("big", "c3", dt.datetime(2020, 1, 1), 2_000_000.0),
        ("nan", "c3", dt.datetime(2020, 1, 1), float("nan")),
        ("inf", "c3", dt.datetime(2020, 1, 1), float("-inf")),
    ]
    report = validate_dataframe(_orders(spark, rows), "raw_orders", "raw.orders", ["order_id"])
    assert not report.success
    [failure] = report.failures
    assert (failure.expectation_type, failure.column) == (
        "expect_column_values_to_be_between", "amount")
    assert failure.unexpected_count == 3
    assert sorted(r["order_id"] for r in failure.sample_rows) == ["big", "inf", "nan"]
    assert failure.expected == {"min_value": -100000.0, "max_value": 100000.0}
    assert "expect_column_values_to_be_between(amount): 3 unexpected rows" in report.describe()


def test_features_with_tenure_below_recency_fail_naming_both_columns(spark):
    rows = [_feature_row("c1", 3, 40), _feature_row("c2", 30, 30), _feature_row("c3", 50, 7)]
    df = spark.createDataFrame(rows, FEATURES_SCHEMA)
    with pytest.raises(DataQualityError) as info:
        assert_valid(df, "customer_features", "features.customer_features", ["customer_id"])
    message = str(info.value)
    assert message.startswith("features.customer_features failed 1 of ")
    assert (
        "expect_column_pair_values_a_to_be_greater_than_b(tenure_days, recency_days): "
        "1 unexpected row, e.g. [{'customer_id': 'c3', 'tenure_days': 7, 'recency_days': 50}]"
    ) in message


def test_scores_suite_checks_probability_range_and_model_versions(spark):
    df = spark.createDataFrame(
        [("c1", 120.0, 0.2, 20.0, 180, "3", "5", 0.0, 60.0, 300.0, 0.9),
         ("c2", 0.0, 1.2, 0.0, 180, "3", None, 0.0, 0.0, 0.0, 0.1)],
        "customer_id string, predicted_clv double, p_churn double, expected_revenue_30d double, "
        "horizon_days int, clv_model_version string, churn_model_version string, "
        "clv_p10 double, clv_p50 double, clv_p90 double, p_alive double",
    )
    report = validate_dataframe(df, "customer_scores", "marts.customer_scores", ["customer_id"])
    assert [(f.expectation_type, f.column, f.sample_rows) for f in report.failures] == [
        ("expect_column_values_to_be_between", "p_churn", [{"customer_id": "c2", "p_churn": 1.2}]),
        ("expect_column_values_to_not_be_null", "churn_model_version",
         [{"customer_id": "c2", "churn_model_version": None}]),
    ]
