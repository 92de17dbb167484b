"""What a version is judged on: the label and shared metrics of a registered name, and the
baselines fitted without labels (BG/NBD + Gamma-Gamma, the naive past-spend rate and
recency) that every version must beat on the same holdout."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME
from clv.models import metrics, registry
from clv.models.memo import LastResult, content_digest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

#: Baselines, under the model_name they get in marts.model_metrics.
BTYD_BASELINE = "btyd_bgnbd_gg"
NAIVE_SPEND_BASELINE = "naive_past_spend_rate"
NAIVE_CHURN_BASELINE = "naive_recency"


def report(name: str, y_true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The shared metrics of a ``clv_spend`` (regression) or ``clv_churn`` prediction."""
    if registry.OUTPUT[name] == "spend":
        return metrics.regression_report(y_true, pred)
    return metrics.classification_report(y_true, pred)


def truth(name: str, frame: pd.DataFrame) -> np.ndarray:
    """The label a model of ``name`` is judged on: spend, or churned (0/1)."""
    column = "spend_next" if registry.OUTPUT[name] == "spend" else "churned"
    return frame[column].to_numpy(dtype=float)


def past_spend_rate(frame: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Naive baseline: the customer's past spend per day of tenure, times the horizon."""
    tenure = np.maximum(frame["tenure_days"].to_numpy(dtype=float), 1.0)
    return np.clip(frame["total_spend"].to_numpy(dtype=float), 0.0, None) / tenure * horizon_days


def recency_churn_score(frame: pd.DataFrame) -> np.ndarray:
    """Naive baseline: churn risk grows with days since the last purchase (a rank, in 0..1)."""
    r = frame["recency_days"].to_numpy(dtype=float)
    return (r - r.min()) / max(r.max() - r.min(), 1.0)


def baseline_predictions(frame: pd.DataFrame, horizon_days: int) -> dict[str, dict[str, Any]]:
    """Baseline predictions per registered name: {name: {baseline_name: prediction}}.

    BG/NBD + Gamma-Gamma is fitted on ``frame`` itself: it uses only the history
    before the cutoff (no labels), so it is out of sample for the horizon after it.
    """
    out: dict[str, dict[str, Any]] = {CLV_MODEL_NAME: {}, CHURN_MODEL_NAME: {}}
    btyd_pred = _btyd_predictions(frame, horizon_days)
    if btyd_pred is not None:
        out[CLV_MODEL_NAME][BTYD_BASELINE] = btyd_pred[0].copy()
        out[CHURN_MODEL_NAME][BTYD_BASELINE] = btyd_pred[1].copy()
    out[CLV_MODEL_NAME][NAIVE_SPEND_BASELINE] = past_spend_rate(frame, horizon_days)
    out[CHURN_MODEL_NAME][NAIVE_CHURN_BASELINE] = recency_churn_score(frame)
    return out


#: BTYD fits by content of the frame they were fitted on: the three training tasks and
#: ``evaluate`` fit the same baseline on the same holdout (3.3 s each on CDNOW); when they
#: run in one process (``airflow dags test``, ``make run``) it is fitted once.
_BTYD_MEMO: LastResult[tuple[np.ndarray, np.ndarray] | None] = LastResult()


def _btyd_predictions(frame: pd.DataFrame, horizon_days: int
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """(spend, churn) of BG/NBD + Gamma-Gamma fitted on ``frame``; None if it cannot be."""
    from clv.models import btyd

    def fit() -> tuple[np.ndarray, np.ndarray] | None:
        try:
            base = btyd.BtydBaseline.fit(frame)
            return (base.predict_spend(frame, horizon_days),
                    base.predict_churn(frame, horizon_days))
        except (ValueError, FloatingPointError) as exc:  # too few repeat customers
            log.warning("BTYD baseline not fitted (%s); the BTYD gate is skipped", exc)
            return None

    # Key on exactly what the fit reads (btyd.rft_from_features): equal key, equal fit.
    return _BTYD_MEMO.get(content_digest(btyd.rft_from_features(frame), horizon_days,
                                         len(frame)), fit)


def _baseline_metrics(name: str, y: np.ndarray, baselines: dict[str, np.ndarray]
                      ) -> dict[str, dict[str, float]]:
    return {b: report(name, y, pred) for b, pred in baselines.items()}
