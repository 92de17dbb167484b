"""Taking a published ``raw.orders`` batch out of the history and putting it back:
:func:`quarantine_batch` (``clv quarantine-batch``) and :func:`restore_batch`
(``clv restore-batch``)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clv.data import warehouse
from clv.data.catalog import QUARANTINED_ORDERS
from clv.ingest.files import IngestError
from clv.ingest.orders import RAW_ORDERS, _published_ids

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("clv.ingest")  # the package's logger, as before the split



@dataclass(frozen=True)
class QuarantineResult:
    """What :func:`quarantine_batch` did with one ``raw.orders`` batch."""

    as_of_date: dt.date
    rows_quarantined: int
    rows_kept: int
    already_quarantined: bool

    def __str__(self) -> str:
        done = "was already" if self.already_quarantined else "is now"
        return (f"{RAW_ORDERS} batch as_of_date={self.as_of_date} {done} quarantined: "
                f"{self.rows_quarantined} rows in {QUARANTINED_ORDERS}, {self.rows_kept} "
                f"rows of other batches kept in {RAW_ORDERS}")


def quarantine_batch(spark: SparkSession, as_of_date: dt.date, reason: str, run_id: str
                     ) -> QuarantineResult:
    """Take a published ``raw.orders`` batch out of the history (``clv quarantine-batch``).

    A batch is a ``raw.orders`` partition: the ``as_of_date`` an import printed. Its rows
    go to ``quality.quarantined_orders`` (same partition, with ``reason`` and
    ``quarantine_run_id``), then the batch leaves ``raw.orders`` in one atomic step, so
    the next DAG run validates and learns from the other batches. Nothing else changes
    (the batch's import rejects stay in ``quality.rejected_orders``). Idempotent: a
    quarantined batch is left as it is; a run killed between the two steps is completed
    by running it again. To bring the orders back as they were: :func:`restore_batch`;
    corrected: fix the file and import it again.

    Raises:
        IngestError: ``reason`` is empty, or ``raw.orders`` has no such batch (the
            message lists the batches it has).
    """
    if not reason.strip():
        raise IngestError("quarantine-batch: give a --reason (it is kept with the rows)")
    batches = warehouse.list_partitions(RAW_ORDERS)
    if as_of_date not in batches:
        if as_of_date in warehouse.list_partitions(QUARANTINED_ORDERS):
            return QuarantineResult(as_of_date, warehouse.row_count(
                QUARANTINED_ORDERS, as_of_date) or 0, _rows_kept(batches), True)
        raise IngestError(f"{RAW_ORDERS} has no batch as_of_date={as_of_date}; its batches: "
                          f"{[d.isoformat() for d in batches] or 'none'}")
    n = _move_to_quarantine(spark, as_of_date, reason, run_id)
    warehouse.drop_partition(RAW_ORDERS, as_of_date)
    result = QuarantineResult(as_of_date, n, _rows_kept(warehouse.list_partitions(RAW_ORDERS)),
                              False)
    log.warning("%s (reason: %s; run_id=%s)", result, reason, run_id)
    return result


def _move_to_quarantine(spark: SparkSession, as_of_date: dt.date, reason: str,
                        run_id: str) -> int:
    """Publish the batch's rows to the quarantine table; their count, checked."""
    from pyspark.sql import functions as F

    rows = warehouse.read_table(spark, RAW_ORDERS, as_of_date).drop(warehouse.PARTITION_COLUMN)
    expected = warehouse.row_count(RAW_ORDERS, as_of_date)
    warehouse.write_partition(rows.withColumn("reason", F.lit(reason))
                              .withColumn("quarantine_run_id", F.lit(run_id)),
                              QUARANTINED_ORDERS, as_of_date)
    n = warehouse.row_count(QUARANTINED_ORDERS, as_of_date)
    if n != expected:  # never drop a batch whose copy is not whole
        raise IngestError(f"{QUARANTINED_ORDERS} as_of_date={as_of_date}: {n} rows written, "
                          f"the batch has {expected}; {RAW_ORDERS} left unchanged")
    return n


def _rows_kept(batches: list[dt.date]) -> int:
    return sum(warehouse.row_count(RAW_ORDERS, d) or 0 for d in batches)


#: Columns ``quarantine_batch`` adds to a batch's rows; ``restore_batch`` removes them.
_QUARANTINE_COLUMNS = ("reason", "quarantine_run_id")


@dataclass(frozen=True)
class RestoreResult:
    """What :func:`restore_batch` did with one quarantined batch."""

    as_of_date: dt.date
    rows_restored: int
    already_restored: bool

    def __str__(self) -> str:
        done = "was already" if self.already_restored else "is now"
        return (f"{RAW_ORDERS} batch as_of_date={self.as_of_date} {done} restored from "
                f"{QUARANTINED_ORDERS}: {self.rows_restored} rows")


def restore_batch(spark: SparkSession, as_of_date: dt.date) -> RestoreResult:
    """Put a batch that :func:`quarantine_batch` took out back into ``raw.orders``
    (``clv restore-batch``): its rows, without the quarantine's columns, are published as
    the ``as_of_date`` partition, checked whole, then the quarantine partition is
    dropped. Idempotent: a restored batch is left as it is; a run killed between the two
    steps is completed by running it again. Nothing else changes.

    Raises:
        IngestError: no such quarantined batch (the message lists those there are);
            ``raw.orders`` has a different batch of that date (imported again after the
            quarantine: restoring would replace it); or one of its order ids was
            published since by another batch (the ids are named).
    """
    quarantined = warehouse.list_partitions(QUARANTINED_ORDERS)
    published = as_of_date in warehouse.list_partitions(RAW_ORDERS)
    if as_of_date not in quarantined:
        if published:
            return RestoreResult(as_of_date, warehouse.row_count(RAW_ORDERS, as_of_date)
                                 or 0, True)
        raise IngestError(f"{QUARANTINED_ORDERS} has no batch as_of_date={as_of_date}; its "
                          f"batches: {[d.isoformat() for d in quarantined] or 'none'}")
    rows = (warehouse.read_table(spark, QUARANTINED_ORDERS, as_of_date)
            .drop(warehouse.PARTITION_COLUMN, *_QUARANTINE_COLUMNS))
    expected = warehouse.row_count(QUARANTINED_ORDERS, as_of_date)
    if published:  # a run killed after the copy, or a new import of that date?
        _check_same_batch(spark, rows, as_of_date)
    else:
        _check_ids_unpublished(spark, rows, as_of_date)
        warehouse.write_partition(rows, RAW_ORDERS, as_of_date)
    n = warehouse.row_count(RAW_ORDERS, as_of_date)
    if n != expected:  # never drop the quarantined copy of a batch not back whole
        raise IngestError(f"{RAW_ORDERS} as_of_date={as_of_date}: {n} rows written, the "
                          f"quarantined batch has {expected}; {QUARANTINED_ORDERS} kept")
    warehouse.drop_partition(QUARANTINED_ORDERS, as_of_date)
    result = RestoreResult(as_of_date, n, False)
    log.warning("%s", result)
    return result


def _check_same_batch(spark: SparkSession, rows: DataFrame, as_of_date: dt.date) -> None:
    """Refuse when the published batch of ``as_of_date`` is not the quarantined one."""
    published = warehouse.read_table(spark, RAW_ORDERS, as_of_date).select("order_id")
    differ = published.exceptAll(rows.select("order_id")).union(
        rows.select("order_id").exceptAll(published)).limit(5).collect()
    if differ:
        raise IngestError(
            f"{RAW_ORDERS} has another batch as_of_date={as_of_date} (imported again after "
            f"the quarantine?): restoring would replace it; order ids that differ: "
            f"{[r.order_id for r in differ]}. The quarantined rows stay in {QUARANTINED_ORDERS}")


def _check_ids_unpublished(spark: SparkSession, rows: DataFrame, as_of_date: dt.date) -> None:
    """Refuse a batch whose order ids another batch published since (the suite's and
    the import's rule: an order id appears once in the history)."""
    others = _published_ids(spark, as_of_date)
    if others is None:
        return
    clash = rows.select("order_id").join(others, "order_id").distinct().limit(5).collect()
    if clash:
        raise IngestError(
            f"restore-batch as_of_date={as_of_date}: order ids published since by another "
            f"{RAW_ORDERS} batch: {sorted(r.order_id for r in clash)}; nothing restored")
