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


# The catalogue of bad rows: each line breaks exactly one rule (named on the right),
# checked against the batch date 2024-02-01.
CATALOGUE = [
    ("1,c1,2024-01-05 10:00:00,10.5,1,USD", None),
    ("2,,2024-01-06 10:00:00,3.0,1,USD", "customer_id_not_null"),
    ("3,c3,not a date,4.0,1,USD", "order_ts_parseable"),
    ("4,c4,2024-01-07 10:00:00,abc,1,USD", "amount_numeric"),  # its valid copy below is kept
    ("4,c4,2024-01-07 10:00:00,5.0,1,USD", None),
    ("5,c5,2024-01-08 10:00:00,NaN,1,USD", "amount_numeric"),
    ("6,c6,2024-01-09 10:00:00,6.0,1,usd", None),  # currency is case-insensitive
    ("6,c6,2024-01-09 11:00:00,6.0,1,USD", "order_id_unique"),  # a later copy of order 6
    ("7,c7,2030-01-01 00:00:00,1.0,1,USD", "order_ts_not_in_future"),
    ("8,c8,1980-01-01 00:00:00,1.0,1,USD", "order_ts_after_floor"),
    ("9,c9,2024-01-10 00:00:00,2.0,x,USD", "quantity_numeric"),
    ("10,c10,2024-01-10 00:00:00,2.0,1,XYZ", "currency_known"),
    ("11,c11,2024-01-10 00:00:00", "malformed_row"),  # too few fields
    (",c12,2024-01-10 00:00:00,2.0,1,USD", "order_id_not_null"),
    ("13,c13,2024-01-11 00:00:00,Infinity,1,USD", "amount_numeric"),
    ("14,c14,2024-01-31 23:59:59,1.0,,", None),  # optional columns empty
    ("15,c15,2024-01-12 00:00:00,1e308,1,USD", "amount_in_range"),  # beyond the suite's bounds
    ("16,c16,2024-01-12 00:00:00,-1e9,1,USD", "amount_in_range"),
    ("17,NULL,2024-01-12 00:00:00,1.0,1,USD", "customer_id_not_null"),  # a null token
    ("18, n/a ,2024-01-12 00:00:00,1.0,1,USD", "customer_id_not_null"),
    ("19,c19,2024-01-12 00:00:00,2.0,40.0,USD", None),  # pandas' integer with gaps: 40
    ("20,c20,2024-01-12 00:00:00,2.0,40.5,USD", "quantity_whole"),
    ("21,c21,2024-01-12 00:00:00,2.0,200000,USD", "quantity_in_range"),
    ("22,c22,2024-01-12 00:00:00,2.0,1,USD", "order_id_published"),  # in an earlier batch
    ("23,c23,2024-01-12 00:00:00,2.0,NULL,NULL", None),  # null tokens: no quantity/currency
]
BATCH = dt.date(2024, 2, 1)
MAPPING = {"order_id": "OrderNo", "customer_id": "Cust", "order_ts": "When", "amount": "Total",
           "quantity": "Qty", "currency": "Cur"}


def _bad_file(spark, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("OrderNo,Cust,When,Total,Qty,Cur\n"
                    + "\n".join(line for line, _ in CATALOGUE) + "\n")
    return ingest.read_orders_file(spark, path, MAPPING)


def test_every_bad_row_is_quarantined_with_its_rule(spark, clv_home, tmp_path):
    df = _bad_file(spark, tmp_path)
    published = spark.createDataFrame([("22",), ("999",)], "order_id string")
    accepted, rejected = ingest.split_valid_orders(df, "run-1", BATCH, published_ids=published)
    expected_rejects = sorted(((line.split(",")[0], rule) for line, rule in CATALOGUE if rule))
    assert sorted((r.order_id or "", r.rule) for r in rejected.collect()) == expected_rejects
    kept = sorted((r.order_id, r.amount, r.quantity, r.currency) for r in accepted.collect())
    assert kept == [("1", 10.5, 1, "USD"), ("14", 1.0, None, None), ("19", 2.0, 40, "USD"),
                    ("23", 2.0, None, None), ("4", 5.0, 1, "USD"), ("6", 6.0, 1, "USD")]
    # nothing lost: rows in = accepted + rejected
    assert accepted.count() + rejected.count() == len(CATALOGUE) == df.count()
    assert {r.run_id for r in rejected.collect()} == {"run-1"}
    assert {r.rule for r in rejected.collect()} == set(ingest.RULES)  # every rule exercised
    malformed = rejected.where("rule = 'malformed_row'").first()
    assert malformed.raw_line == "11,c11,2024-01-10 00:00:00"


def test_load_fails_above_the_rejected_share_but_keeps_the_rejects(spark, clv_home, tmp_path):
    df = _bad_file(spark, tmp_path)
    with pytest.raises(ingest.IngestError, match=r"orders.csv: 18 of 25 rows rejected"):
        ingest.load_orders(spark, df, BATCH, "run-2", max_rejected_share=0.5,
                           source=str(tmp_path / "orders.csv"))
    # the refused batch's rejects are kept apart: quality.rejected_orders describes
    # published batches only
    rejected = warehouse.read_table(spark, "quality.failed_load_rejects", BATCH, clv_home)
    assert rejected.count() == 18
    assert warehouse.list_partitions("quality.rejected_orders", clv_home) == []
    assert warehouse.list_partitions("raw.orders", clv_home) == []


def test_load_under_the_threshold_publishes_accepted_rows(spark, clv_home, tmp_path):
    result = ingest.load_orders(spark, _bad_file(spark, tmp_path), BATCH, "run-3",
                                max_rejected_share=0.8)
    # nothing published before: order 22 is accepted here
    assert (result.rows_in, result.rows_accepted, result.rows_rejected) == (25, 7, 18)
    assert result.rejected_by_rule["amount_numeric"] == 3
    assert result.rejected_by_rule["amount_in_range"] == 2
    assert warehouse.read_table(spark, "raw.orders", BATCH, clv_home).count() == 7


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


def test_header_only_file_is_a_clear_error(spark, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("order_id,customer_id,order_ts,amount\n")
    with pytest.raises(ingest.IngestError, match=r"header.csv: no data rows"):
        ingest.read_orders_file(spark, path)


def test_unreadable_parquet_names_the_file(spark, tmp_path):
    path = tmp_path / "orders.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(ingest.IngestError, match=r"orders.parquet: cannot be read as parquet"):
        ingest.read_orders_file(spark, path)


def test_wrong_column_type_names_file_column_and_type(spark, tmp_path):
    path = tmp_path / "typed.parquet"
    spark.createDataFrame(
        [("1", "c1", dt.datetime(2024, 1, 1), (1.0, "x"))],
        "order_id string, customer_id string, order_ts timestamp, "
        "amount struct<v: double, u: string>").write.parquet(str(path))
    with pytest.raises(ingest.IngestError,
                       match=r"typed.parquet: column 'amount' has type struct<v:double,u:string>"):
        ingest.read_orders_file(spark, path)
