"""One command takes a published raw.orders batch out of the history (issue #20): a batch
that breaks the raw_orders suite used to fail every later DAG run until someone reloaded
it by hand. ``clv quarantine-batch`` moves its rows to quality.quarantined_orders with the
reason, atomically and idempotently; nothing else in the warehouse changes."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from clv import ingest, pipeline, quality
from clv.data import warehouse
from clv.ops import cli

BATCH_A, BATCH_B = dt.date(2020, 1, 1), dt.date(2020, 2, 1)
COLUMNS = ("order_id string, customer_id string, order_ts string, amount string, "
           "quantity string, currency string")


def _files(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path -> SHA-256 of every published file under the warehouse (staging
    folders, locks and the analysts' catalog aside)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "_staging" not in p.parts and p.name != warehouse.CATALOG_FILE
            and not str(p.relative_to(root)).startswith(skip)}


@pytest.fixture
def two_batches(spark, clv_home):
    """Batch A (3 good orders) and batch B (2 good, 1 rejected by the import), then B
    republished with an amount the suite refuses, as a batch loaded before the import
    enforced the suite's bounds would be."""
    a = spark.createDataFrame([("a1", "c1", "2019-12-01", "10", "1", "USD"),
                               ("a2", "c2", "2019-12-02", "20", "1", "USD"),
                               ("a3", "c1", "2019-12-20", "30", "1", "USD")], COLUMNS)
    ingest.load_orders(spark, a, BATCH_A, "load-a")
    b = spark.createDataFrame([("b1", "c3", "2020-01-05", "40", "1", "USD"),
                               ("b2", "c1", "2020-01-06", "50", "1", "USD"),
                               ("b3", "NULL", "2020-01-07", "60", "1", "USD")], COLUMNS)
    ingest.load_orders(spark, b, BATCH_B, "load-b", max_rejected_share=0.5)
    published = warehouse.read_table(spark, "raw.orders", BATCH_B).drop("as_of_date")
    bad = published.limit(1).selectExpr("'b4' as order_id", "customer_id", "order_ts",
                                        "500000.0 as amount", "quantity", "currency")
    warehouse.write_partition(published.unionByName(bad).toPandas().pipe(spark.createDataFrame),
                              "raw.orders", BATCH_B)
    return clv_home.warehouse_root


def test_a_bad_batch_is_quarantined_by_one_command_and_the_next_run_proceeds(
        spark, two_batches, capsys):
    root = two_batches
    with pytest.raises(quality.DataQualityError,
                       match=r"batch\(es\) as_of_date=2020-02-01.*clv quarantine-batch"):
        pipeline.validate_raw(dt.date(2020, 2, 1), 90)
    raw_before = warehouse.read_table(spark, "raw.orders").toPandas()
    batch_b = raw_before[raw_before["as_of_date"] == BATCH_B].drop(columns="as_of_date")
    moving = ("raw/orders/as_of_date=2020-02-01", "quality/quarantined_orders")
    others = _files(root, skip=moving)

    assert cli.main(["quarantine-batch", "--as-of-date", "2020-02-01",
                     "--reason", "amounts in cents", "--run-id", "q-1"]) == 0
    assert "is now quarantined: 3 rows" in capsys.readouterr().out

    assert warehouse.list_partitions("raw.orders") == [BATCH_A]
    kept = warehouse.read_table(spark, "raw.orders").toPandas()
    moved = warehouse.read_partition_pandas("quality.quarantined_orders", BATCH_B)
    assert len(raw_before) == len(kept) + len(moved)  # rows in = kept + quarantined
    assert sorted(kept["order_id"]) == ["a1", "a2", "a3"]
    key = ["order_id", "customer_id", "amount", "quantity", "currency"]
    assert (moved[key].sort_values("order_id").values.tolist()
            == batch_b[key].sort_values("order_id").values.tolist())
    assert set(moved["reason"]) == {"amounts in cents"}
    assert set(moved["quarantine_run_id"]) == {"q-1"}
    # nothing else changed: batch A, both batches' import rejects (b3 stays rejected)
    assert _files(root, skip=moving) == others
    rejected = warehouse.read_partition_pandas("quality.rejected_orders", BATCH_B)
    assert rejected["order_id"].tolist() == ["b3"]
    # the analysts see the quarantine table
    import duckdb

    con = duckdb.connect(str(warehouse.catalog_path()), read_only=True)
    assert con.execute("select count(*) from quality.quarantined_orders").fetchone()[0] == 3
    con.close()

    # the next run validates the other batches
    assert pipeline.validate_raw(dt.date(2020, 2, 1), 90)["rows"] == 3

    # idempotent: a second run changes nothing and says so
    everything = _files(root)
    assert cli.main(["quarantine-batch", "--as-of-date", "2020-02-01",
                     "--reason", "again", "--run-id", "q-2"]) == 0
    assert "was already quarantined: 3 rows" in capsys.readouterr().out
    assert _files(root) == everything


def test_a_run_killed_between_copy_and_drop_is_completed_by_the_next(
        spark, two_batches, monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(warehouse, "drop_partition", killed)
        with pytest.raises(KeyboardInterrupt):
            ingest.quarantine_batch(spark, BATCH_B, "bad", "q-1")
    assert warehouse.list_partitions("raw.orders") == [BATCH_A, BATCH_B]  # still published
    result = ingest.quarantine_batch(spark, BATCH_B, "bad", "q-2")
    assert (result.rows_quarantined, result.rows_kept, result.already_quarantined) == \
        (3, 3, False)
    moved = warehouse.read_partition_pandas("quality.quarantined_orders", BATCH_B)
    assert sorted(moved["order_id"]) == ["b1", "b2", "b4"]  # once, not twice
    assert warehouse.list_partitions("raw.orders") == [BATCH_A]


def test_unknown_batch_and_missing_reason_are_refused(spark, two_batches):
    with pytest.raises(ingest.IngestError, match=r"no batch as_of_date=2020-03-01.*"
                                                 r"'2020-01-01', '2020-02-01'"):
        ingest.quarantine_batch(spark, dt.date(2020, 3, 1), "x", "q")
    with pytest.raises(ingest.IngestError, match="--reason"):
        ingest.quarantine_batch(spark, BATCH_B, "  ", "q")
    assert warehouse.list_partitions("raw.orders") == [BATCH_A, BATCH_B]


def _raw_rows(spark, as_of_date: dt.date) -> list[tuple]:
    frame = warehouse.read_table(spark, "raw.orders", as_of_date).toPandas()
    return sorted(map(tuple, frame.astype(str).values.tolist()))


def test_restore_batch_puts_a_quarantined_batch_back_as_it_was(spark, two_batches, capsys):
    """The inverse of quarantine-batch: the rows come back to raw.orders unchanged, the
    quarantine partition goes, nothing else changes; a second run changes nothing."""
    root = two_batches
    before = _raw_rows(spark, BATCH_B)
    untouched = ("raw/orders/as_of_date=2020-02-01", "quality/quarantined_orders")
    others = _files(root, skip=untouched)
    ingest.quarantine_batch(spark, BATCH_B, "amounts in cents", "q-1")

    assert cli.main(["restore-batch", "--as-of-date", "2020-02-01"]) == 0
    assert "is now restored from quality.quarantined_orders: 3 rows" in capsys.readouterr().out
    assert warehouse.list_partitions("raw.orders") == [BATCH_A, BATCH_B]
    assert _raw_rows(spark, BATCH_B) == before  # every column of every row, as it was
    assert warehouse.list_partitions("quality.quarantined_orders") == []
    assert _files(root, skip=untouched) == others

    everything = _files(root)
    assert cli.main(["restore-batch", "--as-of-date", "2020-02-01"]) == 0
    assert "was already restored from quality.quarantined_orders: 3 rows" \
        in capsys.readouterr().out
    assert _files(root) == everything
    # and it can be quarantined again
    assert ingest.quarantine_batch(spark, BATCH_B, "again", "q-2").rows_quarantined == 3


def test_a_restore_killed_between_copy_and_drop_is_completed_by_the_next(
        spark, two_batches, monkeypatch):
    ingest.quarantine_batch(spark, BATCH_B, "bad", "q-1")
    with monkeypatch.context() as m:
        m.setattr(warehouse, "drop_partition",
                  lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
        with pytest.raises(KeyboardInterrupt):
            ingest.restore_batch(spark, BATCH_B)
    assert warehouse.list_partitions("quality.quarantined_orders") == [BATCH_B]
    result = ingest.restore_batch(spark, BATCH_B)
    assert (result.rows_restored, result.already_restored) == (3, False)
    assert sorted(warehouse.read_partition_pandas("raw.orders", BATCH_B)["order_id"]) \
        == ["b1", "b2", "b4"]  # once, not twice
    assert warehouse.list_partitions("quality.quarantined_orders") == []


def test_restore_refuses_to_replace_a_new_import_or_duplicate_order_ids(spark, two_batches):
    ingest.quarantine_batch(spark, BATCH_B, "bad", "q-1")
    with pytest.raises(ingest.IngestError, match=r"no batch as_of_date=2020-03-01.*'2020-02-01'"):
        ingest.restore_batch(spark, dt.date(2020, 3, 1))
    # the corrected file, imported again under the same date: never replaced by the old rows
    fixed = spark.createDataFrame([("b1", "c3", "2020-01-05", "40", "1", "USD"),
                                   ("b5", "c1", "2020-01-06", "5", "1", "USD")], COLUMNS)
    ingest.load_orders(spark, fixed, BATCH_B, "load-b2")
    with pytest.raises(ingest.IngestError, match=r"another batch as_of_date=2020-02-01.*'b"):
        ingest.restore_batch(spark, BATCH_B)
    assert sorted(warehouse.read_partition_pandas("raw.orders", BATCH_B)["order_id"]) \
        == ["b1", "b5"]
    assert warehouse.list_partitions("quality.quarantined_orders") == [BATCH_B]
    # the orders imported again under another date: restoring would publish b1 twice
    warehouse.drop_partition("raw.orders", BATCH_B)
    ingest.load_orders(spark, fixed, dt.date(2020, 2, 2), "load-b3")
    with pytest.raises(ingest.IngestError, match=r"published since.*\['b1'\]"):
        ingest.restore_batch(spark, BATCH_B)
    assert warehouse.list_partitions("raw.orders") == [BATCH_A, dt.date(2020, 2, 2)]
    assert warehouse.list_partitions("quality.quarantined_orders") == [BATCH_B]
