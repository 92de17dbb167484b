"""LP relaxations of the multiple-choice knapsack, their duals and the plans rounded from them.

Without side constraints the LP relaxation is a multiple-choice knapsack, solved
exactly in O(n log n) by the convex-hull / incremental-efficiency method (Sinha &
Zoltners 1979); rounding down its one fractional group and filling the leftover
budget greedily is feasible and within one item's value of the bound. With side
constraints the LP is solved by HiGHS (interior point + crossover); groups it
leaves fractional (few in a vertex solution) are solved by a small MILP after a
repair of any share row the rounding broke.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from clv.decisions.allocation.knapsack_model import (
    _BUDGET_SLACK,
    _INTEGRAL_TOL,
    Duals,
    Problem,
    Rows,
    _group_rows,
    _repair,
)

# --------------------------------------------------------------------------- hull LP


@dataclass(frozen=True)
class _Steps:
    """Convex-hull upgrades of every group, in global efficiency order.

    Step k of a group moves it from hull point k to k + 1 (point 0 = nothing taken)
    at cost ``dcost`` for value ``dvalue``; along one group's hull the
    efficiency dvalue / dcost decreases, so this order respects each group's
    step order (ties are ordered by group, then step).
    """

    var: np.ndarray
    group: np.ndarray
    k: np.ndarray
    dcost: np.ndarray
    dvalue: np.ndarray


def _hull_steps(p: Problem) -> _Steps:
    """Every group's upper convex hull of (cost, value), as sorted upgrade steps.

    Round k moves every group that still has an upgrade from its hull point k to the
    steepest upgrade (ties in slope go to the cheaper option, a finer step being easier
    to round, then to the lower position). An item that costs no more, or is worth no
    more, than its group's current point never becomes an upgrade again (both only
    grow): each round keeps only the items still ahead of their group, so after the
    first round it touches a fraction of the items (at 2.57M customers, the frontier's
    13 solves spent 15.9 s here when every round scanned all 7.1M items).
    """
    n_groups = len(p.starts)
    cur_cost, cur_value = np.zeros(n_groups), np.zeros(n_groups)
    parts: list[tuple[np.ndarray, ...]] = []
    # positions still ahead of their group's point, in group order (int32: the frontier
    # holds these arrays for 7.1M items at 10M orders, where allocate's peak is)
    index = np.int32 if p.n < 2**31 else np.int64
    live = np.flatnonzero((p.cost > 0) & (p.value > 0)).astype(index)  # ahead of (0, 0)
    k = 0
    while len(live):
        g = p.group[live]
        slope = (p.value[live] - cur_value[g]) / (p.cost[live] - cur_cost[g])
        first = np.r_[True, g[1:] != g[:-1]]
        starts, run = np.flatnonzero(first), np.cumsum(first, dtype=index) - 1
        del first
        tie = slope == np.maximum.reduceat(slope, starts)[run]
        del slope
        cost = p.cost[live]
        cheapest = np.minimum.reduceat(np.where(tie, cost, np.inf), starts)[run]
        pick = np.flatnonzero(tie & (cost == cheapest))
        del tie, cheapest, run, starts, cost
        pick = pick[np.r_[True, g[pick][1:] != g[pick][:-1]]]  # the lowest position
        var, c = live[pick].astype(np.int64), g[pick]
        parts.append((var, c, np.full(len(var), k),
                      p.cost[var] - cur_cost[c], p.value[var] - cur_value[c]))
        cur_cost[c], cur_value[c] = p.cost[var], p.value[var]
        live = live[(p.cost[live] > cur_cost[g]) & (p.value[live] > cur_value[g])]
        k += 1
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return _Steps(empty, empty, empty, np.zeros(0), np.zeros(0))
    var, group, k, dcost, dvalue = (np.concatenate(col) for col in zip(*parts, strict=True))
    order = np.lexsort((k, group, -(dvalue / dcost)))
    return _Steps(var[order], group[order], k[order], dcost[order], dvalue[order])


def _hull_duals(p: Problem, steps: _Steps, budget: float) -> Duals:
    """Exact LP dual of the plain problem: budget price = the critical efficiency.

    The LP takes steps in efficiency order until the budget runs out (the last
    one fractionally); with the budget priced at that step's efficiency mu,
    each group's price is max(0, max_j value_j - mu * cost_j) and the
    Lagrangian mu * budget + sum of prices equals the LP optimum.
    """
    cumulative = np.cumsum(steps.dcost)
    critical = int(np.searchsorted(cumulative, budget + _BUDGET_SLACK, side="right"))
    mu = 0.0
    if critical < len(steps.var):
        mu = float(steps.dvalue[critical] / steps.dcost[critical])
    reduced = p.value - mu * p.cost
    price = np.maximum(np.maximum.reduceat(reduced, p.starts), 0.0)
    bound = mu * budget + math.fsum(price)
    return Duals(d=reduced - price[p.group], y_group=price, bound=bound)


def _greedy_from_steps(p: Problem, steps: _Steps, budget: float) -> np.ndarray:
    """Round the hull LP down and fill the leftover budget greedily.

    Steps are taken in efficiency order while they fit; after the first that
    does not, later steps are still taken if they fit and follow the group's
    previous step. Returns the chosen variable mask.
    """
    cumulative = np.cumsum(steps.dcost)
    taken = int(np.searchsorted(cumulative, budget + _BUDGET_SLACK, side="right"))
    # cumsum drifts on long sums: trust only an exact sum of what is taken.
    while taken and math.fsum(steps.dcost[:taken]) > budget + _BUDGET_SLACK:
        taken -= 1
    level = np.bincount(steps.group[:taken], minlength=len(p.starts))
    left = budget + _BUDGET_SLACK - math.fsum(steps.dcost[:taken])
    extra = []
    for i in taken + np.flatnonzero(steps.dcost[taken:] <= left):
        if steps.dcost[i] <= left and level[steps.group[i]] == steps.k[i]:
            extra.append(i)
            left -= steps.dcost[i]
            level[steps.group[i]] += 1
    picked = np.r_[np.arange(taken), np.asarray(extra, dtype=np.int64)]
    # each group ends on its highest step taken
    chosen = np.zeros(p.n, dtype=bool)
    final = picked[steps.k[picked] == level[steps.group[picked]] - 1]
    chosen[steps.var[final]] = True
    return chosen


# --------------------------------------------------------------------------- constrained LP


def _highs_lp(p: Problem, rows: Rows) -> tuple[np.ndarray, Duals]:
    """LP relaxation with every constraint, by HiGHS; its solution and duals."""
    n_groups = len(p.starts)
    multi = np.flatnonzero(np.diff(np.r_[p.starts, p.n]) > 1)
    a = sp.vstack([rows.a, _group_rows(p, multi)], format="csr")
    b = np.r_[rows.b, np.ones(len(multi))]
    # Interior point + crossover (a vertex, so few fractional groups): 6x
    # faster than dual simplex here (20 s vs 112 s on 600,000 items), the
    # dense share rows being what slows the simplex down.
    res = linprog(-p.value, A_ub=a, b_ub=b, bounds=(0, 1), method="highs-ipm")
    if res.status != 0:
        raise RuntimeError(f"HiGHS could not solve the LP relaxation: {res.message}")
    # linprog minimises -value: marginals are <= 0; clipping keeps weak duality valid.
    y = np.maximum(-res.ineqlin.marginals, 0.0)
    m = len(rows.b)
    y_group = np.zeros(n_groups)
    y_group[multi] = y[m:]
    d = p.value - rows.a.T @ y[:m] - y_group[p.group]
    bound = float(y[:m] @ rows.b) + math.fsum(y_group) + math.fsum(np.maximum(d, 0.0))
    return res.x, Duals(d=d, y_group=y_group, bound=bound)


def _solve_milp(value: np.ndarray, a: sp.csr_matrix, lo: np.ndarray, hi: np.ndarray,
                x_min: np.ndarray, time_limit: float) -> tuple[np.ndarray | None, bool, str]:
    """HiGHS MILP over binaries (lower bounds ``x_min``); row 0 is the budget.

    HiGHS accepts a row violated by up to its feasibility tolerance (~1e-7); if
    the budget row is, it is tightened by the excess and the model re-solved.
    Presolve is off: on these knapsack cores it cost 7x the whole solve.
    """
    hi = hi.copy()
    budget_use = a[0].toarray().ravel()
    for _ in range(3):
        res = milp(-value, constraints=LinearConstraint(a, lo, hi),
                   integrality=np.ones(len(value)), bounds=Bounds(x_min, 1),
                   options={"time_limit": time_limit, "mip_rel_gap": 0.0, "presolve": False})
        if res.x is None:
            return None, False, res.message
        x = res.x > 0.5
        excess = math.fsum(budget_use[x]) - hi[0]
        if excess <= _BUDGET_SLACK:
            return x, res.status == 0, res.message
        hi[0] -= excess + _BUDGET_SLACK
    return None, False, "budget row still exceeded after tightening"


def _sub_milp(p: Problem, rows: Rows, fixed: np.ndarray, free: np.ndarray,
              must_choose: np.ndarray, time_limit: float
              ) -> tuple[np.ndarray | None, bool, str]:
    """MILP over the ``free`` variables with the ``fixed`` ones taken.

    ``must_choose`` (per group) turns a free group's <= 1 row into = 1.
    Returns the full chosen mask (fixed + solved), or None when unsolved.
    """
    idx = np.flatnonzero(free)
    groups, count = np.unique(p.group[idx], return_counts=True)
    # A group with one free variable needs no row: its bounds say it all.
    multi = groups[count > 1]
    a = sp.vstack([rows.a[:, idx], _group_rows(p, multi)[:, idx]], format="csr")
    rest = rows.b - rows.a @ fixed.astype(float)
    lo = np.r_[np.full(len(rows.b), -np.inf), must_choose[multi].astype(float)]
    hi = np.r_[rest, np.ones(len(multi))]
    single = np.isin(p.group[idx], groups[count == 1])
    x_min = (single & must_choose[p.group[idx]]).astype(float)
    x, optimal, message = _solve_milp(p.value[idx], a, lo, hi, x_min, time_limit)
    if x is None:
        return None, False, message
    chosen = fixed.copy()
    chosen[idx[x]] = True
    return chosen, optimal, message


def _lp_rounding(p: Problem, rows: Rows, x: np.ndarray, time_limit: float) -> np.ndarray:
    """Feasible plan from the LP: keep integral groups, solve the rest exactly.

    Groups the LP leaves fractional (at most about two per coupling row in a
    vertex solution), and any the share repair had to drop, are re-solved by a
    small MILP with the others fixed; if that fails they get nothing.
    """
    frac = (x > _INTEGRAL_TOL) & (x < 1 - _INTEGRAL_TOL)
    loose = np.zeros(len(p.starts), dtype=bool)
    loose[p.group[frac]] = True
    integral = (x >= 1 - _INTEGRAL_TOL) & ~loose[p.group]
    kept = _repair(p, rows, integral)
    loose[p.group[integral & ~kept]] = True
    if not loose.any():
        return kept
    solved, _, _ = _sub_milp(p, rows, kept, loose[p.group], np.zeros_like(loose), time_limit)
    return kept if solved is None else solved

