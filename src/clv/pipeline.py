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

from clv import warehouse
from clv.config import DEFAULT_ACTION_COSTS, DEFAULT_CLV_WEIGHT, Settings, load_settings

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
OUTPUT_TABLES = [RAW_ORDERS, FEATURES, MODEL_METRICS, SCORES, SEGMENTS, SEGMENT_SUMMARY,
                 ALLOCATION, BUDGET_SUMMARY, FRONTIER]
#: Steps that run Spark: their DAG tasks must use the "spark" pool (policy-tested).
SPARK_STEPS = {"validate_raw", "build_features", "validate_features", "score", "segment",
               "allocate", "evaluate"}


def _spark():
    from clv.spark import get_spark

    return get_spark("clv-pipeline")


def _stamp(frame, run_id: str):
    """Add the run id to a pandas frame (as_of_date is the partition)."""
    frame = frame.copy()
    frame["run_id"] = run_id
    return frame


def validate_raw(as_of_date: dt.date, horizon_days: int) -> dict[str, Any]:
    """Great Expectations suite ``raw_orders`` over the orders known before the as-of date.

    Also refuses stale data: the evaluation horizon just before the as-of date must
    hold orders, or there is nothing to learn from or score against.
    """
    from pyspark.sql import functions as F

    from clv import quality
    from clv.features import orders_before

    orders = warehouse.read_table(_spark(), RAW_ORDERS).drop(warehouse.PARTITION_COLUMN)
    visible = orders_before(orders, as_of_date)
    report = quality.assert_valid(visible, "raw_orders", RAW_ORDERS, ["order_id"])
    n, oldest, newest = visible.agg(F.count("*"), F.min("order_ts"), F.max("order_ts")).first()
    if n == 0:
        raise ValueError(f"{RAW_ORDERS}: no orders before as_of_date={as_of_date}; "
                         "pick a later as-of date")
    if newest.date() < as_of_date - dt.timedelta(days=horizon_days):
        raise ValueError(
            f"{RAW_ORDERS}: the newest order before as_of_date={as_of_date} is from "
            f"{newest.date()}, more than horizon_days={horizon_days} earlier: the data is "
            f"stale or the as-of date is past the history ({oldest.date()} .. {newest.date()})"
        )
    return {"rows": n, "expectations": report.n_expectations,
            "data_docs": _path(report.data_docs_page),
            "first_order": oldest.isoformat(), "last_order": newest.isoformat()}


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
                          run_id: str) -> str | None:
    """Validate a Spark frame with its suite (row count vs the previous partition
    included), then publish it as the as-of date's partition. Returns the Data Docs page."""
    from clv import quality

    report = quality.assert_valid(frame, suite, table, list(warehouse.get_table(table).key),
                                  previous_count=quality.previous_row_count(table, as_of_date),
                                  run_name=run_id)
    warehouse.write_partition(frame, table, as_of_date)
    return _path(report.data_docs_page)


def _publish_pandas(frame, suite: str, table: str, as_of_date: dt.date,
                    run_id: str) -> str | None:
    """:func:`_validate_and_publish` of a pandas frame (large ones reach Spark through
    Parquet, not the driver: :func:`clv.warehouse.spark_frame`)."""
    with warehouse.spark_frame(_spark(), frame) as df:
        return _validate_and_publish(df, suite, table, as_of_date, run_id)


def train(model: str, as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Train, log and register one model: ``clv``, ``churn`` (XGBoost), ``ziln``
    (TensorFlow) or ``btyd`` (every BTYD model); the aliases are decided by :func:`evaluate`."""
    from clv import training

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
    holdout: the champion rule moves the aliases (``clv.registry``), metrics and charts
    go to MLflow, rows to ``marts.model_metrics``."""
    from clv import training

    table = training.evaluate_models(as_of_date, horizon_days, run_id)
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
    from clv import scoring

    scores = scoring.score_customers(as_of_date, horizon_days, run_id)
    docs = _publish_pandas(scores, "customer_scores", SCORES, as_of_date, run_id)
    return {"customers": len(scores), "data_docs": docs,
            "clv_model_version": scores["clv_model_version"].iat[0],
            "churn_model_version": scores["churn_model_version"].iat[0],
            "predicted_clv_total": float(scores["predicted_clv"].sum())}


def segment(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """Value x risk segments and behavioural K-means clusters, with their summary."""
    from clv import clusters, decisioning

    spark = _spark()
    scores = warehouse.read_partition_pandas(SCORES, as_of_date)
    found = clusters.behaviour_clusters(warehouse.read_table(spark, FEATURES, as_of_date))
    segments = decisioning.assign_segments(scores).merge(
        found.assignments, on="customer_id", how="left", validate="one_to_one")
    segments = segments.merge(
        scores[["customer_id", "clv_model_version", "churn_model_version"]], on="customer_id"
    )
    summary = decisioning.segment_summary(segments, scores)
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
    """

    budget: float
    clv_weight: float = DEFAULT_CLV_WEIGHT
    action_costs: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTION_COSTS))
    segment_share_bounds: dict[str, tuple[float | None, float | None]] = field(
        default_factory=dict)
    action_capacity: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> AllocationParams:
        """Read and check the DAG params (names as in the trigger form)."""
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
        )


def allocate(as_of_date: dt.date, params: AllocationParams, run_id: str) -> dict[str, Any]:
    """Spend the budget: one action (or none) per customer, maximising
    ``clv_weight * incremental CLV + (1 - clv_weight) * incremental revenue - cost``.

    Uplift per action and segment comes from the latest randomised campaign in
    ``raw.campaign_responses`` where it tested the action, else from priors (the
    plan's ``uplift_source`` says which). Publishes ``marts.budget_allocation``,
    ``marts.budget_summary`` and ``marts.allocation_frontier``, and logs the
    frontier chart to MLflow.
    """
    from clv import allocation, uplift

    # Only the columns used: at 2.57M customers the full segments frame alone is 0.76 GiB.
    scores = warehouse.read_partition_pandas(SCORES, as_of_date, columns=_ALLOCATION_INPUTS)
    segments = warehouse.read_partition_pandas(SEGMENTS, as_of_date,
                                               columns=["customer_id", "segment"])
    frame = scores.merge(segments[["customer_id", "segment"]], on="customer_id",
                         validate="one_to_one")
    effects = uplift.uplift_for_actions(sorted(params.action_costs), _campaign_responses(),
                                        segments, as_of_date)
    del segments
    candidates = allocation.build_candidates(frame, effects, params.action_costs)
    present = set(frame["segment"])
    del frame
    constraints = dict(segment_share_bounds=_present_segments(params.segment_share_bounds,
                                                              present) or None,
                       action_capacity=params.action_capacity or None)
    result = allocation.allocate(candidates, params.budget, params.clv_weight, **constraints)
    log.info("allocation: %s", result.detail)
    front = allocation.frontier(candidates, params.budget, **constraints)
    plan = _allocation_plan(result.plan, scores)
    summary = allocation.budget_summary(result.plan).rename(columns=_INCREMENT_NAMES)
    docs = _publish_pandas(_stamp(plan, run_id), "budget_allocation", ALLOCATION, as_of_date,
                           run_id)
    for frame_out, suite, table in ((summary, "budget_summary", BUDGET_SUMMARY),
                                    (front, "allocation_frontier", FRONTIER)):
        _publish_pandas(_stamp(frame_out, run_id), suite, table, as_of_date, run_id)
    out = {"customers": len(plan), "treated": int((plan["action"] != "none").sum()),
           "spent": round(result.spent, 2), "budget": params.budget,
           "clv_weight": params.clv_weight, "objective": round(result.objective, 2),
           "lp_bound": round(result.lp_bound, 2), "gap": result.gap, "method": result.method,
           "optimal": result.optimal, "data_docs": docs,
           "uplift_sources": effects.groupby("action")["source"].first().to_dict()}
    out["mlflow_run_id"] = _log_allocation(as_of_date, run_id, params, out, front, summary)
    return out


#: What the allocation reads of marts.customer_scores (with the segment).
_ALLOCATION_INPUTS = ["customer_id", "predicted_clv", "p_churn", "expected_revenue_30d",
                      "clv_model_version", "churn_model_version"]


def _present_segments(bounds: dict, present: set[str]) -> dict:
    """Share bounds of the segments this run has. A known segment that is empty
    this time is skipped (logged); an unknown name is a typo and fails."""
    from clv.decisioning import LOST_SEGMENT, SEGMENTS

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
                    "incr_revenue": "expected_incremental_revenue"}


def _allocation_plan(plan, scores):
    """The published plan: named increments, the scores' model versions."""
    plan = plan.rename(columns=_INCREMENT_NAMES)
    plan["uplift_source"] = plan["uplift_source"].fillna("none")
    return plan.merge(scores[["customer_id", "clv_model_version", "churn_model_version"]],
                      on="customer_id", validate="one_to_one")


def _log_allocation(as_of_date: dt.date, run_id: str, params: AllocationParams,
                    out: dict[str, Any], front, summary) -> str:
    """One MLflow run per allocation: its params, figures, frontier chart and summary."""
    import json
    import tempfile
    from pathlib import Path

    import mlflow
    from clv import allocation, registry

    experiment_id = registry.configure_mlflow()
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=f"allocation-{as_of_date}") as run, \
            tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"step": "allocation", "airflow_run_id": run_id,
                         "as_of_date": as_of_date.isoformat(), "method": out["method"]})
        mlflow.log_params({"budget": params.budget, "clv_weight": params.clv_weight,
                           "action_costs": json.dumps(params.action_costs, sort_keys=True),
                           "segment_share_bounds": json.dumps(params.segment_share_bounds),
                           "action_capacity": json.dumps(params.action_capacity)})
        mlflow.log_metrics({k: float(out[k]) for k in ("spent", "objective", "lp_bound", "gap",
                                                        "treated")})
        chart = allocation.plot_frontier(front, Path(tmp) / "allocation_frontier.png")
        summary.to_csv(Path(tmp) / "budget_summary.csv", index=False)
        front.to_csv(Path(tmp) / "allocation_frontier.csv", index=False)
        for name in (chart.name, "budget_summary.csv", "allocation_frontier.csv"):
            mlflow.log_artifact(str(Path(tmp) / name))
        return run.info.run_id


def publish_catalog(settings: Settings | None = None) -> dict[str, Any]:
    """Refresh the analysts' DuckDB catalog (one view per table) and the Data Docs index
    (the run's validations rendered only their own pages)."""
    from clv import quality

    path = warehouse.refresh_catalog(settings)
    return {"catalog": str(path), "data_docs": quality.rebuild_data_docs_index(settings)}


def run_summary(as_of_date: dt.date, settings: Settings | None = None) -> dict[str, Any]:
    """Rows per output table at the as-of date and the champions with their metrics."""
    import mlflow
    from clv import registry
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
