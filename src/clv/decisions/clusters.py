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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame

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


def behaviour_clusters(features: DataFrame, k: int = N_CLUSTERS, seed: int = SEED) -> Clusters:
    """Cluster customers by behaviour with Spark MLlib K-means.

    Args:
        features: The ``features.customer_features`` partition (Spark).
        k: Clusters wanted; capped at the number of customers.
        seed: K-means seed (k-means|| initialisation).

    Returns:
        Assignments and per-cluster profiles, clusters numbered by mean spend (1 = highest).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    # Only a Connect client releases models over gRPC; a full collection costs ~1.5 s
    # in a process that holds TensorFlow and Airflow (measured in make run).
    over_connect = type(features).__module__.startswith("pyspark.sql.connect")
    with _models_released_here() if over_connect else nullcontext():
        n, profiles, ids = _fit_kmeans(features, k, seed)
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


def _fit_kmeans(features: DataFrame, k: int, seed: int) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """(customers, per-K-means-cluster counts and means, customer_id -> kmeans_id), in pandas:
    no Spark object outlives this call."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.sql import functions as F

    n = features.count()
    if n == 0:
        raise ValueError("features.customer_features is empty: nothing to cluster")
    k = min(k, n)
    inputs = features.select(
        "customer_id", *PROFILE_COLUMNS,
        *[F.log1p(F.greatest(F.expr(expr).cast("double"), F.lit(0.0))).alias(name)
          for name, expr in _INPUTS],
    ).orderBy("customer_id")
    vectors = VectorAssembler(inputCols=[name for name, _ in _INPUTS], outputCol="raw",
                              handleInvalid="error").transform(inputs)
    scaled = StandardScaler(inputCol="raw", outputCol="x", withMean=True, withStd=True) \
        .fit(vectors).transform(vectors)
    model = KMeans(k=k, seed=seed, featuresCol="x", predictionCol="kmeans_id",
                   maxIter=50).fit(scaled)
    assigned = model.transform(scaled).select("customer_id", "kmeans_id", *PROFILE_COLUMNS)
    profiles = assigned.groupBy("kmeans_id").agg(
        F.count("*").alias("customers"),
        *[F.avg(c).alias(c) for c in PROFILE_COLUMNS],
    ).toPandas()
    return n, profiles, assigned.select("customer_id", "kmeans_id").toPandas()
