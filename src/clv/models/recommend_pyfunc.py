"""MLflow pyfunc wrapper of the ALS factors (:class:`clv.models.recommend.AlsFactors`).

``predict`` takes a frame with a ``customer_id`` column and returns each known
customer's top ``k`` products by the ALS score (params ``{"k": n}``, default 10):
customer_id, product_id, score, rank. Unknown customers get no rows (cold start:
the pipeline's popularity list covers them). It scores by the factors alone; the
exclusion of recent purchases is the pipeline's, which knows the order lines.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clv.models.recommend.spec import AlsFactors
from clv.models.ziln import _python_model_base


class AlsRecommenderPyfunc(_python_model_base()):
    """The factors travel as an ``.npz`` artifact (no pickle inside it)."""

    def load_context(self, context: Any) -> None:
        self.factors = AlsFactors.load(context.artifacts["factors"])
        self.row = {c: i for i, c in enumerate(self.factors.customer_ids)}

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        f = self.factors
        rows = [self.row[c] for c in model_input["customer_id"].astype(str) if c in self.row]
        scores = f.customer_factors[rows].astype(np.float64) @ f.product_factors.T
        k = min(int((params or {}).get("k", 10)), scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return pd.DataFrame({
            "customer_id": np.repeat(f.customer_ids[rows], k),
            "product_id": f.product_ids[top.ravel()],
            "score": np.take_along_axis(scores, top, axis=1).ravel(),
            "rank": np.tile(np.arange(1, k + 1), len(rows))})
