"""Behavioural K-means (clv.decisions.clusters): on local Spark and over a Spark Connect server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from clv.decisions import clusters

# Two groups a glance tells apart: 4 recent, frequent, big spenders and 6 lapsed one-off
# buyers. Any K-means with k=2 must split them exactly so.
HIGH = ["h1", "h2", "h3", "h4"]
LOW = ["l1", "l2", "l3", "l4", "l5", "l6"]


def _features() -> pd.DataFrame:
    rows = []
    for i, c in enumerate(HIGH):
        rows.append({"customer_id": c, "recency_days": 5 + i, "tenure_days": 700 + 10 * i,
                     "frequency": 12 + i, "avg_order_value": 80.0 + i,
                     "total_spend": 900.0 + 100 * i, "spend_p01": 100.0, "spend_p02": 90.0,
                     "spend_p03": 110.0})
    for i, c in enumerate(LOW):
        rows.append({"customer_id": c, "recency_days": 300 + i, "tenure_days": 400 + i,
                     "frequency": 1, "avg_order_value": 10.0 + i, "total_spend": 20.0 + i,
                     "spend_p01": 0.0, "spend_p02": 0.0, "spend_p03": 0.0})
    return pd.DataFrame(rows)


def test_two_obvious_groups_become_two_clusters_numbered_by_spend(spark):
    found = clusters.behaviour_clusters(spark.createDataFrame(_features()), k=2)

    assert found.k == 2
    by_customer = dict(zip(found.assignments["customer_id"], found.assignments["cluster"],
                           strict=True))
    assert {by_customer[c] for c in HIGH} == {1}  # the big spenders are cluster 1
    assert {by_customer[c] for c in LOW} == {2}
    assert list(found.assignments["customer_id"]) == sorted(HIGH + LOW)
    top, rest = found.profiles.iloc[0], found.profiles.iloc[1]
    assert (top["customers"], top["share"]) == (4, 0.4)
    assert (rest["customers"], rest["share"]) == (6, 0.6)
    assert top["total_spend"] == pytest.approx((900 + 1000 + 1100 + 1200) / 4)
    assert rest["recency_days"] == pytest.approx(sum(range(300, 306)) / 6)
    assert top["frequency"] == pytest.approx((12 + 13 + 14 + 15) / 4)
    assert "1050.00 spent" in top["cluster_profile"]


def test_k_is_capped_at_the_customers_and_must_be_positive(spark):
    three = spark.createDataFrame(_features().iloc[[0, 4, 5]])
    assert clusters.behaviour_clusters(three, k=5).k == 3
    with pytest.raises(ValueError, match="k must be >= 1"):
        clusters.behaviour_clusters(three, k=0)


# Runs in its own process: a Spark Connect client cannot share a process with the
# suite's local SparkSession.
_CONNECT_CLIENT = r"""
import gc, json, sys
from pyspark.ml.wrapper import JavaWrapper
from pyspark.sql import SparkSession
from clv.decisions import clusters

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
features = spark.read.parquet(sys.argv[2])

gc.disable()  # so that only behaviour_clusters itself can release the models
found = clusters.behaviour_clusters(features, k=2)
alive = sorted(type(o).__name__ for o in gc.get_objects() if isinstance(o, JavaWrapper))
still_disabled = not gc.isenabled()
gc.enable()
again = clusters.behaviour_clusters(features, k=2)
print(json.dumps({"alive": alive, "still_disabled": still_disabled,
                  "enabled_after": gc.isenabled(),
                  "assignments": found.assignments.to_dict("list"),
                  "same_again": found.assignments.equals(again.assignments)}))
"""


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    from clv.data.spark import free_port, start_connect_server

    home = tmp_path_factory.mktemp("connect_home")
    log = open(home / "server.log", "w")  # noqa: SIM115
    port = free_port()
    old = os.environ.get("CLV_HOME")
    os.environ["CLV_HOME"] = str(home)
    try:
        server = start_connect_server(port, log)
    finally:
        if old is None:
            os.environ.pop("CLV_HOME", None)
        else:
            os.environ["CLV_HOME"] = old
    yield f"sc://127.0.0.1:{port}"
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)
    log.close()


def test_over_spark_connect_the_models_are_released_inside_the_call(spark, connect_url,
                                                                      tmp_path):
    # The segment task once hung at 2.57M customers: a K-means model, kept alive by a
    # reference cycle, was released by a garbage collection that fired inside another
    # gRPC call. No model may outlive behaviour_clusters, and the collector's state
    # must be the caller's again afterwards.
    path = tmp_path / "features.parquet"
    _features().to_parquet(path, index=False)
    env = {k: v for k, v in os.environ.items() if k != "CLV_SPARK_REMOTE"}
    out = subprocess.run([sys.executable, "-c", _CONNECT_CLIENT, connect_url, str(path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])

    assert result["alive"] == []
    assert result["still_disabled"] and result["enabled_after"]
    assert result["same_again"]
    local = clusters.behaviour_clusters(spark.createDataFrame(_features()), k=2)
    assert result["assignments"] == local.assignments.to_dict("list")


def _three_groups(per_group: int = 200) -> tuple[pd.DataFrame, dict[str, int]]:
    """Three behaviours a glance tells apart, ``per_group`` customers each (ids interleaved,
    so no group is a range of ids), and each customer's group by spend rank (1 = most)."""
    import numpy as np

    rng = np.random.default_rng(3)
    rows, truth = [], {}
    shapes = {1: (5, 900, 20, 120.0), 2: (60, 500, 5, 40.0), 3: (330, 350, 1, 12.0)}
    for i in range(per_group * 3):
        group = i % 3 + 1
        recency, tenure, frequency, order_value = shapes[group]
        jitter = rng.uniform(0.9, 1.1, 4)
        spend = frequency * order_value * jitter[3]
        cid = f"c{i:05d}"
        truth[cid] = group
        rows.append({"customer_id": cid, "recency_days": recency * jitter[0],
                     "tenure_days": tenure * jitter[1], "frequency": frequency * jitter[2],
                     "avg_order_value": order_value * jitter[3], "total_spend": spend,
                     "spend_p01": spend / 6, "spend_p02": spend / 6, "spend_p03": spend / 6})
    return pd.DataFrame(rows), truth


def test_past_max_fit_rows_the_centroids_come_from_a_hashed_sample_and_all_are_assigned(
        spark, caplog):
    frame, truth = _three_groups()
    features = spark.createDataFrame(frame)
    # the sample depends on the ids alone: the same customers however the table is split
    one = clusters.fit_sample(features.repartition(1), len(frame), 150)
    seven = clusters.fit_sample(features.repartition(7), len(frame), 150)
    picked = sorted(r.customer_id for r in one.select("customer_id").collect())
    assert picked == sorted(r.customer_id for r in seven.select("customer_id").collect())
    assert 100 <= len(picked) <= 200  # ~150 of 600 (binomial sd 10.6)
    assert clusters.fit_sample(features, len(frame), 600) is features  # not exceeded: all
    assert clusters.fit_sample(features, len(frame), 0) is features

    with caplog.at_level("INFO", logger="clv.decisions.clusters"):
        found = clusters.behaviour_clusters(features.repartition(5), k=3, max_fit_rows=150)
    assert "hashed sample of ~150 of 600 customers" in caplog.text
    # every customer is assigned, each to its own group (numbered by spend, as a fit on all)
    assert list(found.assignments["customer_id"]) == sorted(truth)
    assert dict(zip(found.assignments["customer_id"], found.assignments["cluster"],
                    strict=True)) == truth
    assert found.profiles["customers"].tolist() == [200, 200, 200]
    full = clusters.behaviour_clusters(features, k=3, max_fit_rows=0)
    pd.testing.assert_frame_equal(found.assignments, full.assignments)
    again = clusters.behaviour_clusters(features.repartition(2), k=3, max_fit_rows=150)
    pd.testing.assert_frame_equal(found.profiles, again.profiles)
