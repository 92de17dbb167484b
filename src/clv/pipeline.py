"""The pipeline's steps, one function per DAG task.

Each step takes plain values (dates, numbers, the run id), reads its inputs from
the warehouse or the registry, writes its outputs, and returns a small
JSON-serialisable summary (what goes to XCom). The DAG file only wires them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from clv import warehouse
from clv.config import Settings, load_settings

log = logging.getLogger(__name__)

RAW_ORDERS = "raw.orders"
FEATURES = "features.customer_features"
EXAMPLES = "features.training_examples"
SCORES = "marts.customer_scores"
SEGMENTS = "marts.customer_segments"
ALLOCATION = "marts.budget_allocation"
OUTPUT_TABLES = [RAW_ORDERS, FEATURES, SCORES, SEGMENTS, ALLOCATION]
#: Steps that run Spark: their DAG tasks must use the "spark" pool (policy-tested).
SPARK_STEPS = {"validate_raw", "build_features", "validate_features", "score", "segment",
               "allocate"}


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

    report = quality.assert_valid(frame, suite, table, ["customer_id"],
                                  previous_count=quality.previous_row_count(table, as_of_date),
                                  run_name=run_id)
    warehouse.write_partition(frame, table, as_of_date)
    return _path(report.data_docs_page)


def train(model: str, as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Train, log and register one model family (``clv`` or ``churn``)."""
    from clv import training

    fn = {"clv": training.train_clv_model, "churn": training.train_churn_model}[model]
    result = fn(as_of_date, horizon_days, run_id)
    return {"name": result.name, "version": result.version, "alias": result.alias,
            "device": result.device, "reason": result.reason, "metrics": result.metrics}


def score(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Score every customer with the champions, validate, publish ``marts.customer_scores``."""
    from clv import scoring

    spark = _spark()
    scores = scoring.score_customers(as_of_date, horizon_days, run_id)
    docs = _validate_and_publish(spark.createDataFrame(scores), "customer_scores", SCORES,
                                 as_of_date, run_id)
    return {"customers": len(scores), "data_docs": docs,
            "clv_model_version": scores["clv_model_version"].iat[0],
            "churn_model_version": scores["churn_model_version"].iat[0],
            "predicted_clv_total": float(scores["predicted_clv"].sum())}


def segment(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """Value tier x churn risk segments from the published scores."""
    from clv import decisioning

    scores = warehouse.read_partition_pandas(SCORES, as_of_date)
    segments = decisioning.assign_segments(scores)
    segments = segments.merge(
        scores[["customer_id", "clv_model_version", "churn_model_version"]], on="customer_id"
    )
    docs = _validate_and_publish(_spark().createDataFrame(_stamp(segments, run_id)),
                                 "customer_segments", SEGMENTS, as_of_date, run_id)
    return {"customers": len(segments), "data_docs": docs,
            "segments": segments["segment"].value_counts().sort_index().to_dict()}


def allocate(as_of_date: dt.date, budget: float, run_id: str) -> dict[str, Any]:
    """Greedy marketing budget allocation over the published scores."""
    from clv import decisioning

    scores = warehouse.read_partition_pandas(SCORES, as_of_date)
    plan = decisioning.allocate_budget(scores, budget)
    plan = plan.merge(
        scores[["customer_id", "clv_model_version", "churn_model_version"]], on="customer_id"
    )
    docs = _validate_and_publish(_spark().createDataFrame(_stamp(plan, run_id)),
                                 "budget_allocation", ALLOCATION, as_of_date, run_id)
    chosen = plan[plan["action"] != "none"]
    return {"customers": len(plan), "treated": len(chosen), "data_docs": docs,
            "spent": round(float(chosen["cost"].sum()), 2), "budget": budget,
            "expected_incremental_value": round(
                float(chosen["expected_incremental_value"].sum()), 2)}


def publish_catalog(settings: Settings | None = None) -> dict[str, Any]:
    """Refresh the analysts' DuckDB catalog (one view per table)."""
    path = warehouse.refresh_catalog(settings)
    return {"catalog": str(path)}


def run_summary(as_of_date: dt.date, settings: Settings | None = None) -> dict[str, Any]:
    """Rows per output table at the as-of date and the champions with their metrics."""
    import duckdb

    import mlflow
    from clv import registry
    from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME

    s = settings or load_settings()
    con = duckdb.connect(str(warehouse.catalog_path(s)), read_only=True)
    try:
        rows = {t: con.execute(f"select count(*) from {t} where as_of_date = ?",
                               [as_of_date]).fetchall()[0][0]
                for t in OUTPUT_TABLES if t != RAW_ORDERS}
        rows[RAW_ORDERS] = con.execute(f"select count(*) from {RAW_ORDERS}").fetchall()[0][0]
    finally:
        con.close()
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
