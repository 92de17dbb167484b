"""Feature steps: customer features and training examples at the as-of date, and their checks."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from clv.data import warehouse
from clv.data.catalog import CUSTOMERS, EVENTS, REVIEWS
from clv.pipeline.publishing import _path, _spark
from clv.pipeline.tables import EXAMPLES, FEATURES, RAW_ORDERS

log = logging.getLogger(__name__)


def build_features(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Spark: features at the as-of date, and out-of-time training examples; each optional
    source loaded (reviews, customers, events) adds its point-in-time columns."""
    from pyspark.sql import functions as F

    from clv import features
    from clv.features.sources import add_source_features
    from clv.pipeline.train_tasks import begin_ziln_fit, ziln_fit_dropped_on_error

    spark = _spark()
    orders = warehouse.read_table(spark, RAW_ORDERS).drop(warehouse.PARTITION_COLUMN)
    sources = _source_frames(spark, as_of_date)

    def with_sources(frame, cutoff: dt.date):
        return add_source_features(frame, cutoff, **sources)[0] if sources else frame

    feats = with_sources(features.customer_features(orders, as_of_date), as_of_date)
    cutoffs = features.backtest_cutoffs(as_of_date, horizon_days)
    examples = with_sources(
        features.training_examples(orders, cutoffs["train"], horizon_days, "train"),
        cutoffs["train"])
    examples = examples.unionByName(with_sources(
        features.training_examples(orders, cutoffs["eval"], horizon_days, "eval"),
        cutoffs["eval"])).withColumn("run_id", F.lit(run_id))
    warehouse.write_partition(examples, EXAMPLES, as_of_date)
    # The examples first: under airflow dags test the ZILN fit learns from them alone and
    # begins now; an error until its checks pass drops it (clv.pipeline.head_start).
    begin_ziln_fit(as_of_date, run_id)
    with ziln_fit_dropped_on_error(as_of_date, run_id):
        warehouse.write_partition(feats.withColumn("run_id", F.lit(run_id)), FEATURES,
                                  as_of_date)
        if "sentiment" in sources:
            sources["sentiment"].unpersist()
        counts = {r["split"]: r["n"] for r in warehouse.read_table(spark, EXAMPLES, as_of_date)
                  .groupBy("split").count().withColumnRenamed("count", "n").collect()}
        n_customers = warehouse.read_table(spark, FEATURES, as_of_date).count()
    used = ["orders", *(s for s in ("reviews", "customers", "events") if s in sources)]
    log.info("features: %d customers at %s from %s; examples %s (cutoffs %s)",
             n_customers, as_of_date, "+".join(used), counts, cutoffs)
    return {"customers": n_customers, "sources": used, "train_rows": counts.get("train", 0),
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


def _source_frames(spark, as_of_date: dt.date) -> dict[str, Any]:
    """The optional sources loaded on or before the as-of date, as
    :func:`clv.features.sources.add_source_features` takes them (absent ones left out);
    customers: each one's row of the newest such batch; reviews: with their sentiment."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    part = warehouse.PARTITION_COLUMN
    loaded = {name: table for name, table in (("reviews", REVIEWS), ("customers", CUSTOMERS),
                                              ("events", EVENTS))
              if any(d <= as_of_date for d in warehouse.list_partitions(table))}
    frames = {name: warehouse.read_table(spark, table).where(F.col(part) <= F.lit(as_of_date))
              for name, table in loaded.items()}
    if "customers" in frames:
        newest = Window.partitionBy("customer_id").orderBy(F.col(part).desc())
        frames["customers"] = (frames["customers"].withColumn("_n", F.row_number().over(newest))
                               .where("_n = 1").drop("_n"))
    frames = {name: frame.drop(part) for name, frame in frames.items()}
    if "reviews" in frames:
        from clv.features.sentiment import review_sentiment

        frames["sentiment"] = review_sentiment(frames["reviews"]).persist()
    return frames
