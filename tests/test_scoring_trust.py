"""Through the pipeline steps with real small models: scores carry intervals and p_alive,
reasons are the champion's SHAP (or the XGBoost challenger's for a ZILN champion), and
evaluate logs the interval coverage per spend version."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import in_memory_splits
from test_training import AS_OF, HORIZON, _small_ziln, synthetic_examples

from clv import pipeline
from clv.data import warehouse
from clv.features import FEATURE_COLUMNS
from clv.models import intervals, registry, training


@pytest.fixture
def trained_home(spark, clv_home, monkeypatch):
    """XGBoost champions trained on synthetic customers, and their features at AS_OF."""
    import datetime as dt

    learn = synthetic_examples(300, 1, AS_OF - dt.timedelta(days=2 * HORIZON), "train")
    evaluate = synthetic_examples(400, 2, AS_OF - dt.timedelta(days=HORIZON), "eval")
    by_split = {"train": learn, "eval": evaluate}
    for where in (training.splits, training):  # read by the trainers / by clv.pipeline
        monkeypatch.setattr(where, "load_split",
                            in_memory_splits(by_split))
    monkeypatch.setenv("CLV_DEVICE", "cpu")
    monkeypatch.setitem(training.XGB_PARAMS, "n_estimators", 80)
    monkeypatch.setitem(training.XGB_PARAMS, "n_jobs", 1)
    training.train_clv_model(AS_OF, HORIZON, "run-1")
    training.train_churn_model(AS_OF, HORIZON, "run-1")
    # training only registers (evaluate decides aliases): an ML lead's promotion
    registry.promote("clv_spend", "1")
    registry.promote("clv_churn", "1")
    feats = evaluate[["customer_id", *FEATURE_COLUMNS]]  # the features "at AS_OF"
    warehouse.write_partition(spark.createDataFrame(feats), "features.customer_features", AS_OF)
    return feats


def test_score_publishes_intervals_p_alive_and_the_champions_shap_reasons(trained_home,
                                                                        monkeypatch):
    import xgboost as xgb

    out = pipeline.score(AS_OF, HORIZON, "run-1")
    assert out["customers"] == 400
    assert pipeline.explain(AS_OF, "run-1")["rows"] > 0
    scores = warehouse.read_partition_pandas("marts.customer_scores", AS_OF)
    q = scores[intervals.INTERVAL_COLUMNS].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all() and (q >= 0).all()
    assert (scores["clv_p90"] > 0).all()
    # BG/NBD: no repeat purchase -> alive; a long silence lowers P(alive)
    feats = trained_home.set_index("customer_id").loc[scores["customer_id"]]
    one_timers = (feats["frequency"] == 0).to_numpy()
    np.testing.assert_allclose(scores.loc[one_timers, "p_alive"], 1.0)
    repeat = ~one_timers
    recent = (feats["recency_days"] < 60).to_numpy()
    assert scores.loc[repeat & recent, "p_alive"].mean() > \
        scores.loc[repeat & ~recent, "p_alive"].mean()

    reasons = warehouse.read_partition_pandas("marts.score_reasons", AS_OF)
    assert set(reasons["rank"]) == {1, 2, 3} and set(reasons["model_version"]) == {"1"}
    # rank 1 is the feature with the largest |TreeSHAP| of the champion (XGBoost's own)
    model = registry.load_version("clv_spend", "1").model
    x = training.feature_matrix(trained_home, "float32")
    # over the trees its predict uses: an early-stopped model stops at its best round
    trees = (0, model.best_iteration + 1)
    contrib = model.get_booster().predict(xgb.DMatrix(x), pred_contribs=True,
                                          iteration_range=trees)[:, :-1]
    expected = np.array(FEATURE_COLUMNS)[np.abs(contrib).argmax(axis=1)]
    first = reasons[reasons["rank"] == 1].set_index("customer_id")["feature"]
    assert (first.loc[trained_home["customer_id"]].to_numpy() == expected).all()

    # CLV_MAX_EXPLAIN_ROWS: only the highest predicted CLVs, with the same reasons
    monkeypatch.setenv("CLV_MAX_EXPLAIN_ROWS", "50")
    out = pipeline.explain(AS_OF, "run-1")
    assert (out["customers_explained"], out["customers_scored"]) == (50, 400)
    top = scores.sort_values(["predicted_clv", "customer_id"], ascending=[False, True])
    capped = warehouse.read_partition_pandas("marts.score_reasons", AS_OF)
    assert set(capped["customer_id"]) == set(top["customer_id"].head(50))
    key = ["customer_id", "rank"]
    pd.testing.assert_frame_equal(
        capped.sort_values(key).reset_index(drop=True)[["customer_id", "rank", "feature",
                                                         "contribution"]],
        reasons[reasons["customer_id"].isin(set(top["customer_id"].head(50)))]
        .sort_values(key).reset_index(drop=True)[["customer_id", "rank", "feature",
                                                   "contribution"]])


def test_evaluate_logs_interval_coverage_per_spend_version(trained_home):
    import mlflow

    pipeline.evaluate(AS_OF, HORIZON, "run-1")
    metrics = warehouse.read_partition_pandas("marts.model_metrics", AS_OF)
    row = metrics[(metrics["model_name"] == "clv_spend")
                  & (metrics["metric"] == intervals.COVERAGE_METRIC)]
    assert row["model_version"].tolist() == ["1"]
    coverage = float(row["value"].iat[0])
    assert 0.6 < coverage <= 1.0
    run_id = mlflow.MlflowClient().get_model_version("clv_spend", "1").run_id
    logged = mlflow.MlflowClient().get_run(run_id).data.metrics
    assert logged[intervals.COVERAGE_METRIC] == pytest.approx(coverage)
    assert intervals.NOMINAL_METRIC in logged


def test_a_ziln_champion_gets_its_own_quantiles_and_the_xgboost_challengers_reasons(
        trained_home):
    training.train_ziln_model(AS_OF, HORIZON, "run-2", config=_small_ziln())
    registry.promote("clv_spend", "2")
    registry.promote("clv_churn", "2")
    registry.promote("clv_spend", "1", registry.CHALLENGER)
    pipeline.score(AS_OF, HORIZON, "run-2")
    out = pipeline.explain(AS_OF, "run-2")
    scores = warehouse.read_partition_pandas("marts.customer_scores", AS_OF)
    assert {str(v) for v in scores["clv_model_version"]} == {"2"}
    # one network: P10 is 0 exactly where its churn head gives P(no purchase) >= 10 %
    np.testing.assert_array_equal(scores["clv_p10"] == 0, scores["p_churn"] >= 0.1)
    assert ((scores["clv_p50"] > 0) == (scores["p_churn"] < 0.5)).all()
    assert "xgboost challenger v1" in out["explanation"]
    reasons = warehouse.read_partition_pandas("marts.score_reasons", AS_OF)
    assert set(reasons["model_version"]) == {"1"}
    # without an xgboost challenger (the rule refused it), the newest xgboost version
    # of the target still explains: reasons are never silently missing
    import mlflow

    mlflow.MlflowClient().delete_registered_model_alias("clv_spend", registry.CHALLENGER)
    out = pipeline.explain(AS_OF, "run-3")
    assert "newest xgboost version v1 (no alias)" in out["explanation"]
    assert set(warehouse.read_partition_pandas("marts.score_reasons", AS_OF)
               ["model_version"]) == {"1"}
