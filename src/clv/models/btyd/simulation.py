"""Predictive intervals of the spend: each purchase model's posterior simulated with the
Gamma-Gamma one, in chunks of customers so memory does not grow with their number."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from clv.models.btyd.estimation import _as_float

if TYPE_CHECKING:  # pragma: no cover
    from clv.models.btyd.gamma_gamma import GammaGamma
    from clv.models.btyd.purchase import PurchaseModel


#: simulated (customer, draw) cells held at once by ``btyd_spend_quantiles``: ~16 MB
#: per array, a handful of arrays, whatever the number of customers
SIM_CELLS = 2_000_000


def btyd_spend_quantiles(model: PurchaseModel, gamma_gamma: GammaGamma, horizon: float,
                         x: np.ndarray, t_x: np.ndarray, T: np.ndarray, m: np.ndarray,
                         quantiles: tuple[float, ...] = (0.1, 0.5, 0.9), n_sims: int = 2_000,
                         seed: int = 0) -> np.ndarray:
    """Per-customer quantiles of the spend over the next ``horizon``, by simulation.

    Each draw: alive or not from P(alive), purchases from the posterior purchase (and
    dropout) rates given alive (``model.sample_purchases``), then their total spend from
    the Gamma-Gamma posterior (``gamma_gamma.sample_spend``). Customers are simulated in
    chunks of ``SIM_CELLS // n_sims``, so memory does not grow with their number.

    Returns:
        Array (customers, len(quantiles)); the quantile's Monte Carlo error shrinks as
        1/sqrt(n_sims). Spend is 0 with probability P(no purchase), so low quantiles are
        often exactly 0.
    """
    x, t_x, T, m = _as_float(x, t_x, T, m)
    if n_sims < 1 or not all(0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(f"need n_sims >= 1 and quantiles in [0, 1]; got {n_sims}, {quantiles}")
    rng = np.random.default_rng(seed)
    out = np.empty((len(x), len(quantiles)))
    chunk = max(1, SIM_CELLS // n_sims)
    for lo in range(0, len(x), chunk):
        rows = slice(lo, lo + chunk)
        purchases = model.sample_purchases(horizon, x[rows], t_x[rows], T[rows], n_sims, rng)
        spend = gamma_gamma.sample_spend(purchases, x[rows], m[rows], rng)
        out[rows] = np.quantile(spend, quantiles, axis=1).T
    return out
