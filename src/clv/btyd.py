"""Buy-till-you-die baselines: BG/NBD (purchases) and Gamma-Gamma (spend per purchase).

What an analyst would use instead of the ML models, implemented from the papers
(lifetimes / PyMC-Marketing do not install beside this stack's pinned NumPy and
pandas) and validated against the published CDNOW estimates in the tests:

* Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative
  to the Pareto/NBD model" — BG/NBD likelihood, P(alive), conditional expectation.
* Fader & Hardie (2013), "The Gamma-Gamma model of monetary value" — spend model.

Inputs per customer, in any time unit (the tests use weeks, the pipeline days):
``x`` repeat purchases (purchase days after the first), ``t_x`` time of the last
purchase since the first, ``T`` age (time since the first purchase), ``m`` mean
spend per repeat purchase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special


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


def _dropout_odds(m: BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    odds = m.a / np.maximum(m.b + x - 1.0, 1e-12) * ((m.alpha + T) / (m.alpha + t_x)) ** (m.r + x)
    return np.where(x > 0, odds, 0.0)


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                         T: np.ndarray) -> float:
    """Total BG/NBD log-likelihood (FHL 2005, eq. 6) at ``params = (r, alpha, a, b)``."""
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = (special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b)
          - special.gammaln(a + b + x))
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1.0, 1e-12))
                      - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(a1 + a2 + np.logaddexp(a3, a4)))


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbd:
    """Maximum-likelihood BG/NBD fit (log-parameterised so every parameter stays > 0)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    _check_rft(x, t_x, T)
    scale = max(float(np.mean(T)), 1e-9)  # alpha is in time units: start it at the data's

    def loss(theta: np.ndarray) -> float:
        return -bgnbd_log_likelihood(np.exp(theta), x, t_x, T)

    start = np.log([1.0, scale, 1.0, 1.0])
    res = optimize.minimize(loss, start, method="Nelder-Mead",
                            options={"xatol": 1e-7, "fatol": 1e-7, "maxiter": 20_000})
    res = optimize.minimize(loss, res.x, method="L-BFGS-B")
    r, alpha, a, b = np.exp(res.x)
    return BgNbd(r, alpha, a, b, -float(res.fun))


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


def _check_rft(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    if not (len(x) == len(t_x) == len(T)) or len(x) == 0:
        raise ValueError("x, t_x and T must be non-empty and of the same length")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9) or np.any((x > 0) & (t_x == 0)):
        raise ValueError("need x >= 0, 0 <= t_x <= T, and t_x > 0 when x > 0")


def predict_clv(bg: BgNbd, gg: GammaGamma, horizon: float, x: np.ndarray, t_x: np.ndarray,
                T: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Expected spend over the next ``horizon``: E[purchases] x E[spend per purchase]."""
    return bg.expected_purchases(horizon, x, t_x, T) * gg.expected_spend(x, m)


# --------------------------------------------------------------------------- from features


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
    """BG/NBD + Gamma-Gamma fitted on one cutoff's customers (no labels needed)."""

    bgnbd: BgNbd
    gamma_gamma: GammaGamma
    n_fit_customers: int = 0

    @classmethod
    def fit(cls, frame, max_customers: int | None = MAX_FIT_CUSTOMERS) -> BtydBaseline:
        """Fit on the features at a cutoff: the history before it, nothing after.

        With more than ``max_customers`` rows, on a seeded random sample of that many
        (None: on every row).
        """
        x, t_x, T, m = rft_from_features(frame)
        if max_customers is not None and len(x) > max_customers:
            rows = np.sort(np.random.default_rng(SAMPLE_SEED).choice(
                len(x), size=max_customers, replace=False))
            x, t_x, T, m = x[rows], t_x[rows], T[rows], m[rows]
        return cls(fit_bgnbd(x, t_x, T), fit_gamma_gamma(x, m), len(x))

    def predict_spend(self, frame, horizon_days: float) -> np.ndarray:
        """Expected spend over the next ``horizon_days``, never negative."""
        x, t_x, T, m = rft_from_features(frame)
        spend = predict_clv(self.bgnbd, self.gamma_gamma, horizon_days, x, t_x, T,
                            np.maximum(m, 0.0))
        return np.clip(spend, 0.0, None)

    def predict_churn(self, frame, horizon_days: float) -> np.ndarray:
        """Probability of no purchase over the next ``horizon_days``."""
        x, t_x, T, _ = rft_from_features(frame)
        return np.clip(self.bgnbd.p_no_purchase(horizon_days, x, t_x, T), 0.0, 1.0)
