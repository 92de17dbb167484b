"""Batch scoring with the registry's champions.

Every output row carries the exact model versions that produced it, resolved
from ``models:/<name>@champion`` once at the start of the run. The champion may be
of any model family (XGBoost or the TensorFlow ZILN network):
:func:`clv.registry.load_champion` returns a model whose ``predict`` gives the spend
or the churn probability either way.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np

from clv import registry, warehouse
from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME, PERIOD_DAYS, Settings
from clv.features import FEATURE_COLUMNS
from clv.training import feature_matrix

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FEATURES_TABLE = "features.customer_features"
SCORE_COLUMNS = [
    "customer_id", "predicted_clv", "p_churn", "expected_revenue_30d", "horizon_days",
    "clv_model_version", "churn_model_version", "run_id",
]


def score_customers(
    as_of_date: dt.date, horizon_days: int, run_id: str, settings: Settings | None = None
) -> pd.DataFrame:
    """Score every customer in the as-of date's feature partition.

    Returns one row per customer: ``predicted_clv`` (expected spend over the next
    ``horizon_days``), ``p_churn`` (probability of no purchase in that horizon) and
    ``expected_revenue_30d`` (the short-term part: the same spend rate over the
    next 30 days, a uniform-rate assumption), plus the model versions and run id.
    """
    import pandas as pd

    feats = warehouse.read_partition_pandas(FEATURES_TABLE, as_of_date, settings,
                                            columns=["customer_id", *FEATURE_COLUMNS])
    clv_version, clv_model = registry.load_champion(CLV_MODEL_NAME, settings)
    churn_version, churn_model = registry.load_champion(CHURN_MODEL_NAME, settings)
    x = feature_matrix(feats)
    clv = np.clip(clv_model.predict(x), 0.0, None)
    scores = pd.DataFrame({
        "customer_id": feats["customer_id"].to_numpy(),
        "predicted_clv": clv.astype("float64"),
        "p_churn": np.clip(churn_model.predict(x), 0.0, 1.0).astype("float64"),
        "expected_revenue_30d": clv.astype("float64") * min(PERIOD_DAYS / horizon_days, 1.0),
        "horizon_days": horizon_days,
        "clv_model_version": clv_version,
        "churn_model_version": churn_version,
        "run_id": run_id,
    })
    return scores[SCORE_COLUMNS].sort_values("customer_id").reset_index(drop=True)
