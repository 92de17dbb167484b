"""Evaluation metrics for the CLV (regression) and churn (classification) models.

Each metric is defined here and nowhere else; training, evaluation, monitoring and
the model card all call these functions. They use plain numpy (scipy for Spearman)
so that scikit-learn can serve as an independent reference in the tests.

Conventions shared by every metric:

* Invalid input raises ``ValueError``: empty input, inputs that are not 1-D,
  mismatched lengths, non-numeric values, NaN or infinite values, labels that are
  not 0/1, probabilities outside [0, 1].
* A metric that is *undefined* on valid input (e.g. the Gini when every customer
  has the same true value) returns ``nan`` instead of raising, so one degenerate
  slice does not abort a whole report.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "aggregate_error",
    "brier",
    "calibration_table",
    "classification_report",
    "decile_mape",
    "decile_table",
    "gain_curve",
    "mae",
    "normalized_gini",
    "plot_calibration",
    "plot_deciles",
    "plot_gain",
    "plot_importance",
    "pr_auc",
    "regression_report",
    "roc_auc",
    "spearman",
]


_N_DECILES = 10

# --------------------------------------------------------------------------- validation


def _as_vector(values: object, name: str) -> np.ndarray:
    """Convert to a finite, non-empty 1-D float array or raise ValueError."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN ({int(np.isnan(arr).sum())} values)")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite values")
    return arr


def _as_pair(a: object, b: object, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate two aligned vectors (one value per customer each)."""
    arr_a = _as_vector(a, name_a)
    arr_b = _as_vector(b, name_b)
    if arr_a.shape != arr_b.shape:
        raise ValueError(
            f"{name_a} and {name_b} differ in length: {arr_a.size} vs {arr_b.size}"
        )
    return arr_a, arr_b


def _as_labels(y_true_binary: object) -> np.ndarray:
    """Validate 0/1 (or boolean) labels."""
    labels = _as_vector(y_true_binary, "y_true_binary")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("y_true_binary must contain only 0/1 (or False/True)")
    return labels


def _tie_groups(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For an already sorted array: start index of each run of equal values, and
    the run number of every element."""
    is_start = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    return np.flatnonzero(is_start), np.cumsum(is_start) - 1


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    starts, group = _tie_groups(values[order])
    ends = np.r_[starts[1:], values.size]  # exclusive; the run covers ranks start+1..end
    ranks = np.empty(values.size)
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


# --------------------------------------------------------------------------- regression


def _gini_area(y_true: np.ndarray, ordering: np.ndarray) -> float:
    """Twice the area between the gain (Lorenz) curve and the diagonal.

    Customers are taken in descending ``ordering``; a run of tied ``ordering``
    values contributes the mean true value of the run at each of its positions,
    i.e. the expected curve over every order the tie could be broken in.
    """
    order = np.argsort(-ordering, kind="mergesort")
    truth = y_true[order]
    starts, group = _tie_groups(ordering[order])
    sizes = np.diff(np.r_[starts, truth.size])
    smoothed = (np.add.reduceat(truth, starts) / sizes)[group]
    gain = np.cumsum(smoothed) / truth.sum()
    # Trapezoid rule from (0, 0): area = (sum(gain) - 1/2) / n; Gini = 2 * area - 1.
    return float((2.0 * gain.sum() - 1.0) / truth.size - 1.0)


def normalized_gini(y_true: object, y_pred: object) -> float:
    """Gini of the model's ordering divided by the Gini of the perfect ordering.

    The gain curve is the cumulative share of total true value captured when
    customers are taken by predicted value, highest first (as in
    google/lifetime_value). Its area above the diagonal is measured with the
    trapezoid rule, so a random ordering scores 0 in expectation, the perfect one
    1 and the reversed one exactly -1. Tied predictions are handled by averaging
    the true values within the tie (the expected result over all tie-breaks), so
    the result does not depend on row order.

    Args:
        y_true: Observed values, one per customer.
        y_pred: Predicted values (only their order matters).

    Returns:
        The normalized Gini; ``nan`` if the total true value is not positive or
        every customer has the same true value (no ordering is better than another).
    """
    truth, pred = _as_pair(y_true, y_pred, "y_true", "y_pred")
    if truth.sum() <= 0 or np.all(truth == truth[0]):
        return float("nan")
    return _gini_area(truth, pred) / _gini_area(truth, truth)


def spearman(y_true: object, y_pred: object) -> float:
    """Spearman rank correlation, tied values sharing their average rank.

    Args:
        y_true: Observed values.
        y_pred: Predicted values.

    Returns:
        The correlation in [-1, 1]; ``nan`` if either input is constant.
    """
    truth, pred = _as_pair(y_true, y_pred, "y_true", "y_pred")
    if np.all(truth == truth[0]) or np.all(pred == pred[0]):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n < 3 warnings; the value is still defined
        return float(stats.spearmanr(truth, pred)[0])


def _decile_assignment(pred: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin number 1..n_bins per customer, in equal-count bins of ascending prediction.

    Bin sizes differ by at most one. Customers with tied predictions that straddle
    a bin edge are split by input order (stable sort), the same as
    ``rank(method="first")``.
    """
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if pred.size < n_bins:
        raise ValueError(f"need at least n_bins={n_bins} customers, got {pred.size}")
    order = np.argsort(pred, kind="mergesort")
    bins = np.empty(pred.size, dtype=int)
    bins[order] = np.arange(pred.size) * n_bins // pred.size + 1
    return bins


def decile_table(y_true: object, y_pred: object, n_bins: int = _N_DECILES) -> pd.DataFrame:
    """Mean predicted vs. mean actual value per bin of predicted value.

    Args:
        y_true: Observed values.
        y_pred: Predicted values.
        n_bins: Number of equal-count bins (10 gives deciles).

    Returns:
        One row per bin with columns decile (1 = lowest predicted values),
        n, mean_predicted, mean_actual.
    """
    truth, pred = _as_pair(y_true, y_pred, "y_true", "y_pred")
    frame = pd.DataFrame(
        {"decile": _decile_assignment(pred, n_bins), "pred": pred, "true": truth}
    )
    table = frame.groupby("decile", sort=True).agg(
        n=("pred", "size"), mean_predicted=("pred", "mean"), mean_actual=("true", "mean")
    )
    return table.reset_index()


def decile_mape(y_true: object, y_pred: object, n_bins: int = _N_DECILES) -> float:
    """Mean over bins of |mean predicted - mean actual| / |mean actual|.

    Bins whose mean actual value is 0 are skipped: the relative error is undefined
    there, and such bins (customers who spent nothing) would otherwise dominate.

    Args:
        y_true: Observed values.
        y_pred: Predicted values.
        n_bins: Number of equal-count bins of predicted value.

    Returns:
        The mean absolute percentage error as a fraction (0.1 = 10 %);
        ``nan`` if every bin was skipped.
    """
    table = decile_table(y_true, y_pred, n_bins)
    kept = table[table["mean_actual"] != 0]
    if kept.empty:
        return float("nan")
    errors = (kept["mean_predicted"] - kept["mean_actual"]).abs() / kept["mean_actual"].abs()
    return float(errors.mean())


def mae(y_true: object, y_pred: object) -> float:
    """Mean absolute error.

    Args:
        y_true: Observed values.
        y_pred: Predicted values.

    Returns:
        mean(|y_pred - y_true|).
    """
    truth, pred = _as_pair(y_true, y_pred, "y_true", "y_pred")
    return float(np.mean(np.abs(pred - truth)))


def aggregate_error(y_true: object, y_pred: object) -> float:
    """Relative error of the predicted total, (sum(pred) - sum(true)) / sum(true).

    Args:
        y_true: Observed values.
        y_pred: Predicted values.

    Returns:
        Signed relative error (positive = over-forecast); ``nan`` if sum(true) is 0.
    """
    truth, pred = _as_pair(y_true, y_pred, "y_true", "y_pred")
    total = truth.sum()
    if total == 0:
        return float("nan")
    return float((pred.sum() - total) / total)


def regression_report(y_true: object, y_pred: object) -> dict[str, float]:
    """All CLV regression metrics in one dictionary.

    Args:
        y_true: Observed values.
        y_pred: Predicted values.

    Returns:
        Keys normalized_gini, spearman, decile_mape, mae, aggregate_error;
        decile_mape is ``nan`` when there are fewer than 10 customers (no deciles).
    """
    truth, pred = _as_pair(y_true, y_pred, "y_true", "y_pred")
    has_deciles = truth.size >= _N_DECILES
    return {
        "normalized_gini": normalized_gini(truth, pred),
        "spearman": spearman(truth, pred),
        "decile_mape": decile_mape(truth, pred, _N_DECILES) if has_deciles else float("nan"),
        "mae": mae(truth, pred),
        "aggregate_error": aggregate_error(truth, pred),
    }


# --------------------------------------------------------------------------- classification


def roc_auc(y_true_binary: object, score: object) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic.

    AUC = P(score of a random positive > score of a random negative), a tie
    counting one half; average ranks implement exactly that.

    Args:
        y_true_binary: 0/1 labels (1 = churned).
        score: Any score where higher means more likely positive.

    Returns:
        The AUC in [0, 1].

    Raises:
        ValueError: If only one class is present (the AUC is undefined).
    """
    labels = _as_labels(y_true_binary)
    labels, scores = _as_pair(labels, score, "y_true_binary", "score")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both classes in y_true_binary")
    rank_sum_pos = _average_ranks(scores)[labels == 1].sum()
    u_stat = rank_sum_pos - n_pos * (n_pos + 1) / 2.0
    return float(u_stat / (n_pos * n_neg))


def pr_auc(y_true_binary: object, score: object) -> float:
    """Average precision: sum over thresholds of (recall gain) x precision.

    Thresholds are the distinct score values, highest first; tied scores enter
    together (no interpolation), as in ``sklearn.metrics.average_precision_score``.

    Args:
        y_true_binary: 0/1 labels (1 = churned).
        score: Any score where higher means more likely positive.

    Returns:
        The average precision in [0, 1].

    Raises:
        ValueError: If there is no positive label (recall is undefined).
    """
    labels = _as_labels(y_true_binary)
    labels, scores = _as_pair(labels, score, "y_true_binary", "score")
    n_pos = labels.sum()
    if n_pos == 0:
        raise ValueError("pr_auc needs at least one positive in y_true_binary")
    order = np.argsort(-scores, kind="mergesort")
    starts, _ = _tie_groups(scores[order])
    last_of_run = np.r_[starts[1:], scores.size] - 1
    true_pos = np.cumsum(labels[order])[last_of_run]
    precision = true_pos / (last_of_run + 1)
    recall_gain = np.diff(np.r_[0.0, true_pos]) / n_pos
    return float(np.sum(recall_gain * precision))


def brier(y_true_binary: object, prob: object) -> float:
    """Brier score, the mean squared error of predicted probabilities.

    Args:
        y_true_binary: 0/1 labels.
        prob: Predicted probability of label 1, each in [0, 1].

    Returns:
        mean((prob - y)^2); 0 is perfect.
    """
    labels = _as_labels(y_true_binary)
    labels, probs = _as_pair(labels, prob, "y_true_binary", "prob")
    if (probs < 0).any() or (probs > 1).any():
        raise ValueError("prob must lie in [0, 1]")
    return float(np.mean((probs - labels) ** 2))


def classification_report(y_true: object, prob: object) -> dict[str, float]:
    """All churn classification metrics in one dictionary.

    Args:
        y_true: 0/1 labels.
        prob: Predicted probability of label 1.

    Returns:
        Keys roc_auc, pr_auc, brier.
    """
    return {
        "roc_auc": roc_auc(y_true, prob),
        "pr_auc": pr_auc(y_true, prob),
        "brier": brier(y_true, prob),
    }


def calibration_table(y_true_binary: object, prob: object,
                      n_bins: int = _N_DECILES) -> pd.DataFrame:
    """Mean predicted probability vs. observed rate per equal-count bin of probability.

    Args:
        y_true_binary: 0/1 labels.
        prob: Predicted probability of label 1.
        n_bins: Number of equal-count bins (same binning as :func:`decile_table`).

    Returns:
        One row per bin: bin (1 = lowest probabilities), n, mean_predicted, observed_rate.
    """
    labels = _as_labels(y_true_binary)
    table = decile_table(labels, prob, n_bins)
    return table.rename(columns={"decile": "bin", "mean_actual": "observed_rate"})


# --------------------------------------------------------------------------- curves & charts


def gain_curve(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    """The gain (Lorenz) curve behind :func:`normalized_gini`.

    Returns:
        (share of customers, share of total true value), both starting at 0, with
        customers taken by prediction, highest first, tied predictions averaged.
    """
    truth, pred = _as_pair(y_true, y_pred, "y_true", "y_pred")
    if truth.sum() <= 0:
        raise ValueError("gain_curve needs a positive total true value")
    order = np.argsort(-pred, kind="mergesort")
    sorted_truth = truth[order]
    starts, group = _tie_groups(pred[order])
    sizes = np.diff(np.r_[starts, truth.size])
    smoothed = (np.add.reduceat(sorted_truth, starts) / sizes)[group]
    x = np.arange(truth.size + 1) / truth.size
    return x, np.r_[0.0, np.cumsum(smoothed) / truth.sum()]


#: Points per plotted curve: a chart a few hundred pixels wide shows no more, and
#: matplotlib held gigabytes drawing six curves of 2.57M points each.
MAX_CURVE_POINTS = 2001


def _thin(x: np.ndarray, y: np.ndarray, n: int = MAX_CURVE_POINTS
          ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` evenly spaced points of a curve, its first and last kept."""
    if len(x) <= n:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, n).round().astype(int))
    return x[keep], y[keep]


def _figure():
    """A figure on its own Agg canvas: no pyplot, whose global figure list is not safe
    across threads (head starts train beside the tasks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig, path) -> str:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return str(path)


def plot_deciles(y_true: object, y_pred: object, path, title: str = "") -> str:
    """Bar chart of mean predicted vs. mean actual per decile of prediction (PNG)."""
    table = decile_table(y_true, y_pred)
    fig, ax = _figure()
    w = 0.4
    ax.bar(table["decile"] - w / 2, table["mean_predicted"], w, label="mean predicted")
    ax.bar(table["decile"] + w / 2, table["mean_actual"], w, label="mean actual")
    ax.set_xlabel("decile of predicted value (10 = highest)")
    ax.set_ylabel("value per customer")
    ax.set_xticks(table["decile"])
    ax.set_title(title or f"decile MAPE {decile_mape(y_true, y_pred):.3f}")
    ax.legend()
    return _save(fig, path)


def plot_gain(y_true: object, predictions: dict[str, object], path, title: str = "") -> str:
    """Gain (Lorenz) curves of several predictions of the same truth, with the
    perfect ordering and the random diagonal (PNG); the legend gives each Gini."""
    fig, ax = _figure()
    x, perfect = _thin(*gain_curve(y_true, y_true))
    ax.plot(x, perfect, color="black", lw=1, ls="--", label="perfect")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":", label="random")
    for name, pred in predictions.items():
        gx, gy = _thin(*gain_curve(y_true, pred))
        ax.plot(gx, gy, lw=1.5, label=f"{name} (Gini {normalized_gini(y_true, pred):.3f})")
    ax.set_xlabel("share of customers, highest predicted first")
    ax.set_ylabel("share of actual value")
    ax.set_title(title or "gain (Lorenz) chart")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_calibration(y_true_binary: object, predictions: dict[str, object], path,
                     title: str = "") -> str:
    """Reliability diagram: observed rate vs. mean predicted probability per decile (PNG)."""
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":", label="perfectly calibrated")
    for name, prob in predictions.items():
        table = calibration_table(y_true_binary, prob)
        ax.plot(table["mean_predicted"], table["observed_rate"], marker="o",
                label=f"{name} (Brier {brier(y_true_binary, prob):.3f})")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title or "calibration")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_importance(importance: pd.Series, path, title: str = "", top: int = 20) -> str:
    """Horizontal bar chart of the ``top`` largest values of ``importance`` (PNG)."""
    fig, ax = _figure()
    head = importance.sort_values(ascending=False).head(top)[::-1]
    ax.barh(head.index.astype(str), head.to_numpy())
    ax.set_xlabel("mean |contribution|")
    ax.set_title(title or "global feature importance")
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path)
