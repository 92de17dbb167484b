"""Optional sources (#18): order lines, reviews, customers, events, imported like orders.

Contracts and reading: :mod:`clv.ingest.sources_spec`; row rules: :mod:`clv.ingest.source_rules`;
this module publishes a batch (accepted rows atomically, rejects to the quarantine table).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

from clv.data import warehouse
from clv.ingest.files import IngestError
from clv.ingest.orders import check_rejected_share

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

from clv.ingest.source_rules import (
    RULES,
    _timestamp,
    split_source,
)
from clv.ingest.sources_spec import (
    CUSTOMERS,
    EVENTS,
    ORDER_LINES,
    REJECT_COLUMNS,
    REVIEWS,
    ROW_COLUMN,
    SOURCE_COLUMN,
    SOURCES,
    SourceLoadResult,
    SourceSpec,
    apply_mapping,
    log,
    read_source_file,
)

# --------------------------------------------------------------------------- load

def load_source(spark: SparkSession, frame: pd.DataFrame, spec: SourceSpec, source: str,
                run_id: str, as_of_date: dt.date | None = None,
                max_rejected_share: float = 0.01, extra_rejected: pd.DataFrame | None = None
                ) -> SourceLoadResult:
    """Quarantine bad rows, validate the rest with the source's suite, publish both.

    ``quality.rejected_<table>`` is published first, then ``raw.<table>``, each as the
    ``as_of_date`` partition (default: the day after the newest valid timestamp of the
    batch), replacing an earlier load of that batch atomically.

    Raises:
        IngestError: no row is valid, or more than ``max_rejected_share`` of the rows is
            rejected (counts per rule and sample rows in the message; nothing published).
        clv.quality.DataQualityError: the accepted rows break the suite.

    ``extra_rejected``: input rows a source's own mapping refused before the rules (in
    the quarantine's columns, ``rule`` set); they count as rows in and rows rejected.
    """
    from clv import quality

    check_rejected_share(max_rejected_share)
    if frame.empty:
        raise IngestError(f"{source}: no rows for {spec.table}")
    as_of = as_of_date or _default_batch_date(frame, spec, source)
    published = _published(spark, spec, as_of)
    accepted, rejected = split_source(frame, spec, as_of, source, run_id, published)
    if extra_rejected is not None and len(extra_rejected):
        rejected = pd.concat([rejected, extra_rejected.assign(run_id=run_id)[
            list(rejected.columns)]], ignore_index=True)
    rows_in = len(accepted) + len(rejected)
    by_rule = {str(k): int(v) for k, v in rejected["rule"].value_counts().items()}
    result = SourceLoadResult(spec.table, source, as_of, rows_in, len(accepted),
                              len(rejected), by_rule)
    if accepted.empty or len(rejected) > max_rejected_share * rows_in:
        sample = rejected.head(5)[[ROW_COLUMN, "rule"]].to_dict("records")
        raise IngestError(
            f"{source}: {len(rejected)} of {rows_in} rows rejected for {spec.table} "
            f"(allowed: {max_rejected_share:.2%}) by rules {by_rule}, e.g. {sample}; "
            f"nothing was published")
    df = spark.createDataFrame(_spark_ready(accepted, spec), schema=spec.schema)
    quality.assert_valid(df, spec.suite, spec.table, list(spec.key), run_name=run_id)
    warehouse.write_partition(_rejects_frame(spark, spec, rejected), spec.rejected_table, as_of)
    warehouse.write_partition(df, spec.table, as_of)
    log.info("%s", result)
    return result

__all__ = [
    "CUSTOMERS",
    "EVENTS",
    "ORDER_LINES",
    "REVIEWS",
    "RULES",
    "SOURCES",
    "SourceLoadResult",
    "SourceSpec",
    "apply_mapping",
    "latest_customers",
    "load_customers",
    "load_events",
    "load_order_lines",
    "load_reviews",
    "load_source",
    "read_source_file",
    "split_source",
]


def _spark_ready(accepted: pd.DataFrame, spec: SourceSpec) -> pd.DataFrame:
    """Whole numbers as integers, dates as dates, text as plain objects (None for null)."""
    out = pd.DataFrame(index=accepted.index)
    for item in spec.schema.split(", "):
        name, kind = item.split(" ")
        s = accepted[name]
        if kind == "int":
            out[name] = s.astype("Int64")
        elif kind == "date":
            out[name] = s.dt.date.where(s.notna(), None)
        elif kind == "string":
            out[name] = s.astype(object).where(s.notna(), None)
        else:
            out[name] = s
    return out


def _rejects_frame(spark: SparkSession, spec: SourceSpec, rejected: pd.DataFrame) -> DataFrame:
    schema = (", ".join(f"{c} string" for c in spec.columns)
              + f", {ROW_COLUMN} long, rule string, {SOURCE_COLUMN} string, run_id string")
    rows = rejected[[*spec.columns, *REJECT_COLUMNS]]
    return spark.createDataFrame(rows if len(rows) else pd.DataFrame(columns=rows.columns),
                                 schema=schema)


def _default_batch_date(frame: pd.DataFrame, spec: SourceSpec, source: str) -> dt.date:
    """The day after the newest parseable timestamp (everything before it is the batch)."""
    newest = _timestamp(frame[spec.time_column]).max()
    if pd.isna(newest):
        raise IngestError(f"{source}: cannot derive as_of_date for {spec.table}: no "
                          f"parseable {spec.time_column}; pass as_of_date")
    return newest.date() + dt.timedelta(days=1)


def _published(spark: SparkSession, spec: SourceSpec, as_of: dt.date) -> pd.DataFrame | None:
    """The keys of the table's other batches (order lines: with customer, currency and
    quantity, for the order rules); None when there are none."""
    from pyspark.sql import functions as F

    others = [d for d in warehouse.list_partitions(spec.table) if d != as_of]
    if not others:
        return None
    extra = ["customer_id", "currency", "quantity"] if spec is ORDER_LINES else []
    columns = list(dict.fromkeys([*spec.key, *extra]))
    return (warehouse.read_table(spark, spec.table)
            .where(F.col(warehouse.PARTITION_COLUMN) != F.lit(as_of))
            .select(*columns).toPandas())


def load_order_lines(spark: SparkSession, frame: pd.DataFrame, source: str, run_id: str,
                     as_of_date: dt.date | None = None, max_rejected_share: float = 0.01
                     ) -> SourceLoadResult:
    """Import order lines into ``raw.order_lines`` (rules: ``RULES[ORDER_LINES.table]``).

    A return or cancellation is a line with a negative quantity that carries the
    order_id of the order it reverses (see :mod:`clv.ingest.order_lines` for how orders are
    derived). ``frame``: the contract's columns, e.g. from :func:`read_source_file`.
    """
    return load_source(spark, frame, ORDER_LINES, source, run_id, as_of_date,
                       max_rejected_share)


def load_reviews(spark: SparkSession, frame: pd.DataFrame, source: str, run_id: str,
                 as_of_date: dt.date | None = None, max_rejected_share: float = 0.01
                 ) -> SourceLoadResult:
    """Import product/order reviews into ``raw.reviews`` (score 1-5, free text kept as
    written; rules: ``RULES[REVIEWS.table]``)."""
    return load_source(spark, frame, REVIEWS, source, run_id, as_of_date, max_rejected_share)


def load_customers(spark: SparkSession, frame: pd.DataFrame, source: str, run_id: str,
                   as_of_date: dt.date | None = None, max_rejected_share: float = 0.01
                   ) -> SourceLoadResult:
    """Import customer attributes into ``raw.customers`` (one row per customer per batch;
    a later batch's row for a customer supersedes an earlier one). ``as_of_date`` is
    required when no row has a ``signup_date``."""
    return load_source(spark, frame, CUSTOMERS, source, run_id, as_of_date,
                       max_rejected_share)


def load_events(spark: SparkSession, frame: pd.DataFrame, source: str, run_id: str,
                as_of_date: dt.date | None = None, max_rejected_share: float = 0.01
                ) -> SourceLoadResult:
    """Import browsing events (view, add_to_cart, purchase) into ``raw.events``."""
    return load_source(spark, frame, EVENTS, source, run_id, as_of_date, max_rejected_share)


def latest_customers(spark: SparkSession) -> DataFrame:
    """``raw.customers`` as one row per customer: the row of the newest batch."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    newest = Window.partitionBy("customer_id").orderBy(F.col(warehouse.PARTITION_COLUMN).desc())
    return (warehouse.read_table(spark, CUSTOMERS.table)
            .withColumn("_n", F.row_number().over(newest)).where("_n = 1").drop("_n"))
