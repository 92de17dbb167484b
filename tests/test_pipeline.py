"""Pipeline steps that guard the run: raw data validation and staleness."""

from __future__ import annotations

import datetime as dt

import pytest

from clv import pipeline
from clv.data import warehouse
from clv.decisions import allocation


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

    rows, order = [], 0
    for k in range(1, n + 1):
        for j in range(1 + k % 4):
            order += 1
            day = as_of - dt.timedelta(days=5 + (k * 7 + j * 31) % 300)
            rows.append((str(order), f"c{k:03d}", f"{day.isoformat()} 12:00:00", 5.0 * k))
    _load(spark, rows, as_of)
    pipeline.build_features(as_of, 30, "run-test")
    warehouse.write_partition(spark.createDataFrame(hand_scores(n)), "marts.customer_scores",
                              as_of)


def hand_scores(n: int):
    """Scores made by hand for customers c001..c<n>: customer k has predicted_clv 10k,
    p_churn k / (n + 1)."""
    import pandas as pd

    return pd.DataFrame({
        "customer_id": [f"c{k:03d}" for k in range(1, n + 1)],
        "predicted_clv": [10.0 * k for k in range(1, n + 1)],
        "p_churn": [k / (n + 1) for k in range(1, n + 1)],
        "expected_revenue_30d": [10.0 * k / 6 for k in range(1, n + 1)],
        "horizon_days": 180, "clv_model_version": "1", "churn_model_version": "2",
        "run_id": "run-test"})


def test_segment_and_allocate_publish_every_decision_table(spark, clv_home):
    import mlflow
    from clv.models import registry

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
    # no campaign loaded: every chosen action rests on its catalogue prior
    assert out["effects"] == {} and set(out["uplift_sources"].values()) == {"prior"}
    effects = warehouse.read_partition_pandas("marts.action_effects", as_of)
    assert set(effects["uplift_source"]) == {"prior"}
    # a prior is the same absolute amount for every customer, inside its stated range
    assert (effects["incr_revenue_min"] == effects["incr_revenue_max"]).all()
    assert (effects["incr_revenue_low"] <= effects["incr_revenue_mean"]).all()
    assert (effects["incr_revenue_mean"] <= effects["incr_revenue_high"]).all()

    plan = warehouse.read_partition_pandas("marts.budget_allocation", as_of)
    chosen = plan[plan["action"] != "none"]
    # the plan selects the treated and their 10% holdout: only the treated spend the budget
    assert len(plan) == 30 and out["spent"] <= 20.0 / 0.9 + 1e-9
    assert 0 < out["campaign_plan"]["treated_spend"] <= 20.0
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
        allocation.present_share_bounds({"lsot": (None, 0.2)}, {"lost"})


def test_an_own_campaign_is_fitted_on_covariates_as_of_its_send_date(spark, clv_home):
    """A campaign over the shop's own customers: their covariates come from the orders
    before the send date (point in time), and the action's effect is ``own_experiment``."""
    import pandas as pd

    from clv import ingest

    as_of = dt.date(2021, 1, 1)
    _scored_customers(spark, 30, as_of)
    sent = as_of - dt.timedelta(days=60)
    ids = [f"c{k:03d}" for k in range(1, 31)]
    responses = pd.DataFrame({
        "customer_id": ids, "campaign_id": "own-1", "sent_date": sent,
        "treatment": [k % 2 for k in range(1, 31)],
        "action": ["winback_email" if k % 2 else "none" for k in range(1, 31)],
        "converted": [int(k % 3 == 0) for k in range(1, 31)],
        "revenue": [6.0 * (k % 3 == 0) + 2.0 * (k % 2) for k in range(1, 31)]})
    ingest.load_campaign_responses(spark, responses, "run-test", as_of - dt.timedelta(days=1))
    rows = pipeline._campaign_responses()
    with_covariates = pipeline._with_covariates_at(rows, sent).set_index("customer_id")
    orders = warehouse.read_partition_pandas("raw.orders", as_of)
    orders["day"] = pd.to_datetime(orders["order_ts"]).dt.date
    for customer in ("c001", "c013", "c030"):
        before = orders[(orders["customer_id"] == customer) & (orders["day"] < sent)]
        got = with_covariates.loc[customer]
        if before.empty:  # no history at the send date: the documented defaults
            assert (got["recency_months"], got["history"], got["newbie"]) == (12.0, 0.0, 1.0)
            continue
        recency = (sent - before["day"].max()).days
        assert got["recency_months"] == min(max(-(-recency // 30), 1), 12)
        in_year = before[before["day"] >= sent - dt.timedelta(days=360)]
        assert got["history"] == pytest.approx(in_year["amount"].sum())
    # the treated mean revenue is 2 above the control's by construction (+ the conversions)
    measured = pipeline._measured_effects(as_of, ["retention_coupon", "winback_email"],
                                          set(ids))
    assert set(measured) == {"winback_email"}
    effect = measured["winback_email"]
    assert effect.source == "own_experiment" and effect.campaign_id == "own-1"
    treated = responses[responses["treatment"] == 1]["revenue"].mean()
    control = responses[responses["treatment"] == 0]["revenue"].mean()
    assert effect.cells.loc["all", "effect"] == pytest.approx(treated - control)
    # fitted ahead (airflow dags test's head start) for every tested action: the same
    # effect, taken as long as the responses are those it was fitted on
    ahead = pipeline.effects_ahead(as_of)
    assert set(ahead[1]) == {"winback_email"}
    pd.testing.assert_frame_equal(ahead[1]["winback_email"].cells, effect.cells)
    taken = pipeline._measured_effects(as_of, ["retention_coupon", "winback_email"], set(ids),
                                       ahead=ahead)
    assert taken == {"winback_email": ahead[1]["winback_email"]}
    # a second own campaign of the action: both are pooled, each at its own send date
    earlier = responses.assign(campaign_id="own-0", sent_date=as_of - dt.timedelta(days=120),
                               revenue=responses["revenue"] * 2)
    ingest.load_campaign_responses(spark, earlier, "run-test", as_of - dt.timedelta(days=2))
    stale = pipeline._measured_effects(as_of, ["winback_email"], set(ids), ahead=ahead)
    assert stale["winback_email"].campaign_id == "own-1 (+1 earlier)"  # fitted again
    pooled = pipeline._measured_effects(as_of, ["winback_email"], set(ids))["winback_email"]
    assert pooled.campaign_id == "own-1 (+1 earlier)"
    both = pd.concat([responses, earlier])
    arm = both.groupby("treatment")["revenue"].mean()
    assert pooled.cells.loc["all", "effect"] == pytest.approx(arm[1] - arm[0])
    assert pooled.cells.loc["all", "n_treated"] == 30


# --------------------------------------------------------------------------- the closed loop

def _hand_plan(n: int = 40):
    """An allocation plan by hand: n e-mails (cost 0.5) and 5 customers left out."""
    import pandas as pd

    ids = [f"k{k:02d}" for k in range(n + 5)]
    return pd.DataFrame({
        "customer_id": ids, "segment": "seg",
        "action": ["email"] * n + ["none"] * 5, "cost": [0.5] * n + [0.0] * 5,
        "incr_revenue": [2.0] * n + [0.0] * 5, "incr_clv": [2.0] * n + [0.0] * 5,
        "net_value": 1.5, "uplift_source": "prior"})


def test_closed_loop_steps_publish_plan_measure_outcomes_and_feed_responses(spark, clv_home):
    from clv.decisions import closed_loop

    plan_day, sent, as_of = dt.date(2020, 1, 1), dt.date(2020, 1, 3), dt.date(2020, 3, 1)
    out = pipeline.publish_campaign_plan(plan_day, _hand_plan(), budget=18.0, run_id="r0")
    # 40 selected, ceil(4) held out: 36 treated x 0.5 = 18.0 <= budget
    assert (out["treated"], out["holdout"], out["treated_spend"]) == (36, 4, 18.0)
    plan = warehouse.read_partition_pandas("marts.campaign_plan", plan_day)
    assert len(plan) == 40 and set(plan["effect_method"]) == {"prior"}
    with pytest.raises(ValueError, match="no plan plan-2020-02-01"):
        pipeline.mark_plan_sent("plan-2020-02-01", None, "cli")
    pipeline.mark_plan_sent("plan-2020-01-01", sent, "cli")
    treated = sorted(plan.loc[plan["assignment"] == "treated", "customer_id"])
    buyers = treated[::2] + sorted(plan.loc[plan["assignment"] == "holdout",
                                            "customer_id"])[:1]
    _load(spark, [(f"o{i}", c, "2020-01-10 00:00:00", 10.0) for i, c in enumerate(buyers)]
          + [("early", treated[1], "2020-01-02 00:00:00", 50.0)], as_of)  # before the send
    got = pipeline.measure_outcomes(as_of, 90, "r1")
    assert got["plans_measured"] == 1 and got["responses_appended"] == 40
    outcomes = warehouse.read_partition_pandas("marts.campaign_outcomes", as_of)
    rev = outcomes[(outcomes["segment"] == "all") & (outcomes["metric"] == "revenue")].iloc[0]
    # treated: 18 of 36 spent 10 -> 5.0; holdout: 1 of 4 -> 2.5
    assert (rev["treated_mean"], rev["holdout_mean"], rev["effect"]) == (5.0, 2.5, 2.5)
    assert rev["sent_date"] == sent and rev["expected_effect"] == 2.0
    responses = warehouse.read_partition_pandas("raw.campaign_responses", as_of)
    assert set(responses["campaign_id"]) == {"plan-2020-01-01:email"}
    assert responses["treatment"].sum() == 36 and responses["revenue"].sum() == 190.0
    # idempotent per date; a later run re-measures but does not append the responses again
    assert pipeline.measure_outcomes(as_of, 90, "r1")["responses_appended"] == 40
    later = pipeline.measure_outcomes(dt.date(2020, 4, 15), 90, "r2")
    assert later["plans_measured"] == 1 and later["responses_appended"] == 0
    final = warehouse.read_partition_pandas("marts.campaign_outcomes", dt.date(2020, 4, 15))
    assert set(final["status"]) == {"final"}  # 2020-01-03 + 90 days has passed

    segments = plan[["customer_id", "segment"]]
    evaluation = pipeline.evaluate_plan_policy(dt.date(2020, 5, 1), _hand_plan(), segments,
                                               {"email": 0.5}, "r3")
    table = warehouse.read_partition_pandas("marts.policy_evaluation", dt.date(2020, 5, 1))
    assert set(table["policy"]) == {"plan", "treat_none", "cheapest_action",
                                    "random_same_budget"}
    ips = table[table["estimator"] == "ips"].set_index("policy")["value_per_customer"]
    # treat none: the 4 holdout rows (propensity 4/40) with 10 revenue once -> 10/0.1/40 = 2.5
    assert ips["treat_none"] == pytest.approx(2.5)
    # plan = e-mail for all 40: 18 x (10 - 0.5) + 18 x (0 - 0.5) over propensity 0.9, / 40
    assert ips["plan"] == pytest.approx((18 * 9.5 - 18 * 0.5) / 0.9 / 40)
    assert evaluation["mlflow_run_id"]
    assert closed_loop.plan_date("plan-2020-01-01") == plan_day

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
