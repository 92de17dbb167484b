"""BTYD models as registered candidates: the same models as the baselines of
:mod:`clv.btyd`, fitted at the learning cutoff and registered as versions of
``clv_spend`` and ``clv_churn`` (tag ``model_family`` = ``btyd``), so one can win
``champion`` on the same rule as XGBoost and the ZILN network.

A purchase model (BG/NBD, and the others in :data:`FITTERS`) gives the expected
number of purchases over the horizon and P(no purchase); Gamma-Gamma gives the
spend per purchase. Both read only the history before a cutoff (``frequency``,
``recency_days``, ``tenure_days``, ``total_spend``, ``n_purchase_days``, all in
:data:`clv.features.FEATURE_COLUMNS`), so fitting needs no labels and predicting
needs only the feature matrix the other families get.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clv import btyd

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Purchase models by the name a version carries (tag ``btyd_model``): each fitter
#: takes (x, t_x, T) and returns an object with ``expected_purchases(t, x, t_x, T)``
#: and ``p_no_purchase(t, x, t_x, T)``, like :class:`clv.btyd.BgNbd`.
FITTERS: dict[str, Callable[..., Any]] = {"bgnbd": btyd.fit_bgnbd}


def _sample_rows(n: int, max_customers: int | None) -> np.ndarray | None:
    """The seeded sample :meth:`clv.btyd.BtydBaseline.fit` takes (the same rows, so a
    BG/NBD version fitted on a frame equals the baseline fitted on it)."""
    if max_customers is None or n <= max_customers:
        return None
    return np.sort(np.random.default_rng(btyd.SAMPLE_SEED).choice(
        n, size=max_customers, replace=False))


@dataclass(frozen=True)
class BtydModel:
    """A fitted purchase model and Gamma-Gamma, predicting over ``horizon_days``."""

    kind: str
    purchases: Any
    gamma_gamma: btyd.GammaGamma
    horizon_days: float
    n_fit_customers: int

    @classmethod
    def fit(cls, kind: str, frame: pd.DataFrame, horizon_days: float,
            max_customers: int | None = btyd.MAX_FIT_CUSTOMERS) -> BtydModel:
        """Fit on the features at a cutoff (history only, no labels).

        Raises:
            ValueError: An unknown ``kind``, or too few repeat customers to fit.
        """
        if kind not in FITTERS:
            raise ValueError(f"unknown BTYD model {kind!r}; known: {sorted(FITTERS)}")
        x, t_x, T, m = btyd.rft_from_features(frame)
        rows = _sample_rows(len(x), max_customers)
        if rows is not None:
            x, t_x, T, m = x[rows], t_x[rows], T[rows], m[rows]
        return cls(kind, FITTERS[kind](x, t_x, T), btyd.fit_gamma_gamma(x, m),
                   float(horizon_days), len(x))

    def predict_spend(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected spend over the horizon: E[purchases] x E[spend per purchase], >= 0."""
        x, t_x, T, m = btyd.rft_from_features(frame)
        n = self.purchases.expected_purchases(self.horizon_days, x, t_x, T)
        return np.clip(n * self.gamma_gamma.expected_spend(x, np.maximum(m, 0.0)), 0.0, None)

    def predict_churn(self, frame: pd.DataFrame) -> np.ndarray:
        """P(no purchase over the horizon)."""
        x, t_x, T, _ = btyd.rft_from_features(frame)
        return np.clip(self.purchases.p_no_purchase(self.horizon_days, x, t_x, T), 0.0, 1.0)

    def params(self) -> dict[str, float]:
        """The fitted parameters, prefixed by model, for MLflow."""
        out = {f"{self.kind}_{k}": float(v) for k, v in asdict(self.purchases).items()}
        out.update({f"gamma_gamma_{k}": float(v) for k, v in asdict(self.gamma_gamma).items()})
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
