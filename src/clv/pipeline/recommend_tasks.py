"""Recommendation step: top products per customer from the order lines, when a shop has them."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from clv.data import warehouse
from clv.data.catalog import ORDER_LINES, RECOMMENDATIONS
from clv.pipeline.publishing import _spark, _validate_and_publish

log = logging.getLogger(__name__)

#: Products per customer in marts.recommendations.
TOP_K = 10


def recommend(as_of_date: dt.date, horizon_days: int, run_id: str,
              k: int = TOP_K) -> dict[str, Any]:
    """``marts.recommendations``: the top ``k`` products per customer.

    Judged out of time: ALS and the popularity and co-purchase baselines are fitted on the
    lines before ``as_of_date - horizon_days`` and evaluated on the window up to the as-of
    date; the run is registered in MLflow (``clv_recommend``), champion only when ALS beats
    both baselines on NDCG@10. The published lists come from the same method refitted on
    every line before the as-of date. Skipped (nothing published) without order lines, or
    when no line precedes the judging window.
    """
    from pyspark.sql import functions as F

    from clv.models import recommend as rec

    if not warehouse.list_partitions(ORDER_LINES):
        return {"skipped": f"no {ORDER_LINES}: the shop sends orders only"}
    spark = _spark()
    lines = warehouse.read_table(spark, ORDER_LINES).drop(warehouse.PARTITION_COLUMN)
    judge_cutoff = as_of_date - dt.timedelta(days=horizon_days)
    try:
        judged = rec.fit_recommender(spark, lines, judge_cutoff, horizon_days, k)
    except ValueError as exc:  # no line before the judging window
        log.warning("recommendations skipped: %s", exc)
        return {"skipped": str(exc)}
    registered = rec.register_recommender(
        judged, context={"run_id": run_id, "as_of_date": as_of_date.isoformat()})
    judged.candidates.unpersist()
    current = rec.fit_recommender(spark, lines, as_of_date, horizon_days, k)
    top = (current.candidates.filter(F.col("method") == judged.method)
           .select("customer_id", "product_id", F.col("score").cast("double"),
                   F.col("rank").cast("int"), "method")
           .withColumn("model_version", F.lit(str(registered["version"])))
           .withColumn("run_id", F.lit(run_id)))
    page = _validate_and_publish(top, "recommendations", RECOMMENDATIONS, as_of_date, run_id)
    n = warehouse.row_count(RECOMMENDATIONS, as_of_date) or 0
    current.candidates.unpersist()
    out = {"method": judged.method, "version": registered["version"],
           "alias": registered.get("alias"), "rows": n, "judge_cutoff": judge_cutoff.isoformat(),
           **{m: round(v, 4) for m, v in judged.metrics.items() if m.endswith("_at_10")},
           "data_docs": page}
    log.info("recommendations %s: %s", as_of_date, out)
    return out
