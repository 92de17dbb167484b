"""The contact policy through the real pipeline (Spark, GX, the warehouse, MLflow):
opt-outs imported with ``clv import-contact-preferences``'s loader, a backfill of four
plans a week or more apart, and a re-run of an earlier date."""

from __future__ import annotations

import datetime as dt
import itertools

import pandas as pd
import pytest

from clv import ingest, pipeline
from clv.data import warehouse

N = 40
D1 = dt.date(2021, 1, 1)
DATES = [D1, D1 + dt.timedelta(days=7), D1 + dt.timedelta(days=21), D1 + dt.timedelta(days=35)]
COSTS = {"winback_email": 0.5, "loyalty_perk": 2.0}  # channels: email, account
PARAMS = {"budget": 1_000.0, "clv_weight": 0.7, "action_costs": COSTS, "horizon_days": 180,
          "contact_min_days": 14, "contact_max_per_window": 2}
OPTED_OUT_EMAIL = {"c001", "c002", "c003", "c004", "c005"}
OPTED_OUT_ALL = {"c006"}
LATE_OPT_OUT = "c008"  # opted out after D1: suppressed in the backfill of D1 too
BACK_IN = "c007"  # opted out of everything before D1, back in (opted in) after D1 + 7


def _orders_and_scores(spark) -> None:
    """``N`` customers with 1..4 orders in the year before D1; a hand-made scores partition
    (customer k: predicted_clv 10k, p_churn k / (N + 1)) and segments for every date."""
    rows, order = [], 0
    for k in range(1, N + 1):
        for j in range(1 + k % 4):
            order += 1
            day = D1 - dt.timedelta(days=5 + (k * 7 + j * 31) % 300)
            rows.append((str(order), f"c{k:03d}", dt.datetime.combine(day, dt.time(12)),
                         5.0 * k, 1, "USD"))
    warehouse.write_partition(spark.createDataFrame(
        rows, "order_id string, customer_id string, order_ts timestamp, amount double, "
              "quantity int, currency string"), "raw.orders", D1)
    from test_pipeline import hand_scores

    scores = hand_scores(N)
    for d in DATES:
        pipeline.build_features(d, 30, f"run-{d}")
        warehouse.write_partition(spark.createDataFrame(scores), "marts.customer_scores", d)
        pipeline.segment(d, f"run-{d}")


def _preferences(spark) -> dict:
    day = D1 - dt.timedelta(days=30)
    rows = ([(c, "email", "yes", day.isoformat()) for c in sorted(OPTED_OUT_EMAIL)]
            + [(c, "ALL", "true", day.isoformat()) for c in sorted(OPTED_OUT_ALL)]
            + [(BACK_IN, "all", "1", day.isoformat()),
               (BACK_IN, "all", "0", (D1 + dt.timedelta(days=10)).isoformat()),
               (LATE_OPT_OUT, "email", "opted_out", (D1 + dt.timedelta(days=3)).isoformat()),
               ("c009", "email", "perhaps", day.isoformat())])  # unreadable: quarantined
    frame = pd.DataFrame(rows, columns=["customer_id", "channel", "opted_out", "updated_at"])
    return ingest.load_contact_preferences(spark, frame, "crm_optouts.csv", "import-test")


def _campaign_plans() -> pd.DataFrame:
    return pd.concat([warehouse.read_partition_pandas("marts.campaign_plan", d)
                      for d in warehouse.list_partitions("marts.campaign_plan")],
                     ignore_index=True)


def _assert_policy_held(plans: pd.DataFrame) -> None:
    channel = plans["action"].map({"winback_email": "email", "loyalty_perk": "account"})
    # never treated and never held out on the channel they left
    email = plans[channel == "email"]
    assert not set(email["customer_id"]) & (OPTED_OUT_EMAIL | OPTED_OUT_ALL | {LATE_OPT_OUT})
    assert not set(plans["customer_id"]) & OPTED_OUT_ALL
    # caps: per customer and channel, treated contacts >= 14 days apart, <= 2 in 180 days
    treated = plans[plans["assignment"] == "treated"].assign(channel=channel)
    for (_, _), group in treated.groupby(["customer_id", "channel"]):
        days = sorted(pd.to_datetime(group["plan_id"].str.removeprefix("plan-")))
        for a, b in itertools.pairwise(days):
            assert (b - a).days >= 14
        for i, first in enumerate(days):
            assert sum((d - first).days < 180 for d in days[i:]) <= 2


def test_opt_outs_and_caps_hold_over_a_backfill_and_a_rerun(spark, clv_home):
    loaded = _preferences(spark)
    assert (loaded["accepted"], loaded["rejected"]) == (9, 1)
    assert loaded["rejected_by_rule"] == {"opted_out_not_boolean": 1}
    quarantined = warehouse.read_partition_pandas("quality.rejected_contact_preferences",
                                                  dt.date.fromisoformat(loaded["as_of_date"]))
    assert quarantined[["customer_id", "row", "source"]].values.tolist() == [
        ["c009", 10, "crm_optouts.csv"]]
    _orders_and_scores(spark)
    params = pipeline.AllocationParams.from_params(PARAMS)
    outs = {d: pipeline.allocate(d, params, f"run-{d}") for d in DATES}
    plans = _campaign_plans()
    _assert_policy_held(plans)

    # the budget does not bind: D1 selects most customers (the cheapest ones are not worth
    # an action), the opted-out-of-everything ones excepted
    first = plans[plans["plan_id"] == f"plan-{D1}"]
    assert len(first) > 25 and BACK_IN not in set(first["customer_id"])
    # a week later everyone treated on D1 is capped on the channel they were treated by
    summary = warehouse.read_partition_pandas("marts.budget_summary", DATES[1])
    treated_d1 = first[first["assignment"] == "treated"]
    assert summary["excluded_frequency_cap"].sum() == len(treated_d1)
    assert summary["excluded_opted_out"].sum() >= len(OPTED_OUT_EMAIL) + 2 * 2
    second = plans[plans["plan_id"] == f"plan-{DATES[1]}"]
    again_d2 = second.merge(treated_d1, on=["customer_id", "action"])
    assert again_d2.empty
    assert BACK_IN not in set(second["customer_id"])
    # opted back in after D1 + 10: selected again from D1 + 21 on
    later = plans[plans["plan_id"].isin([f"plan-{d}" for d in DATES[2:]])]
    assert BACK_IN in set(later["customer_id"])

    # the policy's cost: the same run solved without it, never worth less
    for d in DATES:
        row = warehouse.read_partition_pandas("marts.contact_policy", d).iloc[0]
        plan = warehouse.read_partition_pandas("marts.budget_allocation", d)
        assert row["value_with_policy"] == pytest.approx(plan["net_value"].sum())
        assert row["spent_with_policy"] == pytest.approx(plan["cost"].sum())
        assert row["policy_cost_value"] == pytest.approx(
            row["value_without_policy"] - row["value_with_policy"])
        assert row["policy_cost_value"] > 0  # opt-outs take value away every time
        assert outs[d]["contact_policy"]["policy_cost_value"] == pytest.approx(
            row["policy_cost_value"])
        assert row["customers_opted_out"] == (6 + 1 + (1 if d < DATES[2] else 0))

    # a re-run of an earlier date after the later ones: same plan, the caps still hold
    before = second.sort_values("customer_id").reset_index(drop=True)
    pipeline.allocate(DATES[1], params, "run-rerun")
    again = warehouse.read_partition_pandas("marts.campaign_plan", DATES[1])
    cols = ["customer_id", "action", "assignment"]
    assert again.sort_values("customer_id")[cols].reset_index(drop=True).equals(before[cols])
    _assert_policy_held(_campaign_plans())
