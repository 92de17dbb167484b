"""Feature steps: customer features and training examples at the as-of date, and their checks."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from clv.data import warehouse
from clv.pipeline.publishing import _path, _spark
from clv.pipeline.tables import EXAMPLES, FEATURES, RAW_ORDERS

log = logging.getLogger(__name__)


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
