"""The warehouse: the only module that knows where tables live and how they are written.

Embedded layout (the default backend)::

    warehouse/<schema>/<table>/as_of_date=YYYY-MM-DD/part-*.parquet
    warehouse/<schema>/<table>/_staging/...      (in-flight writes, ignored by readers)
    warehouse/warehouse.duckdb                   (one view per table, for analysts)

Every write replaces exactly one ``as_of_date`` partition and is idempotent and
atomic: Spark writes the new partition into ``_staging/``; once Spark's commit
has finished, the staged folder is exchanged with the published one in a single
``renameat2(RENAME_EXCHANGE)`` system call, so a reader sees either the old or
the new partition, never a mix. A writer killed at any point before the swap
leaves the published partition untouched; its leftovers are removed by the
next write of that partition. Writers of one partition are serialised by a
file lock.

A ``postgresql://`` ``CLV_WAREHOUSE_URI`` selects the PostgreSQL backend
(:mod:`clv.warehouse_pg`: Spark JDBC, staging table + one-transaction publish);
the public functions below dispatch to it and keep the same table names.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import errno
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv.config import Settings, load_settings, private_dir

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

PARTITION_COLUMN = "as_of_date"
CATALOG_FILE = "warehouse.duckdb"


@dataclass(frozen=True)
class Table:
    """A warehouse table: its qualified name, primary key within a partition, and purpose."""

    schema: str
    name: str
    key: tuple[str, ...]
    description: str

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


_TABLE_LIST = [
    Table("raw", "orders", ("order_id",),
          "Order history. Partitions are load batches; their union is the history."),
    Table("quality", "rejected_orders", ("order_id", "rule"),
          "Input rows that were not accepted, with the rule that rejected them."),
    Table("quality", "failed_load_rejects", ("run_id", "order_id", "rule"),
          "Rejected rows of a refused import (too many rejects): nothing of it was "
          "published, and the published batch's quarantine stays in rejected_orders."),
    Table("quality", "quarantined_orders", ("order_id",),
          "Rows of a published raw.orders batch taken out of the history by "
          "`clv quarantine-batch` (partition = the batch), with the reason."),
    Table("features", "customer_features", ("customer_id",),
          "Customer features at the as-of date, from orders strictly before it."),
    Table("features", "training_examples", ("cutoff_date", "customer_id"),
          "Features at earlier cutoffs joined with the labels that followed each cutoff."),
    Table("marts", "customer_scores", ("customer_id",),
          "Predicted spend and churn probability per customer over the horizon."),
    Table("marts", "customer_segments", ("customer_id",),
          "Value tier x churn risk segment per customer."),
    Table("marts", "budget_allocation", ("customer_id",),
          "The marketing action chosen per customer (or none) under the budget."),
    Table("marts", "model_metrics", ("model_name", "model_version", "metric", "cutoff_date"),
          "Holdout metrics per model version and baseline, metric and cutoff."),
    Table("raw", "campaign_responses", ("campaign_id", "customer_id"),
          "Randomised campaign outcomes (treatment / control). Partitions are load batches."),
    Table("marts", "segment_summary", ("grouping", "segment"),
          "Per value x risk segment and per behavioural cluster: size, value, churn risk."),
    Table("marts", "budget_summary", ("segment", "action"),
          "The allocation per segment and action: customers, spend, expected increments."),
    Table("marts", "allocation_frontier", ("clv_weight",),
          "Best plan's short-term revenue vs lifetime value for each weight on CLV."),
    Table("marts", "action_effects", ("action", "cell"),
          "Per action and cell: the expected absolute effects and the evidence behind them."),
    Table("marts", "campaign_plan", ("plan_id", "customer_id"),
          "The plan's selected customers, each treated or held out at random (per action)."),
    Table("marts", "campaign_sends", ("plan_id",),
          "When an operator sent a plan (partition = the plan's as-of date)."),
    Table("marts", "campaign_outcomes", ("plan_id", "action", "segment", "metric"),
          "Treated vs holdout outcomes of earlier plans, with 95% intervals, vs expected."),
    Table("marts", "policy_evaluation", ("policy", "estimator"),
          "Off-policy (IPS, doubly robust) value of the plan and benchmark policies."),
    Table("raw", "contact_preferences", ("customer_id", "channel", "updated_at"),
          "Opt-outs and opt-ins per customer and channel ('all' = every channel). "
          "Partitions are load batches; the latest row per customer and channel wins."),
    Table("quality", "rejected_contact_preferences", ("source", "row"),
          "Contact preference rows that were not accepted, with the rule they broke."),
    Table("marts", "contact_policy", ("plan_id",),
          "The plan with and without the contact policy: value, spend, and who each rule "
          "(opt-out, frequency cap, min net value) excluded."),
    Table("marts", "score_reasons", ("customer_id", "rank"),
          "Top three feature contributions (SHAP) to each customer's predicted CLV."),
    Table("marts", "churn_alerts", ("customer_id",),
          "Customers newly at churn risk since the previous scores, by value at risk."),
    Table("marts", "score_backtest", ("scored_as_of_date", "clv_model_version"),
          "Earlier scores whose horizon has passed vs the spend realised in it."),
    Table("marts", "recommendations", ("customer_id", "rank"),
          "Top 10 products per customer (customer_id string, product_id string, score double, "
          "rank int, method string: als, or the better baseline when ALS did not beat both "
          "on NDCG@10; see clv.recommend.RECOMMENDATION_SCHEMA), trained on lines before "
          "the as-of date, recent purchases excluded when the shop asks for it."),
]
TABLES: dict[str, Table] = {t.qualified_name: t for t in _TABLE_LIST}


class WarehouseError(RuntimeError):
    """A table is missing, unknown or cannot be written."""


def get_table(name: str) -> Table:
    """Look a table up by its qualified name (``schema.table``)."""
    try:
        return TABLES[name]
    except KeyError:
        raise WarehouseError(
            f"unknown table {name!r}; known tables: {', '.join(sorted(TABLES))}"
        ) from None


def _pg(settings: Settings | None) -> Settings | None:
    """The settings when the warehouse is PostgreSQL (dispatch to clv.warehouse_pg), else None."""
    s = settings or load_settings()
    return s if s.warehouse_backend == "postgresql" else None


def _root(settings: Settings | None) -> Path:
    return (settings or load_settings()).warehouse_root


def table_dir(name: str, settings: Settings | None = None) -> Path:
    """Folder that holds every partition of a table."""
    t = get_table(name)
    return _root(settings) / t.schema / t.name


def partition_dir(name: str, as_of_date: dt.date, settings: Settings | None = None) -> Path:
    """Folder of one published ``as_of_date`` partition."""
    return table_dir(name, settings) / f"{PARTITION_COLUMN}={as_of_date.isoformat()}"


def catalog_path(settings: Settings | None = None) -> Path:
    """The analysts' DuckDB file (PostgreSQL backend: the database URI, password hidden)."""
    if (pg := _pg(settings)) is not None:
        from clv import warehouse_pg

        return warehouse_pg.redact(pg.warehouse_uri)  # type: ignore[return-value]
    return _root(settings) / CATALOG_FILE


def list_partitions(name: str, settings: Settings | None = None) -> list[dt.date]:
    """Published partitions of a table, oldest first."""
    if (pg := _pg(settings)) is not None:
        from clv import warehouse_pg

        return warehouse_pg.list_partitions(get_table(name), pg)
    base = table_dir(name, settings)
    if not base.is_dir():
        return []
    prefix = f"{PARTITION_COLUMN}="
    return sorted(
        dt.date.fromisoformat(p.name[len(prefix):])
        for p in base.iterdir()
        if p.is_dir() and p.name.startswith(prefix) and (p / "_SUCCESS").exists()
    )


def row_count(name: str, as_of_date: dt.date, settings: Settings | None = None) -> int | None:
    """Rows of a published partition without a Spark job (None if it does not exist).

    Embedded: from the Parquet footers; PostgreSQL: from ``clv_meta.partitions``.
    """
    if (pg := _pg(settings)) is not None:
        from clv import warehouse_pg

        return warehouse_pg.row_count(get_table(name), as_of_date, pg)
    import pyarrow.parquet as pq

    part = partition_dir(name, as_of_date, settings)
    if not (part / "_SUCCESS").exists():
        return None
    return sum(pq.read_metadata(f).num_rows for f in sorted(part.glob("*.parquet")))


# --------------------------------------------------------------------------- writes

def write_partition(
    df: DataFrame, name: str, as_of_date: dt.date, settings: Settings | None = None
) -> Path:
    """Replace the ``as_of_date`` partition of ``name`` with ``df``, atomically.

    ``df`` may carry an ``as_of_date`` column; it must then hold only ``as_of_date``.
    Returns the published partition folder.
    """
    table = get_table(name)
    missing = [c for c in table.key if c not in df.columns]
    if missing:
        raise WarehouseError(f"{name}: key column(s) {missing} missing from the data to write")
    if PARTITION_COLUMN in df.columns:
        df = df.drop(PARTITION_COLUMN)
    if (pg := _pg(settings)) is not None:
        from clv import warehouse_pg

        return warehouse_pg.write_partition(df, table, as_of_date, pg)  # type: ignore[return-value]
    final = partition_dir(name, as_of_date, settings)
    private_dir(_root(settings))
    staging = final.parent / "_staging"
    staging.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(staging / f"{final.name}.lock"):
        _remove_leftovers(staging, final.name)
        staged = staging / f"{final.name}.{uuid.uuid4().hex}"
        df.write.mode("error").parquet(str(staged))  # "errorifexists": not over Connect
        if not (staged / "_SUCCESS").exists():
            raise WarehouseError(f"{name}: Spark did not commit {staged}")
        _publish(staged, final)
    log.info("published %s partition %s -> %s", name, as_of_date, final)
    return final


def drop_partition(name: str, as_of_date: dt.date, settings: Settings | None = None) -> bool:
    """Remove the published ``as_of_date`` partition of ``name`` atomically: readers see
    it whole or not at all. True when it existed, False when there was none."""
    table = get_table(name)
    if (pg := _pg(settings)) is not None:
        from clv import warehouse_pg

        return warehouse_pg.drop_partition(table, as_of_date, pg)
    final = partition_dir(name, as_of_date, settings)
    staging = final.parent / "_staging"
    staging.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(staging / f"{final.name}.lock"):
        if not final.exists():
            return False
        trash = staging / f"{final.name}.{uuid.uuid4().hex}.dropped"
        os.rename(final, trash)  # one rename: the partition disappears whole
        shutil.rmtree(trash)  # a kill here leaves it to the next write's _remove_leftovers
    log.info("dropped %s partition %s", name, as_of_date)
    return True


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if missing) for the block."""
    with open(lock_file, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_leftovers(staging: Path, partition_name: str) -> None:
    """Remove staged folders of this partition left by writers that were killed."""
    for leftover in staging.glob(f"{partition_name}.*"):
        if leftover.is_dir():
            log.warning("removing leftover of an interrupted write: %s", leftover)
            shutil.rmtree(leftover, ignore_errors=True)


def _publish(staged: Path, final: Path) -> None:
    if not final.exists():
        os.rename(staged, final)  # atomic: the partition appears whole
        return
    if _exchange(staged, final):
        shutil.rmtree(staged)  # now holds the previous version
        return
    # No renameat2 (not Linux, or a filesystem without it): two renames, with a
    # window of microseconds in which the partition is absent, never partial.
    trash = staged.with_name(staged.name + ".old")
    os.rename(final, trash)
    os.rename(staged, final)
    shutil.rmtree(trash)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, f"renameat2 exchange failed: {os.strerror(err)}", str(a))


# --------------------------------------------------------------------------- reads

def read_table(
    spark: SparkSession,
    name: str,
    as_of_date: dt.date | None = None,
    settings: Settings | None = None,
) -> DataFrame:
    """Read one partition (with its ``as_of_date`` as a column) or every partition."""
    from pyspark.sql import functions as F

    if (pg := _pg(settings)) is not None:
        from clv import warehouse_pg

        return warehouse_pg.read_table(spark, get_table(name), as_of_date, pg)
    base = table_dir(name, settings)
    if as_of_date is not None:
        part = partition_dir(name, as_of_date, settings)
        if not (part / "_SUCCESS").exists():
            raise WarehouseError(
                f"{name}: partition {PARTITION_COLUMN}={as_of_date} does not exist under {base}"
            )
        return spark.read.parquet(str(part)).withColumn(
            PARTITION_COLUMN, F.lit(as_of_date).cast("date")
        )
    partitions = list_partitions(name, settings)
    if not partitions:
        raise WarehouseError(f"{name}: table is empty or missing (looked in {base})")
    # Only committed partitions (with _SUCCESS) are listed: never a half-written one.
    paths = [str(partition_dir(name, d, settings)) for d in partitions]
    return (
        spark.read.option("basePath", str(base))
        .parquet(*paths)
        .withColumn(PARTITION_COLUMN, F.col(PARTITION_COLUMN).cast("date"))
    )


def read_partition_pandas(
    name: str, as_of_date: dt.date, settings: Settings | None = None,
    columns: Sequence[str] | None = None, where: Mapping[str, Any] | None = None,
    order_by: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read one customer-level partition into pandas (no JVM needed).

    ``columns``: only these (and the partition column); ``where``: only the rows
    whose columns equal these values. Worth it at scale: the segments of 2.57M
    customers take 0.76 GiB in pandas with their text columns, and the training
    examples' two splits read and sorted together peaked at 6.5 GiB. ``order_by``:
    rows sorted by these columns, ascending (strings by code point, as Python sorts).
    """
    import pyarrow.parquet as pq

    if (pg := _pg(settings)) is not None:
        from clv import warehouse_pg

        return warehouse_pg.read_partition_pandas(get_table(name), as_of_date, pg, columns,
                                                  where, order_by)
    part = partition_dir(name, as_of_date, settings)
    if not (part / "_SUCCESS").exists():
        raise WarehouseError(
            f"{name}: partition {PARTITION_COLUMN}={as_of_date} does not exist ({part})"
        )
    if columns is not None or where or order_by:
        present = pq.read_schema(next(part.glob("*.parquet"))).names
        missing = [c for c in [*(columns or []), *(where or {}), *(order_by or [])]
                   if c not in present]
        if missing:
            raise WarehouseError(f"{name}: no column(s) {missing} in partition "
                                 f"{PARTITION_COLUMN}={as_of_date} (has {present})")
    table = pq.read_table(str(part), columns=None if columns is None else list(columns),
                          filters=[(k, "=", v) for k, v in where.items()] if where else None)
    if order_by:  # sorted in Arrow, then converted column by column: no third copy
        table = table.sort_by([(c, "ascending") for c in order_by])
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    frame[PARTITION_COLUMN] = as_of_date
    return frame


# --------------------------------------------------------------------------- pandas -> Spark

#: Up to this many rows a pandas frame goes to Spark as a local relation
#: (``createDataFrame``); above it through a Parquet file (:func:`spark_frame`).
LOCAL_RELATION_MAX_ROWS = 100_000


@contextmanager
def spark_frame(spark: SparkSession, frame: pd.DataFrame, settings: Settings | None = None
                ) -> Iterator[DataFrame]:
    """A pandas frame as a Spark DataFrame, valid inside the ``with`` block.

    Small frames: ``createDataFrame``. Larger ones are written by pyarrow to a
    scratch Parquet folder (``<state>/spark/handoff``) that Spark reads, so the rows
    stream through the executors instead of being held whole in the driver: over
    Spark Connect the 2.57M customer segments of the 10M-order bench ran the
    server's 4 GiB heap out ("Java heap space") as a local relation. Same column
    types as ``createDataFrame`` gives (NaN -> null, int64 -> bigint, date objects ->
    date); frames with datetime columns keep the local relation (Parquet would
    make them timestamp_ntz). The folder is removed when the block ends. On a
    cluster, the state folder must be on storage the executors see, like the
    warehouse.
    """
    import pandas as pd

    has_datetimes = any(pd.api.types.is_datetime64_any_dtype(t) for t in frame.dtypes)
    if len(frame) <= LOCAL_RELATION_MAX_ROWS or has_datetimes:
        yield spark.createDataFrame(frame)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = private_dir((settings or load_settings()).state_dir) / "spark" / "handoff" \
        / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, str(folder / "part-00000.parquet"), coerce_timestamps="us")
        del table
        yield spark.read.parquet(str(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- catalog

def refresh_catalog(settings: Settings | None = None) -> Path:
    """(Re)build the analysts' DuckDB file: one view per table that has data.

    The views glob the partition folders at query time, so new partitions show up
    without a refresh; a refresh is needed only when a new table appears. The file
    is built aside and swapped in, so an analyst never opens a half-built catalog.
    """
    import duckdb

    if (pg := _pg(settings)) is not None:  # the database is the catalog
        from clv import warehouse_pg

        return warehouse_pg.refresh_catalog(_TABLE_LIST, pg)  # type: ignore[return-value]
    target = catalog_path(settings)
    private_dir(target.parent)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    con = duckdb.connect(str(tmp))
    try:
        for table in _TABLE_LIST:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
            if not list_partitions(table.qualified_name, settings):
                continue
            pattern = table_dir(table.qualified_name, settings) / f"{PARTITION_COLUMN}=*/*.parquet"
            literal = str(pattern).replace("'", "''")
            con.execute(
                f"CREATE OR REPLACE VIEW {table.qualified_name} AS SELECT * FROM read_parquet("
                f"'{literal}', hive_partitioning = true, union_by_name = true)"
            )
            comment = table.description.replace("'", "''")
            con.execute(f"COMMENT ON VIEW {table.qualified_name} IS '{comment}'")
    finally:
        con.close()
    os.replace(tmp, target)
    return target
