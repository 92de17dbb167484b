"""How the tasks reach the warehouse: the Spark session, reading whole tables into
pandas, and validating a frame with its suite before publishing it as a partition."""

from __future__ import annotations

import datetime as dt

from clv.data import warehouse
from clv.pipeline.tables import CAMPAIGN_RESPONSES

#: Steps that run Spark: their DAG tasks must use the "spark" pool (policy-tested).
SPARK_STEPS = {"validate_raw", "build_features", "validate_features", "score", "segment",
               "allocate", "evaluate", "measure_outcomes", "explain", "churn_alerts",
               "backtest_scores", "recommend"}


def _spark():
    from clv.data.spark import get_spark

    return get_spark("clv-pipeline")


def _stamp(frame, run_id: str):
    """Add the run id to a pandas frame (as_of_date is the partition)."""
    frame = frame.copy()
    frame["run_id"] = run_id
    return frame


def _path(p) -> str | None:
    return None if p is None else str(p)


def _validate_and_publish(frame, suite: str, table: str, as_of_date: dt.date,
                          run_id: str, compare_count: bool = True,
                          rows=None) -> str | None:
    """Validate a Spark frame with its suite (row count vs the previous partition
    included unless ``compare_count`` is False: tables whose size is meant to swing,
    like the churn alerts), then publish it as the as-of date's partition. Returns the
    Data Docs page. ``rows``: the pandas frame the Spark one was made from, if it was."""
    from clv import quality

    previous = quality.previous_row_count(table, as_of_date) if compare_count else None
    report = quality.assert_valid(frame, suite, table, list(warehouse.get_table(table).key),
                                  previous_count=previous, run_name=run_id, rows=rows)
    warehouse.write_partition(frame, table, as_of_date)
    return _path(report.data_docs_page)


def _publish_pandas(frame, suite: str, table: str, as_of_date: dt.date,
                    run_id: str, compare_count: bool = True) -> str | None:
    """:func:`_validate_and_publish` of a pandas frame (large ones reach Spark through
    Parquet, not the driver: :func:`clv.data.warehouse.spark_frame`)."""
    with warehouse.spark_frame(_spark(), frame) as df:
        return _validate_and_publish(df, suite, table, as_of_date, run_id, compare_count,
                                     rows=frame)


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


def _campaign_responses():
    """Every loaded campaign response (pandas), or None when the table is empty."""
    if not warehouse.list_partitions(CAMPAIGN_RESPONSES):
        return None
    frames = [warehouse.read_partition_pandas(CAMPAIGN_RESPONSES, d)
              for d in warehouse.list_partitions(CAMPAIGN_RESPONSES)]
    import pandas as pd

    return pd.concat(frames, ignore_index=True).drop(columns=warehouse.PARTITION_COLUMN)


def _read_all_pandas(table: str, before: dt.date | None = None):
    """Every partition of a table (strictly before ``before`` when given), or None."""
    import pandas as pd

    dates = [d for d in warehouse.list_partitions(table) if before is None or d < before]
    if not dates:
        return None
    return pd.concat([warehouse.read_partition_pandas(table, d) for d in dates],
                     ignore_index=True)


def _partition_or_none(table: str, as_of_date: dt.date, columns: list[str]):
    if as_of_date not in warehouse.list_partitions(table):
        return None
    return warehouse.read_partition_pandas(table, as_of_date, columns=columns)
