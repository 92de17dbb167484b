"""Buy-till-you-die baselines: purchase models (BG/NBD, Pareto/NBD, MBG/NBD) and
Gamma-Gamma (spend per purchase).

What an analyst would use instead of the ML models, implemented from the papers
(lifetimes / PyMC-Marketing do not install beside this stack's pinned NumPy and
pandas) and validated against the published CDNOW estimates in the tests:

* Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative
  to the Pareto/NBD model" — BG/NBD likelihood, P(alive), conditional expectation.
* Fader & Hardie (2005), "A note on deriving the Pareto/NBD model and related
  expressions" — Pareto/NBD (Schmittlein, Morrison & Colombo 1987).
* Batislam, Denizel & Filiztekin (2007), "Empirical validation and comparison of models
  for customer base analysis" — MBG/NBD (BG/NBD with dropout possible at time 0).
* Fader & Hardie (2013), "The Gamma-Gamma model of monetary value" — spend model.

The three purchase models share :class:`PurchaseModel`; :func:`fit_purchase_model`
fits one by family name (``"bgnbd"``, ``"pareto_nbd"``, ``"mbgnbd"``), and
:func:`btyd_spend_quantiles` gives per-customer predictive intervals of the spend by
simulating each model's posterior with the Gamma-Gamma one.

Inputs per customer, in any time unit (the tests use weeks, the pipeline days):
``x`` repeat purchases (purchase days after the first), ``t_x`` time of the last
purchase since the first, ``T`` age (time since the first purchase), ``m`` mean
spend per repeat purchase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import integrate, optimize, special


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


# --------------------------------------------------------------------------- Pareto/NBD


@dataclass(frozen=True)
class ParetoNbd:
    """Fitted Pareto/NBD parameters and the log-likelihood at them.

    Schmittlein, Morrison & Colombo (1987), in the notation of Fader & Hardie (2005),
    "A note on deriving the Pareto/NBD model and related expressions": while alive a
    customer buys at Poisson rate lambda ~ Gamma(r, alpha) and dies after an
    exponential lifetime of rate mu ~ Gamma(s, beta), independently.
    """

    r: float
    alpha: float
    s: float
    beta: float
    log_likelihood: float

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(alive at T | x, t_x, T): the share of the alive term."""
        x, t_x, T = _as_float(x, t_x, T)
        log_alive, log_dead = _pareto_log_terms(self.r, self.alpha, self.s, self.beta,
                                                x, t_x, T)
        return special.expit(log_alive - log_dead)

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray,
                           T: np.ndarray) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (FH 2005 note).

        Given alive at T, lambda ~ Gamma(r + x, alpha + T) and mu ~ Gamma(s, beta + T)
        independently; E[Y(t) | lambda, mu] = lambda (1 - exp(-mu t)) / mu, whose mean is
        (r + x)/(alpha + T) * int_0^t ((beta + T)/(beta + T + u))^s du
        = (r + x)(beta + T)/((alpha + T)(s - 1)) [1 - ((beta + T)/(beta + T + t))^(s - 1)],
        written with exprel so that s = 1 (where it becomes a logarithm) is exact.
        """
        x, t_x, T = _as_float(x, t_x, T)
        growth = np.log1p(t / (self.beta + T))  # log((beta + T + t) / (beta + T))
        per_alive = ((self.r + x) / (self.alpha + T) * (self.beta + T) * growth
                     * special.exprel(-(self.s - 1.0) * growth))
        return per_alive * self.p_alive(x, t_x, T)

    def p_no_purchase(self, t: float, x: np.ndarray, t_x: np.ndarray,
                      T: np.ndarray) -> np.ndarray:
        """P(no purchase in (T, T + t] | x, t_x, T) = 1 - P(alive) * P(a purchase | alive).

        Derivation. The individual likelihood splits into "alive at T",
        lambda^x exp(-(lambda + mu) T), and "died in (t_x, T]"; so given alive the posterior
        is proportional to lambda^(r+x-1) exp(-lambda (alpha+T)) mu^(s-1) exp(-mu (beta+T)):
        lambda ~ Gamma(r + x, alpha + T) and mu ~ Gamma(s, beta + T), independent. By
        memorylessness the remaining lifetime D ~ Exp(mu) and the first purchase time
        E ~ Exp(lambda); there is a purchase in the window iff E < min(D, t):
        P = int_0^t lambda exp(-(lambda + mu) u) du. Averaging under the posterior,
        E[lambda exp(-lambda u)] = (r+x)/(alpha+T) ((alpha+T)/(alpha+T+u))^(r+x+1) and
        E[exp(-mu u)] = ((beta+T)/(beta+T+u))^s, hence
        P(purchase | alive) = (r+x) (alpha+T)^(r+x) (beta+T)^s
                              * int_0^t (alpha+T+u)^-(r+x+1) (beta+T+u)^-s du,
        the same kind of integral as the likelihood's (a Gaussian hypergeometric one).
        A dead customer never buys, hence 1 - P(alive) + P(alive) (1 - P(purchase | alive)).
        """
        x, t_x, T = _as_float(x, t_x, T)
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        zero = np.zeros_like(T)
        log_integral = _log_power_integral(alpha + T, r + x + 1.0, beta + T, s + zero,
                                           zero, zero + t)
        log_buy = (np.log(r + x) + (r + x) * np.log(alpha + T) + s * np.log(beta + T)
                   + log_integral)
        return 1.0 - self.p_alive(x, t_x, T) * np.exp(np.minimum(log_buy, 0.0))

    def sample_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                         n_sims: int, rng: np.random.Generator) -> np.ndarray:
        """Draws of the purchases in (T, T + t], shape (customers, n_sims).

        Alive w.p. P(alive); given alive, lambda ~ Gamma(r + x, alpha + T) and
        mu ~ Gamma(s, beta + T) (see ``p_no_purchase``); the remaining lifetime is
        Exp(mu) (memoryless) and purchases are Poisson(lambda min(lifetime, t)).
        """
        x, t_x, T = _as_float(x, t_x, T)
        shape = (len(x), n_sims)
        alive = rng.random(shape) < self.p_alive(x, t_x, T)[:, None]
        lam = rng.gamma((self.r + x)[:, None], 1.0 / (self.alpha + T)[:, None], shape)
        mu = rng.gamma(self.s, 1.0 / (self.beta + T)[:, None], shape)
        with np.errstate(divide="ignore"):  # mu may underflow to 0: an endless life
            life = rng.exponential(1.0, shape) / mu
        return np.where(alive, rng.poisson(lam * np.minimum(life, t)), 0)


def _as_float(*arrays) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(v, dtype=float) for v in arrays)


def _pareto_log_terms(r: float, alpha: float, s: float, beta: float, x: np.ndarray,
                      t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two terms of the Pareto/NBD likelihood, less the common Gamma(r+x) a^r b^s / Gamma(r).

    alive at T: (alpha + T)^-(r+x) (beta + T)^-s;
    died at tau in (t_x, T]: s int_{t_x}^T (alpha + tau)^-(r+x) (beta + tau)^-(s+1) dtau
    (the FH 2005 note writes the integral with 2F1).
    """
    log_alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    log_dead = np.log(s) + _log_power_integral(alpha, r + x, beta, s + 1.0, t_x, T)
    return log_alive, log_dead


def _log_power_integral(A: np.ndarray, p: np.ndarray, B: np.ndarray, q: np.ndarray,
                        lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """log int_lo^hi (A + u)^-p (B + u)^-q du, elementwise, for A, B > 0, p + q > 1.

    As a difference of tails, tail(lo) - tail(hi), each tail a Gaussian hypergeometric
    function (``_log_tail``); the difference is taken in log space (log1p(-e^d)), so
    lo = hi gives -inf, not a NaN.
    """
    A, p, B, q, lo, hi = np.broadcast_arrays(*_as_float(A, p, B, q, lo, hi))
    # the integrand is symmetric in (A, p) <-> (B, q): put the larger offset first so
    # that the hypergeometric argument (A - B)/(A + u) lies in [0, 1)
    swap = A < B
    A, B = np.where(swap, B, A), np.where(swap, A, B)
    p, q = np.where(swap, q, p), np.where(swap, p, q)
    log_lo = _log_tail(A, p, B, q, lo)
    log_hi = np.where(np.isinf(hi), -np.inf, _log_tail(A, p, B, q, np.where(np.isinf(hi), lo, hi)))
    with np.errstate(divide="ignore"):
        out = log_lo + np.log(-np.expm1(np.minimum(log_hi - log_lo, 0.0)))
    # scipy's 2F1 overflows for a large first parameter with z near 1 (p ~ 200 with
    # B + u ~ 1e-3 (A + u)): integrate those few elements numerically instead
    for i in np.flatnonzero(~np.isfinite(out) & (hi > lo)):
        out.flat[i] = _log_power_integral_by_quadrature(
            A.flat[i], p.flat[i], B.flat[i], q.flat[i], lo.flat[i], hi.flat[i])
    return out


def _log_power_integral_by_quadrature(A: float, p: float, B: float, q: float, lo: float,
                                      hi: float) -> float:
    """``_log_power_integral`` for one element by adaptive quadrature.

    The integrand is scaled by its value at ``lo`` and the interval is cut at
    geometrically spaced points from ``lo``, where a steep integrand has its mass.
    """
    def scaled(u: float) -> float:
        return np.exp(-p * np.log1p((u - lo) / (A + lo)) - q * np.log1p((u - lo) / (B + lo)))

    width = min(hi - lo, 1e12 * (B + lo))  # past that the tail is below double precision
    cuts = np.geomspace(1e-6 * (B + lo), width, 40)
    edges = lo + np.concatenate([[0.0], cuts[cuts < width], [width]])
    total = sum(integrate.quad(scaled, e0, e1, epsabs=0.0, epsrel=1e-12, limit=200)[0]
                for e0, e1 in zip(edges[:-1], edges[1:], strict=True))
    out = np.log(total) - p * np.log(A + lo) - q * np.log(B + lo)
    if not np.isfinite(out):
        raise FloatingPointError(f"power integral not finite: A={A}, p={p}, B={B}, q={q}, "
                                 f"lo={lo}, hi={hi}")
    return float(out)


def _log_tail(A: np.ndarray, p: np.ndarray, B: np.ndarray, q: np.ndarray,
              u: np.ndarray) -> np.ndarray:
    """log int_u^inf (A + v)^-p (B + v)^-q dv for A >= B > 0 and p + q > 1.

    With z = (A - B)/(A + u) in [0, 1) the tail is
    (A + u)^(1-p-q) 2F1(p+q-1, q; p+q; z) / (p+q-1) (the form in the FH note), or, by
    Euler's transformation 2F1(a, b; c; z) = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z),
    (A + u)^-p (B + u)^(1-q) 2F1(1, p; p+q; z) / (p+q-1). The first series stays bounded
    as z -> 1 when q < 1 and the second when q > 1 (c - a - b = 1 - q resp. q - 1), so
    each element takes the bounded one: near z = 1 nothing large has to cancel.
    """
    z = (A - B) / (A + u)
    out = np.empty_like(z)
    f = q < 1.0
    if f.any():
        out[f] = ((1.0 - p[f] - q[f]) * np.log(A[f] + u[f])
                  + np.log(special.hyp2f1(p[f] + q[f] - 1.0, q[f], p[f] + q[f], z[f])))
    f = ~f
    if f.any():
        out[f] = (-p[f] * np.log(A[f] + u[f]) + (1.0 - q[f]) * np.log(B[f] + u[f])
                  + np.log(special.hyp2f1(1.0, p[f], p[f] + q[f], z[f])))
    return out - np.log(p + q - 1.0)


def pareto_nbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                              T: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Total Pareto/NBD log-likelihood (FH 2005 note) at ``(r, alpha, s, beta)``.

    ``weights`` counts customers sharing one (x, t_x, T) row (None: one each).
    """
    r, alpha, s, beta = params
    x, t_x, T = _as_float(x, t_x, T)
    head = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    log_alive, log_dead = _pareto_log_terms(r, alpha, s, beta, x, t_x, T)
    ll = head + np.logaddexp(log_alive, log_dead)
    return float(np.sum(ll if weights is None else weights * ll))


def fit_pareto_nbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> ParetoNbd:
    """Maximum-likelihood Pareto/NBD fit (log-parameterised so every parameter stays > 0)."""
    x, t_x, T = _as_float(x, t_x, T)
    _check_rft(x, t_x, T)
    scale = max(float(np.mean(T)), 1e-9)  # alpha and beta are in time units
    (r, alpha, s, beta), ll = _fit_log_params(pareto_nbd_log_likelihood, [1.0, scale, 1.0, scale],
                                              x, t_x, T)
    return ParetoNbd(r, alpha, s, beta, ll)


def _fit_log_params(log_likelihood, start: list[float], x: np.ndarray, t_x: np.ndarray,
                    T: np.ndarray) -> tuple[np.ndarray, float]:
    """Maximise ``log_likelihood(params, x, t_x, T, weights)`` over log(params).

    Customers with the same (x, t_x, T) share one likelihood term, so the sum runs over
    distinct rows weighted by their counts (integer-day data repeats rows a lot).
    A parameter set where the likelihood is not finite is rejected (loss = inf).
    """
    rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    xs, txs, Ts, w = rows[:, 0], rows[:, 1], rows[:, 2], counts.astype(float)

    def loss(theta: np.ndarray) -> float:
        try:
            with np.errstate(all="ignore"):
                value = -log_likelihood(np.exp(theta), xs, txs, Ts, w)
        except FloatingPointError:
            return np.inf
        return value if np.isfinite(value) else np.inf

    # quasi-Newton from the start needs ~100-150 likelihoods where the simplex takes
    # ~700-1,000 (the same optimum on CDNOW to 1e-8 in log-likelihood); the simplex
    # stays as the fallback when the line search gives up or lands on a non-finite point
    res = optimize.minimize(loss, np.log(start), method="L-BFGS-B",
                            options={"ftol": 1e-12, "gtol": 1e-6, "maxiter": 2_000})
    if not (res.success and np.isfinite(res.fun)):
        restart = res.x if np.isfinite(res.fun) else np.log(start)
        res = optimize.minimize(loss, restart, method="Nelder-Mead",
                                options={"xatol": 1e-7, "fatol": 1e-7, "maxiter": 20_000})
        res = optimize.minimize(loss, res.x, method="L-BFGS-B")
    return np.exp(res.x), -float(res.fun)


# --------------------------------------------------------------------------- MBG/NBD


@dataclass(frozen=True)
class MbgNbd:
    """Fitted MBG/NBD parameters and the log-likelihood at them.

    Batislam, Denizel & Filiztekin (2007), "Empirical validation and comparison of
    models for customer base analysis": BG/NBD, except that a customer may also drop
    out at time 0, right after the first purchase, so one with no repeat purchase is
    not certainly alive. Purchase rate lambda ~ Gamma(r, alpha), dropout probability
    p ~ Beta(a, b) at time 0 and after each purchase.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(alive at T | x, t_x, T) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))."""
        x, t_x, T = _as_float(x, t_x, T)
        return special.expit(-_mbg_log_dropout_odds(self, x, t_x, T))

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray,
                           T: np.ndarray) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (Batislam et al. 2007).

        Given alive, p ~ Beta(a, b + x + 1) and lambda ~ Gamma(r + x, alpha + T); the
        BG/NBD mean (1/p)(1 - exp(-lambda p t)) averaged over them gives
        (a+b+x)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; t/(alpha+T+t))].
        """
        x, t_x, T = _as_float(x, t_x, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp = special.hyp2f1(r + x, b + x + 1.0, a + b + x, t / (alpha + T + t))
        body = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
        return (a + b + x) / (a - 1.0) * body * self.p_alive(x, t_x, T)

    def p_no_purchase(self, t: float, x: np.ndarray, t_x: np.ndarray,
                      T: np.ndarray) -> np.ndarray:
        """P(no purchase in (T, T + t] | x, t_x, T), as for BG/NBD.

        Dropout happens only at a purchase, so a customer alive at T stays alive until
        the next one; with lambda ~ Gamma(r + x, alpha + T) given alive,
        P(none in t | alive) = ((alpha + T)/(alpha + T + t))^(r + x).
        """
        x, t_x, T = _as_float(x, t_x, T)
        alive = self.p_alive(x, t_x, T)
        quiet = ((self.alpha + T) / (self.alpha + T + t)) ** (self.r + x)
        return 1.0 - alive + alive * quiet

    def sample_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                         n_sims: int, rng: np.random.Generator) -> np.ndarray:
        """Draws of the purchases in (T, T + t], shape (customers, n_sims).

        As BG/NBD's, with p ~ Beta(a, b + x + 1) given alive (the alive term's
        (1-p)^(x+1): the customer also survived time 0).
        """
        x, t_x, T = _as_float(x, t_x, T)
        return _sample_bg_family(self.r, self.alpha, self.a, self.b + x + 1.0,
                                 self.p_alive(x, t_x, T), t, x, T, n_sims, rng)


def _mbg_log_dropout_odds(m: MbgNbd, x: np.ndarray, t_x: np.ndarray,
                          T: np.ndarray) -> np.ndarray:
    return (np.log(m.a) - np.log(m.b + x)
            + (m.r + x) * (np.log(m.alpha + T) - np.log(m.alpha + t_x)))


def mbgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                          T: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Total MBG/NBD log-likelihood at ``params = (r, alpha, a, b)``.

    Given (lambda, p): alive at T, (1-p)^(x+1) lambda^x e^(-lambda T), or dropped right
    after the purchase at t_x (at 0 when x = 0), p (1-p)^x lambda^x e^(-lambda t_x).
    Integrated over Gamma(r, alpha) and Beta(a, b):
    Gamma(r+x) alpha^r / Gamma(r) [B(a, b+x+1)/B(a, b) (alpha+T)^-(r+x)
                                   + B(a+1, b+x)/B(a, b) (alpha+t_x)^-(r+x)].
    ``weights`` counts customers sharing one (x, t_x, T) row (None: one each).
    """
    r, alpha, a, b = params
    x, t_x, T = _as_float(x, t_x, T)
    head = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) - special.betaln(a, b)
    alive = special.betaln(a, b + x + 1.0) - (r + x) * np.log(alpha + T)
    dropped = special.betaln(a + 1.0, b + x) - (r + x) * np.log(alpha + t_x)
    ll = head + np.logaddexp(alive, dropped)
    return float(np.sum(ll if weights is None else weights * ll))


def fit_mbgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> MbgNbd:
    """Maximum-likelihood MBG/NBD fit (log-parameterised so every parameter stays > 0)."""
    x, t_x, T = _as_float(x, t_x, T)
    _check_rft(x, t_x, T)
    scale = max(float(np.mean(T)), 1e-9)  # alpha is in time units
    (r, alpha, a, b), ll = _fit_log_params(mbgnbd_log_likelihood, [1.0, scale, 1.0, 1.0],
                                           x, t_x, T)
    return MbgNbd(r, alpha, a, b, ll)


# --------------------------------------------------------------------------- any family


class PurchaseModel(Protocol):
    """What BG/NBD, Pareto/NBD and MBG/NBD fits share: callers use any of them alike."""

    @property
    def log_likelihood(self) -> float: ...

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray: ...

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray,
                           T: np.ndarray) -> np.ndarray: ...

    def p_no_purchase(self, t: float, x: np.ndarray, t_x: np.ndarray,
                      T: np.ndarray) -> np.ndarray: ...

    def sample_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                         n_sims: int, rng: np.random.Generator) -> np.ndarray: ...


#: family name -> maximum-likelihood fitter on (x, t_x, T)
PURCHASE_FAMILIES = {"bgnbd": fit_bgnbd, "pareto_nbd": fit_pareto_nbd, "mbgnbd": fit_mbgnbd}
DEFAULT_FAMILY = "bgnbd"


def fit_purchase_model(family: str, x: np.ndarray, t_x: np.ndarray,
                       T: np.ndarray) -> PurchaseModel:
    """Fit the purchase model ``family`` (one of :data:`PURCHASE_FAMILIES`) on (x, t_x, T)."""
    if family not in PURCHASE_FAMILIES:
        raise ValueError(f"unknown BTYD purchase family {family!r}; "
                         f"expected one of {sorted(PURCHASE_FAMILIES)}")
    return PURCHASE_FAMILIES[family](x, t_x, T)


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


def _check_rft(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    if not (len(x) == len(t_x) == len(T)) or len(x) == 0:
        raise ValueError("x, t_x and T must be non-empty and of the same length")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9) or np.any((x > 0) & (t_x == 0)):
        raise ValueError("need x >= 0, 0 <= t_x <= T, and t_x > 0 when x > 0")


def predict_clv(bg: PurchaseModel, gg: GammaGamma, horizon: float, x: np.ndarray,
                t_x: np.ndarray, T: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Expected spend over the next ``horizon``: E[purchases] x E[spend per purchase]."""
    return bg.expected_purchases(horizon, x, t_x, T) * gg.expected_spend(x, m)


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
