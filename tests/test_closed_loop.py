"""The closed loop: randomised holdout in every plan, measured outcomes, policy value,
and three plan -> measure -> refit periods on synthetic customers with known effects.

Pure pandas / numpy (no Spark): the pipeline step that reads and writes the warehouse
is tested in tests/test_pipeline.py.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from clv import closed_loop as cl
from clv import synthetic

PLAN_ID = "plan-2020-01-01"


def _plan(actions: dict[str, int], cost: dict[str, float] | None = None) -> pd.DataFrame:
    """An allocation plan by hand: ``actions`` = action -> number of customers."""
    cost = cost or {"email": 0.5, "retention_coupon": 5.0, "none": 0.0}
    rows = [(f"{a[0]}{k:03d}", "seg", a) for a, n in actions.items() for k in range(n)]
    plan = pd.DataFrame(rows, columns=["customer_id", "segment", "action"])
    plan["cost"] = plan["action"].map(cost)
    plan["incr_revenue"] = np.where(plan["action"] == "email", 2.0, 0.0)
    plan["incr_retention"] = np.where(plan["action"] == "retention_coupon", 0.05, 0.0)
    plan["incr_clv"] = plan["incr_revenue"] + 100 * plan["incr_retention"]
    plan["uplift_source"], plan["effect_method"] = "prior", "prior"
    return plan


# --------------------------------------------------------------------------- holdout

def test_holdout_share_per_action_with_exact_propensities():
    plan = _plan({"email": 20, "retention_coupon": 5, "none": 3})
    out = cl.assign_holdout(plan, PLAN_ID, holdout_share=0.1, seed=1)
    assert tuple(out.columns) == cl.PLAN_COLUMNS
    assert set(out["action"]) == {"email", "retention_coupon"}  # "none" is not a plan row
    counts = out.groupby(["action", "assignment"]).size()
    # ceil(0.1 * 20) = 2 and ceil(0.1 * 5) = 1 held out
    assert counts.to_dict() == {("email", "holdout"): 2, ("email", "treated"): 18,
                                ("retention_coupon", "holdout"): 1,
                                ("retention_coupon", "treated"): 4}
    assert out.groupby("action")["propensity"].first().to_dict() == {
        "email": 0.9, "retention_coupon": 0.8}
    assert out["customer_id"].is_unique  # never both treated and held out


def test_holdout_is_reproducible_and_ignores_row_order():
    plan = _plan({"email": 500, "retention_coupon": 200})
    a = cl.assign_holdout(plan, PLAN_ID, seed=7)
    b = cl.assign_holdout(plan.sample(frac=1.0, random_state=3), PLAN_ID, seed=7)
    pd.testing.assert_frame_equal(a, b)
    held = set(a.loc[a["assignment"] == "holdout", "customer_id"])
    other_plan = cl.assign_holdout(plan, "plan-2020-02-01", seed=7)
    other_seed = cl.assign_holdout(plan, PLAN_ID, seed=8)
    for other in (other_plan, other_seed):
        assert set(other.loc[other["assignment"] == "holdout", "customer_id"]) != held
    assert len(held) == 50 + 20


def test_treated_spend_stays_within_the_budget():
    budget = 100.0
    planned = cl.allocation_budget(budget, 0.1)
    assert planned == pytest.approx(111.111111)
    # the allocator spent everything it was given: 222 e-mails at 0.5 = 111.0
    out = cl.assign_holdout(_plan({"email": 222}), PLAN_ID, 0.1)
    assert cl.treated_spend(out) == 0.5 * (222 - 23) <= budget  # ceil(22.2) = 23 held out
    assert cl.trim_to_budget(out, budget) is out  # nothing to trim


def test_trim_drops_whole_customers_until_the_treated_spend_fits():
    plan = _plan({"email": 10})
    plan["cost"] = np.arange(1.0, 11.0)  # costs vary within the action: 55 in all
    out = cl.assign_holdout(plan, PLAN_ID, 0.2)  # 2 held out
    assert cl.treated_spend(out) == 55.0 - out.loc[out["assignment"] == "holdout",
                                                   "cost"].sum()
    trimmed = cl.trim_to_budget(out, 30.0)
    assert cl.treated_spend(trimmed) <= 30.0
    assert set(trimmed["customer_id"]) < set(out["customer_id"])
    share = (trimmed["assignment"] == "treated").mean()
    assert (trimmed["propensity"] == share).all()
    with pytest.raises(ValueError, match="holdout_share"):
        cl.allocation_budget(10.0, 1.0)


# --------------------------------------------------------------------------- outcomes

def _orders(rows):
    return pd.DataFrame(rows, columns=["customer_id", "order_ts", "amount"]).assign(
        order_ts=lambda f: pd.to_datetime(f["order_ts"]))


def _campaign_plan():
    rows = [("a", "treated"), ("b", "treated"), ("c", "holdout"), ("d", "holdout")]
    frame = pd.DataFrame(rows, columns=["customer_id", "assignment"])
    return frame.assign(plan_id=PLAN_ID, segment="seg", action="email", propensity=0.5,
                        cost=0.5, incr_revenue=[2.0, 4.0, 2.0, 2.0], incr_retention=0.0,
                        incr_clv=0.0, uplift_source="prior", effect_method="prior")


def test_measure_outcomes_by_hand():
    orders = _orders([
        ("a", "2020-01-06 10:00", 10.0),   # day 5: in the 30-day window
        ("a", "2019-12-31 23:00", 99.0),   # before the send: ignored
        ("b", "2020-02-10 00:00", 20.0),   # day 40: active, not converted
        ("d", "2020-01-01 00:00", 4.0),    # at the send instant: counts
        ("c", "2020-03-01 00:00", 7.0),    # on the as-of date: not yet known
    ])
    got = cl.measure_outcomes(_campaign_plan(), orders, dt.date(2020, 3, 1), horizon_days=90,
                              min_arm_size=1)
    out = got.outcomes.set_index(["segment", "metric"])
    rev = out.loc[("all", "revenue")]
    # treated [10, 0] vs holdout [0, 4]: 5 - 2 = 3; se = sqrt(50/2 + 8/2) = sqrt(29)
    assert rev["effect"] == pytest.approx(3.0)
    assert rev["effect_high"] - rev["effect"] == pytest.approx(1.959964 * np.sqrt(29), rel=1e-5)
    assert rev["expected_effect"] == pytest.approx(3.0)  # mean of 2 and 4 over the treated
    assert rev["realised_to_expected"] == pytest.approx(1.0)
    assert rev["incremental_total"] == pytest.approx(6.0) and rev["treated_cost"] == 1.0
    assert out.loc[("all", "conversion"), "effect"] == pytest.approx(0.0)  # 1/2 vs 1/2
    ret = out.loc[("all", "retention")]
    assert ret["effect"] == pytest.approx(0.5)  # [1, 1] vs [0, 1]
    assert ret["status"] == "partial" and ret["window_end"] == dt.date(2020, 3, 1)
    assert out.loc[("all", "revenue"), "status"] == "final"
    assert set(out.index.get_level_values("segment")) == {"all", "seg"}
    resp = got.responses.set_index("customer_id")
    assert tuple(got.responses.columns) == cl.RESPONSE_COLUMNS
    assert resp.loc["a", "campaign_id"] == f"{PLAN_ID}:email"
    assert resp["treatment"].to_dict() == {"a": 1, "b": 1, "c": 0, "d": 0}
    assert resp["action"].to_dict() == {"a": "email", "b": "email", "c": "none", "d": "none"}
    assert resp["revenue"].to_dict() == {"a": 10.0, "b": 0.0, "c": 0.0, "d": 4.0}


def test_outcomes_wait_for_the_window_and_follow_the_send_date():
    plan, orders = _campaign_plan(), _orders([("a", "2020-02-15 00:00", 10.0)])
    early = cl.measure_outcomes(plan, orders, dt.date(2020, 1, 30), horizon_days=90)
    assert early.outcomes.empty and early.responses.empty  # window ends 2020-01-31
    sends = pd.DataFrame({"plan_id": [PLAN_ID], "sent_date": [dt.date(2020, 2, 1)]})
    assert cl.measure_outcomes(plan, orders, dt.date(2020, 3, 1), 90, sends).outcomes.empty
    got = cl.measure_outcomes(plan, orders, dt.date(2020, 3, 2), 90, sends)
    rev = got.outcomes.set_index(["segment", "metric"]).loc[("all", "revenue")]
    assert rev["effect"] == pytest.approx(5.0) and rev["sent_date"] == dt.date(2020, 2, 1)
    final = cl.measure_outcomes(plan, orders, dt.date(2020, 6, 1), 90, sends).outcomes
    assert (final["status"] == "final").all()
    with pytest.raises(ValueError, match="before the plan's as-of date"):
        cl.measure_outcomes(plan, orders, dt.date(2020, 6, 1), 90,
                            sends.assign(sent_date=dt.date(2019, 12, 1)))


# --------------------------------------------------------------------------- policy value

def test_ips_and_dr_by_hand():
    logged = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"], "campaign_id": "k", "segment": "s",
        "action": ["email", "none", "email", "none"], "propensity": 0.5,
        "outcome": [4.0, 1.0, 2.0, 3.0]})
    policy = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "action": "email"})
    got = cl.evaluate_policy(logged, policy).set_index("estimator")
    # IPS: (4/0.5 + 0 + 2/0.5 + 0) / 4 = 3; mu(email) = 3, mu(none) = 2
    assert got.loc["ips", "value_per_customer"] == pytest.approx(3.0)
    # DR: mu(email) + [ (4-3)/0.5, 0, (2-3)/0.5, 0 ] -> 3 + (2 - 2) / 4 = 3
    assert got.loc["dr", "value_per_customer"] == pytest.approx(3.0)
    sd = np.std([8.0, 0.0, 4.0, 0.0], ddof=1)
    assert got.loc["ips", "value_high"] - 3.0 == pytest.approx(1.959964 * sd / 2, rel=1e-5)
    unsupported = cl.evaluate_policy(logged, policy.assign(action="coupon"))
    assert (unsupported["n_customers"] == 0).all() and (unsupported["support_share"] == 0).all()


def test_policy_value_intervals_cover_the_true_value():
    """On randomised synthetic campaigns (1/3 none, e-mail, coupon), IPS and DR 95%
    intervals cover the known value of a policy in at least 85% of 40 repetitions
    (expected 95%; 85% is 3.5 binomial standard errors below)."""
    costs = {"email": 0.5, "retention_coupon": 5.0}
    feats = synthetic.sample_customer_features(6_000, seed=2)
    segments = pd.DataFrame({"customer_id": feats["customer_id"],
                             "segment": np.where(feats["recency_days"] < 60, "recent", "old")})
    policy = pd.DataFrame({"customer_id": feats["customer_id"],
                           "action": np.where(feats["recency_days"] < 90, "email", "none")})
    exp = synthetic.expected_outcomes(feats, policy["action"])
    truth = float((exp["revenue"] - policy["action"].map({**costs, "none": 0.0})).mean())
    covered = {"ips": 0, "dr": 0}
    widths = {"ips": [], "dr": []}
    for rep in range(40):
        resp = synthetic.randomised_campaign_responses(feats, dt.date(2024, 1, 1), seed=rep)
        logged = cl.logged_from_responses(resp, segments, costs)
        got = cl.evaluate_policy(logged, policy).set_index("estimator")
        for name in covered:
            covered[name] += got.loc[name, "value_low"] <= truth <= got.loc[name, "value_high"]
            widths[name].append(got.loc[name, "value_high"] - got.loc[name, "value_low"])
    assert covered["ips"] >= 34 and covered["dr"] >= 34, covered
    assert np.mean(widths["dr"]) < np.mean(widths["ips"])  # the outcome model helps


def test_benchmark_policies():
    plan = _plan({"email": 4, "retention_coupon": 2, "none": 4})
    got = cl.benchmark_policies(plan, {"email": 0.5, "retention_coupon": 5.0}, seed=1)
    assert (got["treat_none"]["action"] == "none").all()
    assert (got["cheapest_action"]["action"] == "email").all()
    rnd = got["random_same_budget"]
    assert rnd["action"].value_counts().to_dict() == plan["action"].value_counts().to_dict()
    assert not rnd["action"].equals(plan["action"])
