"""Metrics against hand-worked values and independent references (scikit-learn, brute force)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from clv.models import metrics

# --------------------------------------------------------------------------- normalized Gini

# Four customers. True value 10, 0, 30, 60 (total 100); predictions 0.4, 0.1, 0.2, 0.9.
# Gain curve = cumulative share of true value, customers taken by prediction descending;
# Gini = 2 * (trapezoid area under gain curve from (0,0)) - 1 = (2 * sum(gain) - 1) / n - 1.
#   model order 60, 10, 30, 0 -> gain 0.6, 0.7, 1.0, 1.0, sum 3.3 -> (6.6 - 1) / 4 - 1 = 0.4
#   perfect     60, 30, 10, 0 -> gain 0.6, 0.9, 1.0, 1.0, sum 3.5 -> (7.0 - 1) / 4 - 1 = 0.5
#   normalized = 0.4 / 0.5 = 0.8
TRUE_4 = [10.0, 0.0, 30.0, 60.0]
PRED_4 = [0.4, 0.1, 0.2, 0.9]


def test_normalized_gini_four_customers_by_hand():
    assert metrics.normalized_gini(TRUE_4, PRED_4) == pytest.approx(0.8)


def test_normalized_gini_perfect_ordering_is_one():
    # Any strictly increasing function of the truth is a perfect ordering.
    assert metrics.normalized_gini(TRUE_4, np.log1p(TRUE_4)) == pytest.approx(1.0)


def test_normalized_gini_reversed_ordering_is_minus_one():
    # reversed order 0, 10, 30, 60 -> gain 0, 0.1, 0.4, 1.0, sum 1.5
    #   -> (3 - 1) / 4 - 1 = -0.5; normalized -0.5 / 0.5 = -1.0
    # (google/lifetime_value's rectangle rule, 2 * sum / n - 1, would give
    #  (0.75 - 1) / (1.75 - 1) = -1/3 here: it is biased by 1/n.)
    assert metrics.normalized_gini(TRUE_4, [-v for v in TRUE_4]) == pytest.approx(-1.0)


def test_normalized_gini_tied_predictions_average_the_tie():
    # Predictions 0.9, 0.1, 0.9, 0.5: customers 1 and 3 (true 10 and 30) are tied first.
    # Breaking the tie as 10, 30: gain 0.1, 0.4, 1.0, 1.0 sum 2.5 -> (5.0 - 1) / 4 - 1 = 0.0
    # Breaking the tie as 30, 10: gain 0.3, 0.4, 1.0, 1.0 sum 2.7 -> (5.4 - 1) / 4 - 1 = 0.1
    # Mean over both tie-breaks 0.05; normalized 0.05 / 0.5 = 0.1, whatever the row order.
    pred = [0.9, 0.1, 0.9, 0.5]
    assert metrics.normalized_gini(TRUE_4, pred) == pytest.approx(0.1)
    swapped = [2, 1, 0, 3]
    assert metrics.normalized_gini(
        [TRUE_4[i] for i in swapped], [pred[i] for i in swapped]
    ) == pytest.approx(0.1)


def test_normalized_gini_constant_prediction_is_zero():
    # One big tie: every position gets the mean, the gain curve is the diagonal.
    assert metrics.normalized_gini(TRUE_4, [3.0] * 4) == pytest.approx(0.0, abs=1e-12)


def test_normalized_gini_binary_truth_equals_two_auc_minus_one():
    # For 0/1 truth the normalized Gini is 2 * AUC - 1 (ties counted half in both),
    # so scikit-learn's AUC is an independent reference on random data with ties.
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=300)
    score = np.round(rng.normal(size=300) + y, 1)
    expected = 2 * skm.roc_auc_score(y, score) - 1
    assert metrics.normalized_gini(y, score) == pytest.approx(expected, rel=1e-10)


def _kaggle_gini(truth: list[float], pred: list[float]) -> float:
    """Brute-force reference (Kaggle Porto Seguro form): sum of Lorenz minus diagonal."""
    ordered = [t for _, t in sorted(zip(pred, truth, strict=True), key=lambda pair: -pair[0])]
    total, running, acc = sum(truth), 0.0, 0.0
    for k, value in enumerate(ordered, start=1):
        running += value
        acc += running / total - k / len(truth)
    return acc


def test_normalized_gini_matches_bruteforce_reference_on_continuous_data():
    rng = np.random.default_rng(11)
    truth = rng.gamma(0.5, 100.0, size=200).tolist()
    pred = (np.array(truth) * rng.lognormal(0.0, 1.0, size=200)).tolist()  # no ties
    expected = _kaggle_gini(truth, pred) / _kaggle_gini(truth, truth)
    assert metrics.normalized_gini(truth, pred) == pytest.approx(expected, rel=1e-10)


def test_normalized_gini_undefined_cases_are_nan():
    assert math.isnan(metrics.normalized_gini([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]))
    assert math.isnan(metrics.normalized_gini([0.0, 0.0], [1.0, 2.0]))


# --------------------------------------------------------------------------- Spearman


def test_spearman_without_ties_by_hand():
    # ranks of pred 2, 1, 4, 3, 5 vs 1..5: d = 1, -1, 1, -1, 0, sum d^2 = 4
    # rho = 1 - 6 * 4 / (5 * (25 - 1)) = 1 - 24 / 120 = 0.8
    assert metrics.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)


def test_spearman_with_ties_by_hand():
    # pred 5, 6, 7, 8, 7 -> ranks 1, 2, 3.5, 5, 3.5 (the two 7s share ranks 3 and 4)
    # deviations from mean rank 3: truth -2, -1, 0, 1, 2; pred -2, -1, 0.5, 2, 0.5
    # cov = 4 + 1 + 0 + 2 + 1 = 8; var truth = 10; var pred = 4 + 1 + .25 + 4 + .25 = 9.5
    # rho = 8 / sqrt(10 * 9.5) = 8 / sqrt(95)
    assert metrics.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))


def test_spearman_constant_input_is_nan():
    assert math.isnan(metrics.spearman([1, 2, 3], [4, 4, 4]))


# --------------------------------------------------------------------------- deciles


# Eight customers in 4 bins of two, rows deliberately not in prediction order.
# bin (pred)   true      mean pred  mean true  |error| / true
# 1 (1, 2)     0, 0      1.5        0          skipped (mean true 0)
# 2 (3, 4)     2, 5      3.5        3.5        0
# 3 (5, 6)     4, 6      5.5        5.0        0.5 / 5 = 0.10
# 4 (7, 8)     10, 10    7.5        10.0       2.5 / 10 = 0.25
# decile MAPE = (0 + 0.10 + 0.25) / 3 = 0.35 / 3
PRED_8 = [7.0, 3.0, 1.0, 5.0, 8.0, 2.0, 6.0, 4.0]
TRUE_8 = [10.0, 2.0, 0.0, 4.0, 10.0, 0.0, 6.0, 5.0]


def test_decile_mape_four_bins_by_hand():
    assert metrics.decile_mape(TRUE_8, PRED_8, n_bins=4) == pytest.approx(0.35 / 3)


def test_decile_table_four_bins_by_hand():
    table = metrics.decile_table(TRUE_8, PRED_8, n_bins=4)
    assert list(table.columns) == ["decile", "n", "mean_predicted", "mean_actual"]
    assert table["decile"].tolist() == [1, 2, 3, 4]
    assert table["n"].tolist() == [2, 2, 2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([1.5, 3.5, 5.5, 7.5])
    assert table["mean_actual"].tolist() == pytest.approx([0.0, 3.5, 5.0, 10.0])


def test_decile_table_uneven_bins_differ_by_at_most_one():
    # 10 customers into 4 bins: bin = floor(position * 4 / 10) + 1
    # positions 0-2 -> 1, 3-4 -> 2, 5-7 -> 3, 8-9 -> 4: sizes 3, 2, 3, 2
    table = metrics.decile_table(np.arange(10.0), np.arange(10.0), n_bins=4)
    assert table["n"].tolist() == [3, 2, 3, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([1.0, 3.5, 6.0, 8.5])


def test_decile_mape_needs_enough_customers():
    with pytest.raises(ValueError, match="n_bins"):
        metrics.decile_mape([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], n_bins=4)


# --------------------------------------------------------------------------- point errors


def test_mae_and_aggregate_error_by_hand():
    truth, pred = [10.0, 20.0, 30.0], [12.0, 15.0, 30.0]
    # |2| + |-5| + 0 = 7 over 3 customers
    assert metrics.mae(truth, pred) == pytest.approx(7 / 3)
    # (57 - 60) / 60 = -0.05
    assert metrics.aggregate_error(truth, pred) == pytest.approx(-0.05)


# --------------------------------------------------------------------------- classification

# labels 0, 1, 1, 0; scores 0.2, 0.7, 0.2, 0.1
LABELS = [0, 1, 1, 0]
SCORES = [0.2, 0.7, 0.2, 0.1]


def test_roc_auc_with_ties_by_hand():
    # positive-negative pairs: (0.7, 0.2) win, (0.7, 0.1) win, (0.2, 0.2) tie = 1/2,
    # (0.2, 0.1) win -> 3.5 / 4 = 0.875
    assert metrics.roc_auc(LABELS, SCORES) == pytest.approx(0.875)


def test_pr_auc_with_ties_by_hand():
    # threshold 0.7: 1 predicted, 1 true positive: precision 1, recall 0.5
    # threshold 0.2: 3 predicted (tie enters together), 2 TP: precision 2/3, recall 1.0
    # AP = 0.5 * 1 + 0.5 * 2/3 = 5/6
    assert metrics.pr_auc(LABELS, SCORES) == pytest.approx(5 / 6)


def test_brier_by_hand():
    # (0.2)^2 + (0.3)^2 + (0.8)^2 + (0.1)^2 = 0.04 + 0.09 + 0.64 + 0.01 = 0.78; / 4
    assert metrics.brier(LABELS, SCORES) == pytest.approx(0.195)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(500) < 0.3).astype(int)
    prob = np.round(np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, 500), 0, 1), 2)
    assert metrics.roc_auc(y, prob) == pytest.approx(skm.roc_auc_score(y, prob), rel=1e-12)
    assert metrics.pr_auc(y, prob) == pytest.approx(
        skm.average_precision_score(y, prob), rel=1e-12
    )
    assert metrics.brier(y, prob) == pytest.approx(skm.brier_score_loss(y, prob), rel=1e-12)


def test_roc_auc_is_brute_force_pair_count():
    # Independent of ranks: count every positive-negative pair directly.
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=60)
    s = rng.integers(0, 5, size=60).astype(float)
    pos, neg = s[y == 1], s[y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    assert metrics.roc_auc(y, s) == pytest.approx(wins / (len(pos) * len(neg)))


# --------------------------------------------------------------------------- reports


def test_regression_report_keys_and_values():
    # 20 customers, true 1..20, prediction 1.1 x true: a perfect ordering.
    # every decile is over-forecast by 10 % -> decile MAPE 0.1; aggregate error 0.1;
    # MAE = 0.1 * mean(1..20) = 0.1 * 10.5 = 1.05
    truth = np.arange(1.0, 21.0)
    reg = metrics.regression_report(truth, 1.1 * truth)
    assert reg == pytest.approx({
        "normalized_gini": 1.0, "spearman": 1.0, "decile_mape": 0.1, "mae": 1.05,
        "aggregate_error": 0.1,
    })


def test_regression_report_on_fewer_than_ten_customers():
    reg = metrics.regression_report(TRUE_8, PRED_8)
    assert math.isnan(reg["decile_mape"])
    # sum pred 36, sum true 37 -> (36 - 37) / 37
    assert reg["aggregate_error"] == pytest.approx(-1 / 37)


def test_classification_report_keys_and_values():
    clf = metrics.classification_report(LABELS, SCORES)
    assert clf == pytest.approx({"roc_auc": 0.875, "pr_auc": 5 / 6, "brier": 0.195})


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "func", [metrics.normalized_gini, metrics.spearman, metrics.decile_mape, metrics.mae,
             metrics.aggregate_error, metrics.roc_auc, metrics.pr_auc, metrics.brier],
)
@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([], [], "empty"),
        ([0.0, 1.0], [0.5], "length"),
        ([0.0, 1.0], [0.5, float("nan")], "NaN"),
        ([0.0, float("nan")], [0.5, 0.5], "NaN"),
        ([0.0, 1.0], [0.5, float("inf")], "infinite"),
    ],
)
def test_invalid_input_raises_value_error(func, a, b, message):
    with pytest.raises(ValueError, match=message):
        func(a, b)


def test_classification_input_checks():
    with pytest.raises(ValueError, match="0/1"):
        metrics.roc_auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="positive"):
        metrics.pr_auc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.brier([0, 1], [0.5, 1.5])


# --------------------------------------------------------------------------- curves and charts


def test_gain_curve_by_hand_and_its_area_is_the_gini():
    x, gain = metrics.gain_curve(TRUE_4, PRED_4)
    # customers by prediction descending: 60, 10, 30, 0 of 100
    assert x.tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert gain.tolist() == pytest.approx([0, 0.6, 0.7, 1.0, 1.0])
    area = float(np.sum((gain[1:] + gain[:-1]) / 2 * np.diff(x)))
    assert 2 * area - 1 == pytest.approx(0.4)  # the un-normalized Gini of the header


def test_gain_curve_averages_ties():
    _, gain = metrics.gain_curve(TRUE_4, [0.9, 0.1, 0.9, 0.5])
    # tie (10, 30) first: each position gets the mean 20 -> 0.2, 0.4; then 60, then 0
    assert gain.tolist() == pytest.approx([0, 0.2, 0.4, 1.0, 1.0])


def test_calibration_table_by_hand():
    # two bins of two: probs (0.1, 0.2) with labels (0, 1); probs (0.7, 0.9) with (1, 1)
    table = metrics.calibration_table([1, 0, 1, 1], [0.2, 0.1, 0.9, 0.7], n_bins=2)
    assert table["bin"].tolist() == [1, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.15, 0.8])
    assert table["observed_rate"].tolist() == pytest.approx([0.5, 1.0])
    with pytest.raises(ValueError, match="0/1"):
        metrics.calibration_table([0, 2], [0.1, 0.2], n_bins=2)


def test_charts_are_png_files(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(5)
    truth = rng.gamma(0.5, 100.0, 200)
    pred = truth * rng.lognormal(0, 1, 200)
    labels = (truth < 30).astype(int)
    prob = np.clip(0.5 + 0.3 * (labels - 0.5) + rng.normal(0, 0.1, 200), 0, 1)
    paths = [
        metrics.plot_deciles(truth, pred, tmp_path / "d.png"),
        metrics.plot_gain(truth, {"model": pred, "other": pred[::-1]}, tmp_path / "g.png"),
        metrics.plot_calibration(labels, {"model": prob}, tmp_path / "c.png"),
        metrics.plot_importance(pd.Series({"a": 2.0, "b": 1.0}), tmp_path / "i.png"),
    ]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_thinned_curve_keeps_the_ends_and_at_most_n_points():
    x = np.arange(10_001) / 10_000
    y = x ** 2
    tx, ty = metrics._thin(x, y, n=101)
    assert len(tx) == 101 and tx[0] == 0.0 and tx[-1] == 1.0
    np.testing.assert_allclose(ty, tx ** 2)
    assert len(metrics._thin(x[:50], y[:50], n=101)[0]) == 50  # short curves as they are
