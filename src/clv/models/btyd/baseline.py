"""The BTYD baseline on the pipeline's features: (x, t_x, T, m) from the feature columns,
and a purchase model + Gamma-Gamma fitted on one cutoff's customers (no labels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clv.models.btyd.bgnbd import BgNbd
from clv.models.btyd.gamma_gamma import GammaGamma, fit_gamma_gamma
from clv.models.btyd.purchase import (
    DEFAULT_FAMILY,
    PURCHASE_FAMILIES,
    PurchaseModel,
    fit_purchase_model,
    predict_clv,
)
from clv.models.btyd.simulation import btyd_spend_quantiles


def rft_from_features(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T, m) in days from :mod:`clv.features` columns.

    ``x`` = repeat purchase days (``frequency``), ``T`` = ``tenure_days``,
    ``t_x`` = first to last purchase day (``tenure_days - recency_days``), ``m`` = spend
    per purchase day (``total_spend / n_purchase_days``; the features do not keep the
    first purchase apart, so it is included, unlike the paper's repeat-only mean).
    """
    x = frame["frequency"].to_numpy(dtype=float)
    T = frame["tenure_days"].to_numpy(dtype=float)
    t_x = np.where(x > 0, T - frame["recency_days"].to_numpy(dtype=float), 0.0)
    m = frame["total_spend"].to_numpy(dtype=float) / np.maximum(
        frame["n_purchase_days"].to_numpy(dtype=float), 1.0)
    return x, t_x, T, m


#: The baseline's four + three parameters describe the population, so a seeded sample
#: of this many customers fixes them (standard errors shrink as 1/sqrt(n)); past it the
#: fit only costs time: Nelder-Mead over all 2.57M customers of the 10M-order bench
#: took minutes per fit, over this many a few seconds. Predictions cover everyone.
MAX_FIT_CUSTOMERS = 100_000
SAMPLE_SEED = 42


@dataclass(frozen=True)
class BtydBaseline:
    """A purchase model (BG/NBD by default) + Gamma-Gamma fitted on one cutoff's customers
    (no labels needed)."""

    purchases: PurchaseModel
    gamma_gamma: GammaGamma
    n_fit_customers: int = 0
    family: str = DEFAULT_FAMILY

    @property
    def bgnbd(self) -> BgNbd:
        """The BG/NBD fit, for callers written before the other families."""
        if not isinstance(self.purchases, BgNbd):
            raise AttributeError(f"this baseline's purchase model is {self.family!r}, "
                                 "not BG/NBD; use .purchases")
        return self.purchases

    @classmethod
    def fit(cls, frame, max_customers: int | None = MAX_FIT_CUSTOMERS,
            family: str = DEFAULT_FAMILY) -> BtydBaseline:
        """Fit on the features at a cutoff: the history before it, nothing after.

        With more than ``max_customers`` rows, on a seeded random sample of that many
        (None: on every row). ``family`` names the purchase model (``PURCHASE_FAMILIES``).
        """
        if family not in PURCHASE_FAMILIES:  # before the sampling, not after
            raise ValueError(f"unknown BTYD purchase family {family!r}; "
                             f"expected one of {sorted(PURCHASE_FAMILIES)}")
        x, t_x, T, m = rft_from_features(frame)
        if max_customers is not None and len(x) > max_customers:
            rows = np.sort(np.random.default_rng(SAMPLE_SEED).choice(
                len(x), size=max_customers, replace=False))
            x, t_x, T, m = x[rows], t_x[rows], T[rows], m[rows]
        return cls(fit_purchase_model(family, x, t_x, T), fit_gamma_gamma(x, m), len(x),
                   family)

    def predict_spend(self, frame, horizon_days: float) -> np.ndarray:
        """Expected spend over the next ``horizon_days``, never negative."""
        x, t_x, T, m = rft_from_features(frame)
        spend = predict_clv(self.purchases, self.gamma_gamma, horizon_days, x, t_x, T,
                            np.maximum(m, 0.0))
        return np.clip(spend, 0.0, None)

    def predict_spend_quantiles(self, frame, horizon_days: float,
                                quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
                                n_sims: int = 1_000, seed: int = SAMPLE_SEED) -> np.ndarray:
        """Per-customer quantiles of the spend over the next ``horizon_days``
        (:func:`btyd_spend_quantiles`), shape (rows, len(quantiles))."""
        x, t_x, T, m = rft_from_features(frame)
        return btyd_spend_quantiles(self.purchases, self.gamma_gamma, horizon_days, x, t_x, T,
                                    np.maximum(m, 0.0), quantiles, n_sims, seed)

    def predict_churn(self, frame, horizon_days: float) -> np.ndarray:
        """Probability of no purchase over the next ``horizon_days``."""
        x, t_x, T, _ = rft_from_features(frame)
        return np.clip(self.purchases.p_no_purchase(horizon_days, x, t_x, T), 0.0, 1.0)
