"""Orders derived from order lines, under the project's one cancellation rule.

The rule (docs/DECISIONS.md, "One cancellation rule: returns are netted against
their order"): a return, cancellation or credit note is a line with a negative
quantity that carries the ``order_id`` of the order it reverses. An order's lines are
netted: its amount is the sum of ``quantity * unit_price`` over all its lines, its
quantity the sum of the quantities, its time the time of its first sale line. An
order whose net amount is zero or less (cancelled, or returned in full) is not a
purchase: it stays in ``raw.order_lines`` and is counted by :func:`order_outcomes`, but
is not an order of :func:`orders_from_lines`, so it adds neither a purchase nor spend
to any feature. A partly returned order is one purchase of its net amount.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

#: The columns of ``raw.orders`` (clv.ingest's contract), in its order.
ORDER_COLUMNS = ("order_id", "customer_id", "order_ts", "amount", "quantity", "currency")
PURCHASE, PARTLY_RETURNED, CANCELLED = "purchase", "partly_returned", "cancelled"


def net_orders(lines: DataFrame, known_before: dt.date | None = None) -> DataFrame:
    """One row per order of ``lines`` with its netted amount and its outcome.

    Args:
        lines: rows of ``raw.order_lines`` (any batches).
        known_before: when given, only lines timed strictly before this date's midnight
            count (a return after it is not known yet): the orders as they stood then,
            for point-in-time derivations.

    Returns:
        order_id, customer_id, order_ts (first sale line's), amount (net, rounded to
        cents), quantity (net units, null unless positive), currency, gross_amount,
        returned_amount (>= 0), n_lines, outcome (``purchase``, ``partly_returned`` or
        ``cancelled``). Orders with no sale line known yet are left out.
    """
    from pyspark.sql import functions as F

    if known_before is not None:
        midnight = dt.datetime.combine(known_before, dt.time())
        lines = lines.where(F.col("order_ts") < F.lit(midnight).cast("timestamp"))
    value = F.col("quantity") * F.col("unit_price")
    sale = F.col("quantity") > 0
    out = lines.groupBy("order_id").agg(
        F.min(F.when(sale, F.col("customer_id"))).alias("customer_id"),
        F.min(F.when(sale, F.col("order_ts"))).alias("order_ts"),
        F.round(F.sum(value), 2).alias("amount"),
        F.sum("quantity").cast("int").alias("_units"),
        F.max("currency").alias("currency"),
        F.round(F.sum(F.when(sale, value).otherwise(0.0)), 2).alias("gross_amount"),
        F.round(-F.sum(F.when(~sale, value).otherwise(0.0)), 2).alias("returned_amount"),
        F.count("*").cast("int").alias("n_lines"),
    ).where(F.col("order_ts").isNotNull())
    outcome = (F.when(F.col("amount") <= 0, F.lit(CANCELLED))
               .when(F.col("returned_amount") > 0, F.lit(PARTLY_RETURNED))
               .otherwise(F.lit(PURCHASE)))
    return out.select(
        "order_id", "customer_id", "order_ts", "amount",
        F.when(F.col("_units") > 0, F.col("_units")).alias("quantity"), "currency",
        "gross_amount", "returned_amount", "n_lines", outcome.alias("outcome"))


def orders_from_lines(lines: DataFrame, known_before: dt.date | None = None) -> DataFrame:
    """``raw.orders`` rows derived from order lines (cancelled orders left out).

    Args:
        lines: rows of ``raw.order_lines``.
        known_before: see :func:`net_orders`.

    Returns:
        order_id, customer_id, order_ts, amount, quantity, currency: the columns and
        types of ``raw.orders``, one row per order whose net amount is positive.
    """
    from pyspark.sql import functions as F

    net = net_orders(lines, known_before)
    return net.where(F.col("outcome") != F.lit(CANCELLED)).select(*ORDER_COLUMNS)


def order_outcomes(lines: DataFrame, known_before: dt.date | None = None) -> dict[str, int]:
    """How many orders of ``lines`` are purchases, partly returned, cancelled."""
    counts = {r["outcome"]: int(r["n"]) for r in
              net_orders(lines, known_before).groupBy("outcome").count()
              .withColumnRenamed("count", "n").collect()}
    return {k: counts.get(k, 0) for k in (PURCHASE, PARTLY_RETURNED, CANCELLED)}
