"""BTYD models as registered candidates: the same models as the baselines of
:mod:`clv.models.btyd`, fitted at the learning cutoff and registered as versions of
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

from clv.models import btyd
from clv.models.memo import LastResult, content_digest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Purchase models registered as candidates, by :data:`clv.models.btyd.PURCHASE_FAMILIES` name
#: (tag ``btyd_model``); ``CLV_BTYD_MODELS=bgnbd`` keeps only BG/NBD.
MODELS: tuple[str, ...] = tuple(
    m for m in os.environ.get("CLV_BTYD_MODELS", ",".join(btyd.PURCHASE_FAMILIES)).split(",")
    if m)


@dataclass(frozen=True)
class BtydModel:
    """A fitted purchase model + Gamma-Gamma (:class:`clv.models.btyd.BtydBaseline`) that
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


# --------------------------------------------------------------------------- level anchor

#: The XGBoost spend model's level is taken from this BTYD model at the cutoff it predicts
#: from (issue #15): trees cannot follow a cohort's decay between the learning window and
#: a later one (+47.5% aggregate error on CDNOW's make-run holdout, -4.6% anchored).
#: Empty (``CLV_SPEND_LEVEL_ANCHOR=``) registers new XGBoost versions without it.
LEVEL_ANCHOR = os.environ.get("CLV_SPEND_LEVEL_ANCHOR", btyd.DEFAULT_FAMILY)

_ANCHOR_TOTALS: LastResult[float | None] = LastResult()


def anchor_total(frame: pd.DataFrame, horizon_days: float, family: str) -> float | None:
    """Total expected spend over the horizon of the BTYD model ``family`` fitted on the
    history in ``frame`` (no labels); None when it cannot be fitted.

    Remembered by content (one entry): ``evaluate`` scores several versions on one
    holdout, and each would otherwise refit the same model.
    """
    def fit() -> float | None:
        try:
            model = BtydModel.fit(family, frame, horizon_days)
            return float(np.sum(model.predict_spend(frame)))
        except (ValueError, FloatingPointError):  # too few repeat customers: no anchor
            return None

    return _ANCHOR_TOTALS.get(content_digest(btyd.rft_from_features(frame), family,
                                             float(horizon_days), len(frame)), fit)


def level_factor(frame: pd.DataFrame, pred: np.ndarray, horizon_days: float,
                 family: str) -> float:
    """k such that ``k * pred`` sums to the BTYD model's total at ``frame``'s cutoff.

    Honest out of time: it reads only the history before the cutoff the prediction is
    made at (the features), never a label after it, like the BTYD baseline. Rankings
    (Gini, Spearman) are unchanged. 1.0 when there is no anchor or no predicted spend.
    """
    total, predicted = anchor_total(frame, horizon_days, family), float(np.sum(pred))
    if total is None or not np.isfinite(total) or total <= 0 or predicted <= 0:
        return 1.0
    return total / predicted
