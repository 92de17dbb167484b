"""Behavioural clusters: Spark MLlib K-means on the customer feature table.

The value x risk grid (:func:`clv.decisions.segments.assign_segments`) says what a
customer is *worth*; the clusters say how they *behave*: how recently, how often
and how much they buy, and how long they have been customers. K-means runs in
Spark on the feature partition, so it scales with the cluster like the feature
job, and only the per-customer assignment (one small row per customer) and the
per-cluster profile reach the driver.

Inputs to K-means, standardised (zero mean, unit variance) so that no feature
dominates by its unit: ``log1p(recency_days)``, ``log1p(tenure_days)``,
``log1p(frequency)``, ``log1p(avg_order_value)`` and ``log1p(spend in the last
three periods)``. Logs, because these are heavy-tailed: without them one
customer with 200 orders is a cluster of its own.

Clusters are numbered by their mean total spend, descending (cluster 1 spends
the most), so the numbering is stable when a retrain finds the same groups in a
different order. The fit is deterministic for a seed: rows are ordered by
customer_id before the fit.

Past :func:`clv.config.max_cluster_rows` customers (200,000) the scaler and the
centroids are fitted on a sample of about that many, the customers whose
``xxhash64(customer_id)`` falls in the first ``max_rows / n`` of its range (the same
customers however the table is partitioned), and then every customer is assigned to
its nearest centroid in one pass. K-means' iterations each cost a pass over the
input: at 2.57M customers the fit on all of them was most of the segment task.

Over Spark Connect the fitted models live in the server's ML cache and the client
releases them from a finaliser. The models sit in reference cycles, so that
finaliser runs whenever the cyclic garbage collector next fires: if that is in the
middle of another gRPC call, the nested release blocks the task for good (seen at
2.57M customers: the segment task hung in ``RemoteModelRef.release_ref``; upstream
SPARK-52764 / SPARK-57655, not fixed in pyspark 4.1). Over Connect,
:func:`behaviour_clusters` therefore keeps the collector off while it talks to Spark
and collects once after its Spark objects are gone, when no call is in flight.
"""

from __future__ import annotations

import gc
import logging
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

#: Default number of behavioural clusters.
N_CLUSTERS = 5
SEED = 42
#: Inputs to K-means: (name, expression over the feature table), logged.
_INPUTS = (
    ("log_recency", "recency_days"),
    ("log_tenure", "tenure_days"),
    ("log_frequency", "frequency"),
    ("log_avg_order_value", "avg_order_value"),
    ("log_recent_spend", "spend_p01 + spend_p02 + spend_p03"),
)
#: Columns averaged per cluster in its profile (original units).
PROFILE_COLUMNS = ("recency_days", "tenure_days", "frequency", "avg_order_value",
                   "total_spend")


@dataclass(frozen=True)
class Clusters:
    """K-means result.

    Attributes:
        assignments: customer_id, cluster (1..k), cluster_profile (text).
        profiles: One row per cluster: cluster, customers, share, the mean of each
            ``PROFILE_COLUMNS`` entry, cluster_profile.
        k: Number of clusters fitted (fewer than asked when there are fewer customers).
    """

    assignments: pd.DataFrame
    profiles: pd.DataFrame
    k: int


def _profile_text(row) -> str:
    return (f"last order {row.recency_days:.0f} d ago, customer for {row.tenure_days:.0f} d, "
            f"{row.frequency:.1f} repeat purchase days, {row.avg_order_value:.2f} per order, "
            f"{row.total_spend:.2f} spent")


@contextmanager
def _models_released_here():
    """No cyclic garbage collection inside; one collection on the way out.

    Spark ML models created inside (and the DataFrames that keep them alive) are
    released by that last collection, at a point where no Spark call is in flight,
    instead of by a collection that may fire inside a later gRPC call.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        if enabled:
            gc.enable()


def behaviour_clusters(features: DataFrame, k: int = N_CLUSTERS, seed: int = SEED,
                       max_fit_rows: int | None = None) -> Clusters:
    """Cluster customers by behaviour with Spark MLlib K-means.

    Args:
        features: The ``features.customer_features`` partition (Spark).
        k: Clusters wanted; capped at the number of customers.
        seed: K-means seed (k-means|| initialisation).
        max_fit_rows: Fit on a hashed sample of about this many customers when there are
            more (0: on all); default :func:`clv.config.max_cluster_rows`. Every
            customer is assigned either way.

    Returns:
        Assignments and per-cluster profiles, clusters numbered by mean spend (1 = highest).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    # Only a Connect client releases models over gRPC; a full collection costs ~1.5 s
    # in a process that holds TensorFlow and Airflow (measured in make run).
    over_connect = type(features).__module__.startswith("pyspark.sql.connect")
    if max_fit_rows is None:
        from clv.config import max_cluster_rows

        max_fit_rows = max_cluster_rows()
    with _models_released_here() if over_connect else nullcontext():
        n, profiles, ids = _fit_kmeans(features, k, seed, max_fit_rows)
    profiles = profiles.sort_values(["total_spend", "kmeans_id"], ascending=[False, True],
                                    kind="mergesort").reset_index(drop=True)
    profiles["cluster"] = range(1, len(profiles) + 1)
    profiles["share"] = profiles["customers"] / float(n)
    profiles["cluster_profile"] = [_profile_text(r) for r in profiles.itertuples()]
    assignments = ids.merge(profiles[["kmeans_id", "cluster", "cluster_profile"]],
                            on="kmeans_id", validate="many_to_one")
    assignments = assignments.drop(columns="kmeans_id").sort_values(
        "customer_id", kind="mergesort").reset_index(drop=True)
    profiles = profiles.drop(columns="kmeans_id")[
        ["cluster", "customers", "share", *PROFILE_COLUMNS, "cluster_profile"]]
    return Clusters(assignments=assignments, profiles=profiles, k=len(profiles))


def fit_sample(frame: DataFrame, n: int, max_rows: int) -> DataFrame:
    """The customers the centroids are fitted on: all of ``frame`` (``n`` rows) when
    ``max_rows`` is 0 or not exceeded, else those whose ``xxhash64(customer_id)`` lies in
    the lowest ``max_rows / n`` of its range (about ``max_rows``; a customer's membership
    depends on its id alone)."""
    from pyspark.sql import functions as F

    if not max_rows or n <= max_rows:
        return frame
    # xxhash64 is uniform over the signed 64-bit range: compare in [0, 1)
    unit = (F.xxhash64("customer_id").cast("double") + 2.0 ** 63) / 2.0 ** 64
    return frame.where(unit < F.lit(max_rows / n))


def _fit_kmeans(features: DataFrame, k: int, seed: int, max_fit_rows: int = 0
                ) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """(customers, per-K-means-cluster counts and means, customer_id -> kmeans_id), in pandas:
    no Spark object outlives this call."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.sql import functions as F

    n = features.count()
    if n == 0:
        raise ValueError("features.customer_features is empty: nothing to cluster")
    k = min(k, n, max_fit_rows or n)  # a sample of fewer customers than k: fewer clusters
    inputs = features.select(
        "customer_id", *PROFILE_COLUMNS,
        *[F.log1p(F.greatest(F.expr(expr).cast("double"), F.lit(0.0))).alias(name)
          for name, expr in _INPUTS],
    )
    assembler = VectorAssembler(inputCols=[name for name, _ in _INPUTS], outputCol="raw",
                                handleInvalid="error")
    learn = assembler.transform(fit_sample(inputs, n, max_fit_rows).orderBy("customer_id"))
    scaler = StandardScaler(inputCol="raw", outputCol="x", withMean=True, withStd=True) \
        .fit(learn)
    scaled = scaler.transform(learn)
    sampled = bool(max_fit_rows) and n > max_fit_rows
    if sampled:
        log.info(
            "K-means: centroids fitted on a hashed sample of ~%d of %d customers "
            "(CLV_MAX_CLUSTER_ROWS), every customer assigned", max_fit_rows, n)
    started = time.perf_counter()
    model = KMeans(k=k, seed=seed, featuresCol="x", predictionCol="kmeans_id",
                   maxIter=50).fit(scaled)
    log.info("K-means: %d centroids fitted in %.1f s", k, time.perf_counter() - started)
    every = scaler.transform(assembler.transform(inputs)) if sampled else scaled
    assigned = model.transform(every).select("customer_id", "kmeans_id", *PROFILE_COLUMNS)
    started = time.perf_counter()
    profiles = assigned.groupBy("kmeans_id").agg(
        F.count("*").alias("customers"),
        *[F.avg(c).alias(c) for c in PROFILE_COLUMNS],
    ).toPandas()
    ids = assigned.select("customer_id", "kmeans_id").toPandas()
    log.info("K-means: %d customers assigned and profiled in %.1f s", n,
             time.perf_counter() - started)
    return n, profiles, ids
