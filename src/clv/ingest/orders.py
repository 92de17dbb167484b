"""The row-level rules of ``raw.orders`` and :func:`load_orders`, which applies them.

Rows that break a row-level rule are written to ``quality.rejected_orders`` with
the rule's name and the run id, never dropped silently: rows in = rows accepted +
rows rejected, and the load reports both counts.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clv.data import warehouse
from clv.data.catalog import FAILED_LOAD_REJECTS, RAW_ORDERS, REJECTED_ORDERS
from clv.ingest.files import CORRUPT_COLUMN, OPTIONAL_COLUMNS, REQUIRED_COLUMNS, IngestError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger("clv.ingest")  # the package's logger, as before the split



@dataclass(frozen=True)
class LoadResult:
    """What one load did: the batch it wrote and how many rows went where."""

    as_of_date: dt.date
    rows_in: int
    rows_accepted: int
    rows_rejected: int
    rejected_by_rule: dict[str, int]

    def __str__(self) -> str:
        rules = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected_by_rule.items())) or "none"
        return (
            f"raw.orders batch as_of_date={self.as_of_date}: {self.rows_in} rows in, "
            f"{self.rows_accepted} accepted, {self.rows_rejected} rejected ({rules})"
        )


# --------------------------------------------------------------------------- quarantine

#: Texts that mean "no value" in exports (SQL dumps, pandas, Excel), compared
#: case-insensitively after trimming: such an id is missing, such a quantity or currency
#: absent. Override with ``CLV_NULL_TOKENS`` (comma-separated).
DEFAULT_NULL_TOKENS = ("NULL", "NONE", "NAN", "NA", "N/A", "#N/A", "NIL", "\\N")
#: The suite whose row-level limits the import enforces (one set of rules: a batch
#: the import accepts passes ``validate_raw``).
RAW_SUITE = "raw_orders"


def _suite_limit(column: str, end: int) -> float:
    from clv import quality

    return float(quality.suite_bounds(RAW_SUITE, column)[end])


def _suite_ts_floor() -> dt.date:
    from clv import quality

    return dt.datetime.fromisoformat(quality.suite_bounds(RAW_SUITE, "order_ts")[0]).date()


def _env_tokens(name: str, default: tuple[str, ...]) -> frozenset[str]:
    text = os.environ.get(name)
    items = text.split(",") if text is not None else default
    return frozenset(t.strip().upper() for t in items if t.strip())


@dataclass(frozen=True)
class OrderRules:
    """Row-level rules' settings. The bounds default to those of the ``raw_orders``
    suite (read from its file), so the import quarantines what the suite would refuse."""

    ts_floor: dt.date = field(default_factory=_suite_ts_floor)
    currencies: frozenset[str] = field(default_factory=lambda: frozenset(
        os.environ.get("CLV_CURRENCIES", "USD,EUR,GBP,BRL,CAD,AUD,JPY,CHF").split(",")))
    amount_min: float = field(default_factory=lambda: _suite_limit("amount", 0))
    amount_max: float = field(default_factory=lambda: _suite_limit("amount", 1))
    quantity_min: float = field(default_factory=lambda: _suite_limit("quantity", 0))
    quantity_max: float = field(default_factory=lambda: _suite_limit("quantity", 1))
    null_tokens: frozenset[str] = field(
        default_factory=lambda: _env_tokens("CLV_NULL_TOKENS", DEFAULT_NULL_TOKENS))


#: Row rules in the order they are checked; a row is rejected by the first it breaks.
RULES = ("malformed_row", "order_id_not_null", "customer_id_not_null", "order_ts_parseable",
         "order_ts_not_in_future", "order_ts_after_floor", "amount_numeric", "amount_in_range",
         "quantity_numeric", "quantity_whole", "quantity_in_range", "currency_known",
         "order_id_published", "order_id_unique")


def split_valid_orders(
    df: DataFrame, run_id: str, as_of_date: dt.date, rules: OrderRules | None = None,
    published_ids: DataFrame | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Type the contract columns and split rows into (accepted, rejected).

    Rules (see :data:`RULES`; the first failing rule wins): a CSV line Spark could
    not split; a missing id (null, blank or one of ``rules.null_tokens``); an
    unparseable ``order_ts``, one at or after the batch's ``as_of_date`` (the future,
    for this batch) or before ``rules.ts_floor``; an amount that is not a finite
    number, or outside the suite's bounds; a quantity that is given but not a number,
    not whole (``40.0`` is 40, ``40.5`` is rejected) or outside the suite's bounds; a
    currency not in ``rules.currencies`` (a missing currency is allowed);
    ``order_id_published``: the id is in ``published_ids`` (earlier batches);
    ``order_id_unique``: the first copy by timestamp, then amount, is kept, every
    further copy is rejected.

    Returns:
        accepted rows in the contract's types; rejected rows with every input
        column as text plus ``rule`` and ``run_id``.
    """
    from pyspark.sql import functions as F

    rules = rules or OrderRules()
    contract = list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)
    if CORRUPT_COLUMN not in df.columns:
        df = df.withColumn(CORRUPT_COLUMN, F.lit(None).cast("string"))
    raw = df.select(*[F.col(c).cast("string").alias(f"_raw_{c}") for c in contract],
                    F.col(CORRUPT_COLUMN), *contract)

    def value(c: str) -> Column:  # trimmed text, null for a null token
        text = F.trim(F.col(c).cast("string"))
        return F.when(F.upper(text).isin(sorted(rules.null_tokens)), None).otherwise(text)

    typed = (
        raw.withColumn("order_id", value("order_id"))
        .withColumn("customer_id", value("customer_id"))
        .withColumn("order_ts", F.col("order_ts").try_cast("timestamp"))
        .withColumn("amount", F.col("amount").try_cast("double"))
        # via double: an export's "40.0" is the whole number 40 (checked by the rules)
        .withColumn("_quantity", value("quantity").try_cast("double"))
        .withColumn("_quantity_given", value("quantity").isNotNull())
        .withColumn("currency", F.upper(value("currency")))
    )
    typed = typed.withColumn("rule", _first_broken_rule(as_of_date, rules))
    typed = typed.withColumn("quantity", F.when(F.col("rule").isNull(),
                                                F.col("_quantity").cast("int")))
    typed = _reject_published_ids(typed, published_ids)
    typed = _reject_duplicate_ids(typed)
    accepted = typed.where(F.col("rule").isNull()).select(*contract)
    rejected = typed.where(F.col("rule").isNotNull()).select(
        *[F.col(f"_raw_{c}").alias(c) for c in contract],
        F.col(CORRUPT_COLUMN).alias("raw_line"), "rule", F.lit(run_id).alias("run_id"),
    )
    return accepted, rejected


def _first_broken_rule(as_of_date: dt.date, rules: OrderRules) -> Column:
    from pyspark.sql import functions as F

    def blank(c: str) -> Column:
        return F.col(c).isNull() | (F.col(c) == "")

    def finite(c: str) -> Column:
        return F.col(c).isNotNull() & ~F.isnan(c) & (F.abs(c) < F.lit(float("inf")))

    def outside(c: str, low: float, high: float) -> Column:
        return (F.col(c) < F.lit(low)) | (F.col(c) > F.lit(high))

    as_of = F.lit(dt.datetime.combine(as_of_date, dt.time())).cast("timestamp")
    floor = F.lit(dt.datetime.combine(rules.ts_floor, dt.time())).cast("timestamp")
    quantity = F.col("_quantity")
    checks = [
        ("malformed_row", F.col(CORRUPT_COLUMN).isNotNull()),
        ("order_id_not_null", blank("order_id")),
        ("customer_id_not_null", blank("customer_id")),
        ("order_ts_parseable", F.col("order_ts").isNull()),
        ("order_ts_not_in_future", F.col("order_ts") >= as_of),
        ("order_ts_after_floor", F.col("order_ts") < floor),
        ("amount_numeric", ~finite("amount")),
        ("amount_in_range", outside("amount", rules.amount_min, rules.amount_max)),
        ("quantity_numeric", F.col("_quantity_given") & ~finite("_quantity")),
        ("quantity_whole", F.col("_quantity_given") & (quantity != F.floor(quantity))),
        ("quantity_in_range", F.col("_quantity_given")
         & outside("_quantity", rules.quantity_min, rules.quantity_max)),
        ("currency_known", F.col("currency").isNotNull()
         & ~F.col("currency").isin(sorted(rules.currencies))),
    ]
    rule = F.when(checks[0][1], checks[0][0])
    for name, broken in checks[1:]:
        rule = rule.when(broken, name)
    return rule


def _reject_published_ids(typed: DataFrame, published_ids: DataFrame | None) -> DataFrame:
    """``order_id_published``: the id is already in an earlier batch of ``raw.orders``
    (the suite checks uniqueness over the whole history, so the copy would block it)."""
    from pyspark.sql import functions as F

    if published_ids is None:
        return typed
    seen = published_ids.select(F.col("order_id").alias("_published_id")).distinct()
    joined = typed.join(seen, typed["order_id"] == seen["_published_id"], "left")
    return joined.withColumn(
        "rule", F.when(F.col("rule").isNull() & F.col("_published_id").isNotNull(),
                       "order_id_published").otherwise(F.col("rule"))
    ).drop("_published_id")


def _reject_duplicate_ids(typed: DataFrame) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Valid rows sort first, so a valid copy is kept over an invalid one.
    first_copy = Window.partitionBy("order_id").orderBy(
        F.col("rule").isNotNull(), "order_ts", "amount", "customer_id", "quantity", "currency"
    )
    return typed.withColumn(
        "rule",
        F.when(F.col("rule").isNull() & (F.row_number().over(first_copy) > 1), "order_id_unique")
        .otherwise(F.col("rule")),
    )


def load_orders(
    spark: SparkSession,
    df: DataFrame,
    as_of_date: dt.date,
    run_id: str,
    max_rejected_share: float = 0.01,
    rules: OrderRules | None = None,
    source: str | None = None,
) -> LoadResult:
    """Quarantine bad rows, then publish the batch to ``raw.orders`` at ``as_of_date``.

    Ids already published by another batch are quarantined (``order_id_published``).
    The rejected rows go to ``quality.rejected_orders`` when the batch is published;
    when the load is refused they go to ``quality.failed_load_rejects`` instead, so the
    quarantine of the published batch of that date stays its own.

    Args:
        source: Where the rows came from (the file), named in messages.

    Raises:
        IngestError: ``max_rejected_share`` is not a number in [0, 1], or more than
            that share of the rows is rejected (nothing is published then).
    """
    from pyspark.sql import functions as F

    check_rejected_share(max_rejected_share)
    where = source or "the input"
    df = df.cache()
    rows_in = df.count()
    if rows_in == 0:
        raise IngestError(f"{where}: the input has no rows")
    accepted, rejected = split_valid_orders(df, run_id, as_of_date, rules,
                                            _published_ids(spark, as_of_date))
    rejected = rejected.withColumn("order_id", F.coalesce("order_id", F.lit(""))).cache()
    by_rule = {r["rule"]: r["n"] for r in rejected.groupBy("rule").agg(F.count("*").alias("n"))
               .collect()}
    n_rejected = sum(by_rule.values())
    result = LoadResult(as_of_date, rows_in, rows_in - n_rejected, n_rejected, by_rule)
    if n_rejected > max_rejected_share * rows_in:
        warehouse.write_partition(rejected.withColumn("source", F.lit(where)),
                                  FAILED_LOAD_REJECTS, as_of_date)
        raise IngestError(
            f"{where}: {n_rejected} of {rows_in} rows rejected "
            f"({n_rejected / rows_in:.2%} > the {max_rejected_share:.2%} allowed) by rules "
            f"{by_rule}; nothing was published to {RAW_ORDERS}; the rejected rows are in "
            f"{FAILED_LOAD_REJECTS} partition as_of_date={as_of_date} (run_id={run_id})"
        )
    warehouse.write_partition(rejected, REJECTED_ORDERS, as_of_date)
    warehouse.write_partition(accepted, RAW_ORDERS, as_of_date)
    rejected.unpersist()
    df.unpersist()
    log.info("%s", result)
    return result


def check_rejected_share(value: float) -> float:
    """``value`` when it is a number in [0, 1]; else :class:`IngestError` (NaN would
    switch the share check off: every comparison with it is false)."""
    import math

    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) \
            or not 0 <= value <= 1:
        raise IngestError(f"max_rejected_share must be a number in [0, 1] (a share of the "
                          f"rows), got {value!r}")
    return float(value)


def _published_ids(spark: SparkSession, as_of_date: dt.date) -> DataFrame | None:
    """Order ids of every other batch of ``raw.orders`` (reloading a date replaces it)."""
    from pyspark.sql import functions as F

    others = [d for d in warehouse.list_partitions(RAW_ORDERS) if d != as_of_date]
    if not others:
        return None
    return (warehouse.read_table(spark, RAW_ORDERS)
            .where(F.col(warehouse.PARTITION_COLUMN) != F.lit(as_of_date))
            .select("order_id"))


def default_batch_date(df: DataFrame) -> dt.date:
    """The day after the newest order: everything strictly before it is in the batch."""
    from pyspark.sql import functions as F

    newest = df.select(F.max(F.col("order_ts").try_cast("timestamp"))).first()[0]
    if newest is None:
        raise IngestError("cannot derive as_of_date: no parseable order_ts in the input")
    return newest.date() + dt.timedelta(days=1)
