"""One command takes a published raw.orders batch out of the history (issue #20): a batch
that breaks the raw_orders suite used to fail every later DAG run until someone reloaded
it by hand. ``clv quarantine-batch`` moves its rows to quality.quarantined_orders with the
reason, atomically and idempotently; nothing else in the warehouse changes."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from clv import cli, ingest, pipeline, quality, warehouse

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
