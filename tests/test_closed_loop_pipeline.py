"""#16 done-when: two runs a response window apart, on synthetic data with known effects,
give a non-empty ``marts.campaign_outcomes`` whose intervals cover the true effects.

Run 1 (as of D1): orders -> ``pipeline.build_features`` -> a scores partition made by
hand (no model training: the scores only steer who is planned) -> ``pipeline.segment``
-> ``pipeline.allocate`` (publishes ``marts.campaign_plan`` with its randomised
holdout). Between the runs the planned customers respond as the generator's truth
says (``clv.data.synthetic.simulate_campaign_outcomes``: the treated get baseline + their
true effect, the holdout the baseline), and their orders are appended to
``raw.orders``. Run 2 (as of D2 = D1 + 35 days, past the 30-day response window):
``pipeline.measure_outcomes``.

The catalogue's actions stand for the generator's: ``winback_email`` responds like its
``email`` (revenue 0 to 4 in the window, largest for recent big spenders) and
``retention_coupon`` like its coupon (retention only: no revenue effect).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from clv import pipeline
from clv.data import synthetic, warehouse
from clv.decisions import closed_loop
from clv.features import period_columns

N = 4_000
D1 = dt.date(2024, 3, 1)
D2 = D1 + dt.timedelta(days=35)
HORIZON = 180
#: Cheap enough that the catalogue's priors make both actions worth sending to many.
COSTS = {"winback_email": 0.1, "retention_coupon": 1.0}
#: Large enough that the coupon goes to ~1,000 customers (a holdout of ~100): at 30
#: held out the coupon's holdout had no buyer at all and its Welch interval, resting on
#: the treated arm's variance alone, missed the true 0 (measured: 4.9 [1.1, 8.8]).
BUDGET = 2_000.0
#: Which generator action's truth each catalogue action follows.
TRUTH_OF = {"winback_email": "email", "retention_coupon": "retention_coupon"}
ORDER_SCHEMA = ("order_id string, customer_id string, order_ts timestamp, amount double, "
                "quantity int, currency string")


def _history(n: int, as_of: dt.date, seed: int) -> pd.DataFrame:
    """Orders before ``as_of``: customer k's first order T days before it, last R days
    before (R skewed to recent, T >= R), 0-3 orders between, Gamma amounts (mean 90)."""
    rng = np.random.default_rng(seed)
    recency = 1 + np.floor(364 * rng.random(n) ** 1.5).astype(int)
    tenure = recency + np.floor(500 * rng.random(n)).astype(int)
    rows = []
    for k in range(n):
        days = [tenure[k], recency[k], *rng.integers(recency[k], tenure[k] + 1,
                                                     rng.integers(0, 4))]
        for j, back in enumerate(sorted(set(days), reverse=True)):
            rows.append((f"h{k}-{j}", f"c{k:04d}", as_of - dt.timedelta(days=int(back)),
                         round(float(rng.gamma(1.5, 60.0)) + 1.0, 2)))
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "day", "amount"])
    frame["order_ts"] = pd.to_datetime(frame.pop("day")) + pd.Timedelta(hours=12)
    return frame.assign(quantity=1, currency="USD")[
        ["order_id", "customer_id", "order_ts", "amount", "quantity", "currency"]]


def _scores(feats: pd.DataFrame) -> pd.DataFrame:
    """Scores by a stated rule: P(active) untreated is the generator's baseline q0, an
    active customer spends their past-year spend pro rata over the horizon."""
    q0 = synthetic.expected_outcomes(feats, np.full(len(feats), "none"))["p_active"]
    spend = synthetic.past_year_spend(feats)
    clv = (q0 * spend * HORIZON / 365).to_numpy()
    return pd.DataFrame({"customer_id": feats["customer_id"], "predicted_clv": clv,
                         "p_churn": 1 - q0.to_numpy(), "expected_revenue_30d": clv / 6,
                         "horizon_days": HORIZON, "clv_model_version": "1",
                         "churn_model_version": "2", "run_id": "run-1"})


def _responses_as_orders(plan: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
    """The planned customers' orders in the response window, drawn from the truth: a
    converted customer (treated: baseline + true effect; holdout: baseline) orders
    their simulated revenue 5 days after the send."""
    assignment = pd.DataFrame({
        "customer_id": plan["customer_id"], "action": plan["action"].map(TRUTH_OF),
        "treated": (plan["assignment"] == closed_loop.TREATED).astype(int)})
    sim = synthetic.simulate_campaign_outcomes(feats, assignment, seed=2024)
    bought = sim[sim["converted"] == 1]
    return pd.DataFrame({
        "order_id": "r-" + bought["customer_id"], "customer_id": bought["customer_id"],
        "order_ts": pd.Timestamp(D1) + pd.Timedelta(days=5, hours=12),
        "amount": bought["revenue"], "quantity": 1, "currency": "USD"})


def _true_revenue_effect(plan: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
    """Per plan row: the true revenue effect of its action for that customer."""
    truth = synthetic.true_effects(feats)
    plan = plan.assign(_truth_action=plan["action"].map(TRUTH_OF))
    return plan.merge(truth.rename(columns={"action": "_truth_action"}),
                      on=["customer_id", "_truth_action"], validate="one_to_one")


def test_two_runs_a_window_apart_measure_intervals_that_cover_the_truth(spark, clv_home):
    history = _history(N, D1, seed=16)
    warehouse.write_partition(spark.createDataFrame(history, ORDER_SCHEMA), "raw.orders", D1)
    pipeline.build_features(D1, HORIZON, "run-1")
    feats = warehouse.read_partition_pandas(pipeline.FEATURES, D1, columns=[
        "customer_id", "recency_days", "tenure_days",
        *[c for c in period_columns() if c.startswith("spend_")]])
    assert len(feats) == N
    warehouse.write_partition(spark.createDataFrame(_scores(feats)), pipeline.SCORES, D1)
    pipeline.segment(D1, "run-1")
    params = pipeline.AllocationParams(budget=BUDGET, clv_weight=0.5, action_costs=COSTS)
    run1 = pipeline.allocate(D1, params, "run-1")
    plan = warehouse.read_partition_pandas(pipeline.CAMPAIGN_PLAN, D1)
    print(f"\nrun 1: {run1['campaign_plan']}; plan by action x arm:\n"
          f"{plan.groupby(['action', 'assignment']).size()}")
    assert set(plan["action"]) == set(COSTS)
    assert set(plan["assignment"]) == {closed_loop.TREATED, closed_loop.HOLDOUT}

    # Nothing is measured before the response window has passed.
    early = pipeline.measure_outcomes(D1 + dt.timedelta(days=20), HORIZON, "run-early")
    assert early["plans_measured"] == 0

    orders = _responses_as_orders(plan, feats)
    warehouse.write_partition(spark.createDataFrame(orders, ORDER_SCHEMA), "raw.orders", D2)
    run2 = pipeline.measure_outcomes(D2, HORIZON, "run-2")
    print(f"run 2: {run2}")
    outcomes = warehouse.read_partition_pandas(pipeline.CAMPAIGN_OUTCOMES, D2)
    assert not outcomes.empty and run2["plans_measured"] == 1
    assert run2["responses_appended"] == len(plan)

    revenue = outcomes[outcomes["metric"] == "revenue"]
    truth = _true_revenue_effect(plan, feats)
    treated = truth[truth["assignment"] == closed_loop.TREATED]
    rows = []
    for r in revenue.itertuples():
        cell = treated[treated["action"] == r.action]
        if r.segment != closed_loop.ALL_SEGMENTS:
            cell = cell[cell["segment"] == r.segment]
        true = float(cell["tau_revenue"].mean())
        rows.append({"action": r.action, "segment": r.segment, "n_treated": r.n_treated,
                     "n_holdout": r.n_holdout, "truth": true, "effect": r.effect,
                     "low": r.effect_low, "high": r.effect_high,
                     "covered": r.effect_low <= true <= r.effect_high})
    check = pd.DataFrame(rows)
    print(check.to_markdown(index=False, floatfmt=".3f"))
    print(f"coverage: {int(check['covered'].sum())} of {len(check)} cells")
    # Measured: 8 revenue cells (each action overall + 6 segments with >= 30 per arm);
    # 7 covered. Both overall cells cover (e-mail 0.66 [-0.47, 1.79] vs true 0.32; coupon
    # 0.48 [-1.11, 2.08] vs true 0); the miss is the e-mail in "loyal" with 35 held out
    # (4.50 [2.15, 6.86] vs 1.11): Welch intervals on zero-inflated, skewed revenue
    # under-cover when an arm has few buyers (a pandas replay over 60 seeds: 0.82-0.88
    # coverage at 77-324 held out, ~5% converting). 0.7 leaves room for one more miss.
    overall = check[check["segment"] == closed_loop.ALL_SEGMENTS]
    assert len(overall) == len(COSTS) and overall["covered"].all(), overall
    assert check["covered"].mean() >= 0.7, check

def test_allocation_suites_allow_the_holdout_share_of_the_config():
    """The spend rules of the budget_allocation and budget_summary suites divide the budget
    by 1 - DEFAULT_HOLDOUT_SHARE (a suite is JSON and cannot import it): the number there
    must follow the config."""
    import json
    from pathlib import Path

    from clv.config import DEFAULT_HOLDOUT_SHARE

    folder = Path(__file__).resolve().parents[1] / "expectations"
    for suite, column in (("budget_allocation", "cost"), ("budget_summary", "spent")):
        data = json.loads((folder / f"{suite}.json").read_text())
        queries = [e["kwargs"]["unexpected_rows_query"] for e in data["expectations"]
                   if "MAX(budget)" in e["kwargs"].get("unexpected_rows_query", "")]
        assert queries == [
            f"SELECT SUM({column}) AS spent, MAX(budget) AS budget FROM {{batch}} HAVING "
            f"SUM({column}) > MAX(budget) / {1 - DEFAULT_HOLDOUT_SHARE:g} + 1e-6"], suite
