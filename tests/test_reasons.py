"""Reasons: readable feature names, the top three contributions by hand, and TreeSHAP
contributions that add up to the model's own margin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.features import FEATURE_COLUMNS, SOURCE_INPUTS
from clv.models import reasons


def test_every_feature_has_a_readable_description():
    # every model input: the orders' features and the optional sources' numeric ones
    assert set(reasons.FEATURE_DESCRIPTIONS) == set(FEATURE_COLUMNS) | set(SOURCE_INPUTS)
    assert reasons.describe_feature("days_since_low_score") == \
        "days since the last review scored 1-2"
    assert reasons.describe_feature("recency_days") == "days since last purchase"
    assert reasons.describe_feature("spend_p01") == "spend 1-30 days before the as-of date"
    assert reasons.describe_feature("orders_p12") == "orders 331-360 days before the as-of date"
    with pytest.raises(ValueError, match="no description for feature column 'mystery'"):
        reasons.describe_feature("mystery")


def _features(values: dict[str, list[float]], ids: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(0.0, index=range(len(ids)), columns=FEATURE_COLUMNS)
    for column, vals in values.items():
        frame[column] = vals
    frame.insert(0, "customer_id", ids)
    return frame


def test_top_reasons_rank_by_size_either_sign_and_skip_zero_contributions():
    col = {c: i for i, c in enumerate(FEATURE_COLUMNS)}
    contrib = np.zeros((2, len(FEATURE_COLUMNS)))
    contrib[0, col["recency_days"]] = -0.9   # largest in size, negative
    contrib[0, col["total_spend"]] = 0.5
    contrib[0, col["spend_p02"]] = 0.2
    contrib[0, col["n_orders"]] = 0.1        # fourth: not a top-3 reason
    contrib[1, col["frequency"]] = 0.3       # the only non-zero one
    feats = _features({"recency_days": [200.0, 5.0], "total_spend": [80.0, 10.0],
                       "spend_p02": [12.5, 0.0], "frequency": [3.0, 7.0]}, ["b", "a"])
    out = reasons.top_reasons(contrib, feats, "4", "SHAP of the champion")
    assert list(out.columns) == reasons.REASON_COLUMNS
    assert out[["customer_id", "rank", "feature"]].values.tolist() == [
        ["a", 1, "frequency"],
        ["b", 1, "recency_days"], ["b", 2, "total_spend"], ["b", 3, "spend_p02"]]
    assert out["contribution"].tolist() == [0.3, -0.9, 0.5, 0.2]
    assert out["feature_value"].tolist() == [7.0, 200.0, 80.0, 12.5]
    assert out["description"].tolist()[:2] == ["number of repeat purchase days",
                                                "days since last purchase"]
    assert set(out["model_version"]) == {"4"}


def test_top_reasons_refuse_contributions_of_the_wrong_shape():
    feats = _features({}, ["a"])
    with pytest.raises(ValueError, match=r"expected \(1, 34\)"):
        reasons.top_reasons(np.zeros((1, 35)), feats, "1", "x")


def test_shap_contributions_add_up_to_the_models_margin():
    import xgboost as xgb

    rng = np.random.default_rng(0)
    feats = _features({c: rng.gamma(2.0, 1.0, 300).tolist() for c in FEATURE_COLUMNS[:5]},
                      [f"c{k}" for k in range(300)])
    y = np.exp(feats["recency_days"] * -0.3 + feats["total_spend"] * 0.2)
    x = feats[FEATURE_COLUMNS].astype("float32")
    model = xgb.XGBRegressor(objective="reg:tweedie", n_estimators=30, max_depth=3,
                             n_jobs=1).fit(x, y)
    contrib = reasons.shap_contributions(model, x)
    assert contrib.shape == (300, len(FEATURE_COLUMNS))
    margin = model.get_booster().predict(xgb.DMatrix(x), output_margin=True)
    bias = margin - contrib.sum(axis=1)  # SHAP efficiency: contributions + bias = margin
    np.testing.assert_allclose(bias, bias[0], atol=1e-4)
    np.testing.assert_allclose(np.exp(margin), model.predict(x), rtol=1e-5)
    # the features the target depends on lead the reasons
    top = reasons.top_reasons(contrib, feats, "1", "x")
    assert set(top.loc[top["rank"] == 1, "feature"]) <= {"recency_days", "total_spend"}


def test_shap_contributions_of_an_early_stopped_model_explain_the_trees_it_predicts_with():
    """The booster keeps the rounds past the best one; predict stops at the best, and so
    must the contributions, or they add up to another model's margin."""
    import xgboost as xgb

    rng = np.random.default_rng(1)
    feats = _features({c: rng.gamma(2.0, 1.0, 600).tolist() for c in FEATURE_COLUMNS[:5]},
                      [f"c{k}" for k in range(600)])
    x = feats[FEATURE_COLUMNS].astype("float32")
    y = feats["total_spend"] * 0.5 + rng.normal(0, 1.0, 600)  # noisy: it stops early
    model = xgb.XGBRegressor(n_estimators=400, learning_rate=0.3, max_depth=3, n_jobs=1,
                             early_stopping_rounds=5)
    model.fit(x[:400], y[:400], eval_set=[(x[400:], y[400:])], verbose=False)
    assert model.get_booster().num_boosted_rounds() > model.best_iteration + 1
    assert reasons.predicting_trees(model) == (0, model.best_iteration + 1)
    contrib = reasons.shap_contributions(model, x)
    bias = model.predict(x, output_margin=True) - contrib.sum(axis=1)
    np.testing.assert_allclose(bias, bias[0], atol=1e-4)
    full = xgb.XGBRegressor(n_estimators=20, max_depth=2, n_jobs=1).fit(x, y)
    assert reasons.predicting_trees(full) == (0, 0)  # no early stopping: every tree
