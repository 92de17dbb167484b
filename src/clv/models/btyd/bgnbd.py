"""BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way: an
alternative to the Pareto/NBD model" — likelihood, P(alive), conditional expectation,
and the posterior simulation shared with MBG/NBD (:func:`_sample_bg_family`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from clv.models.btyd.estimation import _as_float, _check_rft, _fit_log_params


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters and the log-likelihood at them."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Probability that each customer is still active at ``T``."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        return 1.0 / (1.0 + _dropout_odds(self, x, t_x, T))

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray,
                           T: np.ndarray) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10)."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1.0, t / (alpha + T + t))
        head = (a + b + x - 1.0) / (a - 1.0)
        body = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
        return head * body / (1.0 + _dropout_odds(self, x, t_x, T))

    def p_no_purchase(self, t: float, x: np.ndarray, t_x: np.ndarray,
                      T: np.ndarray) -> np.ndarray:
        """P(no purchase in (T, T + t] | x, t_x, T): the BG/NBD churn probability.

        Dropout happens only right after a purchase, so a customer alive at ``T``
        stays alive until the next purchase; with the posterior Gamma(r + x, alpha + T)
        of the purchase rate, P(none in t | alive) = ((alpha + T) / (alpha + T + t))^(r + x).
        Hence 1 - P(alive) + P(alive) * that.
        """
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        alive = self.p_alive(x, t_x, T)
        quiet = ((self.alpha + T) / (self.alpha + T + t)) ** (self.r + x)
        return 1.0 - alive + alive * quiet

    def sample_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                         n_sims: int, rng: np.random.Generator) -> np.ndarray:
        """Draws of the purchases in (T, T + t], shape (customers, n_sims).

        Alive w.p. P(alive); given alive, lambda ~ Gamma(r + x, alpha + T) and
        p ~ Beta(a, b + x) (the alive term's (1-p)^x lambda^x e^(-lambda T)).
        """
        x, t_x, T = _as_float(x, t_x, T)
        return _sample_bg_family(self.r, self.alpha, self.a, self.b + x,
                                 self.p_alive(x, t_x, T), t, x, T, n_sims, rng)


def _sample_bg_family(r: float, alpha: float, a: float, b_alive: np.ndarray,
                      p_alive: np.ndarray, t: float, x: np.ndarray, T: np.ndarray,
                      n_sims: int, rng: np.random.Generator) -> np.ndarray:
    """Purchases in (T, T + t] for BG/NBD-type customers (dropout after a purchase).

    An alive customer meets Poisson(lambda t) purchase opportunities and buys until the
    purchase after which he drops out, the Geometric(p)-th.
    """
    shape = (len(x), n_sims)
    alive = rng.random(shape) < p_alive[:, None]
    lam = rng.gamma((r + x)[:, None], 1.0 / (alpha + T)[:, None], shape)
    p = np.clip(rng.beta(a, b_alive[:, None], shape), 1e-12, 1.0)  # Geometric needs p > 0
    purchases = np.minimum(rng.poisson(lam * t), rng.geometric(p))
    return np.where(alive, purchases, 0)


def _dropout_odds(m: BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    odds = m.a / np.maximum(m.b + x - 1.0, 1e-12) * ((m.alpha + T) / (m.alpha + t_x)) ** (m.r + x)
    return np.where(x > 0, odds, 0.0)


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                         T: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Total BG/NBD log-likelihood (FHL 2005, eq. 6) at ``params = (r, alpha, a, b)``.

    ``weights`` counts customers sharing one (x, t_x, T) row (None: one each).
    """
    r, alpha, a, b = params
    x, t_x, T = _as_float(x, t_x, T)
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = (special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b)
          - special.gammaln(a + b + x))
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1.0, 1e-12))
                      - (r + x) * np.log(alpha + t_x), -np.inf)
    ll = a1 + a2 + np.logaddexp(a3, a4)
    return float(np.sum(ll if weights is None else weights * ll))


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbd:
    """Maximum-likelihood BG/NBD fit (log-parameterised so every parameter stays > 0)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    _check_rft(x, t_x, T)
    scale = max(float(np.mean(T)), 1e-9)  # alpha is in time units: start it at the data's
    (r, alpha, a, b), ll = _fit_log_params(bgnbd_log_likelihood, [1.0, scale, 1.0, 1.0],
                                           x, t_x, T)
    return BgNbd(r, alpha, a, b, ll)
