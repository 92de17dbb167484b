"""Pipeline steps that guard the run: raw data validation and staleness."""

from __future__ import annotations

import datetime as dt

import pytest

from clv import pipeline, warehouse


def _load(spark, rows, batch):
    df = spark.createDataFrame(
        [(o, c, dt.datetime.fromisoformat(t), a, 1, "USD") for o, c, t, a in rows],
        "order_id string, customer_id string, order_ts timestamp, amount double, "
        "quantity int, currency string")
    warehouse.write_partition(df, "raw.orders", batch)


def test_validate_raw_counts_only_orders_before_the_as_of_date(spark, clv_home):
    _load(spark, [("1", "a", "2020-01-10 00:00:00", 5.0), ("2", "b", "2020-01-15 00:00:00", 7.0),
                  ("3", "a", "2020-03-01 00:00:00", 9.0)], dt.date(2020, 4, 1))
    out = pipeline.validate_raw(dt.date(2020, 3, 1), 90)
    assert out["rows"] == 2  # the order at exactly 2020-03-01 00:00 is not before it
    assert out["last_order"] == "2020-01-15T00:00:00"


def test_validate_raw_refuses_stale_data(spark, clv_home):
    _load(spark, [("1", "a", "2020-01-10 00:00:00", 5.0), ("2", "b", "2020-01-15 00:00:00", 7.0)],
          dt.date(2020, 2, 1))
    with pytest.raises(ValueError, match=r"newest order before as_of_date=2021-01-01 is from "
                                         r"2020-01-15, more than horizon_days=90 earlier"):
        pipeline.validate_raw(dt.date(2021, 1, 1), 90)


def test_validate_raw_names_the_failed_expectation(spark, clv_home):
    from clv.quality import DataQualityError

    _load(spark, [("1", "a", "2020-01-10 00:00:00", 5.0), ("2", "b", "2020-01-15 00:00:00",
                                                          1e9)], dt.date(2020, 2, 1))
    expected = r"(?s)raw.orders failed 1 of .*be_between\(amount\).*'order_id': '2'"
    with pytest.raises(DataQualityError, match=expected):
        pipeline.validate_raw(dt.date(2020, 2, 1), 90)


def test_backfill_equals_individual_runs(spark, tmp_path, monkeypatch):
    """Features for D2 are the same whether D1 ran before (a backfill) or not."""
    import duckdb

    from clv.config import load_settings

    rows = [("1", "a", "2020-01-10 00:00:00", 5.0), ("2", "b", "2020-02-15 00:00:00", 7.0),
            ("3", "a", "2020-03-20 00:00:00", 9.0), ("4", "c", "2020-04-02 00:00:00", 4.0)]
    d1, d2 = dt.date(2020, 3, 1), dt.date(2020, 4, 1)
    digests = []
    for name, dates in (("single", [d2]), ("backfill", [d1, d2])):
        monkeypatch.setenv("CLV_HOME", str(tmp_path / name))
        _load(spark, rows, dt.date(2020, 5, 1))
        for d in dates:
            pipeline.build_features(d, 30, f"run-{d}")
        settings = load_settings()
        warehouse.refresh_catalog(settings)
        con = duckdb.connect(str(warehouse.catalog_path(settings)), read_only=True)
        digests.append([con.execute(
            f"select md5(string_agg(t::varchar, '|' order by t::varchar)) from "
            f"(select * exclude (run_id) from {t} where as_of_date = ?) t", [d2]).fetchall()
            for t in ("features.customer_features", "features.training_examples")])
        con.close()
    assert digests[0] == digests[1]
    assert digests[0][0][0][0] is not None  # the partition is not empty


def _scored_customers(spark, n: int, as_of: dt.date) -> None:
    """``n`` customers with 1..4 orders in the year before ``as_of``: real features, plus a
    scores partition made by hand (customer k: predicted_clv 10k, p_churn k / (n + 1))."""
    import pandas as pd

    rows, order = [], 0
    for k in range(1, n + 1):
        for j in range(1 + k % 4):
            order += 1
            day = as_of - dt.timedelta(days=5 + (k * 7 + j * 31) % 300)
            rows.append((str(order), f"c{k:03d}", f"{day.isoformat()} 12:00:00", 5.0 * k))
    _load(spark, rows, as_of)
    pipeline.build_features(as_of, 30, "run-test")
    scores = pd.DataFrame({
        "customer_id": [f"c{k:03d}" for k in range(1, n + 1)],
        "predicted_clv": [10.0 * k for k in range(1, n + 1)],
        "p_churn": [k / (n + 1) for k in range(1, n + 1)],
        "expected_revenue_30d": [10.0 * k / 6 for k in range(1, n + 1)],
        "horizon_days": 180, "clv_model_version": "1", "churn_model_version": "2",
        "run_id": "run-test"})
    warehouse.write_partition(spark.createDataFrame(scores), "marts.customer_scores", as_of)


def test_segment_and_allocate_publish_every_decision_table(spark, clv_home):
    import mlflow
    from clv import registry

    as_of = dt.date(2021, 1, 1)
    _scored_customers(spark, 30, as_of)
    seg = pipeline.segment(as_of, "run-test")
    assert seg["customers"] == 30 and seg["clusters"] == 5
    assert sum(seg["cluster_sizes"].values()) == 30
    params = pipeline.AllocationParams.from_params({
        "budget": 20.0, "clv_weight": 0.7,
        "action_costs": {"winback_email": 0.5, "retention_coupon": 5.0},
        # no customer is "lost" here (its bound is skipped); 21..30 are at_risk_high_value
        "segment_share_bounds": {"lost": [None, 0.1], "at_risk_high_value": [None, 0.5]},
        "action_capacity": {"winback_email": 8}})
    out = pipeline.allocate(as_of, params, "run-test")
    assert out["method"] == "milp" and out["optimal"]
    assert out["uplift_sources"] == {"retention_coupon": "prior", "winback_email": "prior"}

    plan = warehouse.read_partition_pandas("marts.budget_allocation", as_of)
    chosen = plan[plan["action"] != "none"]
    assert len(plan) == 30 and out["spent"] <= 20.0
    assert chosen["cost"].sum() == pytest.approx(out["spent"])
    assert (chosen["action"] == "winback_email").sum() <= 8
    at_risk_spend = chosen.loc[chosen["segment"] == "at_risk_high_value", "cost"].sum()
    assert at_risk_spend <= 0.5 * out["spent"] + 1e-6
    # net value recomputed by hand from the published columns
    net = (0.7 * plan["expected_incremental_clv"] + 0.3 * plan["expected_incremental_revenue"]
           - plan["cost"])
    assert plan["net_value"].to_numpy() == pytest.approx(net.to_numpy())
    assert plan["net_value"].sum() == pytest.approx(out["objective"], abs=0.005)  # rounded

    summary = warehouse.read_partition_pandas("marts.budget_summary", as_of)
    assert summary["customers"].sum() == 30
    assert summary["spent"].sum() == pytest.approx(out["spent"])
    front = warehouse.read_partition_pandas("marts.allocation_frontier", as_of)
    assert front["clv_weight"].tolist() == pytest.approx([k / 10 for k in range(11)])
    seg_summary = warehouse.read_partition_pandas("marts.segment_summary", as_of)
    assert set(seg_summary["grouping"]) == {"value_risk", "behaviour_cluster"}

    registry.configure_mlflow()
    run = mlflow.MlflowClient().get_run(out["mlflow_run_id"])
    assert run.data.params["clv_weight"] == "0.7"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(out["mlflow_run_id"])}
    assert {"allocation_frontier.png", "budget_summary.csv"} <= artifacts


def test_allocation_params_reject_a_malformed_share_bound_and_an_unknown_segment():
    with pytest.raises(ValueError, match=r"segment_share_bounds: each value must be "
                                         r"\[min_share, max_share\]"):
        pipeline.AllocationParams.from_params({"budget": 1.0,
                                               "segment_share_bounds": {"lost": 0.2}})
    with pytest.raises(ValueError, match=r"unknown segment\(s\) \['lsot'\]"):
        pipeline._present_segments({"lsot": (None, 0.2)}, {"lost"})


def _hand_scores(spark, as_of: dt.date, rows, horizon: int = 30) -> None:
    """A scores partition by hand: (customer_id, predicted_clv, p_churn, clv_p90)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["customer_id", "predicted_clv", "p_churn", "clv_p90"])
    frame = frame.assign(expected_revenue_30d=frame["predicted_clv"], clv_p10=0.0,
                         clv_p50=frame["predicted_clv"] / 2, p_alive=0.5,
                         horizon_days=horizon, clv_model_version="1", churn_model_version="2",
                         run_id=f"run-{as_of}")
    warehouse.write_partition(spark.createDataFrame(frame), "marts.customer_scores", as_of)


def test_backtest_and_churn_alert_steps_by_hand(spark, clv_home, caplog):
    import pandas as pd

    d1, d2 = dt.date(2021, 1, 1), dt.date(2021, 2, 1)  # d1 + 30 days = 2021-01-31 <= d2
    _load(spark, [("1", "a", "2020-12-01 10:00:00", 10.0),
                  ("2", "a", "2021-01-05 10:00:00", 30.0),   # in [d1, d1 + 30)
                  ("3", "a", "2021-01-20 10:00:00", 20.0),
                  ("4", "c", "2021-01-30 10:00:00", 5.0),    # the window's last day
                  ("5", "b", "2021-01-31 10:00:00", 99.0),   # after the window
                  ("6", "z", "2021-02-01 00:00:00", 500.0)], d2)  # not before d2: unseen
    _hand_scores(spark, d1, [("a", 40.0, 0.2, 60.0), ("b", 10.0, 0.7, 20.0),
                             ("c", 20.0, 0.4, 4.0)])
    _hand_scores(spark, d2, [("a", 50.0, 0.6, 70.0), ("b", 10.0, 0.8, 20.0),
                             ("c", 8.0, 0.45, 4.0), ("d", 30.0, 0.9, 50.0)])

    with caplog.at_level("WARNING", logger="clv.pipeline"):
        out = pipeline.backtest_scores(d2, "run-2")
    # d1's scores vs spend in [2021-01-01, 2021-01-31): a 50, b 0, c 5; predicted 70
    assert out["backtested"] == 1 and out["alert"] is True
    assert out["aggregate_error"] == {"2021-01-01": round((70 - 55) / 55, 4)}
    assert "aggregate error +27.3% beyond +/-25%" in caplog.text
    row = warehouse.read_partition_pandas("marts.score_backtest", d2).iloc[0]
    assert (row["n_customers"], row["n_buyers"], row["realised_total"]) == (3, 2, 55.0)
    assert row["interval_coverage_80"] == pytest.approx(2 / 3)  # c's 5 > its P90 of 4
    assert row["window_end"] == dt.date(2021, 1, 31)

    plan = pd.DataFrame({"customer_id": ["a", "b", "c", "d"],
                         "action": ["retention_coupon", "none", "none", "winback_email"]})
    warehouse.write_partition(spark.createDataFrame(plan), "marts.budget_allocation", d2)
    # d's reason is from another run of the date (not these scores): it must not be used
    reasons = pd.DataFrame({"customer_id": ["a", "a", "d"], "rank": [1, 2, 1],
                            "description": ["days since last purchase", "total past spend",
                                            "stale"],
                            "run_id": [f"run-{d2}", f"run-{d2}", "run-older"]})
    warehouse.write_partition(spark.createDataFrame(reasons), "marts.score_reasons", d2)
    out = pipeline.churn_alerts(d2, "run-2")
    # a crossed 0.2 -> 0.6 (30 at risk); d is new at 0.9 (27); b was at risk; c is below
    assert out["alerts"] == 2 and out["asset"] == "clv://marts/churn_alerts"
    assert out["previous_as_of_date"] == "2021-01-01"
    alerts = warehouse.read_partition_pandas("marts.churn_alerts", d2)
    assert alerts["customer_id"].tolist() == ["a", "d"]
    assert alerts["value_at_risk"].tolist() == pytest.approx([30.0, 27.0])
    assert alerts["alert_type"].tolist() == ["crossed_into_at_risk", "new_at_risk"]
    assert alerts["suggested_action"].tolist() == ["retention_coupon", "winback_email"]
    assert alerts["reason_1"].tolist() == ["days since last purchase", None]
    assert alerts["previous_p_churn"].iat[0] == pytest.approx(0.2)

    # no earlier partition and no one at risk: an empty, typed partition is published
    _hand_scores(spark, dt.date(2020, 6, 1), [("a", 1.0, 0.1, 2.0)])
    assert pipeline.churn_alerts(dt.date(2020, 6, 1), "run-0")["alerts"] == 0
    empty = warehouse.read_partition_pandas("marts.churn_alerts", dt.date(2020, 6, 1))
    assert empty.empty and "value_at_risk" in empty.columns
