"""The real Olist sample through raw.order_lines, raw.orders, raw.reviews, raw.customers.

Expected counts are computed here with pandas straight from the csv files, not by the
code under test's mapping functions.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from clv.data import warehouse
from clv.ingest import olist
from clv.ops import cli

CANCELLED = {"canceled", "unavailable"}


@pytest.fixture(scope="module")
def olist_dir(shared_data):
    path = shared_data / "olist_sample"
    if not (path / "olist_orders_dataset.csv.gz").exists():
        pytest.fail(f"reference data missing: {path} (see ../shared/data/README.md)")
    return path


def _csv(folder, stem: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{stem}.csv.gz")


@pytest.fixture(scope="module")
def truth(olist_dir) -> dict[str, object]:
    """What the load must produce, by plain pandas over the files."""
    orders, items = _csv(olist_dir, "olist_orders_dataset"), _csv(olist_dir,
                                                                  "olist_order_items_dataset")
    customers = _csv(olist_dir, "olist_customers_dataset")
    reviews = _csv(olist_dir, "olist_order_reviews_dataset")
    person = orders.merge(customers, on="customer_id")[["order_id", "customer_unique_id"]]
    void = set(orders.loc[orders["order_status"].isin(CANCELLED), "order_id"])
    bought = items[~items["order_id"].isin(void)]
    stray = orders[~orders["order_id"].isin(items["order_id"])
                   & ~orders["order_status"].isin(CANCELLED)]
    return {
        "lines": len(items) + int(items["order_id"].isin(void).sum()),
        "stray_rows": sorted(stray.index + 1),  # 1-based data rows of the orders file
        "orders": bought["order_id"].nunique(),
        "cancelled": items.loc[items["order_id"].isin(void), "order_id"].nunique(),
        "customers_buying": person[person["order_id"].isin(bought["order_id"])]
        ["customer_unique_id"].nunique(),
        "spend": bought["price"].sum(),
        "reviews": len(reviews),
        "persons": customers["customer_unique_id"].nunique(),
        "as_of": pd.to_datetime(orders["order_purchase_timestamp"]).max().date()
        + dt.timedelta(days=1),
    }


def test_the_olist_sample_loads_into_four_tables(spark, clv_home, olist_dir, truth):
    result = olist.load_olist(spark, olist_dir, run_id="olist-test")
    as_of = truth["as_of"]
    assert result["as_of_date"] == as_of.isoformat() == "2018-10-18"

    lines = result["raw.order_lines"]
    assert (lines["rows_in"], lines["accepted"]) == (truth["lines"] + len(truth["stray_rows"]),
                                                     truth["lines"])
    assert lines["rejected_by_rule"] == {"order_has_items": len(truth["stray_rows"])}
    rejected = warehouse.read_table(spark, "quality.rejected_order_lines", as_of).toPandas()
    assert sorted(rejected["row"]) == truth["stray_rows"]
    assert set(rejected["source"]) == {"olist_orders_dataset.csv.gz"}

    orders = warehouse.read_table(spark, "raw.orders", as_of).toPandas()
    assert len(orders) == truth["orders"] == result["raw.orders"]["accepted"]
    assert orders["customer_id"].nunique() == truth["customers_buying"]
    assert orders["amount"].sum() == pytest.approx(truth["spend"], abs=0.01)
    assert set(orders["currency"]) == {"BRL"}
    assert result["raw.orders"]["orders_by_outcome"] == {
        "purchase": truth["orders"], "partly_returned": 0, "cancelled": truth["cancelled"]}
    assert warehouse.row_count("raw.order_lines", as_of) == truth["lines"]

    assert result["raw.reviews"]["accepted"] == truth["reviews"]
    assert warehouse.read_table(spark, "raw.reviews", as_of).count() == truth["reviews"]
    assert result["raw.customers"]["accepted"] == truth["persons"]
    assert warehouse.row_count("raw.customers", as_of) == truth["persons"]

    # The command reloads the same batch: every partition replaced, the same counts.
    assert cli.main(["import-olist", str(olist_dir), "--as-of-date", as_of.isoformat(),
                     "--run-id", "olist-cli"]) == 0
    assert warehouse.list_partitions("raw.orders") == [as_of]
    assert warehouse.row_count("raw.orders", as_of) == truth["orders"]
    assert warehouse.row_count("raw.order_lines", as_of) == truth["lines"]
    assert warehouse.row_count("raw.reviews", as_of) == truth["reviews"]


def test_a_bad_olist_export_is_quarantined_by_rule_and_row(spark, clv_home, olist_dir,
                                                          tmp_path):
    """A hand-made export: the first 30 orders of the sample and their rows, with four
    defects, each in a known row."""
    folder = tmp_path / "olist"
    folder.mkdir()
    tables = {stem: pd.read_csv(olist_dir / f"{stem}.csv.gz", dtype=str)
              for stem in olist.FILES.values()}
    items = tables["olist_order_items_dataset"].head(30).copy()
    keep = set(items["order_id"])
    orders = tables["olist_orders_dataset"]
    orders = orders[orders["order_id"].isin(keep)
                    & ~orders["order_status"].isin(CANCELLED)].reset_index(drop=True)
    items = items[items["order_id"].isin(set(orders["order_id"]))].reset_index(drop=True)
    reviews = tables["olist_order_reviews_dataset"]
    reviews = reviews[reviews["order_id"].isin(set(orders["order_id"]))].reset_index(drop=True)
    items.loc[2, "price"] = "12,50"  # a comma decimal: not a number
    bad_order = items.loc[4, "order_id"]
    orders.loc[orders["order_id"] == bad_order, "order_purchase_timestamp"] = "31/02/2018"
    reviews.loc[1, "review_score"] = "9"
    reviews.loc[3, "order_id"] = "no-such-order"
    out = {**tables, "olist_orders_dataset": orders, "olist_order_items_dataset": items,
           "olist_order_reviews_dataset": reviews}
    for stem, frame in out.items():
        frame.to_csv(folder / f"{stem}.csv", index=False)

    result = olist.load_olist(spark, folder, dt.date(2019, 1, 1), "bad-olist", 1.0)
    bad_rows = sorted(items.index[items["order_id"] == bad_order] + 1)
    expected = {3: "unit_price_numeric", **{r: "order_ts_parseable" for r in bad_rows}}
    assert result["raw.order_lines"]["rejected_by_rule"] == {
        "unit_price_numeric": 1, "order_ts_parseable": len(bad_rows)}
    rejected = warehouse.read_table(spark, "quality.rejected_order_lines",
                                    dt.date(2019, 1, 1)).toPandas()
    assert dict(zip(rejected["row"], rejected["rule"], strict=True)) == expected
    assert result["raw.order_lines"]["accepted"] == len(items) - len(expected)
    assert result["raw.reviews"]["rejected_by_rule"] == {"score_in_range": 1,
                                                         "customer_id_not_null": 1}
    reviews_out = warehouse.read_table(spark, "quality.rejected_reviews",
                                       dt.date(2019, 1, 1)).toPandas()
    assert dict(zip(reviews_out["row"], reviews_out["rule"], strict=True)) == {
        2: "score_in_range", 4: "customer_id_not_null"}
    # raw.orders: the orders with a valid line, one each (no order shares the bad lines')
    assert result["raw.orders"]["accepted"] == items.drop(
        [r - 1 for r in expected])["order_id"].nunique()
