"""ALS on implicit feedback out of time, the popularity and co-purchase baselines, top-k scoring."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


from clv.models.recommend.evaluation import (
    _best_baseline,
    _flatten,
    decide_champion,
    evaluate_top_k,
)
from clv.models.recommend.spec import (
    DEFAULT_ALS_PARAMS,
    RECOMMENDATION_SCHEMA,
    SCORE_BLOCK,
    AlsFactors,
    AlsParams,
    RecommenderRun,
)

# --------------------------------------------------------------------------- windows


def _ts(day: dt.date) -> Any:
    from pyspark.sql import functions as F

    # A string cast in the session time zone (UTC in this product): midnight UTC.
    return F.lit(day.isoformat()).cast("timestamp")


def net_pairs(lines_df: DataFrame, start: dt.date | None, end: dt.date) -> DataFrame:
    """(customer_id, product_id, quantity): net quantity per pair in ``[start, end)``, > 0."""
    from pyspark.sql import functions as F

    window = F.col("order_ts") < _ts(end)
    if start is not None:
        window = window & (F.col("order_ts") >= _ts(start))
    return (lines_df.filter(window).groupBy("customer_id", "product_id")
            .agg(F.sum("quantity").cast("double").alias("quantity"))
            .filter(F.col("quantity") > 0))


# --------------------------------------------------------------------------- fit


def fit_recommender(spark: SparkSession, lines_df: DataFrame, cutoff: dt.date,
                    horizon_days: int, k: int = 10, exclude_recent_days: int | None = None,
                    params: AlsParams = DEFAULT_ALS_PARAMS,
                    timings: dict[str, float] | None = None) -> RecommenderRun:
    """Fit ALS and the baselines before ``cutoff``, evaluate them on the next
    ``horizon_days`` and keep the list of the method the champion rule picks.

    Args:
        lines_df: ``raw.order_lines`` rows (order_id, customer_id, order_ts, product_id,
            category, quantity, unit_price); only customer_id, product_id, order_ts and
            quantity are used.
        cutoff: First day not trained on (lines strictly before its midnight UTC).
        horizon_days: Length of the evaluation window after ``cutoff``.
        k: List length per customer.
        exclude_recent_days: Drop products the customer bought in this many days before
            ``cutoff`` from every list (None: keep them).
        timings: When given, filled with the seconds of each phase (``index``, ``als``,
            ``baselines``, ``score``, ``evaluate``; for benchmarks).

    Returns:
        A :class:`RecommenderRun`; its ``candidates`` are persisted (unpersist when done).
    """
    from pyspark.ml.feature import StringIndexer

    if k < 1 or horizon_days < 1:
        raise ValueError(f"k and horizon_days must be >= 1, got k={k}, "
                         f"horizon_days={horizon_days}")
    clock = _Clock(timings)
    _ensure_checkpoint_dir(spark)
    train = net_pairs(lines_df, None, cutoff)
    indexer = StringIndexer(inputCols=["customer_id", "product_id"],
                            outputCols=["customer_idx", "product_idx"],
                            stringOrderType="alphabetAsc").fit(train)
    customer_ids, product_ids = (np.asarray(a, dtype=object) for a in indexer.labelsArray)
    if len(customer_ids) == 0:
        raise ValueError(f"order lines: no line with a positive net quantity before {cutoff}")
    indexed = indexer.transform(train).select(
        _int_col("customer_idx"), _int_col("product_idx"), "quantity").persist()
    indexed.count()
    clock.lap("index")
    factors, user_factors = _fit_als(indexed, params, customer_ids, product_ids)
    clock.lap("als")
    popularity = _popularity(indexed, len(product_ids))
    similarity = co_purchase_similarity(indexed, len(customer_ids), len(product_ids),
                                        params.neighbours)
    clock.lap("baselines")
    recent = (None if not exclude_recent_days else
              indexer.transform(net_pairs(lines_df, cutoff - dt.timedelta(days=exclude_recent_days),
                                          cutoff)).select(_int_col("customer_idx"),
                                                          _int_col("product_idx")))
    candidates = _score_all(user_factors, indexed, recent, factors, popularity, similarity,
                            k).persist()
    candidates.count()
    clock.lap("score")
    relevant = net_pairs(lines_df, cutoff, cutoff + dt.timedelta(days=horizon_days))
    by_method = evaluate_top_k(candidates, relevant, k, len(product_ids))
    indexed.unpersist()
    clock.lap("evaluate")
    metrics = _flatten(by_method, k)
    metrics.update(n_train_customers=float(len(customer_ids)),
                   n_catalogue=float(len(product_ids)))
    decision = decide_champion(by_method, k)
    method = "als" if decision[0] == "champion" else _best_baseline(by_method, k)
    run_params = {**asdict(params), "cutoff": cutoff.isoformat(), "horizon_days": horizon_days,
                  "k": k, "exclude_recent_days": exclude_recent_days or 0}
    return RecommenderRun(candidates.filter(candidates["method"] == method), candidates,
                          method, metrics, run_params, factors, decision)


class _Clock:
    """Seconds per phase into ``timings`` (nothing when it is None)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings, self.last = timings, time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[phase] = now - self.last
        self.last = now


def recommend(spark: SparkSession, lines_df: DataFrame, cutoff: dt.date, horizon_days: int,
              k: int = 10, exclude_recent_days: int | None = None,
              params: AlsParams = DEFAULT_ALS_PARAMS) -> tuple[DataFrame, dict[str, float]]:
    """The top-``k`` frame (:data:`RECOMMENDATION_SCHEMA`) and the metrics dict of
    :func:`fit_recommender` (the published list is ALS's only when it beats both baselines)."""
    run = fit_recommender(spark, lines_df, cutoff, horizon_days, k, exclude_recent_days, params)
    return run.top_k, run.metrics


def _int_col(name: str) -> Any:
    """Column ``name`` as int (ALS wants int ids)."""
    from pyspark.sql import functions as F

    return F.col(name).cast("int").alias(name)


def _ensure_checkpoint_dir(spark: SparkSession) -> None:
    """ALS checkpoints its factors every ``checkpointInterval`` iterations only when the
    context has a checkpoint folder; without one the lineage of 15 iterations grew deep
    enough for a StackOverflowError on 1M lines. A folder under the state dir, if none set."""
    from clv.config import load_settings, private_dir

    try:
        context = spark.sparkContext
    except Exception:  # Spark Connect: the server's configuration decides  # noqa: BLE001
        return
    if context.getCheckpointDir() is None:
        context.setCheckpointDir(str(private_dir(load_settings().state_dir / "spark"
                                                 / "checkpoints")))


def _fit_als(indexed: DataFrame, params: AlsParams, customer_ids: np.ndarray,
             product_ids: np.ndarray) -> tuple[AlsFactors, DataFrame]:
    """The fitted factors (product factors collected) and the customer factor frame."""
    from pyspark.ml.recommendation import ALS

    model = ALS(userCol="customer_idx", itemCol="product_idx", ratingCol="quantity",
                implicitPrefs=True, rank=params.rank, maxIter=params.max_iter,
                regParam=params.reg_param, alpha=params.alpha, seed=params.seed,
                coldStartStrategy="drop").fit(indexed)
    items = model.itemFactors.toPandas().sort_values("id")
    v = np.zeros((len(product_ids), params.rank), dtype=np.float32)
    v[items["id"].to_numpy()] = np.stack(items["features"].to_numpy())
    users = model.userFactors.toPandas().sort_values("id")
    u = np.zeros((len(customer_ids), params.rank), dtype=np.float32)
    u[users["id"].to_numpy()] = np.stack(users["features"].to_numpy())
    return (AlsFactors(customer_ids, u, product_ids, v),
            model.userFactors.withColumnRenamed("id", "customer_idx"))


def _popularity(indexed: DataFrame, n_products: int) -> np.ndarray:
    """Net quantity sold per product number in the training window."""
    sold = indexed.groupBy("product_idx").sum("quantity").toPandas()
    out = np.zeros(n_products)
    out[sold["product_idx"].to_numpy()] = sold["sum(quantity)"].to_numpy()
    return out


def co_purchase_similarity(indexed: DataFrame, n_customers: int, n_products: int,
                           neighbours: int) -> Any:
    """Cosine similarity of products over the customers who bought them (binary), each
    row keeping its ``neighbours`` largest entries: a ``scipy.sparse.csr_matrix``."""
    from scipy import sparse

    pairs = indexed.select("customer_idx", "product_idx").toPandas()
    x = sparse.csr_matrix((np.ones(len(pairs), dtype=np.float32),
                           (pairs["customer_idx"].to_numpy(), pairs["product_idx"].to_numpy())),
                          shape=(n_customers, n_products))
    co = (x.T @ x).tocsr().astype(np.float64)
    norm = np.sqrt(np.maximum(co.diagonal(), 1.0))
    sim = sparse.diags(1.0 / norm) @ co @ sparse.diags(1.0 / norm)
    return _keep_top(sim.tocsr(), neighbours)


def _keep_top(sim: Any, n: int) -> Any:
    """Each row's ``n`` largest entries of a CSR matrix (the rest dropped)."""
    from scipy import sparse

    rows, cols, vals = [], [], []
    for i in range(sim.shape[0]):
        lo, hi = sim.indptr[i], sim.indptr[i + 1]
        data, idx = sim.data[lo:hi], sim.indices[lo:hi]
        keep = np.argsort(-data, kind="stable")[:n]
        rows.append(np.full(len(keep), i))
        cols.append(idx[keep])
        vals.append(data[keep])
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=sim.shape)


# --------------------------------------------------------------------------- scoring


def _score_all(user_factors: DataFrame, indexed: DataFrame, recent: DataFrame | None,
               factors: AlsFactors, popularity: np.ndarray, similarity: Any,
               k: int) -> DataFrame:
    """Every method's top ``k`` for every training customer, on the executors."""
    from pyspark.sql import functions as F

    history = indexed.groupBy("customer_idx").agg(F.collect_list("product_idx").alias("history"))
    users = user_factors.join(history, "customer_idx", "inner")
    if recent is not None:
        users = users.join(recent.groupBy("customer_idx").agg(
            F.collect_list("product_idx").alias("recent")), "customer_idx", "left")
    else:
        users = users.withColumn("recent", F.lit(None).cast("array<int>"))
    scorer = _Scorer(factors.product_factors, popularity, similarity, factors.customer_ids,
                     factors.product_ids, k)
    return users.mapInPandas(scorer, RECOMMENDATION_SCHEMA)


class _Scorer:
    """Picklable per-batch scorer: customer factors, histories and exclusions in, rows out."""

    def __init__(self, v: np.ndarray, popularity: np.ndarray, similarity: Any,
                 customer_ids: np.ndarray, product_ids: np.ndarray, k: int):
        self.v, self.similarity, self.k = v, similarity, k
        self.customer_ids, self.product_ids = customer_ids, product_ids
        self.popularity = popularity
        # Ties (a product no neighbour reaches scores 0) go to the better seller.
        self.tie = 1e-9 * popularity / max(float(popularity.max()), 1.0)

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # A few million scores at a time: three methods' dense blocks stay well under 1 GiB.
        rows = max(1, SCORE_BLOCK // max(len(self.product_ids), 1))
        for batch in batches:
            for start in range(0, len(batch), rows):
                yield self._batch(batch.iloc[start:start + rows])

    def _batch(self, batch: pd.DataFrame) -> pd.DataFrame:
        n, n_products = len(batch), len(self.product_ids)
        history = _incidence(batch["history"], n, n_products)
        scores = {"als": np.stack(batch["features"].to_numpy()).astype(np.float64) @ self.v.T,
                  "popularity": np.broadcast_to(self.popularity, (n, n_products)).copy(),
                  "co_purchase": np.asarray((history @ self.similarity).todense()) + self.tie}
        excluded = _incidence(batch["recent"], n, n_products).toarray() > 0
        users = batch["customer_idx"].to_numpy()
        return pd.concat([self._top(method, s, excluded, users) for method, s in scores.items()],
                         ignore_index=True)

    def _top(self, method: str, scores: np.ndarray, excluded: np.ndarray,
             users: np.ndarray) -> pd.DataFrame:
        scores[excluded] = -np.inf
        k = min(self.k, scores.shape[1])
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
        top_scores = np.take_along_axis(scores, top, axis=1)
        keep = np.isfinite(top_scores).ravel()
        return pd.DataFrame({
            "customer_id": np.repeat(self.customer_ids[users], k)[keep],
            "product_id": self.product_ids[top.ravel()][keep],
            "score": top_scores.ravel()[keep],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(users))[keep],
            "method": method})


def _incidence(lists: pd.Series, n: int, n_products: int) -> Any:
    """A (rows x products) 0/1 sparse matrix from a column of product-number lists."""
    from scipy import sparse

    lengths = np.array([0 if x is None else len(x) for x in lists])
    cols = (np.concatenate([np.asarray(x, dtype=np.int64) for x in lists if x is not None])
            if lengths.sum() else np.array([], dtype=np.int64))
    rows = np.repeat(np.arange(n), lengths)
    return sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(n, n_products))
