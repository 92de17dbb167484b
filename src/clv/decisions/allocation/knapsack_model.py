"""A multiple-choice knapsack as arrays: items in groups, coupling rows, a feasibility repair.

The problem the solver (:mod:`clv.decisions.allocation.knapsack`) works on: items
with a cost and a value, each in one *group* of which at most one item is taken,
under a budget on the total cost, optional bounds on the share of the spend that
goes to a *share class* of items and optional counts per *capacity class*. Nothing
here knows what the items stand for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: Slack on the budget, in cost units: absorbs float rounding (0.1 + 0.2 > 0.3 in
#: binary) and nothing more; the same as decisioning's.
_BUDGET_SLACK = 1e-9
#: An LP value this close to 0 or 1 counts as integral.
_INTEGRAL_TOL = 1e-9
#: Share bounds per share class code: (min_share, max_share) of the total spent.
ShareCodes = dict[int, tuple[float, float]]
#: Capacities per capacity class code: most items of the class that may be taken.
CapacityCodes = dict[int, int]


@dataclass(frozen=True)
class Problem:
    """The items, as arrays, sorted by group (each group's items next to each other)."""

    group: np.ndarray  # 0..n_groups-1, contiguous runs
    starts: np.ndarray  # first position of each group's run
    cost: np.ndarray
    value: np.ndarray  # what taking the item is worth (may be <= 0)
    share_class: np.ndarray  # share class code per item (see ShareCodes)
    capacity_class: np.ndarray  # capacity class code per item (see CapacityCodes)

    @property
    def n(self) -> int:
        return len(self.cost)


@dataclass(frozen=True)
class Rows:
    """Coupling constraints ``a @ x <= b`` (budget first), all in <= form."""

    a: sp.csr_matrix
    b: np.ndarray


@dataclass(frozen=True)
class Duals:
    """A Lagrangian bound: ``bound = y.b + sum(y_group) + sum(max(d, 0))``.

    ``d`` is each variable's reduced value (net value minus its priced use of
    the constraints), ``y_group`` the price of each group's at-most-one row.
    The bound holds for any non-negative prices (weak duality), so imprecise
    duals only loosen it.
    """

    d: np.ndarray
    y_group: np.ndarray
    bound: float


def _share_rows(p: Problem, shares: ShareCodes) -> list[np.ndarray]:
    """Dense <= 0 rows: c * (min - [in s]) for a minimum, c * ([in s] - max) for a maximum."""
    rows = []
    for code, (low, high) in sorted(shares.items()):
        inside = (p.share_class == code).astype(float)
        if low > 0:
            rows.append(p.cost * (low - inside))
        if high < 1:
            rows.append(p.cost * (inside - high))
    return rows


def _sparse_rows(dense: list[np.ndarray], n: int) -> sp.csr_matrix:
    """The rows as CSR, built from their nonzeros. ``sp.csr_matrix`` of a dense array goes
    through COO over every entry: 0.4 s a call at 7.1M items, 13 calls in a plan."""
    columns = [np.flatnonzero(row) for row in dense]
    indptr = np.zeros(len(dense) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in columns], out=indptr[1:])
    index = np.int32 if n < np.iinfo(np.int32).max else np.int64
    return sp.csr_matrix((np.concatenate([row[c] for row, c in zip(dense, columns, strict=True)]
                                         ).astype(float),
                          np.concatenate(columns).astype(index), indptr.astype(index)),
                         shape=(len(dense), n))


def _coupling(p: Problem, budget: float, shares: ShareCodes, capacity: CapacityCodes) -> Rows:
    """Budget, share and capacity rows over the problem's variables."""
    dense = [p.cost] + _share_rows(p, shares)
    b = [budget] + [0.0] * (len(dense) - 1)
    for code, cap in sorted(capacity.items()):
        dense.append((p.capacity_class == code).astype(float))
        b.append(float(cap))
    return Rows(a=_sparse_rows(dense, p.n), b=np.asarray(b, dtype=float))


def _group_rows(p: Problem, groups: np.ndarray) -> sp.csr_matrix:
    """One row per listed group (sorted codes): the sum of their variables."""
    member = np.isin(p.group, groups)
    row = np.searchsorted(groups, p.group[member])
    return sp.csr_matrix((np.ones(int(member.sum())), (row, np.flatnonzero(member))),
                         shape=(len(groups), p.n))


def _row_excess(p: Problem, rows: Rows, chosen: np.ndarray) -> np.ndarray:
    """How far each coupling row is violated (<= 0: holds).

    The budget row (row 0) is summed exactly and gets only the budget slack;
    the other rows also get float noise relative to their magnitude.
    """
    x = chosen.astype(float)
    magnitude = abs(rows.a) @ x
    excess = rows.a @ x - rows.b - (_BUDGET_SLACK + 1e-12 * magnitude)
    excess[0] = math.fsum(p.cost[chosen]) - rows.b[0] - _BUDGET_SLACK
    return excess


def _repair(p: Problem, rows: Rows, chosen: np.ndarray) -> np.ndarray:
    """Drop chosen variables until every coupling row holds.

    For the most violated row, drop the variables using it with the least value
    per unit of use until the violation is gone; repeat. Ends: every row holds
    for the empty plan. Returns the repaired mask (a copy).
    """
    chosen = chosen.copy()
    for _ in range(10 * len(rows.b) + 10):
        excess = _row_excess(p, rows, chosen)
        r = int(np.argmax(excess))
        if excess[r] <= 0:
            return chosen
        use = rows.a[r].toarray().ravel()
        cand = np.flatnonzero(chosen & (use > 0))
        order = cand[np.argsort(p.value[cand] / use[cand], kind="stable")]
        cut = int(np.searchsorted(np.cumsum(use[order]), excess[r])) + 1
        chosen[order[:cut]] = False
    return np.zeros_like(chosen)

