"""raw.order_lines and the other optional sources: rules, quarantine, publish, derived orders.

Every expected number is counted by hand from the hand-built rows below.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from clv.data import warehouse
from clv.ingest import IngestError, order_lines
from clv.ingest import sources as si

AS_OF = dt.date(2024, 3, 1)
LINE_COLUMNS = ["order_id", "line_id", "customer_id", "order_ts", "product_id", "quantity",
                "unit_price", "category", "currency"]

#: order o1: two sales (2 x 10.00 + 1 x 5.50 = 25.50) and a return of one unit of p1
#: (-10.00): a partly returned purchase of 15.50, 2 units.
#: order o2: one sale of 3 x 4.00 cancelled in full (-3 x 4.00): net 0 -> cancelled.
#: order o3: one sale 1 x 99.99, currency taken as the line's (EUR).
GOOD = [
    ("o1", "1", "c1", "2024-01-05 10:00:00", "p1", "2", "10.00", "books", "usd"),
    ("o1", "2", "c1", "2024-01-05 10:00:00", "p2", "1", "5.50", "toys", "USD"),
    ("o1", "3", "c1", "2024-01-20 09:00:00", "p1", "-1", "10.00", "books", "USD"),
    ("o2", "1", "c2", "2024-02-01 12:00:00", "p3", "3", "4.00", None, "USD"),
    ("o2", "2", "c2", "2024-02-02 12:00:00", "p3", "-3", "4.00", None, "USD"),
    ("o3", "1", "c3", "2024-02-10 08:30:00", "p1", "1", "99.99", "books", "EUR"),
]
#: One row per rule, the rule each breaks (row numbers continue after GOOD).
BAD = [
    (("o4", "1", "", "2024-01-01", "p1", "1", "1.0", None, None), "customer_id_not_null"),
    (("o5", "1", "c5", "2024-13-45", "p1", "1", "1.0", None, None), "order_ts_parseable"),
    (("o6", "1", "c6", "2024-03-01 00:00:00", "p1", "1", "1.0", None, None),
     "order_ts_not_in_future"),
    (("o7", "1", "c7", "1970-01-01", "p1", "1", "1.0", None, None), "order_ts_after_floor"),
    (("o8", "1", "c8", "2024-01-01", "p1", "two", "1.0", None, None), "quantity_numeric"),
    (("o9", "1", "c9", "2024-01-01", "p1", "1.5", "1.0", None, None), "quantity_whole"),
    (("o10", "1", "c10", "2024-01-01", "p1", "0", "1.0", None, None), "quantity_nonzero"),
    (("o11", "1", "c11", "2024-01-01", "p1", "1", "-3", None, None), "unit_price_in_range"),
    (("o12", "1", "c12", "2024-01-01", "p1", "1", "1.0", None, "XXX"), "currency_known"),
    (("o1", "1", "c1", "2024-01-05 10:00:00", "p1", "2", "10.00", None, "USD"), "line_unique"),
    (("o1", "9", "c99", "2024-01-05 10:00:00", "p9", "1", "1.00", None, "USD"),
     "order_customer_consistent"),
    (("o3", "2", "c3", "2024-02-10 08:30:00", "p2", "1", "1.00", None, "USD"),
     "order_currency_consistent"),
    (("o13", "1", "c13", "2024-02-11", "p1", "-1", "5.00", None, None), "return_has_sale"),
    (("o14", "1", "c14", "2024-01-01", None, "1", "1.0", None, None), "product_id_not_null"),
]


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=LINE_COLUMNS).assign(row=range(1, len(rows) + 1))


def test_split_names_the_first_broken_rule_and_the_row():
    frame = _frame(GOOD + [r for r, _ in BAD])
    accepted, rejected = si.split_source(frame, si.ORDER_LINES, AS_OF, "lines.csv", "run-1")
    assert len(accepted) == len(GOOD) and len(rejected) == len(BAD)
    assert list(zip(rejected["row"], rejected["rule"], strict=True)) == [
        (len(GOOD) + i + 1, rule) for i, (_, rule) in enumerate(BAD)]
    assert set(rejected["source"]) == {"lines.csv"} and set(rejected["run_id"]) == {"run-1"}
    # rejected rows keep the file's text as it was
    assert rejected.loc[rejected["rule"] == "quantity_numeric", "quantity"].item() == "two"
    assert list(accepted["currency"]) == ["USD"] * 5 + ["EUR"]  # upper-cased
    assert set(BAD_RULES := {r for _, r in BAD}) <= set(si.RULES["raw.order_lines"])
    assert len(BAD_RULES) == len(BAD)


def test_missing_line_ids_are_the_lines_place_in_their_order():
    frame = _frame(GOOD).assign(line_id=None)
    accepted, rejected = si.split_source(frame, si.ORDER_LINES, AS_OF, "f", "r")
    assert rejected.empty
    assert list(accepted["line_id"]) == ["1", "2", "3", "1", "2", "1"]


def test_mapping_reads_a_csv_and_names_a_missing_column(tmp_path):
    path = tmp_path / "lines.csv"
    renamed = _frame(GOOD).drop(columns="row").rename(columns={"order_id": "OrderNo",
                                                               "unit_price": "Price"})
    renamed.to_csv(path, index=False)
    frame = si.read_source_file(path, si.ORDER_LINES, {"order_id": "OrderNo",
                                                       "unit_price": "Price"})
    assert list(frame["order_id"]) == [g[0] for g in GOOD] and list(frame["row"]) == [
        1, 2, 3, 4, 5, 6]
    with pytest.raises(IngestError, match=r"lines.csv: raw.order_lines needs column "
                                          r"'unit_price' \(looked for 'unit_price'"):
        si.read_source_file(path, si.ORDER_LINES, {"order_id": "OrderNo"})


def test_load_publishes_lines_and_quarantine_and_orders_net_by_the_rule(spark, clv_home):
    frame = _frame(GOOD + [r for r, _ in BAD])
    result = si.load_order_lines(spark, frame, "lines.csv", "run-1", AS_OF,
                                 max_rejected_share=1.0)
    assert (result.rows_in, result.rows_accepted, result.rows_rejected) == (20, 6, 14)
    assert result.rejected_by_rule == {rule: 1 for _, rule in BAD}
    lines = warehouse.read_table(spark, "raw.order_lines", AS_OF)
    assert lines.count() == 6
    rejected = warehouse.read_table(spark, "quality.rejected_order_lines", AS_OF).toPandas()
    assert sorted(zip(rejected["row"], rejected["rule"], strict=True)) == [
        (len(GOOD) + i + 1, rule) for i, (_, rule) in enumerate(BAD)]

    orders = order_lines.orders_from_lines(lines).orderBy("order_id").toPandas()
    assert list(orders.columns) == ["order_id", "customer_id", "order_ts", "amount",
                                    "quantity", "currency"]
    assert list(orders["order_id"]) == ["o1", "o3"]  # o2 is cancelled in full
    assert list(orders["amount"]) == [15.5, 99.99] and list(orders["quantity"]) == [2, 1]
    assert list(orders["customer_id"]) == ["c1", "c3"]
    assert list(orders["currency"]) == ["USD", "EUR"]
    assert orders["order_ts"][0] == pd.Timestamp("2024-01-05 10:00:00")  # the sale's time
    assert order_lines.order_outcomes(lines) == {"purchase": 1, "partly_returned": 1,
                                                 "cancelled": 1}
    # Point in time: before o1's return (Jan 20) and o2's cancellation (Feb 2) are known.
    early = order_lines.orders_from_lines(lines, known_before=dt.date(2024, 1, 20)).toPandas()
    assert list(early["order_id"]) == ["o1"] and list(early["amount"]) == [25.5]


def test_the_derived_orders_load_into_raw_orders_and_pass_its_suite(spark, clv_home):
    from clv import ingest, quality

    si.load_order_lines(spark, _frame(GOOD), "lines.csv", "run-1", AS_OF)
    derived = order_lines.orders_from_lines(warehouse.read_table(spark, "raw.order_lines", AS_OF))
    loaded = ingest.load_orders(spark, derived, AS_OF, "run-1")
    assert (loaded.rows_in, loaded.rows_accepted, loaded.rows_rejected) == (2, 2, 0)
    quality.assert_valid(warehouse.read_table(spark, "raw.orders"), "raw_orders", "raw.orders",
                         ["order_id"])


def test_a_later_batch_returns_against_a_published_order_and_reloads_replace(spark, clv_home):
    si.load_order_lines(spark, _frame(GOOD), "jan.csv", "run-1", AS_OF)
    later = dt.date(2024, 4, 1)
    batch = _frame([
        ("o3", "2", "c3", "2024-03-05", "p1", "-1", "99.99", None, "EUR"),  # a return of o3
        ("o1", "1", "c1", "2024-01-05 10:00:00", "p1", "2", "10.00", None, "USD"),  # resent
        ("o3", "3", "c4", "2024-03-06", "p1", "-1", "1.00", None, "EUR"),  # not o3's customer
    ])
    first = si.load_order_lines(spark, batch, "mar.csv", "run-2", later, max_rejected_share=1.0)
    assert first.rejected_by_rule == {"line_published": 1, "order_customer_consistent": 1}
    again = si.load_order_lines(spark, batch, "mar.csv", "run-3", later, max_rejected_share=1.0)
    assert again == first  # a reload of the date: the same counts, the partition replaced
    assert warehouse.list_partitions("raw.order_lines") == [AS_OF, later]
    assert warehouse.row_count("raw.order_lines", later) == 1
    orders = order_lines.orders_from_lines(warehouse.read_table(spark, "raw.order_lines"))
    assert sorted(r.order_id for r in orders.collect()) == ["o1"]  # o3 returned in full


def test_too_many_rejects_publish_nothing(spark, clv_home):
    frame = _frame(GOOD + [r for r, _ in BAD])
    with pytest.raises(IngestError, match=r"lines.csv: 14 of 20 rows rejected for "
                                          r"raw.order_lines .*nothing was published"):
        si.load_order_lines(spark, frame, "lines.csv", "run-1", AS_OF)
    assert warehouse.list_partitions("raw.order_lines") == []
    assert warehouse.list_partitions("quality.rejected_order_lines") == []


# --------------------------------------------------------------------------- other sources

def test_reviews_rules_and_publish(spark, clv_home):
    frame = pd.DataFrame([
        ("r1", "o1", "c1", "5", "2024-01-10", None, "Ótimo produto, chegou antes do prazo"),
        ("r2", "o2", "c2", "1", "2024-01-11", "Ruim", "Não chegou"),
        ("r1", "o3", "c3", "4", "2024-01-12", None, None),  # same review, another order: ok
        ("r3", "o4", "c4", "6", "2024-01-12", None, None),
        ("r4", "o5", "c5", "4.5", "2024-01-12", None, None),
        ("r5", "o6", None, "3", "2024-01-12", None, None),
        ("r6", "o7", "c7", "3", "yesterday", None, None),
        ("r1", "o1", "c1", "5", "2024-01-10", None, None),
    ], columns=["review_id", "order_id", "customer_id", "score", "created_at", "title", "text"])
    result = si.load_reviews(spark, si.apply_mapping(frame, si.REVIEWS, "reviews.csv"),
                             "reviews.csv", "run-1", AS_OF, max_rejected_share=1.0)
    assert result.rejected_by_rule == {"score_in_range": 1, "score_whole": 1,
                                       "customer_id_not_null": 1, "created_at_parseable": 1,
                                       "review_unique": 1}
    rejected = warehouse.read_table(spark, "quality.rejected_reviews", AS_OF).toPandas()
    assert sorted(rejected["row"]) == [4, 5, 6, 7, 8]
    published = warehouse.read_table(spark, "raw.reviews", AS_OF).orderBy("order_id").toPandas()
    assert list(published["score"]) == [5, 1, 4]
    assert published["text"][0] == "Ótimo produto, chegou antes do prazo"


def test_customers_rules_publish_and_the_newest_batch_wins(spark, clv_home):
    frame = pd.DataFrame({"customer_id": ["c1", "c2", "c1", "c3", " "],
                          "region": ["SP", "RJ", "MG", None, "SP"],
                          "signup_date": ["2023-05-01", None, "2023-06-01", "2030-01-01",
                                          "2023-01-01"]})
    result = si.load_customers(spark, si.apply_mapping(frame, si.CUSTOMERS, "crm.csv"),
                               "crm.csv", "run-1", AS_OF, max_rejected_share=1.0)
    assert result.rejected_by_rule == {"customer_unique": 1, "signup_date_not_in_future": 1,
                                       "customer_id_not_null": 1}
    moved = pd.DataFrame({"customer_id": ["c1"], "region": ["BA"], "signup_date": [None]})
    si.load_customers(spark, si.apply_mapping(moved, si.CUSTOMERS, "crm2.csv"), "crm2.csv",
                      "run-2", dt.date(2024, 4, 1))
    latest = si.latest_customers(spark).orderBy("customer_id").toPandas()
    assert list(latest["customer_id"]) == ["c1", "c2"]
    assert list(latest["region"]) == ["BA", "RJ"]


def test_events_rules_and_publish(spark, clv_home, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user,ts,type,session\n"
                    "c1,2024-01-01 10:00:00,view,s1\n"
                    "c1,2024-01-01 10:01:00,Add_To_Cart,s1\n"
                    "c1,2024-01-01 10:01:00,add_to_cart,s1\n"
                    "c2,2024-01-02 11:00:00,click,s2\n"
                    "c2,not a time,view,s2\n"
                    "c2,2024-01-02 11:05:00,purchase,\n")
    frame = si.read_source_file(path, si.EVENTS, {"customer_id": "user", "event_ts": "ts",
                                                  "event_type": "type",
                                                  "session_id": "session"})
    result = si.load_events(spark, frame, str(path), "run-1", AS_OF, max_rejected_share=1.0)
    assert (result.rows_accepted, result.rejected_by_rule) == (
        3, {"event_unique": 1, "event_type_known": 1, "event_ts_parseable": 1})
    rejected = warehouse.read_table(spark, "quality.rejected_events", AS_OF).toPandas()
    assert sorted(zip(rejected["row"], rejected["rule"], strict=True)) == [
        (3, "event_unique"), (4, "event_type_known"), (5, "event_ts_parseable")]
    events = warehouse.read_table(spark, "raw.events", AS_OF).toPandas()
    assert sorted(events["event_type"]) == ["add_to_cart", "purchase", "view"]


def test_import_source_command_maps_a_shops_file_and_quarantines_by_rule(spark, clv_home,
                                                                        tmp_path):
    """`clv import-source order_lines FILE --map ...`: a data engineer's own column names."""
    from clv.ops import cli

    rows = GOOD + [BAD[0][0], BAD[4][0]]  # customer_id_not_null, quantity_numeric
    shop = pd.DataFrame(rows, columns=LINE_COLUMNS).rename(
        columns={"order_id": "OrderNo", "unit_price": "Price"})
    path = tmp_path / "lines.csv"
    shop.to_csv(path, index=False)
    assert cli.main(["import-source", "order_lines", str(path), "--map",
                     "order_id=OrderNo,unit_price=Price", "--as-of-date", AS_OF.isoformat(),
                     "--max-rejected-share", "0.5"]) == 0
    assert warehouse.read_table(spark, "raw.order_lines", AS_OF).count() == len(GOOD)
    rejected = warehouse.read_table(spark, "quality.rejected_order_lines", AS_OF).toPandas()
    assert sorted(zip(rejected["row"], rejected["rule"], strict=True)) == [
        (len(GOOD) + 1, "customer_id_not_null"), (len(GOOD) + 2, "quantity_numeric")]
