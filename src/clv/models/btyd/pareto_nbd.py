"""Pareto/NBD: Schmittlein, Morrison & Colombo (1987), in the notation of Fader &
Hardie (2005), "A note on deriving the Pareto/NBD model and related expressions";
the likelihood's integral is computed in log space (:func:`_log_power_integral`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate, special

from clv.models.btyd.estimation import _as_float, _check_rft, _fit_log_params


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
