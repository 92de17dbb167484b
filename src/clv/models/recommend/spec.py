"""What a recommender run is: its names, parameters, factors and result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame




RECOMMEND_MODEL_NAME = "clv_recommend"
MODEL_FAMILY = "als"
METHODS = ("als", "popularity", "co_purchase")
BASELINES = ("popularity", "co_purchase")
PRIMARY_METRIC = "ndcg"
#: Columns of every top-k frame (``marts.recommendations`` adds ``as_of_date`` and lineage).
#: Scores held at once per Python worker while ranking (customers x products).
SCORE_BLOCK = 2_000_000
RECOMMENDATION_SCHEMA = ("customer_id string, product_id string, score double, rank int, "
                         "method string")


@dataclass(frozen=True)
class AlsParams:
    """ALS hyperparameters and the co-purchase baseline's neighbourhood size."""

    # Chosen on a 30,000-line synthetic set (1,000 customers, 150 products, 6 true
    # factors): NDCG@10 0.655 against 0.641-0.647 for rank 8/16, alpha 1-5, reg 0.1.
    rank: int = 12
    max_iter: int = 15
    reg_param: float = 0.5
    alpha: float = 2.0
    seed: int = 7
    neighbours: int = 50


#: The product's ALS settings (see DECISIONS.md).
DEFAULT_ALS_PARAMS = AlsParams()


@dataclass(frozen=True)
class AlsFactors:
    """The fitted factors: what the registered model carries."""

    customer_ids: np.ndarray  # (n_customers,) str
    customer_factors: np.ndarray  # (n_customers, rank) float32
    product_ids: np.ndarray  # (n_products,) str
    product_factors: np.ndarray  # (n_products, rank) float32

    def save(self, path: Path) -> Path:
        np.savez(path, customer_ids=self.customer_ids.astype(str),
                 customer_factors=self.customer_factors,
                 product_ids=self.product_ids.astype(str), product_factors=self.product_factors)
        return path

    @classmethod
    def load(cls, path: str | Path) -> AlsFactors:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["customer_ids"], z["customer_factors"], z["product_ids"],
                       z["product_factors"])


@dataclass
class RecommenderRun:
    """One out-of-time fit: the published list, every method's lists, and the figures."""

    top_k: DataFrame  # the chosen method's rows (RECOMMENDATION_SCHEMA)
    candidates: DataFrame  # every method's rows, persisted
    method: str  # which method top_k holds
    metrics: dict[str, float]  # "<method>.<metric>_at_<k>", "<method>.coverage", counts
    params: dict[str, Any]
    factors: AlsFactors
    decision: tuple[str | None, str] = field(default=(None, ""))
