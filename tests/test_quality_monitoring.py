"""Suites of the marts and optional raw tables, row-count rules, PSI drift, Data Docs."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from clv.data import warehouse
from clv.decisions import segments as segment_rules
from clv.quality import (
    DataQualityError,
    assert_row_count_sane,
    assert_valid,
    check_row_count,
    data_docs_enabled,
    feature_drift,
    previous_partition,
    previous_row_count,
    validate_dataframe,
)

SUITES = Path(__file__).resolve().parents[1] / "expectations"
SEGMENTS, ALLOCATION = "marts.customer_segments", "marts.budget_allocation"
# Terciles of predicted_clv: c1, c2 low; c3, c4 mid; c5, c6 high. p_churn >= 0.5 is high
# risk; c2 (low tier, p_churn >= 0.9) is lost, c6 (high tier) never is.
SCORES = pd.DataFrame({
    "customer_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
    "predicted_clv": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
    "p_churn": [0.1, 0.95, 0.6, 0.2, 0.7, 0.95],
})
CUSTOMERS_SCHEMA = "customer_id string, signup_date date"
RESPONSES_SCHEMA = (
    "customer_id string, campaign_id string, sent_date date, treatment int, action string, "
    "converted int, revenue double"
)


def _n_expectations(suite: str) -> int:
    return len(json.loads((SUITES / f"{suite}.json").read_text())["expectations"])


def _stamped(spark, frame: pd.DataFrame):
    """What pipeline.segment / allocate publish: model versions and the run id added."""
    frame = frame.assign(clv_model_version="3", churn_model_version="5", run_id="run-1")
    return spark.createDataFrame(frame)


def _outline(report) -> list[tuple]:
    return [(f.expectation_type, f.column, f.condition, f.unexpected_count, f.sample_rows)
            for f in report.failures]


def test_every_table_the_pipeline_reads_or_writes_has_a_suite():
    from clv import pipeline

    tables = {json.loads(p.read_text())["meta"]["table"]: p.stem for p in SUITES.glob("*.json")}
    for table in pipeline.OUTPUT_TABLES:
        assert table in tables, f"no suite for {table}"
    assert tables[SEGMENTS] == "customer_segments"
    assert tables[ALLOCATION] == "budget_allocation"
    assert tables["raw.customers"] == "customers"
    assert tables["raw.campaign_responses"] == "campaign_responses"


# --------------------------------------------------------------------------- marts suites

def test_segments_suite_passes_on_assign_segments_output_and_fails_on_bad_rows(spark):
    # what pipeline.segment publishes: the grid plus the behavioural cluster
    segments = segment_rules.assign_segments(SCORES).assign(
        cluster=[1, 2, 2, 1, 1, 2], cluster_profile="profile in words")
    assert list(segments["segment"]) == [
        "promising", "lost", "needs_attention", "loyal", "at_risk_high_value",
        "at_risk_high_value"]
    report = validate_dataframe(
        _stamped(spark, segments), "customer_segments", SEGMENTS, ["customer_id"])
    assert report.success and report.n_expectations == _n_expectations("customer_segments")

    bad = segments.copy()
    bad.loc[0, "value_tier"] = "top"  # not a tier (so no valid segment either)
    bad.loc[3, "segment"] = "champions"  # a known segment, but c4 is mid tier
    bad.loc[4, "cluster"] = 0  # clusters are numbered from 1
    frame = _stamped(spark, bad).withColumn(
        "run_id", F.when(F.col("customer_id") != "c3", F.col("run_id")))
    report = validate_dataframe(frame, "customer_segments", SEGMENTS, ["customer_id"])
    assert _outline(report) == [
        ("expect_column_values_to_be_in_set", "value_tier", None, 1,
         [{"customer_id": "c1", "value_tier": "top"}]),
        ("unexpected_rows_expectation", None, None, 2, []),
        ("expect_column_values_to_be_between", "cluster", None, 1,
         [{"customer_id": "c5", "cluster": 0}]),
        ("expect_column_values_to_not_be_null", "run_id", None, 1,
         [{"customer_id": "c3", "run_id": None}]),
    ]
    message = report.describe()
    assert message.startswith(
        f"marts.customer_segments failed 4 of {_n_expectations('customer_segments')} "
        "expectations in suite customer_segments:\n")
    assert ("  - unexpected_rows_expectation: 2 unexpected rows; rule: segment matches "
            "value_tier x churn_risk") in message


def _allocation_plan(budget: float) -> pd.DataFrame:
    """What pipeline.allocate publishes for SCORES with one e-mail action, lambda = 1.

    The e-mail keeps 2 points of retention: incr_clv = 0.02 * clv / max(1 - p_churn, 0.1):
    c1 0.02 * 10 / 0.9 = 0.222, c2 0.02 * 20 / 0.1 = 4, c3 0.02 * 30 / 0.4 = 1.5,
    c4 1.0, c5 3.333, c6 12; a budget of 1.0 buys the two best nets, c6 (11.5), c2 (3.5).
    """
    from clv.decisions import allocation, effects
    from clv.decisions.segments import Action, EffectPrior

    scores = SCORES.assign(segment=segment_rules.assign_segments(SCORES)["segment"],
                           expected_revenue_30d=0.0, clv_model_version="3",
                           churn_model_version="5")
    covariates = pd.DataFrame({"customer_id": SCORES["customer_id"], "recency_months": 1.0,
                               "history": 0.0, "newbie": 0.0})
    email = Action("email", 0.5, retention=EffectPrior(0.02, 0.02, 0.02))
    per_customer = effects.customer_effects(covariates, ["email"], catalogue=[email])
    cands = allocation.build_candidates(scores, per_customer, {"email": 0.5})
    return allocation.published_plan(allocation.allocate(cands, budget, 1.0).plan, scores)


def test_allocation_suite_passes_on_the_published_plan_and_fails_on_bad_rows(spark):
    plan = _allocation_plan(budget=1.0)
    assert list(plan["action"]) == ["none", "email", "none", "none", "none", "email"]
    assert plan["net_value"].tolist() == pytest.approx([0, 3.5, 0, 0, 0, 11.5])
    report = validate_dataframe(
        _stamped(spark, plan), "budget_allocation", ALLOCATION, ["customer_id"])
    assert report.success and report.n_expectations == _n_expectations("budget_allocation")

    bad = plan.copy()
    bad.loc[0, "cost"] = 0.5  # c1: no action but a cost (net_value 0 != -0.5); 1.5 of 1.0 spent
    bad.loc[4, "net_value"] = 5.0  # c5: 5.0, not 1.0 * 0.70 + 0 * 0 - 0.5
    bad.loc[5, "uplift_source"] = "guess"  # c6
    with pytest.raises(DataQualityError) as info:
        assert_valid(_stamped(spark, bad), "budget_allocation", ALLOCATION, ["customer_id"])
    assert _outline(info.value.report) == [
        ("expect_column_values_to_be_between", "cost", "action == 'none'", 1,
         [{"customer_id": "c1", "cost": 0.5}]),
        ("expect_column_values_to_be_between", "net_value", "action == 'none'", 1,
         [{"customer_id": "c5", "net_value": 5.0}]),  # no action, so net_value must be 0
        ("expect_column_values_to_be_in_set", "uplift_source", None, 1,
         [{"customer_id": "c6", "uplift_source": "guess"}]),
        ("unexpected_rows_expectation", None, None, 1, []),
        ("unexpected_rows_expectation", None, None, 2, []),
    ]
    message = str(info.value)
    assert message.startswith("marts.budget_allocation failed 5 of ")
    # 1.5 spent > 1.0 / 0.9: a plan may select for the budget plus its 10% holdout
    assert ("  - unexpected_rows_expectation: 1 unexpected row; rule: the chosen actions' "
            "total cost does not exceed budget / (1 - holdout share)") in message
    assert ("  - unexpected_rows_expectation: 2 unexpected rows; rule: net_value is lambda x "
            "incremental CLV + (1 - lambda) x incremental revenue - cost") in message


def test_summary_and_frontier_suites_pass_on_real_output_and_fail_on_bad_rows(spark):
    from clv.decisions import allocation

    plan = _allocation_plan(budget=1.0).rename(columns={
        "expected_incremental_clv": "incr_clv", "expected_incremental_revenue": "incr_revenue"})
    summary = allocation.budget_summary(plan).rename(columns={
        "incr_clv": "expected_incremental_clv", "incr_revenue": "expected_incremental_revenue"})
    stamped = spark.createDataFrame(summary.assign(run_id="run-1"))
    assert validate_dataframe(stamped, "budget_summary", "marts.budget_summary",
                              ["segment", "action"]).success
    over = summary.assign(spent=summary["spent"] * 10, run_id="run-1")  # 10.0 of 1.0
    report = validate_dataframe(spark.createDataFrame(over), "budget_summary",
                                "marts.budget_summary", ["segment", "action"])
    assert [(f.expectation_type, f.unexpected_count) for f in report.failures] == [
        ("unexpected_rows_expectation", 1)]

    segments = segment_rules.assign_segments(SCORES).assign(cluster=1, cluster_profile="all")
    table = segment_rules.segment_summary(segments, SCORES.assign(expected_revenue_30d=1.0))
    assert validate_dataframe(spark.createDataFrame(table.assign(run_id="r")),
                              "segment_summary", "marts.segment_summary",
                              ["grouping", "segment"]).success
    bad = table.assign(run_id="r", share=table["share"] * 2)  # shares add up to 2
    report = validate_dataframe(spark.createDataFrame(bad), "segment_summary",
                                "marts.segment_summary", ["grouping", "segment"])
    assert [(f.expectation_type, f.column, f.unexpected_count) for f in report.failures] == [
        ("expect_column_values_to_be_between", "share", 1),  # the cluster's share: 2.0
        ("unexpected_rows_expectation", None, 2)]


# --------------------------------------------------------------------------- raw suites

def test_campaign_responses_suite(spark):
    good = [
        ("c1", "k1", dt.date(2020, 3, 1), 1, "winback_email", 1, 25.0),
        ("c1", "k2", dt.date(2020, 4, 1), 0, None, 0, 0.0),  # control: no action
        ("c2", "k1", dt.date(2020, 3, 1), 0, None, 1, 12.0),
    ]
    ids = ["customer_id", "campaign_id"]
    table = "raw.campaign_responses"
    report = validate_dataframe(
        spark.createDataFrame(good, RESPONSES_SCHEMA), "campaign_responses", table, ids)
    assert report.success and report.n_expectations == _n_expectations("campaign_responses")

    bad = good + [
        ("c1", "k1", dt.date(2020, 3, 2), 1, "retention_coupon", 0, 0.0),  # c1 got k1 twice
        ("c3", "k1", dt.date(2020, 3, 1), 2, "winback_email", 0, 0.0),
        ("c4", "k1", dt.date(2020, 3, 1), 1, None, 0, -5.0),
    ]
    report = validate_dataframe(
        spark.createDataFrame(bad, RESPONSES_SCHEMA), "campaign_responses", table, ids)
    assert _outline(report) == [
        ("expect_compound_columns_to_be_unique", "customer_id, campaign_id", None, 2,
         [{"customer_id": "c1", "campaign_id": "k1"}] * 2),
        ("expect_column_values_to_be_in_set", "treatment", None, 1,
         [{"customer_id": "c3", "campaign_id": "k1", "treatment": 2}]),
        ("expect_column_values_to_not_be_null", "action", "treatment == 1", 1,
         [{"customer_id": "c4", "campaign_id": "k1", "action": None}]),
        ("expect_column_values_to_be_between", "revenue", None, 1,
         [{"customer_id": "c4", "campaign_id": "k1", "revenue": -5.0}]),
    ]
    assert report.describe().startswith("raw.campaign_responses failed 4 of ")


def test_customers_suite_row_count_rule_and_data_docs(spark, clv_home, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CTX_DAG_RUN_ID", raising=False)  # the default run name
    docs = clv_home.state_dir / "gx" / "data_docs"
    good = [("c1", dt.date(2019, 1, 1)), ("c2", None), ("c3", dt.date(1997, 5, 1))]
    report = validate_dataframe(spark.createDataFrame(good, CUSTOMERS_SCHEMA), "customers",
                                "raw.customers", ["customer_id"], previous_count=20)
    # 20 rows before: 2..200 allowed; the rule is one expectation more than the suite's.
    assert report.success and report.n_expectations == _n_expectations("customers") + 1
    assert report.data_docs == str(docs / "index.html")
    passed_page = Path(report.data_docs_page)
    assert passed_page.is_file() and passed_page.parts[-4:-2] == ("customers", "adhoc")

    bad = [("c1", dt.date(2019, 1, 1)), ("c1", None), ("c2", dt.date(1980, 1, 1))]
    with pytest.raises(DataQualityError) as info:
        assert_valid(spark.createDataFrame(bad, CUSTOMERS_SCHEMA), "customers", "raw.customers",
                     ["customer_id"], previous_count=100, run_name="manual/1")
    failed = info.value.report
    assert [(f.expectation_type, f.column, f.unexpected_count, f.observed_value)
            for f in failed.failures] == [
        ("expect_column_values_to_be_unique", "customer_id", 2, None),
        ("expect_column_values_to_be_between", "signup_date", 1, None),
        ("expect_table_row_count_to_be_between", None, None, 3),
    ]
    assert (
        "  - expect_table_row_count_to_be_between: observed 3, expected min_value=10, "
        "max_value=1000; rule: not empty and within 10x of the previous partition's 100 rows "
        "(previous/10 <= rows <= previous*10)\n"
    ) in str(info.value)

    # Both runs, the passed and the failed one, are on the site's index.
    failed_page = Path(failed.data_docs_page)
    assert failed_page.is_file() and failed_page.parts[-3] == "manual_1"
    index = (docs / "index.html").read_text()
    for page in (passed_page, failed_page):
        assert str(page.relative_to(docs)) in index
    assert "validations/customers/" in index
    assert "signup_date" in failed_page.read_text()

    monkeypatch.setenv("CLV_GX_DATA_DOCS", "0")
    assert not data_docs_enabled()
    report = validate_dataframe(spark.createDataFrame(good, CUSTOMERS_SCHEMA), "customers",
                                "raw.customers", ["customer_id"])
    assert report.success and report.data_docs is None and report.data_docs_page is None
    # GX's index, the offline index and the two pages: nothing new
    assert len(list(docs.rglob("*.html"))) == 4


def test_a_passed_validation_adds_its_page_and_the_index_is_rebuilt_once(spark, clv_home,
                                                                         monkeypatch):
    from clv.quality import rebuild_data_docs_index

    docs = clv_home.state_dir / "gx" / "data_docs"
    assert rebuild_data_docs_index() is None  # nothing stored yet: nothing to index
    good = [("c1", dt.date(2019, 1, 1)), ("c2", None)]
    first = validate_dataframe(spark.createDataFrame(good, CUSTOMERS_SCHEMA), "customers",
                               "raw.customers", ["customer_id"], run_name="run_1")
    second = validate_dataframe(spark.createDataFrame(good, CUSTOMERS_SCHEMA), "customers",
                                "raw.customers", ["customer_id"], run_name="run_2")
    index = docs / "index.html"
    first_page, second_page = (str(Path(r.data_docs_page).relative_to(docs))
                               for r in (first, second))
    # The first validation creates the index; the second adds only its own page.
    assert Path(second.data_docs_page).is_file()
    assert first_page in index.read_text() and second_page not in index.read_text()

    assert rebuild_data_docs_index() == str(index)  # what the DAG's publish_catalog does
    assert first_page in index.read_text() and second_page in index.read_text()

    # The offline index: no script or stylesheet, every page linked, newest first, and
    # each link resolves to the page on disk.
    import re
    from urllib.parse import unquote

    offline = (docs / "offline_index.html").read_text()
    assert "<script" not in offline and "stylesheet" not in offline
    links = re.findall(r"<a href='(validations/[^']+)'>raw.customers</a>", offline)
    assert [docs / unquote(link) for link in links] == [Path(second.data_docs_page),
                                                        Path(first.data_docs_page)]
    assert offline.count("<td>passed</td>") == 2 and "2 stored validations" in offline


def test_inside_a_dag_run_passed_pages_wait_for_the_runs_end(spark, clv_home, monkeypatch):
    """In an Airflow task a passed validation is stored, not rendered; the run's end
    (publish_catalog's rebuild) renders the missing pages once, leaves rendered ones
    alone; a failed validation renders at once, with the pages its index links to."""
    from clv.quality import rebuild_data_docs_index

    docs = clv_home.state_dir / "gx" / "data_docs"
    good = [("c1", dt.date(2019, 1, 1)), ("c2", None)]
    before = validate_dataframe(spark.createDataFrame(good, CUSTOMERS_SCHEMA), "customers",
                                "raw.customers", ["customer_id"], run_name="cli")
    old_page = Path(before.data_docs_page)
    assert old_page.is_file()  # outside a DAG run: rendered at once, as before
    old_rendered = old_page.stat().st_mtime_ns

    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__1")
    first, second = (validate_dataframe(spark.createDataFrame(good, CUSTOMERS_SCHEMA),
                                        "customers", "raw.customers", ["customer_id"])
                     for _ in range(2))
    pages = [Path(r.data_docs_page) for r in (first, second)]
    assert first.success and second.success and pages[0] != pages[1]
    assert pages[0].parts[-3] == "manual__1" and not any(p.exists() for p in pages)

    assert rebuild_data_docs_index() == str(docs / "index.html")  # publish_catalog
    assert all(p.is_file() for p in pages)
    assert old_page.stat().st_mtime_ns == old_rendered  # not rendered a second time
    index = (docs / "index.html").read_text()
    assert all(str(p.relative_to(docs)) in index for p in [old_page, *pages])

    # A run that stopped before its end: the next failure renders what its index links to.
    third = validate_dataframe(spark.createDataFrame(good, CUSTOMERS_SCHEMA), "customers",
                               "raw.customers", ["customer_id"])
    assert not Path(third.data_docs_page).exists()
    bad = [("c1", dt.date(2019, 1, 1)), ("c1", None)]
    failed = validate_dataframe(spark.createDataFrame(bad, CUSTOMERS_SCHEMA), "customers",
                                "raw.customers", ["customer_id"])
    assert not failed.success
    assert Path(failed.data_docs_page).is_file() and Path(third.data_docs_page).is_file()
    assert str(Path(third.data_docs_page).relative_to(docs)) in (docs / "index.html").read_text()


# --------------------------------------------------------------------------- row counts

@pytest.mark.parametrize(
    ("current", "previous", "problem"),
    [
        (0, None, "t: empty batch (0 rows); rule: a batch must not be empty"),
        (0, 100, "t: empty batch (0 rows); rule: a batch must not be empty"),
        (1001, 100, "t: 1001 rows vs 100 in the previous partition, more than 10x as many; "
                    "rule: not empty and within 10x of the previous partition's 100 rows "
                    "(previous/10 <= rows <= previous*10), i.e. 10..1000 rows"),
        (9, 100, "t: 9 rows vs 100 in the previous partition, fewer than 1/10 as many; "
                 "rule: not empty and within 10x of the previous partition's 100 rows "
                 "(previous/10 <= rows <= previous*10), i.e. 10..1000 rows"),
        (1000, 100, None),  # the bounds are inclusive
        (10, 100, None),
        (120, 100, None),
        (5_000_000, None, None),  # no previous partition: only emptiness is checked
        (3, 0, None),  # nor when the previous one was empty
    ],
)
def test_check_row_count(current, previous, problem):
    assert check_row_count("t", current, previous) == ([problem] if problem else [])


def test_row_count_ratio_is_configurable_and_assert_names_table_counts_and_rule():
    assert check_row_count("t", 300, 100, max_ratio=3) == []
    assert check_row_count("t", 301, 100, max_ratio=3)[0].startswith("t: 301 rows vs 100")
    assert check_row_count("t", 34, 100, max_ratio=3) == []  # 100/3 = 33.3
    assert check_row_count("t", 33, 100, max_ratio=3)[0].startswith(
        "t: 33 rows vs 100 in the previous partition, fewer than 1/3 as many")
    with pytest.raises(ValueError, match="max_ratio"):
        check_row_count("t", 5, 10, max_ratio=0.5)

    assert_row_count_sane("features.customer_features", 150, 100)  # sane: no error
    with pytest.raises(DataQualityError) as info:
        assert_row_count_sane("features.customer_features", 1500, 100)
    assert str(info.value) == (
        "features.customer_features failed 1 of 1 expectations in suite row_count:\n"
        "  - expect_table_row_count_to_be_between: observed 1500, expected min_value=10, "
        "max_value=1000; rule: not empty and within 10x of the previous partition's 100 rows "
        "(previous/10 <= rows <= previous*10)"
    )
    with pytest.raises(DataQualityError, match=r"(?s)raw.orders failed .*observed 0, expected "
                                               r"min_value=1; rule: a batch must not be empty"):
        assert_row_count_sane("raw.orders", 0, None)


def test_previous_partition_and_its_row_count(spark, clv_home):
    assert previous_partition(SEGMENTS, dt.date(2020, 2, 1)) is None
    assert previous_row_count(SEGMENTS, dt.date(2020, 2, 1)) is None
    for day, n in ((dt.date(2020, 1, 1), 3), (dt.date(2020, 2, 1), 2)):
        frame = spark.createDataFrame([(f"c{i}",) for i in range(n)], "customer_id string")
        warehouse.write_partition(frame, SEGMENTS, day)
    assert previous_partition(SEGMENTS, dt.date(2020, 2, 1)) == dt.date(2020, 1, 1)
    assert previous_row_count(SEGMENTS, dt.date(2020, 2, 1)) == 3  # a rerun of 02-01
    assert previous_row_count(SEGMENTS, dt.date(2020, 3, 1)) == 2
    assert previous_row_count(SEGMENTS, dt.date(2020, 1, 1)) is None


# --------------------------------------------------------------------------- drift

def test_psi_against_hand_computed_two_bin_examples(spark):
    schema = "a double, b double, c double, d double, e int"
    previous = spark.createDataFrame([(float(v),) * 4 + (v,) for v in range(1, 11)], schema)
    # The previous median, 5, splits every column into x <= 5 and x > 5 (5 rows each),
    # plus the (empty) missing bin.
    columns = {
        "a": [1, 1, 2, 2, 3, 3, 4, 4, 9, 10],  # 8 low, 2 high
        "b": [1, 2, 3, 4, 5, 5, 5, 6, 7, 8],  # 7 low, 3 high
        "c": list(range(1, 11)),  # the same values
        "d": [1, 2, 3, 4, 5] * 2,  # all low: the high bin is empty
        "e": [1, 2, 3, 4, 5, 6, 7, 8, None, None],  # 5 low, 3 high, 2 missing
    }
    rows = [tuple(None if v is None else float(v) for v in vals[:4]) + (vals[4],)
            for vals in zip(*columns.values(), strict=True)]
    current = spark.createDataFrame(rows, schema)
    drift = feature_drift(current, previous, list(columns), bins=2)

    eps = 1e-4
    expected = {
        "a": (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5),  # 0.4159
        "b": (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5),  # 0.1695
        "c": 0.0,
        "d": (1.0 - 0.5) * math.log(1.0 / 0.5) + (eps - 0.5) * math.log(eps / 0.5),  # 4.6043
        "e": (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.2 - eps) * math.log(0.2 / eps),  # 1.6216
    }
    assert list(drift["column"]) == list(columns)
    assert drift["psi"].tolist() == pytest.approx(list(expected.values()), rel=1e-12)
    assert drift.loc[drift["column"] == "c", "psi"].item() == 0.0
    assert list(drift["flag"]) == ["drift", "watch", "ok", "drift", "drift"]
    assert set(drift["bins"]) == {2} and set(drift["n_current"]) == {10}
    assert set(drift["n_previous"]) == {10}


def test_identical_partitions_have_zero_psi_and_bad_input_is_refused(spark):
    frame = spark.createDataFrame(
        [(i % 7, i * 1.5, 1, "x") for i in range(50)],
        "n_orders int, total_spend double, constant int, label string",
    )
    drift = feature_drift(frame, frame, ["n_orders", "total_spend", "constant"])
    assert drift["psi"].tolist() == [0.0, 0.0, 0.0]
    assert list(drift["flag"]) == ["ok"] * 3
    # The deciles of n_orders (eight 0s, seven of each of 1..6) are 0 1 1 2 3 4 4 5 6: 7
    # distinct cuts, 8 bins. total_spend has 50 distinct values (10 bins), constant 1 cut.
    assert drift["bins"].tolist() == [8, 10, 2]

    with pytest.raises(ValueError, match=r"\['label'\] are not numeric"):
        feature_drift(frame, frame, ["label"])
    with pytest.raises(ValueError, match=r"\['nope'\] not in the current partition"):
        feature_drift(frame, frame, ["nope"])
    with pytest.raises(ValueError, match="bins must be >= 2"):
        feature_drift(frame, frame, ["n_orders"], bins=1)
