"""Customer features at a cutoff, and labels over the horizon that follows it.

Time is split at ``cutoff`` (midnight UTC at the start of the as-of date) into
two half-open windows that never overlap and never leave a gap:

* features use orders with ``order_ts < cutoff`` only;
* labels use orders with ``cutoff <= order_ts < cutoff + horizon_days``.

So no order at or after the cutoff can reach a feature (tested), and every order
in the label window counts exactly once.
"""


from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from clv.config import N_PERIODS, PERIOD_DAYS
from clv.features.columns import FEATURE_COLUMNS, LABEL_COLUMNS, RFM_FEATURES, period_columns

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame


def _ts(day: dt.date) -> Column:
    from pyspark.sql import functions as F

    return F.lit(dt.datetime(day.year, day.month, day.day)).cast("timestamp")


def orders_before(orders: DataFrame, cutoff: dt.date) -> DataFrame:
    """Orders strictly before ``cutoff`` (midnight): the only rows features may see."""
    from pyspark.sql import functions as F

    return orders.where(F.col("order_ts") < _ts(cutoff))


def customer_features(
    orders: DataFrame,
    cutoff: dt.date,
    period_days: int = PERIOD_DAYS,
    n_periods: int = N_PERIODS,
) -> DataFrame:
    """One row per customer with at least one order before ``cutoff``.

    Columns (days are whole calendar days, UTC):
        recency_days: cutoff - date of the last order (1 if it was the day before).
        tenure_days: cutoff - date of the first order.
        n_orders, n_purchase_days, frequency (= repeat purchase days, n_purchase_days - 1),
        total_spend, avg_order_value, max_order_value,
        mean_ipt_days / std_ipt_days: mean / sample std of the gaps between purchase
            days (null with fewer than 2 / 3 purchase days),
        spend_pKK / orders_pKK: spend and orders in period K, where period 1 is the
            ``period_days`` days just before the cutoff, period 2 the ones before, ...
    Computed from one scan and one shuffle of the orders: they are hash-partitioned
    by customer once, and the per-day rows, the window over them and the
    per-customer aggregate all reuse that partitioning (no joins). Measured at 10M
    orders: 3.1x faster and 0.8 GiB less peak memory than the earlier
    five-shuffle, three-join formulation (docs/benchmarks.md).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cut = F.lit(cutoff).cast("date")
    past = orders_before(orders, cutoff).select(
        "customer_id", F.to_date("order_ts").alias("order_date"), "amount"
    ).repartition("customer_id")
    # One row per customer and purchase day: orders, spend and the largest order that day.
    daily = past.groupBy("customer_id", "order_date").agg(
        F.count("*").alias("n"), F.sum("amount").alias("spend"), F.max("amount").alias("mx"))
    by_date = Window.partitionBy("customer_id").orderBy("order_date")
    daily = daily.withColumn(
        "gap", F.datediff("order_date", F.lag("order_date").over(by_date))
    ).withColumn(
        # period 1 = the period_days days just before the cutoff, 2 the ones before, ...
        "period", (F.floor((F.datediff(cut, "order_date") - 1) / period_days) + 1).cast("int"))
    aggs = [
        F.datediff(cut, F.max("order_date")).alias("recency_days"),
        F.datediff(cut, F.min("order_date")).alias("tenure_days"),
        F.sum("n").cast("int").alias("n_orders"),
        F.count("*").cast("int").alias("n_purchase_days"),
        F.sum("spend").alias("total_spend"),
        F.max("mx").alias("max_order_value"),
        F.avg("gap").alias("mean_ipt_days"),
        F.stddev_samp("gap").alias("std_ipt_days"),
    ]
    aggs += [F.sum(F.when(F.col("period") == k, F.col("spend")).otherwise(0.0))
             .alias(f"spend_p{k:02d}") for k in range(1, n_periods + 1)]
    aggs += [F.sum(F.when(F.col("period") == k, F.col("n")).otherwise(0)).cast("int")
             .alias(f"orders_p{k:02d}") for k in range(1, n_periods + 1)]
    out = daily.groupBy("customer_id").agg(*aggs)
    out = out.withColumn("frequency", F.col("n_purchase_days") - 1).withColumn(
        "avg_order_value", F.col("total_spend") / F.col("n_orders"))
    return out.select("customer_id", *RFM_FEATURES, *period_columns(n_periods))


def customer_labels(orders: DataFrame, cutoff: dt.date, horizon_days: int) -> DataFrame:
    """Spend and order count in ``[cutoff, cutoff + horizon_days)`` per customer who bought then."""
    from pyspark.sql import functions as F

    end = cutoff + dt.timedelta(days=horizon_days)
    window = orders.where((F.col("order_ts") >= _ts(cutoff)) & (F.col("order_ts") < _ts(end)))
    return window.groupBy("customer_id").agg(
        F.sum("amount").alias("spend_next"), F.count("*").cast("int").alias("orders_next")
    )


def training_examples(
    orders: DataFrame, cutoff: dt.date, horizon_days: int, split: str
) -> DataFrame:
    """Features at ``cutoff`` joined with the labels of the horizon after it.

    Every customer known at the cutoff appears; one who bought nothing in the
    horizon has ``spend_next = 0``, ``orders_next = 0`` and ``churned = 1``.
    """
    from pyspark.sql import functions as F

    feats = customer_features(orders, cutoff)
    labels = customer_labels(orders, cutoff, horizon_days)
    out = feats.join(labels, "customer_id", "left").fillna(
        {"spend_next": 0.0, "orders_next": 0}
    )
    return out.withColumn("churned", (F.col("orders_next") == 0).cast("int")).select(
        F.lit(cutoff).cast("date").alias("cutoff_date"),
        F.lit(split).alias("split"),
        F.lit(horizon_days).alias("horizon_days"),
        "customer_id", *FEATURE_COLUMNS, *LABEL_COLUMNS,
    )


def backtest_cutoffs(as_of_date: dt.date, horizon_days: int) -> dict[str, dt.date]:
    """Out-of-time cutoffs for a run at ``as_of_date``.

    ``train`` = as_of - 2H (labels end at as_of - H), ``eval`` = as_of - H (labels
    end at as_of): the model is evaluated on a later period than it learnt from,
    and no label reaches past the as-of date.
    """
    h = dt.timedelta(days=horizon_days)
    return {"train": as_of_date - 2 * h, "eval": as_of_date - h}
