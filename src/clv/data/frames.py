"""Joins, sorts and columns of one-row-per-customer pandas frames.

The per-customer tables of a run (scores, segments, clusters) are written and read
sorted by ``customer_id``: joining two of them is then a column copy, not a hash join.
At 2.57M customers a ``merge(..., validate="one_to_one")`` on the string ids spent
~20 s factorising them and checking uniqueness (py-spy of the 10M-order segment task).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def _strictly_increasing(keys: np.ndarray) -> bool:
    """True when ``keys`` ascend with no repeat (so each is unique)."""
    if len(keys) < 2:
        return True
    try:
        return bool(np.all(keys[1:] > keys[:-1]))
    except TypeError:  # mixed or unorderable ids (e.g. None): not this fast case
        return False


def join_one_to_one(left: pd.DataFrame, right: pd.DataFrame, on: str = "customer_id",
                    how: str = "inner") -> pd.DataFrame:
    """``left.merge(right, on=on, how=how, validate="one_to_one")``, the same result.

    When both frames hold the same keys, in the same strictly ascending order, the
    columns of ``right`` are copied beside ``left``'s (O(n) comparisons, no hashing);
    otherwise (other keys, another order, a duplicate, or a column both hold besides
    ``on``) pandas' merge does it, with its checks and errors.
    """
    lk, rk = left[on].to_numpy(), right[on].to_numpy()
    shared = (set(left.columns) & set(right.columns)) - {on}
    if (shared or len(lk) != len(rk) or lk.dtype != rk.dtype
            or not np.array_equal(lk, rk) or not _strictly_increasing(lk)):
        return left.merge(right, on=on, how=how, validate="one_to_one")
    import pandas as pd

    return pd.concat([left.reset_index(drop=True),
                      right.drop(columns=on).reset_index(drop=True)], axis=1)


def by_customer(frame: pd.DataFrame, on: str = "customer_id") -> pd.DataFrame:
    """``frame`` sorted by ``on`` (stable), index 0..n-1; no sort when the rows already
    ascend, as the warehouse's per-customer tables hold them (a stable sort of 2.57M
    string ids costs seconds and a copy)."""
    if frame[on].is_monotonic_increasing:
        return frame.reset_index(drop=True)
    return frame.sort_values(on, kind="mergesort").reset_index(drop=True)


def repeated(value: object, n: int) -> np.ndarray:
    """An object array of ``n`` references to ``value``.

    ``np.full(n, "prior", dtype=object)`` makes a new string per element: 177 MiB
    instead of 20 MiB for 2.57M customers, and the effects of 6 actions held 2 GiB
    of copies of two words at 10M orders.
    """
    out = np.empty(n, dtype=object)
    out[:] = value
    return out
