"""Both model families train, log, register and compete for the same champion alias;
scoring and evaluation work with either as champion (small synthetic customers)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import in_memory_splits

from clv.config import N_PERIODS
from clv.data import warehouse
from clv.features import FEATURE_COLUMNS, RFM_FEATURES, period_columns
from clv.models import metrics, registry, scoring, training

AS_OF = dt.date(2020, 1, 1)
HORIZON = 90


def synthetic_examples(n: int, seed: int, cutoff: dt.date, split: str) -> pd.DataFrame:
    """Customers with Poisson purchases over 365 days, features as in clv.features, and
    the labels of the next HORIZON days (a dead customer buys nothing)."""
    rng = np.random.default_rng(seed)
    rows = []
    for cid in range(n):
        rate, value = rng.gamma(0.7, 0.02), rng.gamma(3.0, 15.0)
        first = int(rng.integers(0, 330))
        days = np.unique(np.r_[first, rng.integers(first + 1, 365,
                                                   rng.poisson(rate * (364 - first)))])
        amounts = value * rng.lognormal(0, 0.3, days.size)
        gaps = np.diff(days)
        age = 365 - days  # days before the cutoff (1 = the day before)
        period = (age - 1) // 30 + 1
        row = {"customer_id": f"c{cid:04d}", "recency_days": age.min(), "tenure_days": age.max(),
               "n_orders": days.size, "n_purchase_days": days.size, "frequency": days.size - 1,
               "total_spend": amounts.sum(), "avg_order_value": amounts.mean(),
               "max_order_value": amounts.max(),
               "mean_ipt_days": gaps.mean() if gaps.size >= 1 else np.nan,
               "std_ipt_days": gaps.std(ddof=1) if gaps.size >= 2 else np.nan}
        for k in range(1, N_PERIODS + 1):
            row[f"spend_p{k:02d}"] = amounts[period == k].sum()
            row[f"orders_p{k:02d}"] = int((period == k).sum())
        alive = rng.random() < (0.9 if age.min() < 120 else 0.4)
        orders_next = rng.poisson(rate * HORIZON) if alive else 0
        row["orders_next"] = orders_next
        row["spend_next"] = value * rng.lognormal(0, 0.3, orders_next).sum()
        row["churned"] = int(orders_next == 0)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["cutoff_date"], frame["split"], frame["horizon_days"] = cutoff, split, HORIZON
    return frame[["cutoff_date", "split", "horizon_days", "customer_id", *FEATURE_COLUMNS,
                  "spend_next", "orders_next", "churned"]]


@pytest.fixture(scope="module")
def examples():
    learn = synthetic_examples(300, 1, AS_OF - dt.timedelta(days=2 * HORIZON), "train")
    evaluate = synthetic_examples(250, 2, AS_OF - dt.timedelta(days=HORIZON), "eval")
    return learn, evaluate


@pytest.fixture
def registry_home(clv_home, examples, monkeypatch):
    """An empty MLflow store; the training examples come from memory, not Spark."""
    by_split = dict(zip(("train", "eval"), examples, strict=True))
    for where in (training.splits, training):  # read by the trainers / by clv.pipeline
        monkeypatch.setattr(where, "load_split",
                            in_memory_splits(by_split))
    monkeypatch.setenv("CLV_DEVICE", "cpu")
    monkeypatch.setitem(training.XGB_PARAMS, "n_estimators", 80)
    monkeypatch.setitem(training.XGB_PARAMS, "n_jobs", 1)  # tiny data: threads only contend
    return clv_home


def _small_ziln():
    from clv.models import ziln

    return ziln.ZilnConfig(static_units=16, gru_units=8, hidden_units=16, max_epochs=6,
                           patience=3, batch_size=64, learning_rate=5e-3)


def test_both_families_compete_and_scoring_uses_whichever_is_champion(registry_home, examples,
                                                                      monkeypatch):
    import mlflow

    _, evaluate = examples
    clv = training.train_clv_model(AS_OF, HORIZON, "run-1")
    churn = training.train_churn_model(AS_OF, HORIZON, "run-1")
    # training only registers: the evaluate step decides the aliases
    assert (clv.version, clv.alias, clv.family) == ("1", None, "xgboost")
    assert (churn.version, churn.alias) == ("1", None)
    spend_z, churn_z = training.train_ziln_model(AS_OF, HORIZON, "run-1",
                                                 config=_small_ziln())
    assert (spend_z.name, spend_z.version, spend_z.family) == ("clv_spend", "2", "tensorflow")
    assert (churn_z.name, churn_z.version) == ("clv_churn", "2")
    assert spend_z.device == "CPU"

    client = mlflow.MlflowClient()
    run = client.get_run(spend_z.run_id)
    assert run.data.tags["model_family"] == "tensorflow" and run.data.tags["device"] == "CPU"
    assert {"normalized_gini", "roc_auc", "baseline_btyd_bgnbd_gg_normalized_gini",
            "baseline_naive_past_spend_rate_normalized_gini"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(spend_z.run_id, "evaluation")}
    assert {"evaluation/clv_spend_deciles.png", "evaluation/clv_spend_gain.png",
            "evaluation/clv_churn_calibration.png"} <= artifacts
    xgb_artifacts = {a.path for a in client.list_artifacts(clv.run_id, "evaluation")}
    assert "evaluation/shap_importance.png" in xgb_artifacts
    mv = client.get_model_version("clv_spend", "2")
    assert mv.tags["model_family"] == "tensorflow" and "alias_decision" in mv.tags

    # an ML lead makes the ZILN versions champions by hand; scoring needs no code change
    registry.promote("clv_spend", "2")
    registry.promote("clv_churn", "2")
    version, model = registry.load_champion("clv_spend")
    assert (str(version), model.family) == ("2", "tensorflow")
    monkeypatch.setattr(scoring.warehouse, "columns",  # the served frame's columns
                        lambda table, as_of, settings=None: list(evaluate.columns))
    monkeypatch.setattr(scoring.warehouse, "read_partition_pandas",
                        lambda table, as_of, settings=None, columns=None: evaluate)
    scores = scoring.score_customers(AS_OF, HORIZON, "run-2")
    assert {str(v) for v in scores["clv_model_version"]} == {"2"}
    assert {str(v) for v in scores["churn_model_version"]} == {"2"}
    x = training.feature_matrix(evaluate.sort_values("customer_id"))
    np.testing.assert_allclose(scores["predicted_clv"], model.predict(x), rtol=1e-6)
    gini = metrics.normalized_gini(evaluate.sort_values("customer_id")["spend_next"],
                                   scores["predicted_clv"])
    assert gini == pytest.approx(spend_z.metrics["normalized_gini"], abs=1e-6)
    # a version is loaded once per process (artifacts of a version never change)
    assert registry.load_version("clv_spend", "2") is registry.load_version("clv_spend", "2")
    assert registry.load_version("clv_spend", "1").family == "xgboost"

    # evaluate applies the rule (tested in test_evaluate_decides_aliases_on_rank_and_level);
    # the table's model_alias is each version's alias after the decision
    table = training.evaluate_models(AS_OF, HORIZON, "run-1")
    assert list(table.columns) == training.METRIC_COLUMNS
    assert not table.duplicated(["model_name", "model_version", "metric", "cutoff_date"]).any()
    got = {(r.model_name, r.model_version, r.metric): r for r in table.itertuples()}
    for version in ("1", "2"):
        assert got[("clv_spend", version, "normalized_gini")].model_alias == _alias_of(
            client, "clv_spend", version)
    assert got[("clv_spend", "2", "normalized_gini")].value == pytest.approx(
        spend_z.metrics["normalized_gini"])
    assert got[("clv_churn", "1", "roc_auc")].model_family == "xgboost"
    naive = training.past_spend_rate(evaluate, HORIZON)
    assert got[("naive_past_spend_rate", "baseline", "normalized_gini")].value == pytest.approx(
        metrics.normalized_gini(evaluate["spend_next"], naive))
    assert ("btyd_bgnbd_gg", "baseline", "roc_auc") in got
    assert set(table["cutoff_date"]) == {AS_OF - dt.timedelta(days=HORIZON)}

    # scored ahead (airflow dags test: while the ZILN network fits), the same table and
    # interval rows; what was scored ahead is what the table holds
    from clv.pipeline import train_tasks

    scored = training.score_versions(evaluate, HORIZON, "run-1")
    assert set(scored) == {(n, v) for n in ("clv_spend", "clv_churn") for v in ("1", "2")}
    assert scored[("clv_spend", "1")].coverage and scored[("clv_churn", "1")].coverage is None
    again = training.evaluate_models(AS_OF, HORIZON, "run-1", holdout=evaluate,
                                     scored=scored)
    pd.testing.assert_frame_equal(again, table)
    pd.testing.assert_frame_equal(
        train_tasks._with_interval_coverage(again, AS_OF, evaluate, scored),
        train_tasks._with_interval_coverage(table, AS_OF, evaluate))
    flat = {**scored, ("clv_spend", "1"): training.VersionScore(
        "xgboost", np.ones(len(evaluate)), scored[("clv_spend", "1")].coverage)}
    poisoned = training.evaluate_models(AS_OF, HORIZON, "run-1", holdout=evaluate,
                                        scored=flat)
    gini = poisoned[(poisoned["model_version"] == "1") & (poisoned["model_name"] == "clv_spend")
                    & (poisoned["metric"] == "normalized_gini")]["value"].iat[0]
    assert gini == pytest.approx(0.0, abs=1e-9) != got[("clv_spend", "1",
                                                         "normalized_gini")].value


def _alias_of(client, name, version):
    aliases = client.get_registered_model(name).aliases or {}
    return next((a for a, v in aliases.items() if str(v) == version), None)


def _expected_champion(table, name, decile_ratio):
    """The best qualifying version by the rule of issue #15, written out independently
    of clv.models.registry over the metric table (None: none qualifies)."""
    rows = table[table["target"] == ("spend" if name == "clv_spend" else "churn")]
    wide = rows.pivot_table(index=["model_name", "model_version", "model_family"],
                            columns="metric", values="value").reset_index()
    base, mine = wide[wide["model_version"] == "baseline"], wide[wide["model_name"] == name]
    primary = "normalized_gini" if name == "clv_spend" else "roc_auc"
    qualifying = []
    for r in mine.itertuples():
        rivals = base[base["model_family"] != r.model_family][primary]
        ok = getattr(r, primary) > max(rivals.max(), 0.0 if name == "clv_spend" else 0.5)
        if name == "clv_spend":
            ok &= abs(r.aggregate_error) <= 0.15 and r.decile_mape <= decile_ratio * base[
                "decile_mape"].min()
        else:
            ok &= r.brier <= 1.05 * base.loc[base["model_family"] == "btyd", "brier"].min()
        if ok:
            qualifying.append((getattr(r, primary), r.model_version))
    return max(qualifying)[1] if qualifying else None


def test_evaluate_decides_aliases_on_rank_and_level(registry_home, examples, monkeypatch):
    """XGBoost and BTYD versions registered, evaluate decides: the registry's aliases
    are the rule's (written out independently above), every decision is recorded with
    the rule, and a champion that does not qualify loses the alias to one that does."""
    import json

    import mlflow

    # deciles of 25 customers are noisy: a looser decile bound lets the level rule turn
    # on the aggregate error here (the bound itself is tested in test_registry.py)
    monkeypatch.setattr(registry.policy, "DECILE_MAPE_RATIO", 3.0)
    training.train_clv_model(AS_OF, HORIZON, "run-a")
    training.train_churn_model(AS_OF, HORIZON, "run-a")
    btyd_results = training.train_btyd_models(AS_OF, HORIZON, "run-a", kinds=["bgnbd"])
    assert [(r.name, r.version, r.family, r.alias) for r in btyd_results] == [
        ("clv_spend", "2", "btyd", None), ("clv_churn", "2", "btyd", None)]
    client = mlflow.MlflowClient()
    assert registry.champion_version(client, "clv_spend") is None
    table = training.evaluate_models(AS_OF, HORIZON, "run-a")
    # on this data the BTYD spend version qualifies (its Gini beats the naive baseline,
    # it is not gated on the BTYD baseline) and the XGBoost one does not
    assert _expected_champion(table, "clv_spend", 3.0) == "2"
    assert str(registry.champion_version(client, "clv_spend")) == "2"
    churn_expected = _expected_champion(table, "clv_churn", 3.0)
    churn_champion = str(registry.champion_version(client, "clv_churn"))
    if churn_expected is not None:
        assert churn_champion == churn_expected
    else:  # first run, nothing qualifies: the smallest Brier passing the floor scores
        brier = table[(table["model_name"] == "clv_churn") & (table["metric"] == "brier")]
        assert churn_champion == brier.loc[brier["value"].idxmin(), "model_version"]
        assert "no champion yet" in client.get_model_version(
            "clv_churn", churn_champion).tags["alias_decision"]
    for name in ("clv_spend", "clv_churn"):
        for version in ("1", "2"):
            tags = client.get_model_version(name, version).tags
            assert tags["alias_decision"] and "registered" not in tags["alias_decision"]
            rule = json.loads(tags["alias_rule"])
            assert rule["primary_metric"] in ("normalized_gini", "roc_auc")
    assert json.loads(client.get_model_version("clv_spend", "1").tags["alias_rule"])[
        "decile_mape_ratio"] == 3.0
    # an ML lead promotes the XGBoost spend version by hand; the next run refits BTYD (v3,
    # the same fit as v2): v1 does not qualify on this holdout, v3 does, so v3 wins
    registry.promote("clv_spend", "1")
    training.train_btyd_models(AS_OF, HORIZON, "run-b", kinds=["bgnbd"])
    table = training.evaluate_models(AS_OF, HORIZON, "run-b")
    assert str(registry.champion_version(client, "clv_spend")) == "3"
    assert "champion v1 does not qualify" in client.get_model_version(
        "clv_spend", "3").tags["alias_decision"]
    got = table[(table["model_name"] == "clv_spend") & (table["metric"] == "mae")]
    assert dict(zip(got["model_version"], got["model_alias"], strict=True)) == {
        "1": None, "3": "champion"}  # v2 holds no alias and is not of this run: not scored
    # the next evaluation keeps it (nothing new beats it)
    training.evaluate_models(AS_OF, HORIZON, "run-c")
    assert "champion kept" in client.get_model_version("clv_spend", "3").tags[
        "alias_decision"]


def test_btyd_version_round_trips_and_predicts_as_the_baseline(registry_home, examples):
    """A registered BG/NBD version, loaded from MLflow, predicts on the feature matrix
    exactly what clv.models.btyd.BtydBaseline fitted on the same learning customers does."""
    from clv.models import btyd

    learn, evaluate = examples
    spend, churn = training.train_btyd_models(AS_OF, HORIZON, "run-r", kinds=["bgnbd"])
    direct = btyd.BtydBaseline.fit(learn)
    x = training.feature_matrix(evaluate)
    model = registry.load_version("clv_spend", spend.version)
    assert model.family == "btyd"
    np.testing.assert_allclose(model.predict(x), direct.predict_spend(evaluate, HORIZON),
                               rtol=1e-12)
    np.testing.assert_allclose(registry.load_version("clv_churn", churn.version).predict(x),
                               direct.predict_churn(evaluate, HORIZON), rtol=1e-12)
    y = evaluate["spend_next"].to_numpy()
    assert spend.metrics["normalized_gini"] == pytest.approx(
        metrics.normalized_gini(y, direct.predict_spend(evaluate, HORIZON)))


def test_xgboost_spend_level_is_anchored_to_bgnbd_at_the_cutoff_it_predicts_from(
        registry_home, examples):
    """The registered spend version predicts the booster's ranking at BG/NBD's total,
    BG/NBD fitted on the history of the customers being scored (no label); the factor
    and the aggregate error without it are logged, and the churn version is untouched."""
    import json

    import mlflow
    from clv.models import btyd

    learn, evaluate = examples
    result = training.train_clv_model(AS_OF, HORIZON, "run-l")
    client = mlflow.MlflowClient()
    assert json.loads(client.get_model_version("clv_spend", result.version).tags[
        "level_anchor"]) == {"family": "bgnbd", "horizon_days": HORIZON}
    model = registry.load_version("clv_spend", result.version)
    raw = np.clip(model.model.predict(training.feature_matrix(evaluate)), 0.0, None)
    for frame in (evaluate, learn):  # any cutoff: the anchor is refitted on its history
        x = training.feature_matrix(frame)
        pred = model.predict(x)
        bgnbd_total = btyd.BtydBaseline.fit(frame).predict_spend(frame, HORIZON).sum()
        assert pred.sum() == pytest.approx(bgnbd_total, rel=1e-9)
    pred = model.predict(training.feature_matrix(evaluate))
    np.testing.assert_allclose(pred / raw, pred.sum() / raw.sum(), rtol=1e-6)  # one factor
    params = client.get_run(result.run_id).data.params
    assert float(params["level_factor_holdout"]) == pytest.approx(pred.sum() / raw.sum())
    y = evaluate["spend_next"].to_numpy()
    assert float(params["aggregate_error_unanchored"]) == pytest.approx(
        metrics.aggregate_error(y, raw), rel=1e-6)
    assert result.metrics["aggregate_error"] == pytest.approx(
        metrics.aggregate_error(y, pred), rel=1e-6)


def test_shap_importance_ranks_the_only_informative_feature_first():
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(300, 3)), columns=["signal", "noise1", "noise2"])
    y = 3.0 * x["signal"] + rng.normal(0, 0.1, 300)
    model = xgb.XGBRegressor(n_estimators=30, max_depth=2).fit(x, y)
    importance = training.shap_importance(model, x)
    assert importance.idxmax() == "signal"
    # SHAP contributions sum to the prediction (local accuracy): check the library's output
    contribs = model.get_booster().predict(xgb.DMatrix(x), pred_contribs=True)
    np.testing.assert_allclose(contribs.sum(axis=1), model.predict(x), rtol=1e-4, atol=1e-4)


def test_static_features_are_the_rfm_then_period_columns():
    # Written out by hand: the order every registered version was trained on.
    assert FEATURE_COLUMNS[:10] == [
        "recency_days", "tenure_days", "n_orders", "n_purchase_days", "frequency",
        "total_spend", "avg_order_value", "max_order_value", "mean_ipt_days", "std_ipt_days"]
    assert len(FEATURE_COLUMNS) == 10 + 2 * 12
    assert FEATURE_COLUMNS[10] == "spend_p01" and FEATURE_COLUMNS[21] == "spend_p12"
    assert FEATURE_COLUMNS[22] == "orders_p01" and FEATURE_COLUMNS[33] == "orders_p12"
    assert RFM_FEATURES + period_columns() == FEATURE_COLUMNS
    # the model input takes them in that order from a frame in any order, or names the gap
    frame = pd.DataFrame({c: [1.0] for c in reversed(FEATURE_COLUMNS)} | {"customer_id": ["c"]})
    assert list(training.feature_matrix(frame).columns) == FEATURE_COLUMNS
    with pytest.raises(ValueError, match="recency_days"):
        training.feature_matrix(frame.drop(columns="recency_days"))


def test_evaluate_step_publishes_model_metrics(spark, registry_home, examples):
    from clv import pipeline
    from clv.data import warehouse

    training.train_clv_model(AS_OF, HORIZON, "run-e")
    training.train_churn_model(AS_OF, HORIZON, "run-e")
    summary = pipeline.evaluate(AS_OF, HORIZON, "run-e")
    table = warehouse.read_partition_pandas(pipeline.MODEL_METRICS, AS_OF)
    # spend: v1, BTYD, naive; churn too; and v1's three interval coverage figures
    assert len(table) == summary["rows"] == 5 * 3 + 3 * 3 + 3
    key = list(warehouse.get_table(pipeline.MODEL_METRICS).key)
    assert not table.duplicated(key).any()
    assert set(table["model_name"]) == {"clv_spend", "clv_churn", "btyd_bgnbd_gg",
                                        "naive_past_spend_rate", "naive_recency"}
    assert set(table.loc[table["model_name"] == "clv_spend", "model_alias"]) == {"champion"}
    assert table.loc[table["model_version"] == "baseline", "model_alias"].isna().all()
    assert "clv_spend v1 @champion normalized_gini" in summary["primary"]
    assert {"btyd_bgnbd_gg normalized_gini", "btyd_bgnbd_gg roc_auc"} <= set(summary["primary"])
    pipeline.evaluate(AS_OF, HORIZON, "run-e")  # re-run: the partition is replaced
    assert len(warehouse.read_partition_pandas(pipeline.MODEL_METRICS, AS_OF)) == len(table)


def test_balance_tweedie_matches_the_learning_total_and_survives_save_and_load(tmp_path):
    import xgboost as xgb

    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = np.where(rng.random(400) < 0.5, 0.0, np.exp(1 + x["a"] + rng.normal(0, 1, 400)))
    model = xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5,
                             n_estimators=20, n_jobs=1).fit(x, y)
    before = model.predict(x)
    factor = training.balance_tweedie(model, x, y)
    after = model.predict(x)
    assert factor == pytest.approx(y.sum() / before.sum())
    np.testing.assert_allclose(after, before * factor, rtol=1e-5)  # same ranking
    assert after.sum() == pytest.approx(y.sum(), rel=1e-5)
    model.save_model(tmp_path / "m.ubj")
    loaded = xgb.XGBRegressor()
    loaded.load_model(tmp_path / "m.ubj")
    np.testing.assert_allclose(loaded.predict(x), after, rtol=1e-5)


def test_btyd_baseline_is_fitted_once_per_frame_content(examples):
    """The memo returns the fit of equal content, refits when an input changes, and
    callers get their own arrays (mutating one must not reach the next task)."""
    from clv.models import btyd

    _, evaluate = examples
    b = training.BTYD_BASELINE
    first = training.baseline_predictions(evaluate, HORIZON)
    direct = btyd.BtydBaseline.fit(evaluate)
    np.testing.assert_allclose(first[training.CLV_MODEL_NAME][b],
                               direct.predict_spend(evaluate, HORIZON))
    first[training.CLV_MODEL_NAME][b][:] = -1.0  # a caller scribbles on its copy
    again = training.baseline_predictions(evaluate.copy(), HORIZON)
    np.testing.assert_allclose(again[training.CLV_MODEL_NAME][b],
                               direct.predict_spend(evaluate, HORIZON))
    richer = evaluate.copy()
    richer["total_spend"] = richer["total_spend"] * 2.0  # Gamma-Gamma sees twice the spend
    refit = training.baseline_predictions(richer, HORIZON)
    np.testing.assert_allclose(refit[training.CLV_MODEL_NAME][b],
                               btyd.BtydBaseline.fit(richer).predict_spend(richer, HORIZON))
    assert not np.allclose(refit[training.CLV_MODEL_NAME][b], again[training.CLV_MODEL_NAME][b])


def test_load_split_reads_one_split_sorted_by_customer(spark, clv_home):
    day = dt.date(2024, 1, 1)
    rows = [("c", "train", day, 1.0), ("a", "eval", day, 2.0), ("b", "train", day, 3.0),
            ("a", "train", day, 4.0)]
    frame = spark.createDataFrame(
        rows, "customer_id string, split string, cutoff_date date, spend_next double")
    warehouse.write_partition(frame, training.TRAINING_TABLE, AS_OF, clv_home)
    learn = training.load_split(AS_OF, "train", clv_home)
    assert learn["customer_id"].tolist() == ["a", "b", "c"]
    assert learn["spend_next"].tolist() == [4.0, 3.0, 1.0]
    assert list(learn.index) == [0, 1, 2]
    assert training.load_split(AS_OF, "eval", clv_home)["customer_id"].tolist() == ["a"]
    with pytest.raises(ValueError, match="features.training_examples .*no holdout rows"):
        training._split_with_rows(AS_OF, "holdout", clv_home)
    # a sample is taken in Arrow, after the sort: the rows learning_sample would keep
    sampled = training.load_split(AS_OF, "train", clv_home, max_rows=2)
    assert sampled.attrs["n_offered_rows"] == 3
    pd.testing.assert_frame_equal(sampled, training.splits.learning_sample(learn, 2))


def test_early_stopping_holds_out_20_percent_up_to_a_cap():
    fit, stop = training._early_stopping_split(10_000)
    assert 1_800 < stop.sum() < 2_200 and (fit == ~stop).all()
    _, stop = training._early_stopping_split(2_000_000)  # 20% would be 400,000
    assert abs(stop.sum() - training.MAX_STOPPING_ROWS) < 1_500


def test_float32_learning_matrix_gives_the_same_trees_as_float64(examples):
    import xgboost as xgb

    learn, evaluate = examples
    y = np.clip(learn["spend_next"].to_numpy(), 0.0, None)
    params = {**training.XGB_PARAMS, "n_estimators": 30, "n_jobs": 1}
    wide, narrow = (training._fit(xgb.XGBRegressor(objective="reg:tweedie", **params),
                                  training.feature_matrix(learn, dtype), y)
                    for dtype in ("float64", "float32"))
    x_eval = training.feature_matrix(evaluate)
    np.testing.assert_array_equal(wide.predict(x_eval), narrow.predict(x_eval))
    assert wide.best_iteration == narrow.best_iteration


def test_a_btyd_fit_whose_predictions_are_not_finite_is_not_registered(caplog):
    """Olist (73 repeat buyers among 8,000) gave a BTYD fit predicting NaN for 5,043
    customers; it failed the train_btyd task. Now that version is skipped, named."""
    from clv.models.training import fit

    class Degenerate:  # what a fit converged to: NaN spend for two customers of three
        kind = "pareto_nbd"

        def predict_spend(self, x):
            return np.array([1.0, np.nan, np.inf])

        def predict_churn(self, x):
            return np.array([0.1, 0.2, 0.3])

    evaluate = pd.DataFrame({c: [0.0, 1.0, 2.0] for c in FEATURE_COLUMNS})
    with caplog.at_level("WARNING"):
        assert fit._register_btyd(Degenerate(), evaluate, {"horizon_days": 90}, None) == []
    assert "pareto_nbd not registered" in caplog.text
    assert "clv_spend 2 of 3 customers" in caplog.text


def test_capped_learning_and_holdout_samples_are_what_the_versions_use(
        spark, registry_home, examples, monkeypatch):
    """CLV_MAX_TRAIN_ROWS / CLV_MAX_EVAL_ROWS (issue #22): the version learns from the
    seeded sample and says so; every version and baseline is judged on one sample."""
    import mlflow
    from clv import pipeline
    from clv.data import warehouse

    monkeypatch.setenv("CLV_MAX_TRAIN_ROWS", "120")
    monkeypatch.setenv("CLV_MAX_EVAL_ROWS", "100")
    result = training.train_clv_model(AS_OF, HORIZON, "run-cap")
    training.train_churn_model(AS_OF, HORIZON, "run-cap")
    client = mlflow.MlflowClient()
    run = client.get_run(client.get_model_version("clv_spend", result.version).run_id)
    assert run.data.params["n_learn_rows"] == "120"
    assert run.data.params["n_offered_rows"] == str(len(examples[0]))
    pipeline.evaluate(AS_OF, HORIZON, "run-cap")
    table = warehouse.read_partition_pandas(pipeline.MODEL_METRICS, AS_OF)
    coverage = table["metric"].str.startswith("interval_")  # on the holdout's measuring half
    assert coverage.any()
    assert set(table.loc[~coverage, "n_customers"]) == {100}  # of the 250 holdout customers
    assert (table.loc[coverage, "n_customers"] < 100).all()
