"""The features stage: customer features at a cutoff and labels over the horizon after it.

* ``columns``: the feature and label columns the models see, and the feature matrix;
* ``orders``: features and labels from ``raw.orders`` in Spark, split at the cutoff so no
  order at or after it reaches a feature.
"""

from clv.features.columns import (
    FEATURE_COLUMNS,
    LABEL_COLUMNS,
    RFM_FEATURES,
    SOURCE_FEATURES,
    SOURCE_INPUTS,
    feature_matrix,
    model_columns,
    period_columns,
    sources_of,
)
from clv.features.orders import (
    backtest_cutoffs,
    customer_features,
    customer_labels,
    orders_before,
    training_examples,
)

__all__ = [
    "FEATURE_COLUMNS", "LABEL_COLUMNS", "RFM_FEATURES", "SOURCE_FEATURES", "SOURCE_INPUTS",
    "backtest_cutoffs", "customer_features", "customer_labels", "feature_matrix",
    "model_columns", "orders_before", "period_columns", "sources_of", "training_examples",
]
