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

from clv.data import synthetic
from clv.decisions import closed_loop as cl

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


# --------------------------------------------------------------------------- the loop

N_LOOP = 100_000
COSTS = {"email": 0.5, "retention_coupon": 5.0}
BUDGET, LAM, HORIZON = 75_000.0, 0.5, 180
#: Optimistic priors (truth: e-mail 0.66 on average, 0 to 4; coupon 0.053, 0 to 0.083):
#: an action only gets measured where it is tried, so untested cells must look worth it.
PRIORS = {"email": (2.0, 0.0), "retention_coupon": (0.0, 0.10)}
CANDIDATES = ("customer_id", "segment", "action", "cost", "incr_clv", "incr_revenue")
PERIOD_DATES = [dt.date(2024, 1, 1), dt.date(2024, 7, 1), dt.date(2025, 1, 1)]


def _loop_population():
    feats = synthetic.sample_customer_features(N_LOOP, seed=20261202)
    spend = synthetic.past_year_spend(feats)
    band = np.digitize(feats["recency_days"], [31, 91, 181])
    segment = np.char.add(np.array(["r0_30", "r31_90", "r91_180", "r181_"])[band],
                          np.where(spend >= 250, "_high", "_low"))
    pop = feats[["customer_id"]].assign(segment=segment.astype(object),
                                        value_if_retained=spend.to_numpy() * HORIZON / 365)
    truth = synthetic.true_effects(feats).merge(pop, on="customer_id")
    truth["incr_clv"] = truth["tau_revenue"] + truth["tau_retention"] * truth[
        "value_if_retained"]
    return feats, pop, truth


#: Fewest holdout customers for a segment's own estimate; else the action's overall one.
MIN_HOLDOUT = 100


def segment_difference_in_means(responses: pd.DataFrame) -> pd.DataFrame:
    """Default effect fit: per segment and action, treated - holdout means over every own
    response so far (``clv.decisions.uplift.estimate_uplift``; periods pooled per action) of revenue
    (-> incr_revenue) and of staying active (-> incr_retention); a segment whose holdout
    has fewer than ``MIN_HOLDOUT`` customers takes the action's estimate over all segments."""
    from clv.decisions.uplift import estimate_uplift

    pooled = responses.assign(campaign_id=responses["campaign_id"].str.split(":").str[-1])
    fits = []
    for by in ("segment", None):
        revenue = estimate_uplift(pooled, by=by)
        retention = estimate_uplift(pooled.assign(converted=pooled["retained"]), by=by)
        fits.append(revenue[["segment", "action", "n_control", "uplift_revenue"]].merge(
            retention[["segment", "action", "uplift_conversion"]], on=["segment", "action"]))
    own, overall = fits
    own = own[own["n_control"] >= MIN_HOLDOUT]
    segments = pd.DataFrame({"segment": sorted(set(responses["segment"]))})
    pooled_rows = segments.merge(overall.drop(columns="segment"), how="cross")
    fitted = pd.concat([own, pooled_rows], ignore_index=True).drop_duplicates(
        ["segment", "action"], keep="first")
    return fitted.rename(columns={"uplift_revenue": "incr_revenue",
                                  "uplift_conversion": "incr_retention"})[
        ["segment", "action", "incr_revenue", "incr_retention"]]


def _candidates(pop: pd.DataFrame, effects: pd.DataFrame) -> pd.DataFrame:
    """Every customer x action with the fitted segment effect (prior where unmeasured)."""
    cells = pd.MultiIndex.from_product([sorted(set(pop["segment"])), sorted(COSTS)],
                                       names=["segment", "action"]).to_frame(index=False)
    cells = cells.merge(effects, on=["segment", "action"], how="left")
    measured = cells["incr_revenue"].notna()
    prior = cells["action"].map(PRIORS)
    cells["incr_revenue"] = cells["incr_revenue"].where(measured, prior.str[0])
    cells["incr_retention"] = cells["incr_retention"].where(measured, prior.str[1])
    cells["uplift_source"] = np.where(measured, "own_experiment", "prior")
    cells["effect_method"] = np.where(measured, "segment_average", "prior")
    cand = pop.merge(cells, on="segment")
    cand["cost"] = cand["action"].map(COSTS)
    cand["incr_clv"] = cand["incr_revenue"] + cand["incr_retention"] * cand[
        "value_if_retained"]
    return cand.drop(columns="value_if_retained")


def _plan_value(plan: pd.DataFrame, truth: pd.DataFrame) -> float:
    """True expected objective of a plan had every selected customer been treated."""
    chosen = plan[plan["action"] != "none"][["customer_id", "action"]].merge(
        truth, on=["customer_id", "action"])
    value = (LAM * chosen["incr_clv"] + (1 - LAM) * chosen["tau_revenue"]
             - chosen["action"].map(COSTS))
    return float(value.sum())


def _allocate(candidates: pd.DataFrame) -> pd.DataFrame:
    from clv.decisions import allocation

    # the LP-rounded plan (within one candidate of the optimum): the exact MILP adds
    # nothing to what the loop shows and costs a minute on 200,000 candidates
    plan = allocation.allocate(candidates, cl.allocation_budget(BUDGET), LAM,
                               exact_max_candidates=0).plan
    for column in ("incr_retention",):
        plan[column] = plan[column].astype(float).fillna(0.0)
    return plan.fillna({"uplift_source": "none", "effect_method": "none"})


def _orders_from(sim: pd.DataFrame, sent: dt.date) -> pd.DataFrame:
    """Simulated outcomes as orders: a converted customer's revenue 5 days after the send,
    an order on day 60 for one active but not converted."""
    day = pd.Timestamp(sent)
    bought = sim[sim["converted"] == 1]
    later = sim[(sim["active"] == 1) & (sim["converted"] == 0)]
    return pd.concat([
        pd.DataFrame({"customer_id": bought["customer_id"], "amount": bought["revenue"],
                      "order_ts": day + pd.Timedelta(days=5)}),
        pd.DataFrame({"customer_id": later["customer_id"], "amount": 10.0,
                      "order_ts": day + pd.Timedelta(days=60)}),
    ], ignore_index=True)


def _effect_errors(effects: pd.DataFrame, pop: pd.DataFrame,
                   truth: pd.DataFrame) -> dict[str, float]:
    """Customer-weighted mean |fitted - true| over the segment x action cells (the truth is
    the segment's mean): of the incremental CLV per customer (money, both actions), of
    the e-mail's revenue effect and of the coupon's retention effect."""
    true_cell = truth.groupby(["segment", "action"]).agg(
        true_clv=("incr_clv", "mean"), true_rev=("tau_revenue", "mean"),
        true_ret=("tau_retention", "mean"), n=("customer_id", "size")).reset_index()
    fitted = _candidates(pop, effects).groupby(["segment", "action"])[
        ["incr_clv", "incr_revenue", "incr_retention"]].mean()
    cell = true_cell.set_index(["segment", "action"]).join(fitted)
    email, coupon = (cell.xs(a, level="action") for a in ("email", "retention_coupon"))
    return {
        "effect_error": float(np.average((cell["incr_clv"] - cell["true_clv"]).abs(),
                                         weights=cell["n"])),
        "email_revenue_error": float(np.average(
            (email["incr_revenue"] - email["true_rev"]).abs(), weights=email["n"])),
        "coupon_retention_error": float(np.average(
            (coupon["incr_retention"] - coupon["true_ret"]).abs(), weights=coupon["n"]))}


def run_loop(estimate_effects=segment_difference_in_means, periods=3):
    """Plan -> holdout -> simulate from the truth -> measure -> refit, ``periods`` times."""
    feats, pop, truth = _loop_population()
    oracle_candidates = truth.assign(cost=truth["action"].map(COSTS),
                                     incr_revenue=truth["tau_revenue"],
                                     incr_retention=truth["tau_retention"])
    oracle = _plan_value(_allocate(oracle_candidates[list(CANDIDATES) + ["incr_retention"]]),
                         truth)
    effects = pd.DataFrame(columns=["segment", "action", "incr_revenue", "incr_retention"])
    responses, figures, checks = [], [], []
    for period, as_of in enumerate(PERIOD_DATES[:periods]):
        errors = _effect_errors(effects, pop, truth)
        plan = _allocate(_candidates(pop, effects))
        campaign = cl.assign_holdout(plan, cl.plan_id_for(as_of), seed=period)
        assert cl.treated_spend(campaign) <= BUDGET
        sim = synthetic.simulate_campaign_outcomes(feats, campaign.assign(
            treated=(campaign["assignment"] == "treated").astype(int)), seed=100 + period)
        measured = cl.measure_outcomes(campaign, _orders_from(sim, as_of),
                                       as_of + dt.timedelta(days=HORIZON), HORIZON)
        checks.append(_coverage(measured, truth))
        responses.append(measured.responses.assign(
            retained=measured.customers["active"].to_numpy()).merge(
            pop[["customer_id", "segment"]], on="customer_id"))
        effects = estimate_effects(pd.concat(responses, ignore_index=True))
        figures.append({"period": period + 1, **errors,
                        "plan_value": _plan_value(plan, truth), "oracle_value": oracle,
                        "treated": int((campaign["assignment"] == "treated").sum()),
                        "holdout": int((campaign["assignment"] == "holdout").sum()),
                        "spent": cl.treated_spend(campaign)})
    return pd.DataFrame(figures), pd.concat(checks, ignore_index=True)


def _coverage(measured: cl.MeasuredOutcomes, truth: pd.DataFrame) -> pd.DataFrame:
    """Per action x segment (x period) in the action's channel: does the 95% interval
    cover the true mean effect over that cell's customers (both arms)?"""
    channel = {"email": ("revenue", "tau_revenue"),
               "retention_coupon": ("retention", "tau_retention")}
    rows = []
    out = measured.outcomes[measured.outcomes["segment"] != cl.ALL_SEGMENTS]
    cust = measured.customers.merge(truth, on=["customer_id", "action"],
                                    suffixes=("", "_truth"))
    for r in out.itertuples():
        metric, tau = channel[r.action]
        if r.metric != metric:
            continue
        cell = cust[(cust["action"] == r.action) & (cust["segment"] == r.segment)]
        true = float(cell[tau].mean())
        rows.append({"plan_id": r.plan_id, "action": r.action, "segment": r.segment,
                     "truth": true, "low": r.effect_low, "high": r.effect_high,
                     "covered": r.effect_low <= true <= r.effect_high})
    return pd.DataFrame(rows)


def test_the_loop_learns_the_effects_and_its_plans_approach_the_best_plan():
    figures, checks = run_loop()
    figures["gap_to_oracle"] = 1 - figures["plan_value"] / figures["oracle_value"]
    print("\n" + figures.to_markdown(index=False, floatfmt=".4g"))
    print(f"coverage of the 95% intervals: {checks['covered'].mean():.3f} "
          f"over {len(checks)} action x segment x period cells")
    # ~95% nominal; 0.80 is about 3 binomial standard errors below at 25 cells
    assert len(checks) >= 20 and checks["covered"].mean() >= 0.80
    for column in ("effect_error", "email_revenue_error", "coupon_retention_error"):
        errors = figures[column].to_numpy()
        assert errors[0] > errors[1] > errors[2], (column, errors)
    gaps = figures["gap_to_oracle"].to_numpy()
    assert gaps[0] > gaps[1] > gaps[2] >= 0, gaps
    assert gaps[2] < 0.5 * gaps[0]


def test_mark_plan_sent_refuses_an_unknown_plan(clv_home, capsys):
    from clv.ops import cli

    assert cli.main(["mark-plan-sent", "--plan-id", "plan-1998-07-01"]) == 2
    assert "marts.campaign_plan: no plan plan-1998-07-01" in capsys.readouterr().err
    assert cli.main(["mark-plan-sent", "--plan-id", "july"]) == 2
    assert "plan-YYYY-MM-DD" in capsys.readouterr().err


def test_a_plan_without_holdout_gives_no_comparison():
    plan = _campaign_plan().assign(assignment="treated", propensity=1.0)
    got = cl.measure_outcomes(plan, _orders([("a", "2020-01-06", 10.0)]), dt.date(2020, 3, 1),
                              90)
    assert got.outcomes.empty and (got.responses["treatment"] == 1).all()
