"""Top-k metrics on a later window (precision, recall, NDCG, coverage) and the champion rule."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame


from clv.models.recommend.spec import (
    BASELINES,
    PRIMARY_METRIC,
)

# --------------------------------------------------------------------------- evaluation


def ideal_dcg(n_relevant: int, k: int) -> float:
    """DCG of a perfect list: ``min(n_relevant, k)`` hits at the top."""
    return float(sum(1.0 / math.log2(r + 1) for r in range(1, min(n_relevant, k) + 1)))


def evaluate_top_k(candidates: DataFrame, relevant: DataFrame, k: int,
                   catalogue_size: int) -> dict[str, dict[str, float]]:
    """precision@k, recall@k, NDCG@k and coverage per method (see the module docstring).

    Args:
        candidates: Lists (customer_id, product_id, rank, method); the customers listed
            under any method are the ones that could be recommended to.
        relevant: (customer_id, product_id) bought in the evaluation window.
        catalogue_size: Products that could have been recommended.

    Returns:
        ``{method: {"precision", "recall", "ndcg", "coverage", "customers"}}``; a
        customer with relevant products but no list under a method scores 0 there.
    """
    from pyspark.sql import functions as F

    rel = relevant.select("customer_id", "product_id").distinct()
    n_rel = rel.groupBy("customer_id").agg(F.count("*").alias("n_rel"))
    listed = candidates.select("customer_id").distinct()
    methods = candidates.select("method").distinct()
    scored = n_rel.join(listed, "customer_id").crossJoin(methods)
    per = (candidates.filter(F.col("rank") <= k)
           .join(rel.withColumn("hit", F.lit(1.0)), ["customer_id", "product_id"], "left")
           .groupBy("method", "customer_id")
           .agg(F.sum(F.coalesce("hit", F.lit(0.0))).alias("hits"),
                F.sum(F.coalesce("hit", F.lit(0.0)) / F.log2(F.col("rank") + 1)).alias("dcg")))
    idcg = F.element_at(F.array(*[F.lit(ideal_dcg(n, k)) for n in range(1, k + 1)]),
                        F.least(F.col("n_rel"), F.lit(k)).cast("int"))
    rows = (scored.join(per, ["method", "customer_id"], "left").fillna(0.0, ["hits", "dcg"])
            .groupBy("method")
            .agg(F.avg(F.col("hits") / k).alias("precision"),
                 F.avg(F.col("hits") / F.col("n_rel")).alias("recall"),
                 F.avg(F.col("dcg") / idcg).alias("ndcg"),
                 F.count("*").alias("customers"))).toPandas()
    coverage = candidates.filter(F.col("rank") <= k).groupBy("method").agg(
        F.countDistinct("product_id").alias("n")).toPandas().set_index("method")["n"]
    out = {m: {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "customers": 0.0,
               "coverage": float(coverage.get(m, 0)) / max(catalogue_size, 1)}
           for m in coverage.index}
    for r in rows.itertuples():
        out[r.method].update(precision=float(r.precision), recall=float(r.recall),
                             ndcg=float(r.ndcg), customers=float(r.customers))
    return out


def _flatten(by_method: Mapping[str, Mapping[str, float]], k: int) -> dict[str, float]:
    """MLflow metric names: ``als.ndcg_at_10``, ``popularity.coverage``, ..."""
    out = {}
    for method, figures in by_method.items():
        for name, value in figures.items():
            at = f"_at_{k}" if name in ("precision", "recall", "ndcg") else ""
            out[f"{method}.{name}{at}"] = float(value)
    return out


# --------------------------------------------------------------------------- champion


def champion_rule(k: int) -> dict[str, Any]:
    """The rule recorded on every decided version (tag ``alias_rule``)."""
    from clv.models.registry import PROMOTION_MARGIN

    return {"primary_metric": f"ndcg_at_{k}", "higher_is_better": True,
            "promotion_margin": PROMOTION_MARGIN,
            "rank": f"ndcg_at_{k} beats every baseline ({', '.join(BASELINES)}) by more than "
                    "the margin on the same evaluation window"}


def decide_champion(by_method: Mapping[str, Mapping[str, float]], k: int,
                    margin: float | None = None) -> tuple[str | None, str]:
    """``("champion", why)`` when ALS's NDCG@k beats both baselines' by more than
    ``margin`` (default :data:`clv.models.registry.PROMOTION_MARGIN`), else ``(None, why)``:
    the version gets no alias and the current champion, if any, stays."""
    from clv.models.registry import CHAMPION, PROMOTION_MARGIN

    margin = PROMOTION_MARGIN if margin is None else margin
    als = float(by_method["als"][PRIMARY_METRIC])
    figures = ", ".join(f"{b} {float(by_method[b][PRIMARY_METRIC]):.4f}" for b in BASELINES)
    lost = [b for b in BASELINES if not als - float(by_method[b][PRIMARY_METRIC]) > margin]
    if lost:
        return None, (f"ndcg_at_{k}={als:.4f} does not beat {', '.join(lost)} by more than "
                      f"{margin} [{figures}]; the champion stays")
    return CHAMPION, f"ndcg_at_{k}={als:.4f} beats both baselines by more than {margin} " \
                     f"[{figures}]"


def _best_baseline(by_method: Mapping[str, Mapping[str, float]], k: int) -> str:
    return max(BASELINES, key=lambda b: float(by_method[b][PRIMARY_METRIC]))
