"""The closed loop (#16): every plan keeps a randomised holdout; later runs measure what
it returned."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from clv.data import lineage, warehouse
from clv.pipeline.publishing import (
    _campaign_responses,
    _publish_pandas,
    _read_all_pandas,
    _spark,
    _stamp,
)
from clv.pipeline.tables import (
    CAMPAIGN_OUTCOMES,
    CAMPAIGN_PLAN,
    CAMPAIGN_RESPONSES,
    CAMPAIGN_SENDS,
    POLICY_EVALUATION,
    RAW_ORDERS,
)

# --------------------------------------------------------------------------- the closed loop
# Issue #16: every plan keeps a randomised holdout; later runs measure what it returned.
# Its tables are published without the row count vs the previous partition
# (compare_count=False): a plan's size follows the budget, the outcomes follow how many
# plans are due, so a 10x change between runs is not a fault here.


def publish_campaign_plan(as_of_date: dt.date, plan, budget: float, run_id: str,
                          holdout_share: float | None = None, seed: int = 0) -> dict[str, Any]:
    """The allocation plan with its randomised holdout -> ``marts.campaign_plan``.

    ``plan`` is ``clv.decisions.allocation.allocate(...).plan`` for a budget of
    ``closed_loop.allocation_budget(budget, holdout_share)``; the treated spend is
    trimmed to ``budget`` if rounding pushed it over. Columns the plan lacks
    (``incr_retention``, ``effect_method``) are filled (0, the uplift source).
    """
    from clv.config import DEFAULT_HOLDOUT_SHARE
    from clv.decisions import closed_loop

    share = DEFAULT_HOLDOUT_SHARE if holdout_share is None else holdout_share
    plan = plan.copy()
    if "incr_retention" not in plan:
        plan["incr_retention"] = 0.0
    if "effect_method" not in plan:
        plan["effect_method"] = plan["uplift_source"]
    plan_id = closed_loop.plan_id_for(as_of_date)
    campaign = closed_loop.trim_to_budget(
        closed_loop.assign_holdout(plan, plan_id, share, seed), budget, seed)
    out = {"plan_id": plan_id, "holdout_share": share,
           "treated": int((campaign["assignment"] == closed_loop.TREATED).sum()),
           "holdout": int((campaign["assignment"] == closed_loop.HOLDOUT).sum()),
           "treated_spend": round(closed_loop.treated_spend(campaign), 2)}
    if not campaign.empty:
        out["data_docs"] = _publish_pandas(_stamp(campaign, run_id), "campaign_plan",
                                           CAMPAIGN_PLAN, as_of_date, run_id,
                                           compare_count=False)
    return out


def mark_plan_sent(plan_id: str, sent_date: dt.date | None, run_id: str) -> dict[str, Any]:
    """Record that an operator sent a plan (default: on its as-of date): outcomes are
    measured from ``sent_date``. One row in ``marts.campaign_sends``, partition = the
    plan's as-of date; marking again replaces it."""
    import pandas as pd

    from clv.decisions import closed_loop

    plan_date = closed_loop.plan_date(plan_id)
    if plan_date not in warehouse.list_partitions(CAMPAIGN_PLAN):
        raise ValueError(f"{CAMPAIGN_PLAN}: no plan {plan_id} (no partition {plan_date})")
    sent = sent_date or plan_date
    if sent < plan_date:
        raise ValueError(f"{CAMPAIGN_SENDS}: sent_date {sent} is before the plan's as-of "
                         f"date {plan_date}")
    row = pd.DataFrame({"plan_id": [plan_id], "plan_date": [plan_date], "sent_date": [sent],
                        "run_id": [run_id]})
    warehouse.write_partition(_spark().createDataFrame(row), CAMPAIGN_SENDS, plan_date)
    return {"plan_id": plan_id, "sent_date": sent.isoformat()}


def _orders_after(since: dt.date, as_of_date: dt.date, customers):
    """customer_id, order_ts, amount of the plan customers' orders in [since, as_of_date)."""
    from pyspark.sql import functions as F

    spark = _spark()
    orders = warehouse.read_table(spark, RAW_ORDERS).where(
        (F.col("order_ts") >= F.lit(dt.datetime.combine(since, dt.time())))
        & (F.col("order_ts") < F.lit(dt.datetime.combine(as_of_date, dt.time()))))
    import pandas as pd

    with warehouse.spark_frame(spark, pd.DataFrame({"customer_id": customers})) as ids:
        return orders.join(ids, "customer_id", "left_semi").select(
            "customer_id", "order_ts", "amount").toPandas()


def measure_outcomes(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """:func:`_measure_outcomes`, or its work that ``score`` began
    (:func:`clv.pipeline.score_tasks.begin_after_score`)."""
    from clv.pipeline import head_start

    return head_start.take(head_start.task_key("measure_outcomes", as_of_date, run_id),
                           functools.partial(_measure_outcomes, as_of_date, horizon_days,
                                             run_id))


def _measure_outcomes(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Outcomes of every earlier plan whose response window has passed by ``as_of_date``.

    Reads ``marts.campaign_plan`` partitions made before the as-of date (in the last
    ``2 x horizon_days``), their sends and
    ``raw.orders``; publishes ``marts.campaign_outcomes`` and appends the per-customer
    responses of plans measured for the first time to ``raw.campaign_responses`` (this
    date's partition, beside any campaign loaded there), so the next effect fit uses
    the shop's own experiments. Idempotent per as-of date.
    """
    from clv.decisions import closed_loop

    plans = _read_all_pandas(CAMPAIGN_PLAN, before=as_of_date)
    if plans is not None:
        # A plan is re-measured for two horizons after it was made: its retention turns
        # final after one, and the table does not grow with every plan ever made.
        recent = [closed_loop.plan_date(p) > as_of_date - dt.timedelta(days=2 * horizon_days)
                  for p in plans["plan_id"]]
        plans = plans[recent] if any(recent) else None
    if plans is None:
        return {"plans_measured": 0, "reason": "no plan in the last two horizons"}
    sends = _read_all_pandas(CAMPAIGN_SENDS)
    first_sent = min(closed_loop.send_dates(plans, sends)["sent_date"])
    orders = _orders_after(first_sent, as_of_date, plans["customer_id"].unique())
    measured = closed_loop.measure_outcomes(plans, orders, as_of_date, horizon_days, sends)
    if measured.outcomes.empty:
        return {"plans_measured": 0,
                "reason": "no plan with both arms whose response window has passed"}
    docs = _publish_pandas(_stamp(measured.outcomes, run_id), "campaign_outcomes",
                           CAMPAIGN_OUTCOMES, as_of_date, run_id, compare_count=False)
    new = _append_own_responses(measured.responses, as_of_date, run_id)
    headline = measured.outcomes[(measured.outcomes["segment"] == closed_loop.ALL_SEGMENTS)
                                 & (measured.outcomes["metric"] == "revenue")]
    return {"plans_measured": int(measured.outcomes["plan_id"].nunique()), "data_docs": docs,
            "responses_appended": new,
            "revenue_effect": {f"{r.plan_id}:{r.action}": [round(r.effect, 4),
                                                           round(r.effect_low, 4),
                                                           round(r.effect_high, 4)]
                               for r in headline.itertuples()}}


def _append_own_responses(responses, as_of_date: dt.date, run_id: str) -> int:
    """Write the responses of plans not in an earlier ``raw.campaign_responses`` partition
    into this date's partition, keeping the campaigns loaded there from other sources."""
    import pandas as pd

    from clv import quality

    earlier = _read_all_pandas(CAMPAIGN_RESPONSES, before=as_of_date)
    seen = set() if earlier is None else set(earlier["campaign_id"])
    new = responses[~responses["campaign_id"].isin(seen)].copy()
    if new.empty:
        return 0
    new["sent_date"] = pd.to_datetime(new["sent_date"]).dt.date
    new["run_id"] = run_id
    if as_of_date in warehouse.list_partitions(CAMPAIGN_RESPONSES):
        here = warehouse.read_partition_pandas(CAMPAIGN_RESPONSES, as_of_date).drop(
            columns=warehouse.PARTITION_COLUMN)
        loaded = here[~here["campaign_id"].str.startswith("plan-")]  # not ours: keep
        new = pd.concat([loaded, new], ignore_index=True)
    with warehouse.spark_frame(_spark(), new) as df:
        quality.assert_valid(df, "campaign_responses", CAMPAIGN_RESPONSES,
                             ["campaign_id", "customer_id"], run_name=run_id)
        warehouse.write_partition(df, CAMPAIGN_RESPONSES, as_of_date)
    return int(new["campaign_id"].str.startswith("plan-").sum())


def evaluate_plan_policy(as_of_date: dt.date, plan, segments, action_costs: dict[str, float],
                         run_id: str, segment_average_plan=None) -> dict[str, Any]:
    """Off-policy value of the plan before spending: IPS and doubly robust on the
    randomised responses sent before the as-of date, against treat-none, the cheapest
    action for all, random assignment at the same budget and (when given) the
    segment-average plan -> ``marts.policy_evaluation`` and the MLflow run
    ``policy-evaluation <date> <run id>``. Campaigns testing actions not on offer are left out.
    """
    from clv.decisions import closed_loop

    responses = _campaign_responses()
    if responses is None:
        return {"policies": 0, "reason": "no randomised responses"}
    import pandas as pd

    sent = pd.to_datetime(responses["sent_date"])
    offered = responses["action"].isin([*action_costs, closed_loop.NO_ACTION])
    usable = responses[(sent < dt.datetime.combine(as_of_date, dt.time()))
                       & (offered | (responses["treatment"] == 0))]
    logged = closed_loop.logged_from_responses(usable, segments, action_costs)
    if logged.empty:
        return {"policies": 0, "reason": "no responses of these customers"}
    policies = closed_loop.benchmark_policies(plan, action_costs,
                                              segment_average_plan=segment_average_plan)
    table = closed_loop.evaluate_policies(logged, policies, action_costs)
    docs = _publish_pandas(_stamp(table, run_id), "policy_evaluation", POLICY_EVALUATION,
                           as_of_date, run_id, compare_count=False)
    return {"policies": len(policies), "data_docs": docs,
            "mlflow_run_id": _log_policy_evaluation(as_of_date, run_id, table),
            "dr_value_per_customer": {  # None where no customer had support (NaN)
                r.policy: (round(r.value_per_customer, 4) if r.n_customers else None)
                for r in table[table["estimator"] == "dr"].itertuples()}}


def _log_policy_evaluation(as_of_date: dt.date, run_id: str, table) -> str:
    """One MLflow run: every policy x estimator value and interval, the table as CSV."""
    import tempfile
    from pathlib import Path

    import mlflow
    from clv.models import registry

    experiment_id = registry.configure_mlflow()
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=lineage.run_name("policy-evaluation", as_of_date,
                                                    run_id)) as run, \
            tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"step": "policy_evaluation", **lineage.run_tags(run_id, as_of_date)})
        for r in table.itertuples():
            for field_name in ("value_per_customer", "value_low", "value_high",
                               "support_share"):
                value = float(getattr(r, field_name))
                if value == value:  # MLflow refuses NaN
                    mlflow.log_metric(f"{r.policy}.{r.estimator}.{field_name}", value)
        table.to_csv(Path(tmp) / "policy_evaluation.csv", index=False)
        mlflow.log_artifact(str(Path(tmp) / "policy_evaluation.csv"))
        return run.info.run_id
