"""Counter-based random numbers: each (seed, stream, customer, k) gives one fixed number.

So synthetic data, holdout draws and trims depend on the seed and the inputs only, never on
partitioning, batch sizes or the order rows are processed in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (a bijection of uint64 with good avalanche)."""
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return z ^ (z >> np.uint64(31))


def uniforms(seed: int, stream: int, customer: np.ndarray, k: np.ndarray | int = 0) -> np.ndarray:
    """Uniform(0, 1) numbers (never 0 or 1) that depend only on their arguments.

    ``customer`` and ``k`` broadcast; each (seed, stream, customer, k) gives one
    fixed number, so any subset of customers can be generated in any order.
    """
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * _GOLDEN + np.uint64(stream))
        h = _mix(h ^ (np.asarray(customer).astype(np.uint64) * _GOLDEN))
        h = _mix(h ^ (np.asarray(k).astype(np.uint64) + np.uint64(0x632BE59BD9B4E019)))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


def customer_keys(customer_id: pd.Series | np.ndarray) -> np.ndarray:
    """A stable uint64 per customer id (SipHash of the text, fixed key): the counter
    for :func:`uniforms`, so draws depend on the id, never on row order."""
    ids = pd.Series(np.asarray(customer_id)).astype(str)
    return pd.util.hash_pandas_object(ids, index=False).to_numpy(np.uint64)
