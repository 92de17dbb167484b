"""Loading orders: the real CDNOW file, a user's CSV with a mapping, and quarantine."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from clv import ingest
from clv.data import warehouse


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
REPO = Path(__file__).resolve().parents[1]
HEADER = "order_id,customer_id,order_ts,amount,quantity"
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


# --------------------------------------------------------------------------- hardening (#20)

SUITE = json.loads((REPO / "expectations" / "raw_orders.json").read_text())


def _suite_bounds(column: str) -> tuple[float, float]:
    """The suite's own limits, read here independently of clv.quality."""
    for exp in SUITE["expectations"]:
        if exp["type"] == "expect_column_values_to_be_between" and \
                exp["kwargs"]["column"] == column:
            return exp["kwargs"]["min_value"], exp["kwargs"]["max_value"]
    raise AssertionError(column)


def _csv(tmp_path, name: str, lines: list[str], header: str = HEADER):
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return path


def test_the_import_quarantines_what_the_suite_would_refuse(spark, clv_home, tmp_path):
    low, high = _suite_bounds("amount")
    qlow, qhigh = _suite_bounds("quantity")
    lines = [f"a1,c1,2024-01-05,{high},1", f"a2,c1,2024-01-05,{high + 0.01},1",
             f"a3,c2,2024-01-06,{low},1", f"a4,c2,2024-01-06,{low - 0.01},1",
             f"a5,c3,2024-01-07,1.0,{qhigh}", f"a6,c3,2024-01-07,1.0,{qhigh + 1}",
             f"a7,c4,2024-01-07,1.0,{qlow - 1}"]
    df = ingest.read_orders_file(spark, _csv(tmp_path, "bounds.csv", lines))
    accepted, rejected = ingest.split_valid_orders(df, "run-b", BATCH)
    assert sorted((r.order_id, r.rule) for r in rejected.collect()) == [
        ("a2", "amount_in_range"), ("a4", "amount_in_range"), ("a6", "quantity_in_range"),
        ("a7", "quantity_in_range")]
    assert sorted(r.order_id for r in accepted.collect()) == ["a1", "a3", "a5"]


def test_a_bad_batch_is_quarantined_and_later_runs_validate(spark, clv_home, tmp_path):
    """Amounts of 1e308 / -1e9 and an id of an earlier batch used to pass the import and
    then fail validate_raw on every later run; now they are quarantined at import."""
    from clv import pipeline

    first = ingest.read_orders_file(spark, _csv(tmp_path, "b1.csv", [
        "o1,c1,2024-01-05,10.0,1", "o2,c2,2024-01-06,20.0,2"]))
    ingest.load_orders(spark, first, dt.date(2024, 1, 10), "run-1")
    second = ingest.read_orders_file(spark, _csv(tmp_path, "b2.csv", [
        "o2,c2,2024-01-12,25.0,1", "o3,c3,2024-01-12,1e308,1", "o4,c3,2024-01-13,-1e9,1",
        "o5,c4,2024-01-14,30.0,40.0"]))
    result = ingest.load_orders(spark, second, BATCH, "run-2", max_rejected_share=1.0)
    assert result.rejected_by_rule == {"order_id_published": 1, "amount_in_range": 2}
    assert result.rows_accepted == 1
    rows = warehouse.read_table(spark, "raw.orders", settings=clv_home).collect()
    assert sorted((r.order_id, r.quantity) for r in rows) == [("o1", 1), ("o2", 2), ("o5", 40)]
    # the next DAG run's first data step passes on the rest
    assert pipeline.validate_raw(dt.date(2024, 2, 2), 180)["rows"] == 3
    # reloading a batch's own date replaces it: its ids are not "published" elsewhere
    again = ingest.load_orders(spark, first, dt.date(2024, 1, 10), "run-3")
    assert (again.rows_accepted, again.rejected_by_rule) == (2, {})


def test_a_refused_import_keeps_the_published_quarantine(spark, clv_home, tmp_path):
    good = ingest.read_orders_file(spark, _csv(tmp_path, "good.csv", [
        "g1,c1,2024-01-05,10.0,1", "g2,,2024-01-06,20.0,1", "g3,c3,2024-01-07,5.0,1"]))
    ingest.load_orders(spark, good, BATCH, "run-good", max_rejected_share=0.5)
    bad_path = _csv(tmp_path, "bad.csv", ["b1,NULL,2024-01-05,1.0,1", "b2,c2,2024-01-06,x,1"])
    with pytest.raises(ingest.IngestError,
                       match=r"bad.csv: 2 of 2 rows rejected .* nothing was published"):
        ingest.load_orders(spark, ingest.read_orders_file(spark, bad_path), BATCH, "run-bad",
                           source=str(bad_path))
    kept = warehouse.read_table(spark, "quality.rejected_orders", BATCH, clv_home).collect()
    assert [(r.order_id, r.rule, r.run_id) for r in kept] == [
        ("g2", "customer_id_not_null", "run-good")]
    assert warehouse.read_table(spark, "raw.orders", BATCH, clv_home).count() == 2
    failed = warehouse.read_table(spark, "quality.failed_load_rejects", BATCH,
                                  clv_home).collect()
    assert sorted((r.order_id, r.rule, r.run_id, r.source) for r in failed) == [
        ("b1", "customer_id_not_null", "run-bad", str(bad_path)),
        ("b2", "amount_numeric", "run-bad", str(bad_path))]


@pytest.mark.parametrize("share", [float("nan"), -0.1, 1.5, "0.1"])
def test_a_rejected_share_outside_0_1_is_refused(spark, clv_home, tmp_path, share):
    df = ingest.read_orders_file(spark, _csv(tmp_path, "o.csv", ["o1,c1,2024-01-05,1.0,1"]))
    with pytest.raises(ingest.IngestError, match=r"max_rejected_share must be a number in "
                                                 r"\[0, 1\]"):
        ingest.load_orders(spark, df, BATCH, "run-s", max_rejected_share=share)
    assert warehouse.list_partitions("raw.orders", clv_home) == []


def test_the_cli_refuses_a_nan_share_before_reading(capsys, tmp_path):
    from clv.ops import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["import-orders", str(tmp_path / "absent.csv"), "--max-rejected-share", "nan"])
    assert exit_info.value.code == 2
    assert "--max-rejected-share: 'nan' is not a number in [0, 1]" in capsys.readouterr().err


def test_a_semicolon_file_is_read_with_its_delimiter(spark, tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("order_id;customer_id;order_ts;amount;quantity\n"
                    "s1;c1;2024-01-05 10:00:00;10.5;40.0\ns2;c2;2024-01-06 00:00:00;3;\n")
    accepted, rejected = ingest.split_valid_orders(ingest.read_orders_file(spark, path),
                                                   "run-semi", BATCH)
    assert rejected.count() == 0
    assert sorted((r.order_id, r.customer_id, r.amount, r.quantity)
                  for r in accepted.collect()) == [("s1", "c1", 10.5, 40), ("s2", "c2", 3.0, None)]


def test_a_gzipped_semicolon_csv_is_sniffed_through_the_compression(spark, tmp_path):
    import gzip

    path = tmp_path / "semi.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("order_id;customer_id;order_ts;amount\nz1;c1;2024-01-05;2.5\n")
    assert [tuple(r) for r in ingest.read_orders_file(spark, path)
            .select("order_id", "amount").collect()] == [("z1", "2.5")]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_a_utf16_file_is_refused_naming_the_encoding(spark, tmp_path, encoding):
    path = tmp_path / "wide.csv"
    path.write_text(HEADER + "\no1,c1,2024-01-05,1.0,1\n", encoding=encoding)
    with pytest.raises(ingest.IngestError, match=r"wide.csv: the file's encoding is UTF-16"):
        ingest.read_orders_file(spark, path)


def test_a_utf8_bom_does_not_hide_the_first_column(spark, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text(HEADER + "\no1,c1,2024-01-05,1.0,1\n", encoding="utf-8-sig")
    assert ingest.read_orders_file(spark, path).first().order_id == "o1"


def test_an_unsplit_header_says_delimiter_and_hides_the_internal_column(spark, tmp_path):
    path = tmp_path / "spaces.csv"
    path.write_text("order_id customer_id order_ts amount\no1 c1 2024-01-05 1.0\n")
    with pytest.raises(ingest.IngestError, match=r"spaces.csv: required column 'order_id' "
                                                 r"not found.*check the file's delimiter") as e:
        ingest.read_orders_file(spark, path)
    assert "_corrupt_record" not in str(e.value)
