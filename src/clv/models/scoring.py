"""Batch scoring with the registry's champions.

Every output row carries the exact model versions that produced it, resolved
from ``models:/<name>@champion`` once at the start of the run. The champion may be
of any model family (XGBoost or the TensorFlow ZILN network):
:func:`clv.models.registry.load_champion` returns a model whose ``predict`` gives the spend
or the churn probability either way.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

import numpy as np

from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME, PERIOD_DAYS, Settings
from clv.data import warehouse
from clv.data.catalog import FEATURES as FEATURES_TABLE
from clv.features import FEATURE_COLUMNS, SOURCE_INPUTS, feature_matrix, model_columns
from clv.models import intervals, registry

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

SCORE_COLUMNS = [
    "customer_id", "predicted_clv", "p_churn", "expected_revenue_30d",
    "clv_p10", "clv_p50", "clv_p90", "p_alive", "horizon_days",
    "clv_model_version", "churn_model_version", "run_id",
]


def score_customers(
    as_of_date: dt.date, horizon_days: int, run_id: str, settings: Settings | None = None
) -> pd.DataFrame:
    """Score every customer in the as-of date's feature partition.

    Returns one row per customer: ``predicted_clv`` (expected spend over the next
    ``horizon_days``), ``p_churn`` (probability of no purchase in that horizon) and
    ``expected_revenue_30d`` (the short-term part: the same spend rate over the
    next 30 days, a uniform-rate assumption), ``clv_p10/p50/p90`` (the spend's
    quantiles, :mod:`clv.models.intervals`), ``p_alive`` (BG/NBD, :func:`p_alive`), plus the
    model versions and run id.
    """
    import pandas as pd

    feats = model_features(as_of_date, settings)
    clv_version, clv_model = registry.load_champion(CLV_MODEL_NAME, settings, horizon_days)
    churn_version, churn_model = registry.load_champion(CHURN_MODEL_NAME, settings,
                                                        horizon_days)
    customers = feats["customer_id"]
    x = feature_matrix(feats, columns=model_columns(feats))  # each version takes its own
    del feats  # x holds every input (p_alive's too): one copy of 2.57M rows, not two
    clv, churn = _predict(as_of_date, (clv_version, clv_model), (churn_version, churn_model),
                          customers, x, settings)
    clv = np.clip(clv, 0.0, None)
    scores = pd.DataFrame({
        "customer_id": customers.to_numpy(),
        "predicted_clv": clv.astype("float64"),
        "p_churn": np.clip(churn, 0.0, 1.0).astype("float64"),
        "expected_revenue_30d": clv.astype("float64") * min(PERIOD_DAYS / horizon_days, 1.0),
        "horizon_days": horizon_days,
        "clv_model_version": clv_version,
        "churn_model_version": churn_version,
        "run_id": run_id,
    })
    bands = _spend_quantiles(clv_model, x, clv, as_of_date, settings)
    for i, column in enumerate(intervals.INTERVAL_COLUMNS):
        scores[column] = bands[:, i]
    scores["p_alive"] = p_alive(x)
    return scores[SCORE_COLUMNS].sort_values("customer_id").reset_index(drop=True)


def _predict(as_of_date: dt.date, spend: tuple, churn: tuple, customers: pd.Series,
             x: pd.DataFrame, settings: Settings | None) -> tuple[np.ndarray, np.ndarray]:
    """(spend, churn) of each customer: on the driver, or inside ``mapInPandas`` on the
    Spark executors when :func:`clv.models.distributed.choose` says so (same values)."""
    from clv.config import load_settings
    from clv.models import distributed

    s = settings or load_settings()
    where = distributed.choose("scoring", s, rows=lambda: len(x))
    if where.distributed:
        return distributed.predict_on_executors(as_of_date, spend, churn, customers, x, s)
    return spend[1].predict(x), churn[1].predict(x)


def model_features(as_of_date: dt.date, settings: Settings | None = None) -> pd.DataFrame:
    """customer_id and every model input the as-of date's features hold: the orders'
    features and the optional sources' numeric columns that are present (only those
    columns are read: the features table also holds text attributes and the run id)."""
    present = warehouse.columns(FEATURES_TABLE, as_of_date, settings)
    return warehouse.read_partition_pandas(
        FEATURES_TABLE, as_of_date, settings,
        columns=["customer_id", *FEATURE_COLUMNS, *[c for c in SOURCE_INPUTS if c in present]])


def _spend_quantiles(model, x: pd.DataFrame, predicted: np.ndarray, as_of_date: dt.date,
                     settings: Settings | None) -> np.ndarray:
    """(n, 3) P10/P50/P90 of spend: the ZILN's own distribution, or (other families) a
    calibration on this run's out-of-time holdout (:func:`clv.models.intervals.fit_intervals`)."""
    from clv.models.training import splits

    holdout = None
    if intervals.distribution_source(model) is None:  # only calibrated methods need it
        holdout = splits.holdout(as_of_date, settings)
        if holdout.empty:
            raise ValueError(f"{splits.TRAINING_TABLE} as_of_date={as_of_date}: no eval "
                             "rows to calibrate the spend intervals on")
    method = intervals.fit_intervals(model, holdout)
    # P50 <= P90 always; the mean may lie above P90 for a long-tailed customer
    return np.clip(method.quantiles(model, x, predicted), 0.0, None)


def p_alive(features: pd.DataFrame) -> np.ndarray:
    """P(still active at the as-of date) per customer from a BG/NBD model fitted on the
    as-of date's own features (history before it, no labels). A customer with no repeat
    purchase has p_alive 1 under BG/NBD (dropout happens only after a purchase). NaN
    for everyone when BG/NBD cannot be fitted (too few repeat customers), with a warning.
    """
    from clv.models import btyd

    try:
        fitted = btyd.BtydBaseline.fit(features)
    except (ValueError, FloatingPointError) as exc:
        log.warning("p_alive: BG/NBD not fitted (%s); p_alive is null", exc)
        return np.full(len(features), np.nan)
    return np.clip(fitted.bgnbd.p_alive(*btyd.rft_from_features(features)[:3]), 0.0, 1.0)
