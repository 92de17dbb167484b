"""BTYD models as registered candidates: the same models as the baselines of
:mod:`clv.btyd`, fitted at the learning cutoff and registered as versions of
``clv_spend`` and ``clv_churn`` (tag ``model_family`` = ``btyd``), so one can win
``champion`` on the same rule as XGBoost and the ZILN network.

A purchase model (BG/NBD, Pareto/NBD, MBG/NBD: :data:`MODELS`) gives the expected
number of purchases over the horizon and P(no purchase); Gamma-Gamma gives the
spend per purchase. Both read only the history before a cutoff (``frequency``,
``recency_days``, ``tenure_days``, ``total_spend``, ``n_purchase_days``, all in
:data:`clv.features.FEATURE_COLUMNS`), so fitting needs no labels and predicting
needs only the feature matrix the other families get.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clv import btyd

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Purchase models registered as candidates, by :data:`clv.btyd.PURCHASE_FAMILIES` name
#: (tag ``btyd_model``); ``CLV_BTYD_MODELS=bgnbd`` keeps only BG/NBD.
MODELS: tuple[str, ...] = tuple(
    m for m in os.environ.get("CLV_BTYD_MODELS", ",".join(btyd.PURCHASE_FAMILIES)).split(",")
    if m)


@dataclass(frozen=True)
class BtydModel:
    """A fitted purchase model + Gamma-Gamma (:class:`clv.btyd.BtydBaseline`) that
    predicts over the ``horizon_days`` it was registered for."""

    fitted: btyd.BtydBaseline
    horizon_days: float

    @classmethod
    def fit(cls, kind: str, frame: pd.DataFrame, horizon_days: float,
            max_customers: int | None = btyd.MAX_FIT_CUSTOMERS) -> BtydModel:
        """Fit on the features at a cutoff (history only, no labels), on the same seeded
        sample as the baseline.

        Raises:
            ValueError: An unknown ``kind``, or too few repeat customers to fit.
        """
        return cls(btyd.BtydBaseline.fit(frame, max_customers, family=kind),
                   float(horizon_days))

    @property
    def kind(self) -> str:
        return self.fitted.family

    @property
    def n_fit_customers(self) -> int:
        return self.fitted.n_fit_customers

    def predict_spend(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected spend over the horizon: E[purchases] x E[spend per purchase], >= 0."""
        return self.fitted.predict_spend(frame, self.horizon_days)

    def predict_churn(self, frame: pd.DataFrame) -> np.ndarray:
        """P(no purchase over the horizon)."""
        return self.fitted.predict_churn(frame, self.horizon_days)

    def params(self) -> dict[str, float]:
        """The fitted parameters, prefixed by model, for MLflow."""
        out = {f"{self.kind}_{k}": float(v)
               for k, v in asdict(self.fitted.purchases).items()}
        out.update({f"gamma_gamma_{k}": float(v)
                    for k, v in asdict(self.fitted.gamma_gamma).items()})
        return out


def _python_model_base() -> type:
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel


class BtydPyfunc(_python_model_base()):
    """MLflow pyfunc wrapper: ``predict`` returns spend (``output="spend"``) or the churn
    probability (``output="churn"``) of a :class:`BtydModel`, one float per row.

    The fitted model is a handful of floats, pickled with the wrapper: no artifacts.
    """

    def __init__(self, model: BtydModel, output: str):
        if output not in ("spend", "churn"):
            raise ValueError(f"output must be 'spend' or 'churn', got {output!r}")
        self.model, self.output = model, output

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None
                ) -> np.ndarray:
        if self.output == "spend":
            return self.model.predict_spend(model_input)
        return self.model.predict_churn(model_input)
