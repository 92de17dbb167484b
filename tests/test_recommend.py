"""Recommendations (issue #18): synthetic lines with known preferences, ALS against the
popularity and co-purchase baselines out of time, the metrics by hand, the exclusion of
recent purchases, and the MLflow registration with its champion rule."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from clv.data.synthetic.lines import LINE_COLUMNS, LinesSpec, generate_lines
from clv.models import recommend

CUTOFF = dt.date(2024, 10, 1)
HORIZON = 90
SPEC = LinesSpec(n_customers=1000, n_products=150, n_lines=30_000, seed=3)


# --------------------------------------------------------------------------- generator


def test_lines_are_deterministic_and_follow_the_contract():
    a, b = generate_lines(LinesSpec(n_lines=5_000, seed=11)), generate_lines(
        LinesSpec(n_lines=5_000, seed=11))
    frame = a.frame()
    assert tuple(frame.columns) == LINE_COLUMNS
    assert len(frame) == 5_000
    assert frame.equals(b.frame())
    assert not np.array_equal(generate_lines(LinesSpec(n_lines=5_000, seed=12)).line_product,
                              a.line_product)
    per_order = frame.groupby("order_id").agg(customers=("customer_id", "nunique"),
                                              times=("order_ts", "nunique"))
    assert (per_order == 1).all().all()  # one customer and one time per order
    assert (frame["quantity"] >= 1).all() and (frame["unit_price"] > 0).all()
    # A product's category and price are the product's, on every line.
    assert (frame.groupby("product_id")[["category", "unit_price"]].nunique() == 1).all().all()


def test_choices_follow_the_true_preferences():
    data = generate_lines(LinesSpec(n_customers=50, n_products=40, n_lines=40_000, seed=5))
    for customer in (0, 17, 33):
        logits = data.affinity(np.array([customer]))[0]
        truth = np.exp(logits - logits.max())
        truth /= truth.sum()
        bought = np.bincount(data.line_product[data.line_customer == customer], minlength=40)
        n = bought.sum()
        # Each share within 5 binomial standard errors of its true probability.
        se = np.sqrt(truth * (1 - truth) / n)
        assert np.all(np.abs(bought / n - truth) <= 5 * se + 1e-9), customer


# --------------------------------------------------------------------------- metrics


def test_ideal_dcg():
    assert recommend.ideal_dcg(1, 10) == 1.0
    assert recommend.ideal_dcg(2, 10) == pytest.approx(1 + 1 / math.log2(3))
    assert recommend.ideal_dcg(20, 3) == pytest.approx(1 + 1 / math.log2(3) + 0.5)


def test_metrics_match_a_hand_computed_example(spark):
    rows = [("A", "p1", 1, "m1"), ("A", "p2", 2, "m1"), ("A", "p3", 3, "m1"),
            ("B", "p1", 1, "m1"), ("B", "p5", 2, "m1"),
            ("C", "p1", 1, "m1"),
            ("A", "p4", 1, "m2"), ("A", "p2", 2, "m2"), ("A", "p9", 3, "m2"),
            ("A", "p7", 4, "m2")]  # rank 4 is beyond k = 3
    candidates = spark.createDataFrame(rows, "customer_id string, product_id string, "
                                             "rank int, method string")
    relevant = spark.createDataFrame([("A", "p2"), ("A", "p4"), ("B", "p1"), ("D", "p1")],
                                     "customer_id string, product_id string")
    got = recommend.evaluate_top_k(candidates, relevant, k=3, catalogue_size=10)
    # A: m1 hit at rank 2 of relevant {p2, p4}; m2 hits at ranks 1 and 2 (perfect).
    # B: m1 hit at rank 1 of {p1}; no m2 list, so 0. C: nothing relevant; D: no list.
    ndcg_a_m1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert got["m1"] == pytest.approx({"precision": (1 / 3 + 1 / 3) / 2,
                                       "recall": (0.5 + 1.0) / 2,
                                       "ndcg": (ndcg_a_m1 + 1.0) / 2,
                                       "customers": 2.0, "coverage": 4 / 10})
    assert got["m2"] == pytest.approx({"precision": (2 / 3 + 0) / 2, "recall": (1.0 + 0) / 2,
                                       "ndcg": (1.0 + 0) / 2, "customers": 2.0,
                                       "coverage": 3 / 10})


def test_champion_only_when_als_beats_both_baselines():
    figures = {"als": {"ndcg": 0.30}, "popularity": {"ndcg": 0.10},
               "co_purchase": {"ndcg": 0.25}}
    alias, why = recommend.decide_champion(figures, k=10, margin=0.0)
    assert alias == "champion" and "0.3000" in why
    assert recommend.decide_champion(figures, k=10, margin=0.06)[0] is None
    tie = {**figures, "co_purchase": {"ndcg": 0.30}}
    alias, why = recommend.decide_champion(tie, k=10, margin=0.0)
    assert alias is None and "co_purchase" in why and "popularity," not in why


# --------------------------------------------------------------------------- ALS


@pytest.fixture(scope="module")
def lines(spark):
    return spark.createDataFrame(generate_lines(SPEC).frame()).persist()


@pytest.fixture(scope="module")
def fitted(spark, lines):
    run = recommend.fit_recommender(spark, lines, CUTOFF, HORIZON)
    yield run
    run.candidates.unpersist()


def test_als_beats_popularity_on_known_preferences(fitted):
    m = fitted.metrics
    print({k: round(v, 4) for k, v in sorted(m.items())})
    assert m["als.ndcg_at_10"] > m["popularity.ndcg_at_10"] + 0.1
    assert m["als.recall_at_10"] > m["popularity.recall_at_10"] + 0.1
    # On these strong preferences ALS also beats co-purchase, so it is the list published.
    assert m["als.ndcg_at_10"] > m["co_purchase.ndcg_at_10"]
    assert fitted.method == "als" and fitted.decision[0] == "champion"
    top = fitted.top_k.toPandas()
    assert set(top["method"]) == {"als"}
    assert top.groupby("customer_id")["rank"].apply(sorted).map(
        lambda r: r == list(range(1, 11))).all()
    assert (top.sort_values(["customer_id", "rank"]).groupby("customer_id")["score"]
            .apply(lambda s: s.is_monotonic_decreasing)).all()
    assert m["popularity.coverage"] == pytest.approx(10 / m["n_catalogue"])


def test_exclusion_removes_recent_purchases(spark, lines, fitted):
    days = 60
    recent = recommend.net_pairs(lines, CUTOFF - dt.timedelta(days=days), CUTOFF) \
        .select("customer_id", "product_id")
    kept = fitted.candidates.join(recent, ["customer_id", "product_id"]).count()
    assert kept > 0  # without the option, recent purchases are recommended
    excluded = recommend.fit_recommender(spark, lines, CUTOFF, HORIZON, exclude_recent_days=days)
    try:
        assert excluded.candidates.join(recent, ["customer_id", "product_id"]).count() == 0
        assert excluded.candidates.groupBy("method", "customer_id").count() \
            .filter("count < 10").count() == 0  # the lists are filled from further down
    finally:
        excluded.candidates.unpersist()


def test_registered_with_the_champion_rule(spark, fitted, clv_home):
    import mlflow

    first = recommend.register_recommender(fitted, clv_home, {"run_id": "manual__t1",
                                                              "as_of_date": "2024-10-01"})
    assert first["alias"] == "champion"
    client = mlflow.MlflowClient()
    mv = client.get_model_version_by_alias(recommend.RECOMMEND_MODEL_NAME, "champion")
    assert str(mv.version) == first["version"]
    assert mv.tags["model_family"] == "als" and mv.tags["artifact_sha256"]
    assert "beats both baselines" in mv.tags["alias_decision"]
    run = client.get_run(first["mlflow_run_id"])
    assert run.data.metrics["als.ndcg_at_10"] == pytest.approx(fitted.metrics["als.ndcg_at_10"])
    assert run.data.params["horizon_days"] == str(HORIZON)

    model = mlflow.pyfunc.load_model(f"models:/{recommend.RECOMMEND_MODEL_NAME}/{mv.version}")
    out = model.predict(pd.DataFrame({"customer_id": ["C5", "nobody"]}),
                        params={"k": 3})
    f = fitted.factors
    row = list(f.customer_ids).index("C5")
    best = f.product_ids[np.argsort(-(f.customer_factors[row] @ f.product_factors.T))[:3]]
    assert list(out["product_id"]) == list(best) and set(out["customer_id"]) == {"C5"}

    loser = dataclasses.replace(fitted, decision=recommend.decide_champion(
        {"als": {"ndcg": 0.1}, "popularity": {"ndcg": 0.2}, "co_purchase": {"ndcg": 0.05}},
        k=10))
    second = recommend.register_recommender(loser, clv_home)
    assert second["alias"] is None and second["version"] != first["version"]
    assert client.get_model_version_by_alias(recommend.RECOMMEND_MODEL_NAME,
                                             "champion").version == int(first["version"])
    assert "does not beat popularity" in client.get_model_version(
        recommend.RECOMMEND_MODEL_NAME, second["version"]).tags["alias_decision"]


def test_top_k_publishes_as_marts_recommendations(spark, fitted, clv_home):
    from clv.data import catalog, warehouse

    path = warehouse.write_partition(fitted.top_k, catalog.RECOMMENDATIONS, CUTOFF, clv_home)
    back = spark.read.parquet(str(path))
    assert back.count() == fitted.top_k.count() > 0
    assert back.groupBy("customer_id", "rank").count().filter("count > 1").count() == 0
