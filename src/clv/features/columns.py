"""What the models see: the feature and label columns, and the feature matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clv.config import N_PERIODS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Static features, in the order the models see them.
RFM_FEATURES = [
    "recency_days", "tenure_days", "n_orders", "n_purchase_days", "frequency",
    "total_spend", "avg_order_value", "max_order_value", "mean_ipt_days", "std_ipt_days",
]


def period_columns(n_periods: int = N_PERIODS) -> list[str]:
    """Per-period history columns: spend_p01..spend_pNN then orders_p01..orders_pNN."""
    return [f"spend_p{k:02d}" for k in range(1, n_periods + 1)] + [
        f"orders_p{k:02d}" for k in range(1, n_periods + 1)
    ]


FEATURE_COLUMNS = RFM_FEATURES + period_columns()
LABEL_COLUMNS = ["spend_next", "orders_next", "churned"]


def feature_matrix(frame: pd.DataFrame, dtype: str = "float64") -> pd.DataFrame:
    """The model input: :data:`FEATURE_COLUMNS` as float64 (NaN = missing).

    XGBoost learns from float32 whatever it is given, so the trainers ask for
    float32 here: the same trees from half the memory (2.57M customers x 34
    features: 0.35 GiB instead of 0.7, twice, with the early-stopping split).
    """
    missing = [c for c in FEATURE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"feature column(s) missing from the input: {missing}")
    return frame[FEATURE_COLUMNS].astype(dtype)
