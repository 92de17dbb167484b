"""MBG/NBD: Batislam, Denizel & Filiztekin (2007), "Empirical validation and
comparison of models for customer base analysis" — BG/NBD with dropout possible at
time 0."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from clv.models.btyd.bgnbd import _sample_bg_family
from clv.models.btyd.estimation import _as_float, _check_rft, _fit_log_params


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
