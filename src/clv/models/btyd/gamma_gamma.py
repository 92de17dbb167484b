"""Gamma-Gamma: Fader & Hardie (2013), "The Gamma-Gamma model of monetary value" —
spend per purchase, its posterior mean and draws of the total spend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend parameters."""

    p: float
    q: float
    gamma: float
    log_likelihood: float

    def expected_spend(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """E[spend per purchase | x repeat purchases with mean m] (FH 2013, eq. 5).

        A customer with no repeat purchase gets the population mean p*gamma/(q-1).
        """
        x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
        population = self.p * self.gamma / (self.q - 1.0)
        weight = self.p * x / (self.p * x + self.q - 1.0)
        m = np.where(x > 0, m, 0.0)
        return (1.0 - weight) * population + weight * m

    def sample_spend(self, purchases: np.ndarray, x: np.ndarray, m: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
        """Draws of the total spend of ``purchases`` (customers, sims) future purchases.

        Spend per purchase is Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers; given
        x past purchases of mean m, nu ~ Gamma(p x + q, gamma + m x) (FH 2013), and the sum
        of k purchases given nu is Gamma(p k, nu) (0 for k = 0).
        """
        x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
        paid = np.where(x > 0, m, 0.0) * x
        nu = (rng.gamma((self.p * x + self.q)[:, None], 1.0, purchases.shape)
              / (self.gamma + paid)[:, None])
        return rng.gamma(self.p * purchases, 1.0) / nu


def gamma_gamma_log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> float:
    """Gamma-Gamma log-likelihood over repeat customers (x > 0, m > 0)."""
    p, q, g = params
    px = p * x
    ll = (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * np.log(g)
          + (px - 1.0) * np.log(m) + px * np.log(x) - (px + q) * np.log(g + m * x))
    return float(np.sum(ll))


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma fit on the customers with x > 0 and m > 0."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    keep = (x > 0) & (m > 0)
    if keep.sum() < 3:
        raise ValueError(f"Gamma-Gamma needs repeat customers with spend; got {int(keep.sum())}")
    x, m = x[keep], m[keep]

    def loss(theta: np.ndarray) -> float:
        return -gamma_gamma_log_likelihood(np.exp(theta), x, m)

    start = np.log([1.0, 2.0, float(np.mean(m))])
    res = optimize.minimize(loss, start, method="Nelder-Mead",
                            options={"xatol": 1e-7, "fatol": 1e-7, "maxiter": 20_000})
    res = optimize.minimize(loss, res.x, method="L-BFGS-B")
    p, q, g = np.exp(res.x)
    return GammaGamma(p, q, g, -float(res.fun))
