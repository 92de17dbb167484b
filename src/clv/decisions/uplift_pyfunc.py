"""MLflow pyfunc wrapper of a per-customer effect model (:class:`clv.decisions.effects.TLearner`).

``predict`` takes the effect covariates (``clv.decisions.effects.COVARIATES``) and returns the
expected incremental revenue per customer, before the clipping and shrinkage that
:class:`clv.decisions.effects.ActionEffect` applies (those depend on the campaign's cells and
are logged with the run).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clv.models.ziln import _python_model_base


class UpliftPyfunc(_python_model_base()):
    """A fitted T-learner as an MLflow model (pickled with it)."""

    def __init__(self, learner: Any):
        self.learner = learner

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return self.learner.predict(model_input)
