"""TreeSHAP once per split pattern (clv.models.treeshap) is XGBoost's pred_contribs, bit
for bit: XGBoost itself is the reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.models import reasons, treeshap

xgb = pytest.importorskip("xgboost")


def _frame(n: int, seed: int, n_cols: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({f"f{k}": rng.gamma(2.0, 1.0 + k, n) for k in range(n_cols)})
    x["f1"] = np.round(x["f1"])  # few distinct values: many rows sit on a threshold
    x.loc[rng.random(n) < 0.15, "f2"] = np.nan  # missing: the split's default way
    return x.astype("float32")


def _on_thresholds(model, x: pd.DataFrame) -> pd.DataFrame:
    """``x`` with some values set exactly on the model's thresholds and one float32 step
    below them: where ``value < threshold`` decides."""
    splits = treeshap.tree_splits(model.get_booster(), (0, 0), list(x.columns))
    x = x.copy()
    row = 0
    for tree in splits[:40]:
        for f, t in zip(tree.feature, tree.threshold, strict=True):
            if row + 1 < len(x):
                x.iat[row, f] = t
                x.iat[row + 1, f] = np.nextafter(t, np.float32(-np.inf))
                row += 2
    return x


def _xgboost(model, x: pd.DataFrame) -> np.ndarray:
    return model.get_booster().predict(xgb.DMatrix(x), pred_contribs=True,
                                       iteration_range=reasons.predicting_trees(model))[:, :-1]


@pytest.mark.parametrize("depth", [4, 6])
def test_pattern_shap_is_xgboosts_exactly(depth):
    """Depth 4 (15 splits a tree: the pattern table) and 6 (up to 63 splits: past the
    table, sorted patterns), missing values, values on thresholds, early stopping."""
    x = _frame(3000, depth)
    y = np.exp(0.3 * x["f0"].fillna(0) - 0.2 * x["f1"]) * (x["f2"].isna() + 1.0)
    model = xgb.XGBRegressor(objective="reg:tweedie", n_estimators=300, learning_rate=0.2,
                             max_depth=depth, n_jobs=1, early_stopping_rounds=10)
    model.fit(x[:2000], y[:2000], eval_set=[(x[2000:], y[2000:])], verbose=False)
    assert model.get_booster().num_boosted_rounds() > model.best_iteration + 1
    x = _on_thresholds(model, x)
    splits = treeshap.tree_splits(model.get_booster(), reasons.predicting_trees(model),
                                  list(x.columns))
    assert len(splits) == model.best_iteration + 1
    assert max(len(s.feature) for s in splits) > (treeshap._TABLE_SPLITS if depth == 6 else 0)
    got = reasons.shap_contributions(model, x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, _xgboost(model, x))
    # and the patterns were the shortcut's, not XGBoost's whole matrix
    direct = treeshap.contributions(model.get_booster(), splits, x)
    np.testing.assert_array_equal(direct, got)


def test_pattern_shap_of_a_classifier_in_chunks(monkeypatch):
    """A churn-like binary model, rows in several chunks (SHAP_CHUNK_ROWS)."""
    x = _frame(1500, 3)
    y = (x["f0"] + x["f3"] > 4).astype(int)
    model = xgb.XGBClassifier(n_estimators=40, max_depth=4, n_jobs=1).fit(x, y)
    monkeypatch.setattr(reasons, "SHAP_CHUNK_ROWS", 400)
    np.testing.assert_array_equal(reasons.shap_contributions(model, x), _xgboost(model, x))
    empty = reasons.shap_contributions(model, x.iloc[:0])
    assert empty.shape == (0, x.shape[1])


def test_shortcut_declines_what_it_cannot_slice_exactly():
    x = _frame(600, 4)
    y3 = pd.cut(x["f0"], 3, labels=False)
    multi = xgb.XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1).fit(x, y3)
    assert treeshap.tree_splits(multi.get_booster(), (0, 0), list(x.columns)) is None
    forest = xgb.XGBRFRegressor(n_estimators=4, max_depth=3, n_jobs=1).fit(x, x["f0"])
    assert treeshap.tree_splits(forest.get_booster(), (0, 0), list(x.columns)) is None
    plain = xgb.XGBRegressor(n_estimators=5, max_depth=3, n_jobs=1).fit(x, x["f0"])
    reordered = list(reversed(x.columns))
    assert treeshap.tree_splits(plain.get_booster(), (0, 0), reordered) is None


def test_an_infinite_input_is_left_to_xgboost():
    x = _frame(500, 5)
    model = xgb.XGBRegressor(n_estimators=10, max_depth=3, n_jobs=1).fit(x, x["f0"])
    splits = treeshap.tree_splits(model.get_booster(), (0, 0), list(x.columns))
    x.iat[0, 0] = np.inf
    assert treeshap.contributions(model.get_booster(), splits, x) is None
