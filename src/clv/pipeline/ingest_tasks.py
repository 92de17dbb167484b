"""Ingest steps: the run's as-of date and the raw orders' validation (stale data refused)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from clv.config import Settings
from clv.data import warehouse
from clv.pipeline.publishing import _path, _spark
from clv.pipeline.tables import RAW_ORDERS

log = logging.getLogger(__name__)


class StaleDataError(ValueError):
    """The as-of date is past the orders (or before all of them): nothing to score."""


def resolve_as_of_date(value: str, run_type: str, logical_date: dt.datetime | None,
                       settings: Settings | None = None) -> dt.date:
    """The run's as-of date from the (validated) ``as_of_date`` param.

    Given: that date. Empty: a backfill's or a scheduled run's logical date (each run of
    a range is its own date); any other run (the trigger form with its defaults) takes
    the newest load batch of ``raw.orders`` (by default the day after its newest order),
    so a run with the form's defaults scores the data that is there, not today's date.

    Raises:
        clv.pipeline.params.ParamError: empty, no logical date to use and no orders loaded.
    """
    from clv.pipeline.params import ParamError

    if value:
        return dt.date.fromisoformat(value)
    if run_type in ("backfill", "scheduled") and logical_date is not None:
        return logical_date.date()
    batches = warehouse.list_partitions(RAW_ORDERS, settings)
    if not batches:
        raise ParamError(f"as_of_date: empty, and {RAW_ORDERS} has no loaded orders to take "
                         "the date from: import orders first (clv import-orders) or set "
                         "as_of_date")
    log.info("as_of_date empty on a %s run: the newest %s batch, %s", run_type, RAW_ORDERS,
             batches[-1])
    return batches[-1]


def validate_raw(as_of_date: dt.date, horizon_days: int) -> dict[str, Any]:
    """Great Expectations suite ``raw_orders`` over the orders known before the as-of date.

    Also refuses stale data: the evaluation horizon just before the as-of date must
    hold orders, or there is nothing to learn from or score against.
    """
    from pyspark.sql import functions as F

    from clv import quality
    from clv.features import orders_before

    batches = warehouse.read_table(_spark(), RAW_ORDERS)
    visible = orders_before(batches.drop(warehouse.PARTITION_COLUMN), as_of_date)
    try:
        report = quality.assert_valid(visible, "raw_orders", RAW_ORDERS, ["order_id"])
    except quality.DataQualityError as exc:
        raise quality.DataQualityError(exc.report, _quarantine_hint(batches, exc.report)) \
            from None
    n, oldest, newest = visible.agg(F.count("*"), F.min("order_ts"), F.max("order_ts")).first()
    if n == 0:
        raise StaleDataError(f"{RAW_ORDERS}: no orders before as_of_date={as_of_date}; "
                         "pick a later as-of date")
    if newest.date() < as_of_date - dt.timedelta(days=horizon_days):
        raise StaleDataError(
            f"{RAW_ORDERS}: the newest order before as_of_date={as_of_date} is from "
            f"{newest.date()}, more than horizon_days={horizon_days} earlier: the data is "
            f"stale or the as-of date is past the history ({oldest.date()} .. {newest.date()})"
        )
    return {"rows": n, "expectations": report.n_expectations,
            "data_docs": _path(report.data_docs_page),
            "first_order": oldest.isoformat(), "last_order": newest.isoformat()}


def _quarantine_hint(batches: Any, report: Any) -> str:
    """Which ``raw.orders`` batches hold the sampled offending rows, and the one command
    that takes such a batch out so later runs proceed on the rest."""
    from pyspark.sql import functions as F

    ids = sorted({str(r["order_id"]) for f in report.failures for r in f.sample_rows
                  if r.get("order_id") is not None})
    found = sorted({r[0].isoformat() for r in batches.where(F.col("order_id").isin(ids))
                    .select(warehouse.PARTITION_COLUMN).distinct().collect()}) if ids else []
    where = f"the sampled rows are in batch(es) as_of_date={', '.join(found)}; " if found else ""
    return (f"{where}to take a published batch out of the history: "
            "clv quarantine-batch --as-of-date <batch> --reason '<why>' (README: Bad batches)")
