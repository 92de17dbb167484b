"""The pipeline's steps, one function per DAG task.

Each step takes plain values (dates, numbers, the run id), reads its inputs from
the warehouse or the registry, writes its outputs, and returns a small
JSON-serialisable summary (what goes to XCom). The DAG file only wires them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from clv.data import lineage, warehouse
from clv.config import (
    CHURN_ALERTS_ASSET_URI,
    DEFAULT_ACTION_COSTS,
    DEFAULT_CLV_WEIGHT,
    Settings,
    load_settings,
)
from clv.decisions.contact_policy import ContactPolicy

log = logging.getLogger(__name__)

RAW_ORDERS = "raw.orders"
FEATURES = "features.customer_features"
EXAMPLES = "features.training_examples"
SCORES = "marts.customer_scores"
SEGMENTS = "marts.customer_segments"
ALLOCATION = "marts.budget_allocation"
MODEL_METRICS = "marts.model_metrics"
#: Explicit schema of marts.model_metrics (model_alias is null for most rows).
MODEL_METRICS_SCHEMA = (
    "model_name string, model_version string, model_alias string, model_family string, "
    "target string, metric string, value double, cutoff_date date, horizon_days int, "
    "n_customers int, run_id string"
)
SEGMENT_SUMMARY = "marts.segment_summary"
BUDGET_SUMMARY = "marts.budget_summary"
FRONTIER = "marts.allocation_frontier"
CAMPAIGN_RESPONSES = "raw.campaign_responses"
ACTION_EFFECTS = "marts.action_effects"
# The closed loop (#16): plans with their holdout, sends, measured outcomes, policy value.
CAMPAIGN_PLAN = "marts.campaign_plan"
CAMPAIGN_SENDS = "marts.campaign_sends"
CAMPAIGN_OUTCOMES = "marts.campaign_outcomes"
POLICY_EVALUATION = "marts.policy_evaluation"
# The contact policy (#19): opt-outs in, what the policy excluded and cost out.
CONTACT_PREFERENCES = "raw.contact_preferences"
CONTACT_POLICY = "marts.contact_policy"
REASONS = "marts.score_reasons"
CHURN_ALERTS = "marts.churn_alerts"
SCORE_BACKTEST = "marts.score_backtest"
OUTPUT_TABLES = [RAW_ORDERS, FEATURES, MODEL_METRICS, SCORES, SEGMENTS, SEGMENT_SUMMARY,
                 ACTION_EFFECTS, ALLOCATION, BUDGET_SUMMARY, FRONTIER, CAMPAIGN_PLAN,
                 CAMPAIGN_OUTCOMES, POLICY_EVALUATION, CONTACT_POLICY, REASONS, CHURN_ALERTS,
                 SCORE_BACKTEST]
#: Steps that run Spark: their DAG tasks must use the "spark" pool (policy-tested).
SPARK_STEPS = {"validate_raw", "build_features", "validate_features", "score", "segment",
               "allocate", "evaluate", "measure_outcomes", "explain", "churn_alerts",
               "backtest_scores"}


def _spark():
    from clv.data.spark import get_spark

    return get_spark("clv-pipeline")


def _stamp(frame, run_id: str):
    """Add the run id to a pandas frame (as_of_date is the partition)."""
    frame = frame.copy()
    frame["run_id"] = run_id
    return frame


class StaleDataError(ValueError):
    """The as-of date is past the orders (or before all of them): nothing to score."""


def resolve_as_of_date(value: str, run_type: str, logical_date: dt.datetime | None,
                       settings: Settings | None = None) -> dt.date:
    """The run's as-of date from the (validated) ``as_of_date`` param.

    Given: that date. Empty: a backfill's or a scheduled run's logical date (each run of
    a range is its own date); any other run (the trigger form with its defaults) takes
    the newest load batch of ``raw.orders`` (by default the day after its newest order),
    so a run with the form's defaults scores the data that is there, not today's date.

    Raises:
        clv.pipeline.params.ParamError: empty, no logical date to use and no orders loaded.
    """
    from clv.pipeline.params import ParamError

    if value:
        return dt.date.fromisoformat(value)
    if run_type in ("backfill", "scheduled") and logical_date is not None:
        return logical_date.date()
    batches = warehouse.list_partitions(RAW_ORDERS, settings)
    if not batches:
        raise ParamError(f"as_of_date: empty, and {RAW_ORDERS} has no loaded orders to take "
                         "the date from: import orders first (clv import-orders) or set "
                         "as_of_date")
    log.info("as_of_date empty on a %s run: the newest %s batch, %s", run_type, RAW_ORDERS,
             batches[-1])
    return batches[-1]


def validate_raw(as_of_date: dt.date, horizon_days: int) -> dict[str, Any]:
    """Great Expectations suite ``raw_orders`` over the orders known before the as-of date.

    Also refuses stale data: the evaluation horizon just before the as-of date must
    hold orders, or there is nothing to learn from or score against.
    """
    from pyspark.sql import functions as F

    from clv import quality
    from clv.features import orders_before

    batches = warehouse.read_table(_spark(), RAW_ORDERS)
    visible = orders_before(batches.drop(warehouse.PARTITION_COLUMN), as_of_date)
    try:
        report = quality.assert_valid(visible, "raw_orders", RAW_ORDERS, ["order_id"])
    except quality.DataQualityError as exc:
        raise quality.DataQualityError(exc.report, _quarantine_hint(batches, exc.report)) \
            from None
    n, oldest, newest = visible.agg(F.count("*"), F.min("order_ts"), F.max("order_ts")).first()
    if n == 0:
        raise StaleDataError(f"{RAW_ORDERS}: no orders before as_of_date={as_of_date}; "
                         "pick a later as-of date")
    if newest.date() < as_of_date - dt.timedelta(days=horizon_days):
        raise StaleDataError(
            f"{RAW_ORDERS}: the newest order before as_of_date={as_of_date} is from "
            f"{newest.date()}, more than horizon_days={horizon_days} earlier: the data is "
            f"stale or the as-of date is past the history ({oldest.date()} .. {newest.date()})"
        )
    return {"rows": n, "expectations": report.n_expectations,
            "data_docs": _path(report.data_docs_page),
            "first_order": oldest.isoformat(), "last_order": newest.isoformat()}


def _quarantine_hint(batches: Any, report: Any) -> str:
    """Which ``raw.orders`` batches hold the sampled offending rows, and the one command
    that takes such a batch out so later runs proceed on the rest."""
    from pyspark.sql import functions as F

    ids = sorted({str(r["order_id"]) for f in report.failures for r in f.sample_rows
                  if r.get("order_id") is not None})
    found = sorted({r[0].isoformat() for r in batches.where(F.col("order_id").isin(ids))
                    .select(warehouse.PARTITION_COLUMN).distinct().collect()}) if ids else []
    where = f"the sampled rows are in batch(es) as_of_date={', '.join(found)}; " if found else ""
    return (f"{where}to take a published batch out of the history: "
            "clv quarantine-batch --as-of-date <batch> --reason '<why>' (README: Bad batches)")


def build_features(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Spark: features at the as-of date, and out-of-time training examples."""
    from pyspark.sql import functions as F

    from clv import features

    spark = _spark()
    orders = warehouse.read_table(spark, RAW_ORDERS).drop(warehouse.PARTITION_COLUMN)
    feats = features.customer_features(orders, as_of_date).withColumn("run_id", F.lit(run_id))
    warehouse.write_partition(feats, FEATURES, as_of_date)
    cutoffs = features.backtest_cutoffs(as_of_date, horizon_days)
    examples = features.training_examples(orders, cutoffs["train"], horizon_days, "train")
    examples = examples.unionByName(
        features.training_examples(orders, cutoffs["eval"], horizon_days, "eval")
    ).withColumn("run_id", F.lit(run_id))
    warehouse.write_partition(examples, EXAMPLES, as_of_date)
    counts = {r["split"]: r["n"] for r in warehouse.read_table(spark, EXAMPLES, as_of_date)
              .groupBy("split").count().withColumnRenamed("count", "n").collect()}
    n_customers = warehouse.read_table(spark, FEATURES, as_of_date).count()
    log.info("features: %d customers at %s; examples %s (cutoffs %s)",
             n_customers, as_of_date, counts, cutoffs)
    return {"customers": n_customers, "train_rows": counts.get("train", 0),
            "eval_rows": counts.get("eval", 0),
            "train_cutoff": cutoffs["train"].isoformat(),
            "eval_cutoff": cutoffs["eval"].isoformat()}


def validate_features(as_of_date: dt.date) -> dict[str, Any]:
    """Suite ``customer_features`` over the new partition, its row count against the
    previous partition, and feature drift (PSI) against it (drift warns, never fails)."""
    from clv import quality

    spark = _spark()
    feats = warehouse.read_table(spark, FEATURES, as_of_date)
    report = quality.assert_valid(feats, "customer_features", FEATURES, ["customer_id"],
                                  previous_count=quality.previous_row_count(FEATURES, as_of_date))
    out: dict[str, Any] = {"expectations": report.n_expectations,
                           "data_docs": _path(report.data_docs_page)}
    prev = quality.previous_partition(FEATURES, as_of_date)
    if prev is not None:
        drift = quality.feature_drift(feats, warehouse.read_table(spark, FEATURES, prev),
                                      quality.numeric_columns(feats))
        out.update(drift_vs=prev.isoformat(),
                   psi={r.column: round(float(r.psi), 4) for r in drift.itertuples()},
                   drifted=drift.loc[drift["flag"] == "drift", "column"].tolist())
    return out


def _path(p) -> str | None:
    return None if p is None else str(p)


def _validate_and_publish(frame, suite: str, table: str, as_of_date: dt.date,
                          run_id: str, compare_count: bool = True) -> str | None:
    """Validate a Spark frame with its suite (row count vs the previous partition
    included unless ``compare_count`` is False: tables whose size is meant to swing,
    like the churn alerts), then publish it as the as-of date's partition. Returns the
    Data Docs page."""
    from clv import quality

    previous = quality.previous_row_count(table, as_of_date) if compare_count else None
    report = quality.assert_valid(frame, suite, table, list(warehouse.get_table(table).key),
                                  previous_count=previous, run_name=run_id)
    warehouse.write_partition(frame, table, as_of_date)
    return _path(report.data_docs_page)


def _publish_pandas(frame, suite: str, table: str, as_of_date: dt.date,
                    run_id: str, compare_count: bool = True) -> str | None:
    """:func:`_validate_and_publish` of a pandas frame (large ones reach Spark through
    Parquet, not the driver: :func:`clv.data.warehouse.spark_frame`)."""
    with warehouse.spark_frame(_spark(), frame) as df:
        return _validate_and_publish(df, suite, table, as_of_date, run_id, compare_count)


def train(model: str, as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Train, log and register one model: ``clv``, ``churn`` (XGBoost), ``ziln``
    (TensorFlow) or ``btyd`` (every BTYD model); the aliases are decided by :func:`evaluate`."""
    from clv.models import training

    if model == "btyd":  # several models, each a spend and a churn version
        results = training.train_btyd_models(as_of_date, horizon_days, run_id)
        return {f"{r.name} v{r.version}": _train_summary(r) for r in results}
    if model == "ziln":  # one TensorFlow network, registered as a spend and a churn version
        return {r.name: _train_summary(r)
                for r in training.train_ziln_model(as_of_date, horizon_days, run_id)}
    fn = {"clv": training.train_clv_model, "churn": training.train_churn_model}[model]
    return _train_summary(fn(as_of_date, horizon_days, run_id))


def _train_summary(result) -> dict[str, Any]:
    return {"name": result.name, "version": result.version, "alias": result.alias,
            "family": result.family, "device": result.device, "reason": result.reason,
            "metrics": result.metrics}


def evaluate(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Every aliased or newly trained version and the baselines (BTYD, naive) on the
    holdout: the champion rule moves the aliases (``clv.models.registry``), metrics and charts
    go to MLflow, rows to ``marts.model_metrics``."""
    from clv.models import training

    table = training.evaluate_models(as_of_date, horizon_days, run_id)
    table = _with_interval_coverage(table, as_of_date)
    spark = _spark()
    frame = spark.createDataFrame(table[training.METRIC_COLUMNS].astype(
        {"horizon_days": "int32", "n_customers": "int32"}), schema=MODEL_METRICS_SCHEMA)
    docs = _validate_and_publish(frame, "model_metrics", MODEL_METRICS, as_of_date, run_id)
    primary = table[table["metric"].isin(["normalized_gini", "roc_auc"])]
    return {"rows": len(table), "data_docs": docs,
            "primary": {(r.model_name if r.model_version == "baseline"
                         else f"{r.model_name} v{r.model_version}")
                        + (f" @{r.model_alias}" if r.model_alias else "")
                        + f" {r.metric}": round(r.value, 4)
                        for r in primary.itertuples()}}


def score(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Score every customer with the champions, validate, publish ``marts.customer_scores``."""
    from clv.models import scoring

    scores = scoring.score_customers(as_of_date, horizon_days, run_id)
    docs = _publish_pandas(scores, "customer_scores", SCORES, as_of_date, run_id)
    return {"customers": len(scores), "data_docs": docs,
            "clv_model_version": scores["clv_model_version"].iat[0],
            "churn_model_version": scores["churn_model_version"].iat[0],
            "predicted_clv_total": float(scores["predicted_clv"].sum()),
            "clv_p10_total": float(scores["clv_p10"].sum()),
            "clv_p90_total": float(scores["clv_p90"].sum())}


def segment(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """Value x risk segments and behavioural K-means clusters, with their summary."""
    from clv.decisions import clusters
    from clv.decisions import segments as segment_rules

    spark = _spark()
    scores = warehouse.read_partition_pandas(SCORES, as_of_date)
    found = clusters.behaviour_clusters(warehouse.read_table(spark, FEATURES, as_of_date))
    segments = segment_rules.assign_segments(scores).merge(
        found.assignments, on="customer_id", how="left", validate="one_to_one")
    segments = segments.merge(
        scores[["customer_id", "clv_model_version", "churn_model_version"]], on="customer_id"
    )
    summary = segment_rules.segment_summary(segments, scores)
    docs = _publish_pandas(_stamp(segments, run_id), "customer_segments", SEGMENTS,
                           as_of_date, run_id)
    _publish_pandas(_stamp(summary, run_id), "segment_summary", SEGMENT_SUMMARY, as_of_date,
                    run_id)
    return {"customers": len(segments), "data_docs": docs, "clusters": found.k,
            "segments": segments["segment"].value_counts().sort_index().to_dict(),
            "cluster_sizes": dict(zip(found.profiles["cluster"].astype(int).tolist(),
                                      found.profiles["customers"].astype(int).tolist(),
                                      strict=True))}


def _campaign_responses():
    """Every loaded campaign response (pandas), or None when the table is empty."""
    if not warehouse.list_partitions(CAMPAIGN_RESPONSES):
        return None
    frames = [warehouse.read_partition_pandas(CAMPAIGN_RESPONSES, d)
              for d in warehouse.list_partitions(CAMPAIGN_RESPONSES)]
    import pandas as pd

    return pd.concat(frames, ignore_index=True).drop(columns=warehouse.PARTITION_COLUMN)


@dataclass(frozen=True)
class AllocationParams:
    """The allocation's knobs, as the DAG's trigger form gives them.

    Attributes:
        budget: Total marketing spend allowed.
        clv_weight: lambda, the weight on incremental lifetime value; 1 - lambda
            weighs incremental short-term (30-day) revenue.
        action_costs: Action -> cost per customer (the actions on offer).
        segment_share_bounds: Segment -> [min_share, max_share] of the amount spent
            (either may be null).
        action_capacity: Action -> most customers that may receive it.
        contact: Frequency caps and the net-value threshold (:mod:`clv.decisions.contact_policy`).
        action_channels: Action -> channel, for actions the catalogue does not know
            (or to override it); opt-outs and caps are per channel.
    """

    budget: float
    clv_weight: float = DEFAULT_CLV_WEIGHT
    action_costs: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTION_COSTS))
    segment_share_bounds: dict[str, tuple[float | None, float | None]] = field(
        default_factory=dict)
    action_capacity: dict[str, int] = field(default_factory=dict)
    contact: ContactPolicy = field(default_factory=lambda: ContactPolicy())
    action_channels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> AllocationParams:
        """Read and check the DAG params (names as in the trigger form)."""
        from clv.pipeline.params import validate_params

        params = validate_params(params)  # {} actions, 2.7 customers: refused, not coerced
        shares = params.get("segment_share_bounds") or {}
        bad = {k: v for k, v in shares.items()
               if not isinstance(v, list | tuple) or len(v) != 2}
        if bad:
            raise ValueError(f"segment_share_bounds: each value must be [min_share, max_share] "
                             f"(null for no bound), got {bad}")
        return cls(
            budget=float(params["budget"]),
            clv_weight=float(params.get("clv_weight", DEFAULT_CLV_WEIGHT)),
            action_costs={str(k): float(v) for k, v in
                          (params.get("action_costs") or DEFAULT_ACTION_COSTS).items()},
            segment_share_bounds={str(k): (v[0], v[1]) for k, v in shares.items()},
            action_capacity={str(k): int(v) for k, v in
                             (params.get("action_capacity") or {}).items()},
            contact=ContactPolicy(
                min_days_between=params["contact_min_days"],
                max_per_window=params["contact_max_per_window"],
                window_days=params["contact_window_days"] or params["horizon_days"],
                min_net_value=params["min_net_value"]),
            action_channels=params["action_channels"],
        )


def allocate(as_of_date: dt.date, params: AllocationParams, run_id: str) -> dict[str, Any]:
    """Spend the budget: one action (or none) per customer, maximising
    ``clv_weight * incremental CLV + (1 - clv_weight) * incremental revenue - cost``.

    Each customer's effects are absolute (money now, retention probability) with
    their evidence (:mod:`clv.decisions.effects`): measured per customer where the latest
    randomised campaign that tested the action supports it (the shop's own, or
    another population's, shrunk), else the catalogue's priors. Publishes
    ``marts.action_effects`` (what each action is expected to do, on what evidence),
    ``marts.budget_allocation``, ``marts.budget_summary`` and
    ``marts.allocation_frontier``, and logs the frontier and Qini charts to MLflow.
    """
    from clv.decisions import allocation, closed_loop, effects

    # Only the columns used: at 2.57M customers the full segments frame alone is 0.76 GiB.
    scores = warehouse.read_partition_pandas(SCORES, as_of_date, columns=_ALLOCATION_INPUTS)
    segments = warehouse.read_partition_pandas(SEGMENTS, as_of_date,
                                               columns=["customer_id", "segment"])
    frame = scores.merge(segments, on="customer_id", validate="one_to_one")
    del segments
    covariates = _shop_covariates(as_of_date, frame["customer_id"])
    measured = _measured_effects(as_of_date, sorted(params.action_costs),
                                 set(covariates["customer_id"]))
    per_customer = effects.customer_effects(covariates, sorted(params.action_costs), measured)
    effect_table = _action_effects_table(per_customer, covariates, measured)
    del covariates
    candidates = allocation.build_candidates(frame, per_customer, params.action_costs)
    del per_customer
    present = set(frame["segment"])
    del frame
    # contact policy (#19): opt-outs and frequency caps rule candidates out before the solve.
    rules = _contact_rules(as_of_date, candidates, params)
    candidates[allocation.ELIGIBLE_COLUMN] = rules == ""
    constraints = dict(segment_share_bounds=_present_segments(params.segment_share_bounds,
                                                              present) or None,
                       action_capacity=params.action_capacity or None)
    # closed loop (#16): the allocator plans for budget / (1 - holdout share), so that the
    # treated part of the plan (publish_campaign_plan below) spends at most the budget.
    planned_budget = closed_loop.allocation_budget(params.budget)
    threshold = params.contact.min_net_value
    result = allocation.allocate(candidates, planned_budget, params.clv_weight,
                                 min_net_value=threshold, **constraints)
    result.plan["budget"] = params.budget  # the run's budget: what the treated may spend
    log.info("allocation: %s", result.detail)
    # The same solve without the policy: what opt-outs, caps and the threshold cost.
    free = allocation.allocate(candidates, planned_budget, params.clv_weight,
                               honour_eligibility=False, **constraints)
    excluded, distinct = _excluded(candidates, rules, params)
    policy = _contact_policy_row(as_of_date, params, result, free, excluded, distinct,
                                 planned_budget)
    log.info("contact policy: %s", {k: policy[k].iat[0] for k in (
        "value_with_policy", "value_without_policy", "policy_cost_value",
        "customers_opted_out", "customers_frequency_cap", "customers_min_net_value")})
    front = allocation.frontier(candidates, params.budget, min_net_value=threshold,
                                **constraints)
    plan = _allocation_plan(result.plan, scores)
    summary = allocation.budget_summary(result.plan, excluded).rename(
        columns=_INCREMENT_NAMES)
    docs = _publish_pandas(_stamp(plan, run_id), "budget_allocation", ALLOCATION, as_of_date,
                           run_id)
    for frame_out, suite, table in ((summary, "budget_summary", BUDGET_SUMMARY),
                                    (front, "allocation_frontier", FRONTIER),
                                    (effect_table, "action_effects", ACTION_EFFECTS),
                                    (policy, "contact_policy", CONTACT_POLICY)):
        _publish_pandas(_stamp(frame_out, run_id), suite, table, as_of_date, run_id)
    treated = plan["action"] != "none"
    out = {"customers": len(plan), "treated": int(treated.sum()),
           "spent": round(result.spent, 2), "budget": params.budget,
           "clv_weight": params.clv_weight, "objective": round(result.objective, 2),
           "lp_bound": round(result.lp_bound, 2), "gap": result.gap, "method": result.method,
           "optimal": result.optimal, "data_docs": docs,
           **{k: round(float(plan.loc[treated, k].sum()), 2)
              for k in ("expected_incremental_revenue", "expected_incremental_clv")},
           "distinct_frontier_plans": int(front[["expected_incremental_revenue",
                                                 "expected_incremental_clv"]].round(2)
                                          .drop_duplicates().shape[0]),
           "effects": {a: f"{e.source}/{e.method}" for a, e in measured.items()},
           "uplift_sources": plan.loc[treated].groupby("action")["uplift_source"].first()
           .to_dict(),
           "contact_policy": {k: (v.item() if hasattr(v, "item") else v)
                              for k, v in policy.iloc[0].items()
                              if k.startswith(("policy_cost", "customers_", "value_"))}}
    out["mlflow_run_id"] = _log_allocation(as_of_date, run_id, params, out, front, summary,
                                           measured)
    # closed loop (#16): randomised holdout -> marts.campaign_plan; the plan's value
    # before spending (IPS / DR on the randomised responses) -> marts.policy_evaluation.
    out["campaign_plan"] = publish_campaign_plan(as_of_date, result.plan, params.budget, run_id)
    out["policy_evaluation"] = evaluate_plan_policy(
        as_of_date, result.plan, warehouse.read_partition_pandas(
            SEGMENTS, as_of_date, columns=["customer_id", "segment"]),
        params.action_costs, run_id)
    return out


def _contact_rules(as_of_date: dt.date, candidates, params: AllocationParams):
    """Per candidate: the contact rule that rules it out ("" = eligible), from the opt-outs
    known on the as-of date and the treatments of the plans made before it."""
    from clv.decisions import contact_policy

    preferences = _read_all_pandas(CONTACT_PREFERENCES)
    if preferences is not None:
        preferences = preferences.drop(columns=[warehouse.PARTITION_COLUMN, "run_id"],
                                       errors="ignore")
    opt_outs = contact_policy.suppressed(preferences, as_of_date)
    history = contact_policy.contact_history(
        _read_all_pandas(CAMPAIGN_PLAN, before=as_of_date),
        _read_all_pandas(CAMPAIGN_SENDS, before=as_of_date), as_of_date,
        params.action_channels)
    return contact_policy.excluded_by(candidates, as_of_date, params.contact, opt_outs,
                                      history, params.action_channels)


def _excluded(candidates, rules, params: AllocationParams):
    """(segment, action, rule, customers: who each rule kept from each action; rule ->
    distinct customers it excluded). The threshold's exclusions are counted among the
    candidates the other rules allow, at the run's lambda."""
    import pandas as pd

    rules = rules.copy()
    threshold = params.contact.min_net_value
    if threshold is not None:
        lam = params.clv_weight
        value = (lam * candidates["incr_clv"].to_numpy(float)
                 + (1 - lam) * candidates["incr_revenue"].to_numpy(float)
                 - candidates["cost"].to_numpy(float))
        rules[(rules == "") & (value < threshold)] = "min_net_value"
    hit = rules != ""
    frame = pd.DataFrame({"segment": candidates["segment"].to_numpy()[hit],
                          "action": candidates["action"].to_numpy()[hit],
                          "rule": rules[hit], "customer_id": candidates["customer_id"]
                          .to_numpy()[hit]})
    out = frame.groupby(["segment", "action", "rule"], sort=True).size().rename(
        "customers").reset_index()
    distinct = frame.groupby("rule")["customer_id"].nunique()
    return out, {str(r): int(n) for r, n in distinct.items()}


def _contact_policy_row(as_of_date: dt.date, params: AllocationParams, result, free,
                        excluded, distinct: dict[str, int], planned_budget: float):
    """``marts.contact_policy``: the run's plan with and without the policy, on one row."""
    import pandas as pd

    from clv.decisions import closed_loop
    from clv.decisions.contact_policy import RULES

    def totals(r) -> dict[str, float]:
        chosen = r.plan[r.plan["action"] != "none"]
        return {"value": r.objective, "spent": r.spent, "selected": len(chosen),
                "incremental_clv": float(chosen["incr_clv"].sum()),
                "incremental_revenue": float(chosen["incr_revenue"].sum())}

    with_, without = totals(result), totals(free)
    row = {"plan_id": closed_loop.plan_id_for(as_of_date), "budget": params.budget,
           "planned_budget": planned_budget, "clv_weight": params.clv_weight,
           "contact_min_days": params.contact.min_days_between,
           "contact_max_per_window": params.contact.max_per_window,
           "contact_window_days": params.contact.window_days,
           "min_net_value": params.contact.min_net_value,
           **{f"{k}_with_policy": v for k, v in with_.items()},
           **{f"{k}_without_policy": v for k, v in without.items()},
           "policy_cost_value": without["value"] - with_["value"],
           "policy_cost_spend": without["spent"] - with_["spent"],
           **{f"customers_{r}": distinct.get(r, 0) for r in RULES},
           **{f"candidates_{r}": int(excluded.loc[excluded["rule"] == r, "customers"].sum())
              for r in RULES}}
    frame = pd.DataFrame([row])
    for column in ("contact_max_per_window", "min_net_value"):
        frame[column] = frame[column].astype(float)  # null when not set
    return frame


def _shop_covariates(as_of_date: dt.date, customers) -> Any:
    """The effect covariates (:func:`clv.decisions.effects.effect_covariates`) of the scored customers,
    from the as-of date's features."""
    from clv.decisions import effects
    from clv.features import period_columns

    feats = warehouse.read_partition_pandas(
        FEATURES, as_of_date, columns=["customer_id", "recency_days", "tenure_days",
                                       *[c for c in period_columns() if c.startswith("spend_")]])
    covariates = effects.effect_covariates(feats)
    missing = set(customers) - set(covariates["customer_id"])
    if missing:
        raise ValueError(f"{FEATURES} as_of_date={as_of_date}: {len(missing)} scored customers "
                         f"have no features (e.g. {sorted(missing)[:3]})")
    return covariates


#: The shop's own campaigns of one action pooled for its effect fit (newest first): the
#: evidence grows with every measured plan, the feature jobs at their send dates do not
#: grow without bound.
MAX_OWN_CAMPAIGNS = 6


def _measured_effects(as_of_date: dt.date, actions: list[str], shop_customers: set
                      ) -> dict[str, Any]:
    """Per action, its effect fitted on the randomised campaigns sent before the as-of date
    that tested it: the shop's own campaigns pooled (each with its customers' covariates
    at its send date), else the latest external one; none: the action keeps its prior."""
    import pandas as pd

    from clv.decisions import effects

    responses = _campaign_responses()
    if responses is None:
        return {}
    known = responses[pd.to_datetime(responses["sent_date"]) < pd.Timestamp(as_of_date)]
    measured = {}
    for action in actions:
        evidence = _campaign_evidence(known, action, shop_customers)
        if evidence is None:
            continue
        rows, label, source = evidence
        measured[action] = effects.fit_action_effect(rows, action, label, source)
        log.info("effect of %s from %s (%s): %s, held-out Qini %s", action, label, source,
                 measured[action].method,
                 {k: round(v, 4) for k, v in measured[action].qini.items()})
    return measured


def _campaign_evidence(known, action: str, shop_customers: set):
    """(rows with covariates, campaign label, source) for one action, or None."""
    import pandas as pd

    from clv.decisions import effects
    from clv.decisions.uplift import COVARIATE_COLUMNS

    tested = known[(known["action"] == action) & (known["treatment"] == 1)]
    if tested.empty:
        return None
    campaigns = (tested.groupby("campaign_id")["sent_date"].max().reset_index()
                 .sort_values(["sent_date", "campaign_id"], ascending=False))
    own, external = [], []
    for campaign in campaigns.itertuples(index=False):
        rows = known[(known["campaign_id"] == campaign.campaign_id)
                     & ((known["action"] == action) | (known["treatment"] == 0))]
        share = rows["customer_id"].isin(shop_customers).mean()
        (own if share >= effects.OWN_CAMPAIGN_MIN_SHARE else external).append(
            (campaign, rows))
    if own:
        own = own[:MAX_OWN_CAMPAIGNS]
        rows = pd.concat([_with_covariates_at(r, c.sent_date) for c, r in own],
                         ignore_index=True)
        label = str(own[0][0].campaign_id) + (f" (+{len(own) - 1} earlier)"
                                              if len(own) > 1 else "")
        return rows, label, effects.OWN
    campaign, rows = external[0]
    if not set(COVARIATE_COLUMNS) <= set(rows.columns) or \
            rows[list(COVARIATE_COLUMNS)].isna().any().any():
        log.warning("campaign %s tested %s on another population without the covariates "
                    "%s: the action keeps its prior", campaign.campaign_id, action,
                    list(COVARIATE_COLUMNS))
        return None
    return rows, str(campaign.campaign_id), effects.EXTERNAL


def _with_covariates_at(rows, sent_date) -> Any:
    """A campaign over the shop's customers, with their covariates as of the send date
    (point in time: from the orders before it, like the CLV features)."""
    import pandas as pd

    from clv.decisions import effects
    from clv import features
    from clv.decisions.uplift import COVARIATE_COLUMNS

    spark = _spark()
    orders = warehouse.read_table(spark, RAW_ORDERS).drop(warehouse.PARTITION_COLUMN)
    day = pd.Timestamp(sent_date).date()
    feats = features.customer_features(orders, day).select(
        "customer_id", "recency_days", "tenure_days",
        *[c for c in features.period_columns() if c.startswith("spend_")])
    with warehouse.spark_frame(spark, rows[["customer_id"]].drop_duplicates()) as ids:
        local = feats.join(ids, "customer_id").toPandas()
    covariates = effects.effect_covariates(local)
    rows = rows.drop(columns=[c for c in COVARIATE_COLUMNS if c in rows.columns])
    # A customer with no order before the send date has no history: recency unknown
    # (the oldest Hillstrom value), no spend, new.
    out = rows.merge(covariates, on="customer_id", how="left")
    return out.fillna({"recency_months": 12.0, "history": 0.0, "newbie": 1.0})


def _action_effects_table(per_customer, covariates, measured: dict[str, Any]):
    """``marts.action_effects``: per action and cell, the expected effects and their evidence."""
    import numpy as np
    import pandas as pd

    from clv.decisions import effects
    from clv.decisions.segments import DEFAULT_ACTIONS

    evidence = {a.name: a.evidence for a in DEFAULT_ACTIONS}
    cells = effects.cell_of(covariates.sort_values("customer_id")["history"].to_numpy(float))
    k = per_customer["action"].nunique()
    frame = per_customer.assign(cell=np.repeat(cells, k))
    table = frame.groupby(["action", "cell"], sort=True).agg(
        customers=("customer_id", "size"),
        uplift_source=("uplift_source", "first"), effect_method=("effect_method", "first"),
        incr_revenue_mean=("incr_revenue", "mean"), incr_revenue_min=("incr_revenue", "min"),
        incr_revenue_max=("incr_revenue", "max"),
        incr_revenue_low=("incr_revenue_low", "mean"),
        incr_revenue_high=("incr_revenue_high", "mean"),
        incr_retention=("incr_retention", "mean"),
        incr_retention_low=("incr_retention_low", "mean"),
        incr_retention_high=("incr_retention_high", "mean")).reset_index()
    rows = []
    for r in table.itertuples(index=False):
        e = measured.get(r.action)
        cell = e.cells.loc[r.cell] if e is not None and r.cell in e.cells.index else None
        rows.append({
            "campaign_id": e.campaign_id if e else None,
            "evidence": (f"{e.source} {e.campaign_id}, {e.method}" if e else evidence[r.action]),
            "n_treated": float(cell["n_treated"]) if cell is not None else np.nan,
            "n_control": float(cell["n_control"]) if cell is not None else np.nan,
            "measured_effect": float(cell["effect"]) if cell is not None else np.nan,
            "shrink": float(cell["shrink"]) if cell is not None else np.nan,
            "qini_uplift_model": e.qini[effects.MODEL] if e else np.nan,
            "qini_segment_average": e.qini[effects.AVERAGE] if e else np.nan,
            "outside_support": effects.outside_support(e, covariates) if e else np.nan})
    return pd.concat([table, pd.DataFrame(rows)], axis=1)


#: What the allocation reads of marts.customer_scores (with the segment).
_ALLOCATION_INPUTS = ["customer_id", "predicted_clv", "p_churn", "clv_model_version",
                      "churn_model_version"]


def _present_segments(bounds: dict, present: set[str]) -> dict:
    """Share bounds of the segments this run has. A known segment that is empty
    this time is skipped (logged); an unknown name is a typo and fails."""
    from clv.decisions.segments import LOST_SEGMENT, SEGMENTS

    known = set(SEGMENTS.values()) | {LOST_SEGMENT}
    unknown = sorted(set(bounds) - known)
    if unknown:
        raise ValueError(f"segment_share_bounds: unknown segment(s) {unknown}; "
                         f"segments are {sorted(known)}")
    absent = sorted(set(bounds) - present)
    if absent:
        log.info("segment_share_bounds: no customer in %s this run; their bounds are skipped",
                 absent)
    return {k: v for k, v in bounds.items() if k in present}


#: The plan's increments, named for analysts.
_INCREMENT_NAMES = {"incr_clv": "expected_incremental_clv",
                    "incr_revenue": "expected_incremental_revenue",
                    "incr_retention": "expected_incremental_retention",
                    "incr_revenue_low": "expected_incremental_revenue_low",
                    "incr_revenue_high": "expected_incremental_revenue_high"}


def _allocation_plan(plan, scores):
    """The published plan: named increments, the scores' model versions."""
    plan = plan.rename(columns=_INCREMENT_NAMES)
    for column in ("uplift_source", "effect_method"):
        plan[column] = plan[column].fillna("none")
    return plan.merge(scores[["customer_id", "clv_model_version", "churn_model_version"]],
                      on="customer_id", validate="one_to_one")


def _log_allocation(as_of_date: dt.date, run_id: str, params: AllocationParams,
                    out: dict[str, Any], front, summary, measured: dict[str, Any]) -> str:
    """One MLflow run per allocation: its params, figures, frontier chart and summary, and
    per measured action its held-out Qini (both methods, chart) and its effect model,
    registered as ``uplift_<action>``."""
    import json
    import tempfile
    from pathlib import Path

    import mlflow
    from clv.decisions import allocation
    from clv.models import registry

    experiment_id = registry.configure_mlflow()
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=lineage.run_name("allocation", as_of_date, run_id)) as run, \
            tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"step": "allocation", **lineage.run_tags(run_id, as_of_date),
                         "method": out["method"]})
        mlflow.log_params({"budget": params.budget, "clv_weight": params.clv_weight,
                           "action_costs": json.dumps(params.action_costs, sort_keys=True),
                           "segment_share_bounds": json.dumps(params.segment_share_bounds),
                           "action_capacity": json.dumps(params.action_capacity),
                           "contact_min_days": params.contact.min_days_between,
                           "contact_max_per_window": params.contact.max_per_window,
                           "contact_window_days": params.contact.window_days,
                           "min_net_value": params.contact.min_net_value,
                           "action_channels": json.dumps(params.action_channels)})
        mlflow.log_metrics({k: float(out[k]) for k in ("spent", "objective", "lp_bound", "gap",
                                                        "treated")})
        mlflow.log_metrics({f"contact_{k}": float(v) for k, v in
                            out.get("contact_policy", {}).items()})
        chart = allocation.plot_frontier(front, Path(tmp) / "allocation_frontier.png")
        summary.to_csv(Path(tmp) / "budget_summary.csv", index=False)
        front.to_csv(Path(tmp) / "allocation_frontier.csv", index=False)
        for name in (chart.name, "budget_summary.csv", "allocation_frontier.csv"):
            mlflow.log_artifact(str(Path(tmp) / name))
        for action, effect in measured.items():
            _log_effect(action, effect, Path(tmp))
        return run.info.run_id


def _log_effect(action: str, effect, folder) -> None:
    """Held-out Qini of both methods, the Qini chart, and the registered effect model."""
    import mlflow
    from clv.decisions import effects
    from clv.models import registry
    from clv.decisions.uplift_pyfunc import UpliftPyfunc

    mlflow.log_metrics({f"{action}.qini_{m}": v for m, v in effect.qini.items()}
                       | {f"{action}.uplift_at_30_{m}": v for m, v in effect.uplift_at_30.items()
                          if v == v})
    mlflow.log_artifact(effects.plot_qini(effect, folder / f"qini_{action}.png"),
                        artifact_path="effects")
    info = mlflow.pyfunc.log_model(
        name=f"uplift_{action}", python_model=UpliftPyfunc(effect.model),
        registered_model_name=f"uplift_{action}",
        pip_requirements=[f"xgboost=={_version('xgboost')}", f"numpy=={_version('numpy')}",
                          f"pandas=={_version('pandas')}"])
    client = mlflow.MlflowClient()
    for key, value in {"campaign_id": effect.campaign_id, "uplift_source": effect.source,
                       "used_for_plan": str(effect.method == effects.MODEL).lower(),
                       "qini_uplift_model": f"{effect.qini[effects.MODEL]:.6f}",
                       "qini_segment_average": f"{effect.qini[effects.AVERAGE]:.6f}"}.items():
        client.set_model_version_tag(f"uplift_{action}", str(info.registered_model_version),
                                     key, value)
    registry.record_artifact_digest(f"uplift_{action}", str(info.registered_model_version))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def publish_catalog(settings: Settings | None = None) -> dict[str, Any]:
    """Refresh the analysts' DuckDB catalog (one view per table) and the Data Docs index
    (the run's validations rendered only their own pages)."""
    from clv import quality

    path = warehouse.refresh_catalog(settings)
    return {"catalog": str(path), "data_docs": quality.rebuild_data_docs_index(settings)}


def run_summary(as_of_date: dt.date, settings: Settings | None = None) -> dict[str, Any]:
    """Rows per output table at the as-of date and the champions with their metrics."""
    import mlflow
    from clv.models import registry
    from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME

    s = settings or load_settings()
    # Counted from partition metadata, so it works on either warehouse backend.
    rows = {t: warehouse.row_count(t, as_of_date, s) or 0
            for t in OUTPUT_TABLES if t != RAW_ORDERS}
    rows[RAW_ORDERS] = sum(warehouse.row_count(RAW_ORDERS, d, s) or 0
                           for d in warehouse.list_partitions(RAW_ORDERS, s))
    registry.configure_mlflow(s)
    client = mlflow.MlflowClient()
    champions = {}
    for name in (CLV_MODEL_NAME, CHURN_MODEL_NAME):
        version = registry.champion_version(client, name)
        run = client.get_run(client.get_model_version(name, version).run_id) if version else None
        champions[name] = {"version": version,
                           "metrics": {k: round(v, 4) for k, v in sorted(run.data.metrics.items())
                                       if not k.startswith("baseline_")} if run else {}}
    return {"as_of_date": as_of_date.isoformat(), "rows": rows, "champions": champions,
            "catalog": str(warehouse.catalog_path(s))}


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
    from clv.decisions import closed_loop
    from clv.config import DEFAULT_HOLDOUT_SHARE

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


def _read_all_pandas(table: str, before: dt.date | None = None):
    """Every partition of a table (strictly before ``before`` when given), or None."""
    import pandas as pd

    dates = [d for d in warehouse.list_partitions(table) if before is None or d < before]
    if not dates:
        return None
    return pd.concat([warehouse.read_partition_pandas(table, d) for d in dates],
                     ignore_index=True)


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


# --------------------------------------------------------------------------- trust in the scores
# Intervals' coverage, reasons, churn alerts and score back-tests (issue #15).

#: Explicit Spark schemas of the tables whose frames may be empty or hold all-null columns.
CHURN_ALERTS_SCHEMA = (
    "customer_id string, alert_type string, p_churn double, previous_p_churn double, "
    "predicted_clv double, value_at_risk double, reason_1 string, reason_2 string, "
    "reason_3 string, suggested_action string, previous_as_of_date date, "
    "clv_model_version string, churn_model_version string, run_id string"
)
SCORE_BACKTEST_SCHEMA = (
    "scored_as_of_date date, clv_model_version string, horizon_days int, window_end date, "
    "n_customers int, n_buyers int, normalized_gini double, aggregate_error double, "
    "decile_mape double, interval_coverage_80 double, predicted_total double, "
    "realised_total double, alert boolean, alert_reason string, run_id string"
)


def _publish_typed(frame, schema: str, suite: str, table: str, as_of_date: dt.date,
                   run_id: str, compare_count: bool = True) -> str | None:
    """:func:`_publish_pandas` with the columns cast to ``schema`` (a DDL string), so an
    empty frame or an all-null column still gets its declared types."""
    from pyspark.sql import functions as F

    spark = _spark()
    fields = [f.strip().split(" ", 1) for f in schema.split(",")]
    if frame.empty:
        df = spark.createDataFrame([], schema)
        return _validate_and_publish(df, suite, table, as_of_date, run_id, compare_count)
    with warehouse.spark_frame(spark, frame[[name for name, _ in fields]]) as df:
        typed = df.select(*[F.col(name).cast(kind).alias(name) for name, kind in fields])
        return _validate_and_publish(typed, suite, table, as_of_date, run_id, compare_count)


def _with_interval_coverage(table, as_of_date: dt.date):
    """``table`` (model_metrics rows) plus the 80 % interval's coverage, nominal and PIT
    coverage on the holdout for every evaluated ``clv_spend`` version, also logged as
    metrics of the version's MLflow run (step = the as-of date as YYYYMMDD)."""
    import pandas as pd

    import mlflow
    from clv.models import intervals, registry, training
    from clv.config import CLV_MODEL_NAME

    spend = table[(table["model_name"] == CLV_MODEL_NAME)
                  & (table["model_version"] != "baseline")].drop_duplicates("model_version")
    if spend.empty:
        return table
    holdout = training.load_split(as_of_date, "eval")
    registry.configure_mlflow()
    client = mlflow.MlflowClient()
    rows = []
    for r in spend.itertuples():
        model = registry.load_version(CLV_MODEL_NAME, r.model_version)
        measured = intervals.holdout_coverage(model, holdout)
        run = client.get_model_version(CLV_MODEL_NAME, r.model_version).run_id
        for metric in (intervals.COVERAGE_METRIC, intervals.NOMINAL_METRIC,
                       intervals.PIT_METRIC):
            client.log_metric(run, metric, measured[metric],
                              step=int(as_of_date.strftime("%Y%m%d")))
            rows.append({**r._asdict(), "metric": metric, "value": measured[metric],
                         "n_customers": measured["n_customers"]})
        log.info("%s v%s interval (%s): %s", CLV_MODEL_NAME, r.model_version,
                 measured["method"], measured)
    extra = pd.DataFrame(rows).drop(columns="Index")
    return pd.concat([table, extra[table.columns]], ignore_index=True)


def explain(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """Top three SHAP reasons per customer for the spend version that scored the as-of
    date, to ``marts.score_reasons`` (none, with the reason why, when no XGBoost model
    explains it). A task of its own, so scoring, segments and the plan do not wait for
    it: exact TreeSHAP costs far more than a prediction (31.8 s for CDNOW's 23,570
    customers on 2 busy CPU cores, ``bench/bench_intervals.py``)."""
    from clv.models import reasons, registry
    from clv.config import CLV_MODEL_NAME
    from clv.features import FEATURE_COLUMNS

    scored = warehouse.read_partition_pandas(SCORES, as_of_date,
                                             columns=["clv_model_version", "run_id"])
    clv_version, scores_run = str(scored["clv_model_version"].iat[0]), scored["run_id"].iat[0]
    del scored
    feats = warehouse.read_partition_pandas(FEATURES, as_of_date,
                                            columns=["customer_id", *FEATURE_COLUMNS])
    champion = registry.load_version(CLV_MODEL_NAME, clv_version)
    frame, explanation = reasons.customer_reasons(feats, champion)
    if frame is None:
        log.warning("marts.score_reasons not published for %s: %s", as_of_date, explanation)
        return {"rows": 0, "explanation": explanation}
    # stamped with the scores' run id: churn_alerts matches reasons to the scores by it
    docs = _publish_pandas(_stamp(frame, scores_run), "score_reasons", REASONS, as_of_date,
                           run_id)
    top = frame[frame["rank"] == 1]["feature"].value_counts().head(3)
    return {"rows": len(frame), "explanation": explanation, "data_docs": docs,
            "top_feature_counts": {k: int(v) for k, v in top.items()}}


def _partition_or_none(table: str, as_of_date: dt.date, columns: list[str]):
    if as_of_date not in warehouse.list_partitions(table):
        return None
    return warehouse.read_partition_pandas(table, as_of_date, columns=columns)


def churn_alerts(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """Customers newly at churn risk since the previous scores partition
    (:func:`clv.decisions.alerts.churn_alerts`), with their reasons and the plan's action, to
    ``marts.churn_alerts``; the DAG task updates the asset
    :data:`clv.config.CHURN_ALERTS_ASSET_URI`."""
    from clv.decisions import alerts

    current = warehouse.read_partition_pandas(SCORES, as_of_date, columns=[
        "customer_id", "predicted_clv", "p_churn", "clv_model_version", "churn_model_version",
        "run_id"])
    earlier = [d for d in warehouse.list_partitions(SCORES) if d < as_of_date]
    previous = (_partition_or_none(SCORES, earlier[-1], ["customer_id", "p_churn"])
                if earlier else None)
    # only the reasons written with these scores (a run that could not explain leaves none)
    reasons = _partition_or_none(REASONS, as_of_date, ["customer_id", "rank", "description",
                                                       "run_id"])
    if reasons is not None:
        reasons = reasons[reasons["run_id"] == current["run_id"].iat[0]]
    frame = alerts.churn_alerts(
        current, previous, reasons=reasons,
        plan=_partition_or_none(ALLOCATION, as_of_date, ["customer_id", "action"]),
        previous_as_of_date=earlier[-1] if earlier else None)
    docs = _publish_typed(_stamp(frame, run_id), CHURN_ALERTS_SCHEMA, "churn_alerts",
                          CHURN_ALERTS, as_of_date, run_id, compare_count=False)
    return {"alerts": len(frame), "data_docs": docs, "asset": CHURN_ALERTS_ASSET_URI,
            "previous_as_of_date": earlier[-1].isoformat() if earlier else None,
            "by_type": frame["alert_type"].value_counts().sort_index().to_dict(),
            "value_at_risk_total": round(float(frame["value_at_risk"].sum()), 2)}


def backtest_scores(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """Back-test every earlier scores partition whose horizon has passed by the as-of
    date (at most the latest :data:`clv.models.backtest.MAX_PARTITIONS`) against the spend in
    ``raw.orders``, to ``marts.score_backtest``; a WARNING and ``alert: true`` when one
    breaks the thresholds of :mod:`clv.models.backtest`."""
    from pyspark.sql import functions as F

    from clv.models import backtest
    from clv.features import customer_labels, orders_before

    orders = orders_before(warehouse.read_table(_spark(), RAW_ORDERS)
                           .drop(warehouse.PARTITION_COLUMN), as_of_date)
    newest = orders.agg(F.max("order_ts")).first()[0]
    horizon = {d: _scored_horizon(d) for d in warehouse.list_partitions(SCORES)
               if d < as_of_date}
    due = [d for d, h in horizon.items() if backtest.is_due(
        d, h, as_of_date, None if newest is None else newest.date())][-backtest.MAX_PARTITIONS:]
    if not due:
        return {"backtested": 0, "alert": False, "alerts": []}
    import pandas as pd

    frames = []
    for d in due:
        scores = warehouse.read_partition_pandas(SCORES, d)
        realised = customer_labels(orders, d, horizon[d]) \
            .select("customer_id", "spend_next").toPandas()
        frames.append(backtest.backtest_scores(scores, realised, d))
    table = pd.concat(frames, ignore_index=True)
    flagged = table[table["alert"]]
    for r in flagged.itertuples():
        log.warning("score back-test: scores of %s (clv_spend v%s): %s", r.scored_as_of_date,
                    r.clv_model_version, r.alert_reason)
    docs = _publish_typed(_stamp(table, run_id), SCORE_BACKTEST_SCHEMA, "score_backtest",
                          SCORE_BACKTEST, as_of_date, run_id, compare_count=False)
    return {"backtested": len(table), "data_docs": docs, "alert": bool(len(flagged)),
            "alerts": [f"{r.scored_as_of_date} v{r.clv_model_version}: {r.alert_reason}"
                       for r in flagged.itertuples()],
            "aggregate_error": {str(r.scored_as_of_date): round(r.aggregate_error, 4)
                                for r in table.itertuples()}}


def _scored_horizon(scored_as_of: dt.date) -> int:
    """The horizon a scores partition predicted over (its horizon_days column)."""
    horizons = warehouse.read_partition_pandas(SCORES, scored_as_of,
                                               columns=["horizon_days"])["horizon_days"]
    return int(horizons.iat[0])
