"""Loading orders: the real CDNOW file, a user's CSV with a mapping, and quarantine."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from clv import ingest, warehouse


def test_cdnow_matches_the_published_counts(spark, cdnow_path):
    df = ingest.read_cdnow(spark, cdnow_path)
    stats = df.agg(F.count("*").alias("rows"), F.countDistinct("customer_id").alias("customers"),
                   F.countDistinct("order_id").alias("ids"), F.min("order_ts").alias("first"),
                   F.max("order_ts").alias("last")).first()
    # ../shared/data/README.md: 23,570 customers, 69,659 purchases, 1997-01 to 1998-06
    assert (stats.rows, stats.customers, stats.ids) == (69_659, 23_570, 69_659)
    assert stats.first == dt.datetime(1997, 1, 1) and stats.last == dt.datetime(1998, 6, 30)
    assert ingest.default_batch_date(df) == dt.date(1998, 7, 1)
    # customer 2 bought twice on 1997-01-12 (12.00 and 77.00): two orders, two ids
    two = df.where("customer_id = '2'").orderBy("order_id").collect()
    assert [(r.order_id, r.amount) for r in two] == [("2-19970112-1", 12.0),
                                                       ("2-19970112-2", 77.0)]


BAD_CSV = """OrderNo,Cust,When,Total
1,c1,2024-01-05 10:00:00,10.5
2,,2024-01-06 10:00:00,3.0
3,c3,not a date,4.0
4,c4,2024-01-07 10:00:00,abc
4,c4,2024-01-07 10:00:00,5.0
5,c5,2024-01-08 10:00:00,NaN
6,c6,2024-01-09 10:00:00,6.0
6,c6,2024-01-09 11:00:00,6.0
"""


def _bad_file(spark, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(BAD_CSV)
    return ingest.read_orders_file(
        spark, path, {"order_id": "OrderNo", "customer_id": "Cust",
                               "order_ts": "When", "amount": "Total"})


def test_bad_rows_are_quarantined_with_their_rule(spark, clv_home, tmp_path):
    df = _bad_file(spark, tmp_path)
    accepted, rejected = ingest.split_valid_orders(df, "run-1")
    got = sorted((r.order_id, r.rule) for r in rejected.collect())
    # by hand: row 2 no customer, row 3 bad date, the 'abc' copy of order 4 (its valid
    # copy is kept), row 5 NaN, the later copy of order 6
    assert got == [("2", "customer_id_not_null"), ("3", "order_ts_parseable"),
                   ("4", "amount_numeric"), ("5", "amount_numeric"), ("6", "order_id_unique")]
    kept = sorted((r.order_id, r.amount) for r in accepted.collect())
    assert kept == [("1", 10.5), ("4", 5.0), ("6", 6.0)]
    assert accepted.count() + rejected.count() == 8  # rows in = accepted + rejected
    assert {r.run_id for r in rejected.collect()} == {"run-1"}


def test_load_fails_above_the_rejected_share_but_keeps_the_rejects(spark, clv_home, tmp_path):
    df = _bad_file(spark, tmp_path)
    with pytest.raises(ingest.IngestError, match=r"5 of 8 rows rejected"):
        ingest.load_orders(spark, df, dt.date(2024, 2, 1), "run-2", max_rejected_share=0.5)
    rejected = warehouse.read_table(spark, "quality.rejected_orders", dt.date(2024, 2, 1),
                                    clv_home)
    assert rejected.count() == 5
    assert warehouse.list_partitions("raw.orders", clv_home) == []


def test_load_under_the_threshold_publishes_accepted_rows(spark, clv_home, tmp_path):
    result = ingest.load_orders(spark, _bad_file(spark, tmp_path), dt.date(2024, 2, 1), "run-3",
                                max_rejected_share=0.7)
    assert (result.rows_in, result.rows_accepted, result.rows_rejected) == (8, 3, 5)
    assert result.rejected_by_rule == {"customer_id_not_null": 1, "order_ts_parseable": 1,
                                       "amount_numeric": 2, "order_id_unique": 1}
    assert warehouse.read_table(spark, "raw.orders", dt.date(2024, 2, 1), clv_home).count() == 3


def test_missing_required_column_names_file_and_column(spark, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("OrderNo,Cust,Total\n1,c1,3.0\n")
    with pytest.raises(ingest.IngestError, match=r"orders.csv: required column 'order_ts'"):
        ingest.read_orders_file(spark, path, {"order_id": "OrderNo", "customer_id": "Cust",
                                              "amount": "Total"})


def test_empty_file_is_a_clear_error(spark, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ingest.IngestError, match="empty.csv: the file is empty"):
        ingest.read_orders_file(spark, path)
