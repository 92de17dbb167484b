"""Score back-testing: what did the published scores say, and what was then spent?

A scores partition of as-of date D predicts each customer's spend over
``[D, D + horizon_days)`` (the same half-open window as the training labels,
:func:`clv.features.customer_labels`). Once that window has passed by a later run's
as-of date, and the order history reaches the window's last day, the prediction is
compared with the realised spend of ``raw.orders`` in that window
(:func:`backtest_scores`): one row per scored as-of date and model version with the
shared metrics of :mod:`clv.models.metrics` (normalized Gini, aggregate error, decile MAPE),
the coverage of the published 80 % interval, and the predicted vs realised totals.

A scored customer with no order in the window realised 0; customers first seen after
D were not scored and are not counted. A row is flagged (``alert``) when the
absolute aggregate error exceeds :data:`MAX_ABS_AGGREGATE_ERROR` or the Gini is
below :data:`MIN_GINI`; the pipeline step logs a WARNING for it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.models import metrics
from clv.models.intervals import COVERAGE_METRIC, INTERVAL_COLUMNS, interval_coverage

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: |predicted total - realised total| / realised total above this is flagged (25 %).
MAX_ABS_AGGREGATE_ERROR = 0.25
#: Normalized Gini below this is flagged: the ranking barely beats random order.
MIN_GINI = 0.2
#: A run back-tests at most this many scored partitions, the latest whose horizon passed.
MAX_PARTITIONS = 12
BACKTEST_COLUMNS = ["scored_as_of_date", "clv_model_version", "horizon_days", "window_end",
                    "n_customers", "n_buyers", "normalized_gini", "aggregate_error",
                    "decile_mape", COVERAGE_METRIC, "predicted_total", "realised_total",
                    "alert", "alert_reason"]


def window_end(scored_as_of: dt.date, horizon_days: int) -> dt.date:
    """First day after the scored horizon: the window is [scored_as_of, this)."""
    return scored_as_of + dt.timedelta(days=int(horizon_days))


def is_due(scored_as_of: dt.date, horizon_days: int, as_of_date: dt.date,
           newest_order_date: dt.date | None) -> bool:
    """True when the scored window has ended by ``as_of_date`` and the orders known
    reach its last day (the newest order is on or after ``window_end - 1 day``)."""
    end = window_end(scored_as_of, horizon_days)
    return (scored_as_of < as_of_date and end <= as_of_date and newest_order_date is not None
            and newest_order_date >= end - dt.timedelta(days=1))


def backtest_scores(scores: pd.DataFrame, realised: pd.DataFrame,
                    scored_as_of: dt.date) -> pd.DataFrame:
    """Compare one scores partition with the spend realised in its window.

    Args:
        scores: the partition's customer_id, predicted_clv, horizon_days,
            clv_model_version (and clv_p10, clv_p90 when it has intervals).
        realised: customer_id, spend_next: spend in the window per customer who bought.
        scored_as_of: the partition's as-of date.

    Returns:
        :data:`BACKTEST_COLUMNS`, one row per clv_model_version in ``scores``.
    """
    import pandas as pd

    needed = ["customer_id", "predicted_clv", "horizon_days", "clv_model_version"]
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        raise ValueError(f"marts.customer_scores as_of_date={scored_as_of}: missing {missing}")
    spend = realised.groupby("customer_id")["spend_next"].sum()
    frame = scores.assign(realised=scores["customer_id"].map(spend).fillna(0.0).astype(float))
    rows = [_version_row(part, scored_as_of, str(version))
            for version, part in frame.groupby("clv_model_version", sort=True)]
    return pd.DataFrame(rows, columns=BACKTEST_COLUMNS)


def _version_row(part: pd.DataFrame, scored_as_of: dt.date, version: str) -> dict[str, Any]:
    y = part["realised"].to_numpy(dtype=float)
    pred = part["predicted_clv"].to_numpy(dtype=float)
    report = metrics.regression_report(y, pred)
    has_interval = set(INTERVAL_COLUMNS) <= set(part.columns) and \
        part[INTERVAL_COLUMNS].notna().all(axis=None)
    coverage = (interval_coverage(y, part["clv_p10"], part["clv_p90"]) if has_interval
                else float("nan"))
    horizon = int(part["horizon_days"].iat[0])
    reasons = flag_reasons(report["aggregate_error"], report["normalized_gini"])
    return {"scored_as_of_date": scored_as_of, "clv_model_version": version,
            "horizon_days": horizon, "window_end": window_end(scored_as_of, horizon),
            "n_customers": int(len(part)), "n_buyers": int((y > 0).sum()),
            "normalized_gini": report["normalized_gini"],
            "aggregate_error": report["aggregate_error"],
            "decile_mape": report["decile_mape"], COVERAGE_METRIC: coverage,
            "predicted_total": float(pred.sum()), "realised_total": float(y.sum()),
            "alert": bool(reasons), "alert_reason": "; ".join(reasons) or None}


def flag_reasons(aggregate_error: float, gini: float) -> list[str]:
    """Why a back-tested partition is flagged ([] = not flagged); NaN metrics are not."""
    out = []
    if np.isfinite(aggregate_error) and abs(aggregate_error) > MAX_ABS_AGGREGATE_ERROR:
        out.append(f"aggregate error {aggregate_error:+.1%} beyond "
                   f"+/-{MAX_ABS_AGGREGATE_ERROR:.0%}")
    if np.isfinite(gini) and gini < MIN_GINI:
        out.append(f"normalized Gini {gini:.3f} below the floor {MIN_GINI}")
    return out
