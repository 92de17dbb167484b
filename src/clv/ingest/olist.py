"""The Olist marketplace export -> raw.order_lines, raw.orders, raw.reviews, raw.customers.

Olist (a Brazilian marketplace, public data, CC BY-NC-SA 4.0) ships nine CSV tables;
this maps five of them plus the category translation::

    order_items + orders + customers + products (+ translation) -> raw.order_lines
    raw.order_lines (netted, clv.ingest.order_lines)                   -> raw.orders
    order_reviews + orders + customers                          -> raw.reviews
    customers + orders                                          -> raw.customers

Choices (docs/DECISIONS.md, "Olist: ..."):
- ``customer_id`` is Olist's ``customer_unique_id``: Olist's own ``customer_id`` is
  new for every order, so keyed on it nobody would ever buy twice.
- a line is one item row (Olist sells one unit per row): quantity 1, unit_price =
  ``price`` (freight excluded), currency BRL, order_ts = ``order_purchase_timestamp``.
- an order whose status is ``canceled`` or ``unavailable`` gets, per item, a
  cancelling line (quantity -1, same price and time): the cancellation rule nets it
  to zero, so it is no purchase. Cancelled orders without items have nothing to net;
  other orders without items are quarantined (``order_has_items``).
- category: the English name of the translation file, else the Portuguese name
  (two categories have no translation), else null.
- raw.customers: one row per person; region = ``customer_state`` and signup_date =
  the date of the person's first order (Olist has no signup date or channel).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from clv.ingest import sources as si
from clv.ingest.files import IngestError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

FILES = {"orders": "olist_orders_dataset", "items": "olist_order_items_dataset",
         "products": "olist_products_dataset", "customers": "olist_customers_dataset",
         "reviews": "olist_order_reviews_dataset",
         "translation": "product_category_name_translation"}
#: Order statuses that mean the sale did not happen.
CANCELLED_STATUSES = ("canceled", "unavailable")
CURRENCY = "BRL"


def read_olist(directory: Path) -> dict[str, pd.DataFrame]:
    """The Olist tables of ``directory`` (``<name>.csv`` or ``<name>.csv.gz``), as text,
    each with ``row``: its 1-based data row in the file, and ``source``: the file name."""
    directory = Path(directory)
    out = {}
    for key, stem in FILES.items():
        path = next((p for p in (directory / f"{stem}.csv.gz", directory / f"{stem}.csv")
                     if p.exists()), None)
        if path is None:
            raise IngestError(f"{directory}: Olist file {stem}.csv[.gz] not found")
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        except Exception as exc:
            raise IngestError(f"{path}: cannot be read: {exc}") from exc
        out[key] = frame.assign(row=range(1, len(frame) + 1), source=path.name)
    return out


def _order_facts(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """order_id -> person (customer_unique_id), status, purchase time, state."""
    people = t["customers"][["customer_id", "customer_unique_id", "customer_state"]]
    return t["orders"][["order_id", "customer_id", "order_status", "order_purchase_timestamp",
                        "row", "source"]].merge(people, on="customer_id", how="left")


def order_lines_frame(t: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(lines in the raw.order_lines contract, with row and source; quarantined orders
    without items, in the quarantine's columns)."""
    orders = _order_facts(t)
    names = t["translation"].set_index("product_category_name")["product_category_name_english"]
    products = t["products"][["product_id", "product_category_name"]].assign(
        category=lambda p: p["product_category_name"].map(names).fillna(
            p["product_category_name"]))
    items = (t["items"].merge(orders.drop(columns=["row", "source"]), on="order_id", how="left")
             .merge(products[["product_id", "category"]], on="product_id", how="left"))
    sales = pd.DataFrame({
        "order_id": items["order_id"], "line_id": items["order_item_id"],
        "customer_id": items["customer_unique_id"],
        "order_ts": items["order_purchase_timestamp"], "product_id": items["product_id"],
        "quantity": "1", "unit_price": items["price"], "category": items["category"],
        "currency": CURRENCY, "row": items["row"], "source": items["source"]})
    void = items["order_status"].isin(CANCELLED_STATUSES).to_numpy()
    cancels = sales[void].assign(line_id=lambda s: s["line_id"] + "-cancel", quantity="-1",
                                 source=lambda s: s["source"] + " (order_status cancelled)")
    lines = pd.concat([sales, cancels], ignore_index=True)
    empty = orders[~orders["order_id"].isin(t["items"]["order_id"])
                   & ~orders["order_status"].isin(CANCELLED_STATUSES)]
    no_items = pd.DataFrame({c: None for c in si.ORDER_LINES.columns}, index=empty.index)
    no_items = no_items.assign(order_id=empty["order_id"], customer_id=empty["customer_unique_id"],
                               order_ts=empty["order_purchase_timestamp"], row=empty["row"],
                               rule="order_has_items", source=empty["source"])
    return lines, no_items.reset_index(drop=True)


def reviews_frame(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Reviews in the raw.reviews contract; the customer is the order's person."""
    person = _order_facts(t).set_index("order_id")["customer_unique_id"]
    r = t["reviews"]
    return pd.DataFrame({
        "review_id": r["review_id"], "order_id": r["order_id"],
        "customer_id": r["order_id"].map(person), "score": r["review_score"],
        "created_at": r["review_creation_date"], "title": r["review_comment_title"],
        "text": r["review_comment_message"], "row": r["row"], "source": r["source"]})


def customers_frame(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per person (customer_unique_id): the state and date of the first order.

    The customers file has a row per order; the row kept is that of the first order
    (ties: the earlier file row), its ``row`` pointing at that line of the file.
    """
    c = t["customers"].merge(t["orders"][["customer_id", "order_purchase_timestamp"]],
                             on="customer_id", how="left")
    c = c.assign(_ts=pd.to_datetime(c["order_purchase_timestamp"], errors="coerce",
                                    format="mixed"))
    first = c.sort_values(["_ts", "row"], kind="stable", na_position="last").drop_duplicates(
        "customer_unique_id").sort_values("row")
    return pd.DataFrame({
        "customer_id": first["customer_unique_id"], "region": first["customer_state"],
        "acquisition_channel": None, "signup_date": first["_ts"].dt.strftime("%Y-%m-%d"),
        "row": first["row"], "source": first["source"]}).reset_index(drop=True)


def load_olist(spark: SparkSession, directory: Path, as_of_date: dt.date | None = None,
               run_id: str | None = None, max_rejected_share: float = 0.01
               ) -> dict[str, object]:
    """Load an Olist export into raw.order_lines, raw.orders, raw.reviews, raw.customers.

    Every table lands in the partition ``as_of_date`` (default: the day after the newest
    order), each with its quarantine (the row rules of :mod:`clv.ingest.sources` and
    :mod:`clv.ingest`); raw.orders is derived from the published lines by
    :func:`clv.ingest.order_lines.orders_from_lines`, so cancelled orders are not purchases.

    Returns:
        as_of_date, run_id, ``olist`` (rows read per file, orders without items per
        status, cancelling lines added, persons), and per table: rows in, accepted,
        rejected, rejected per rule (raw.orders also: orders cancelled, partly returned).
    """
    from clv.data import warehouse
    from clv.ingest import order_lines
    from clv.ingest.orders import RAW_ORDERS, load_orders

    run_id = run_id or f"olist-{uuid.uuid4().hex[:8]}"
    tables = read_olist(directory)
    lines, no_items = order_lines_frame(tables)
    as_of = as_of_date or _batch_date(tables["orders"])
    loaded = si.load_source(spark, lines, si.ORDER_LINES, _name(tables, "items"), run_id, as_of,
                            max_rejected_share, extra_rejected=no_items)
    published = warehouse.read_table(spark, si.ORDER_LINES.table, as_of)
    outcomes = order_lines.order_outcomes(published)
    orders = load_orders(spark, order_lines.orders_from_lines(published), as_of, run_id,
                                max_rejected_share, source=f"{si.ORDER_LINES.table} (netted)")
    reviews = si.load_reviews(spark, reviews_frame(tables), _name(tables, "reviews"), run_id,
                              as_of, max_rejected_share)
    customers = si.load_customers(spark, customers_frame(tables), _name(tables, "customers"),
                                  run_id, as_of, max_rejected_share)
    statuses = tables["orders"].loc[~tables["orders"]["order_id"].isin(
        tables["items"]["order_id"]), "order_status"].value_counts()
    return {
        "as_of_date": as_of.isoformat(), "run_id": run_id, "directory": str(directory),
        "olist": {"rows_read": {k: len(v) for k, v in tables.items()},
                  "orders_without_items": {str(k): int(v) for k, v in statuses.items()},
                  "cancelling_lines_added": int(len(lines) - len(tables["items"])),
                  "persons": int(tables["customers"]["customer_unique_id"].nunique())},
        si.ORDER_LINES.table: loaded.as_dict(),
        RAW_ORDERS: {"rows_in": orders.rows_in, "accepted": orders.rows_accepted,
                            "rejected": orders.rows_rejected,
                            "rejected_by_rule": orders.rejected_by_rule,
                            "orders_by_outcome": outcomes},
        si.REVIEWS.table: reviews.as_dict(), si.CUSTOMERS.table: customers.as_dict(),
    }


def _name(tables: dict[str, pd.DataFrame], key: str) -> str:
    return str(tables[key]["source"].iloc[0]) if len(tables[key]) else FILES[key]


def _batch_date(orders: pd.DataFrame) -> dt.date:
    newest = pd.to_datetime(orders["order_purchase_timestamp"], errors="coerce",
                            format="mixed").max()
    if pd.isna(newest):
        raise IngestError("Olist orders: no parseable order_purchase_timestamp; pass as_of_date")
    return newest.date() + dt.timedelta(days=1)
