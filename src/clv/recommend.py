"""Product recommendations: implicit-feedback ALS against two baselines, out of time.

What :func:`fit_recommender` does with ``raw.order_lines`` rows and a cutoff:

* **training window**: lines with ``order_ts < cutoff``. The implicit feedback of a
  (customer, product) pair is its *net* quantity (returns and cancellations are negative
  lines, netted here like everywhere else); pairs with a net quantity <= 0 are no signal.
* **models**, each scoring every training customer against the training catalogue:
  ``als`` (Spark MLlib ALS, ``implicitPrefs=True``: confidence ``1 + alpha * quantity``);
  ``popularity`` (net quantity sold in the training window, the same list for everyone);
  ``co_purchase`` (item-to-item: the sum, over the distinct products a customer bought,
  of their cosine co-purchase similarity to the candidate, each product keeping its
  :attr:`AlsParams.neighbours` nearest; a product is its own nearest, so repeat
  purchases count as they do for ALS; ties broken by popularity).
* **exclusion** (optional, ``exclude_recent_days=N``): products the customer bought in
  the N days before the cutoff are never recommended, by any method.
* **evaluation window**: ``cutoff <= order_ts < cutoff + horizon_days``; a product is
  relevant to a customer when its net quantity there is > 0. Customers scored are the
  training customers with at least one relevant product; per customer
  ``precision@k = hits / k``, ``recall@k = hits / relevant``, ``NDCG@k = DCG / IDCG``
  with gain ``1 / log2(rank + 1)`` and IDCG over ``min(relevant, k)`` hits, averaged over
  customers; ``coverage`` = distinct products recommended to anyone / products in the
  training catalogue.
* **champion rule** (:func:`decide_champion`): ALS becomes ``champion`` of
  :data:`RECOMMEND_MODEL_NAME` only if its NDCG@k beats *both* baselines' by more than
  :data:`clv.registry.PROMOTION_MARGIN` on this window; otherwise the champion stays
  and the published list is the better baseline's (the ``method`` column says which),
  so the shop never gets recommendations that lost to a baseline.

Nothing here writes to the warehouse; :func:`register_recommender` logs the run and
registers the ALS factors in MLflow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from clv.config import Settings

log = logging.getLogger(__name__)

RECOMMEND_MODEL_NAME = "clv_recommend"
MODEL_FAMILY = "als"
METHODS = ("als", "popularity", "co_purchase")
BASELINES = ("popularity", "co_purchase")
PRIMARY_METRIC = "ndcg"
#: Columns of every top-k frame (``marts.recommendations`` adds ``as_of_date`` and lineage).
#: Scores held at once per Python worker while ranking (customers x products).
SCORE_BLOCK = 2_000_000
RECOMMENDATION_SCHEMA = ("customer_id string, product_id string, score double, rank int, "
                         "method string")


@dataclass(frozen=True)
class AlsParams:
    """ALS hyperparameters and the co-purchase baseline's neighbourhood size."""

    # Chosen on a 30,000-line synthetic set (1,000 customers, 150 products, 6 true
    # factors): NDCG@10 0.655 against 0.641-0.647 for rank 8/16, alpha 1-5, reg 0.1.
    rank: int = 12
    max_iter: int = 15
    reg_param: float = 0.5
    alpha: float = 2.0
    seed: int = 7
    neighbours: int = 50


@dataclass(frozen=True)
class AlsFactors:
    """The fitted factors: what the registered model carries."""

    customer_ids: np.ndarray  # (n_customers,) str
    customer_factors: np.ndarray  # (n_customers, rank) float32
    product_ids: np.ndarray  # (n_products,) str
    product_factors: np.ndarray  # (n_products, rank) float32

    def save(self, path: Path) -> Path:
        np.savez(path, customer_ids=self.customer_ids.astype(str),
                 customer_factors=self.customer_factors,
                 product_ids=self.product_ids.astype(str), product_factors=self.product_factors)
        return path

    @classmethod
    def load(cls, path: str | Path) -> AlsFactors:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["customer_ids"], z["customer_factors"], z["product_ids"],
                       z["product_factors"])


@dataclass
class RecommenderRun:
    """One out-of-time fit: the published list, every method's lists, and the figures."""

    top_k: DataFrame  # the chosen method's rows (RECOMMENDATION_SCHEMA)
    candidates: DataFrame  # every method's rows, persisted
    method: str  # which method top_k holds
    metrics: dict[str, float]  # "<method>.<metric>_at_<k>", "<method>.coverage", counts
    params: dict[str, Any]
    factors: AlsFactors
    decision: tuple[str | None, str] = field(default=(None, ""))


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
                    params: AlsParams = AlsParams(),
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
              params: AlsParams = AlsParams()) -> tuple[DataFrame, dict[str, float]]:
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
    from clv.registry import PROMOTION_MARGIN

    return {"primary_metric": f"ndcg_at_{k}", "higher_is_better": True,
            "promotion_margin": PROMOTION_MARGIN,
            "rank": f"ndcg_at_{k} beats every baseline ({', '.join(BASELINES)}) by more than "
                    "the margin on the same evaluation window"}


def decide_champion(by_method: Mapping[str, Mapping[str, float]], k: int,
                    margin: float | None = None) -> tuple[str | None, str]:
    """``("champion", why)`` when ALS's NDCG@k beats both baselines' by more than
    ``margin`` (default :data:`clv.registry.PROMOTION_MARGIN`), else ``(None, why)``:
    the version gets no alias and the current champion, if any, stays."""
    from clv.registry import CHAMPION, PROMOTION_MARGIN

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


# --------------------------------------------------------------------------- MLflow


def register_recommender(run: RecommenderRun, settings: Settings | None = None,
                         context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Log the run (params, every method's metrics) and register the ALS factors as a
    version of :data:`RECOMMEND_MODEL_NAME`; it becomes ``champion`` only under
    :func:`decide_champion` (the decision and the rule are its tags either way).

    Args:
        context: Optional ``run_id`` / ``as_of_date`` of the Airflow run (lineage tags).

    Returns:
        ``{"version", "alias", "reason", "mlflow_run_id", "method"}``.
    """
    import mlflow
    from clv import lineage, registry
    from clv.recommend_pyfunc import AlsRecommenderPyfunc

    experiment_id = registry.configure_mlflow(settings)
    ctx = dict(context or {})
    tags = {"model_family": MODEL_FAMILY, "horizon_days": str(run.params["horizon_days"]),
            "cutoff": run.params["cutoff"], "published_method": run.method}
    if "run_id" in ctx:
        tags.update(lineage.run_tags(ctx["run_id"], ctx.get("as_of_date", run.params["cutoff"])))
    name = f"recommend {run.params['cutoff']}" + (f" {ctx['run_id']}" if "run_id" in ctx else "")
    with tempfile.TemporaryDirectory() as tmp, \
            mlflow.start_run(experiment_id=experiment_id, run_name=name) as mlrun:
        mlflow.set_tags(tags)
        mlflow.log_params(run.params)
        mlflow.log_metrics(run.metrics)
        info = mlflow.pyfunc.log_model(
            name="recommender", python_model=AlsRecommenderPyfunc(),
            artifacts={"factors": str(run.factors.save(Path(tmp) / "factors.npz"))},
            registered_model_name=RECOMMEND_MODEL_NAME, signature=_signature(),
            pip_requirements=[f"numpy=={np.__version__}", f"pandas=={pd.__version__}"])
    version = str(info.registered_model_version)
    registry.record_artifact_digest(RECOMMEND_MODEL_NAME, version, settings)
    return {"version": version, **_apply_decision(version, run, tags, settings),
            "mlflow_run_id": mlrun.info.run_id, "method": run.method}


def _signature() -> Any:
    """customer_id in; customer_id, product_id, score, rank out; ``k`` a parameter."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "customer_id")]),
        outputs=Schema([ColSpec("string", "customer_id"), ColSpec("string", "product_id"),
                        ColSpec("double", "score"), ColSpec("long", "rank")]),
        params=ParamSchema([ParamSpec("k", "long", 10)]))


def _apply_decision(version: str, run: RecommenderRun, tags: Mapping[str, str],
                    settings: Settings | None) -> dict[str, Any]:
    """Tag the version with the decision and the rule; move ``champion`` if it won."""
    import mlflow
    from clv import registry

    alias, reason = run.decision
    client = mlflow.MlflowClient()
    for key, value in {**{k: v for k, v in tags.items() if not k.startswith("mlflow.")},
                       "alias_decision": reason,
                       "alias_rule": json.dumps(champion_rule(int(run.params["k"])),
                                                sort_keys=True)}.items():
        client.set_model_version_tag(RECOMMEND_MODEL_NAME, version, key, str(value))
    if alias is not None:
        with registry.alias_lock(RECOMMEND_MODEL_NAME, settings):
            client.set_registered_model_alias(RECOMMEND_MODEL_NAME, alias, version)
    log.info("%s v%s -> %s: %s", RECOMMEND_MODEL_NAME, version, alias, reason)
    return {"alias": alias, "reason": reason}
