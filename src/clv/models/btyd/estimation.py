"""What every BTYD fit shares: float inputs, the (x, t_x, T) checks, and the
maximum-likelihood search over log-parameters (so every parameter stays > 0)."""

from __future__ import annotations

import numpy as np
from scipy import optimize


def _as_float(*arrays) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(v, dtype=float) for v in arrays)


def _check_rft(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    if not (len(x) == len(t_x) == len(T)) or len(x) == 0:
        raise ValueError("x, t_x and T must be non-empty and of the same length")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9) or np.any((x > 0) & (t_x == 0)):
        raise ValueError("need x >= 0, 0 <= t_x <= T, and t_x > 0 when x > 0")


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
