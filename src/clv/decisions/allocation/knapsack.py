"""Multiple-choice knapsack solver: at most one item per group, under a budget and side rows.

Maximises the total value of the items taken, at most one per group, subject to
the total cost <= budget, optional share bounds (the cost spent on a share class
lies between min_share and max_share of the total spent) and optional capacities
(at most so many items of a capacity class). Every solution carries an upper
bound from the LP relaxation (:mod:`clv.decisions.allocation.knapsack_relaxation`).

Two methods:

* ``"milp"`` (up to ``exact_max_items`` items): exact. A fast heuristic plan
  gives an incumbent value L; the LP duals give every option of a group a
  *penalty* (how far choosing it pulls the Lagrangian bound U down). An option
  whose penalty exceeds U - L cannot be part of any plan worth at least L, so
  groups left with a single option are fixed and only the remaining *core* is
  solved: by dynamic programming over the budget when the only constraint is the
  budget and the costs lie on a grid (0.50, 5.00, 8.00 share 0.50) small enough,
  otherwise by HiGHS (``scipy.optimize.milp``) within ``time_limit``. Why not
  HiGHS on everything: a knapsack whose items have near-equal value per cost is
  its worst case; on 20,000 groups x 3 items its presolve alone ran past 30 s,
  and even a core of 443 such items was not proven optimal in 10 s, where the DP
  takes milliseconds. If HiGHS stops at its time limit the result is the better
  of its plan and the heuristic's, with ``optimal=False``.
* ``"greedy_lp"``: the heuristic plan itself (hull method rounded down and
  filled greedily without side rows, HiGHS LP rounded with a small MILP with
  them).

Share bounds and capacities hold to HiGHS's feasibility tolerance (about 1e-6);
the budget is never exceeded by more than 1e-9 (checked on an exact sum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clv.decisions.allocation.knapsack_model import (
    _BUDGET_SLACK,
    CapacityCodes,
    Duals,
    Problem,
    Rows,
    ShareCodes,
    _coupling,
    _repair,
)
from clv.decisions.allocation.knapsack_relaxation import (
    _greedy_from_steps,
    _highs_lp,
    _hull_duals,
    _hull_steps,
    _lp_rounding,
    _sub_milp,
)

__all__ = ["Problem", "Solution", "solve"]

#: Largest dynamic-programming table (core groups x budget units): one byte of
#: choice per cell, so at most about 400 MB.
_DP_MAX_CELLS = 400_000_000


@dataclass(frozen=True)
class Solution:
    """What :func:`solve` found.

    Attributes:
        chosen: Mask over the problem's items: True = taken.
        lp_bound: Upper bound on any feasible plan's value (LP relaxation / its dual).
        method: "milp" or "greedy_lp".
        optimal: True when the plan is proven optimal.
        detail: How it was solved (sizes, solver status), for a log.
    """

    chosen: np.ndarray
    lp_bound: float
    method: str
    optimal: bool
    detail: str


# --------------------------------------------------------------------------- exact path


def _cost_unit(cost: np.ndarray) -> float | None:
    """The largest u with every cost an integer multiple of it (u = g / 10^k, k <= 4).

    Money has a smallest unit; when the costs share a coarser one (0.50, 5, 8
    share 0.50) the dynamic programme below is that much smaller. None if the
    costs are not on a decimal grid.
    """
    for k in range(5):
        scaled = cost * 10.0**k
        whole = np.round(scaled)
        if np.all(np.abs(scaled - whole) <= 1e-9 * np.maximum(1.0, scaled)) and whole.max() < 2**53:
            return float(np.gcd.reduce(whole.astype(np.int64))) / 10.0**k
    return None


def _dp_tables(options: list[np.ndarray], weight: np.ndarray, value: np.ndarray,
               capacity: int, none_ok: np.ndarray) -> tuple[float, np.ndarray]:
    """Multiple-choice knapsack by dynamic programming over integer weights.

    best[s] is the most value with total weight <= s; each group
    takes one of its options, or none where ``none_ok``. Ties keep the earlier
    choice (none, then the options in order), so the result is deterministic.
    Returns (optimum, choice table: 0 = none, j = options[g][j - 1]).
    """
    best = np.zeros(capacity + 1)
    choice = np.zeros((len(options), capacity + 1), dtype=np.uint8)
    for g, opts in enumerate(options):
        new = best.copy() if none_ok[g] else np.full(capacity + 1, -np.inf)
        for j, var in enumerate(opts, start=1):
            if weight[var] > capacity:
                continue
            shifted = np.full(capacity + 1, -np.inf)
            shifted[weight[var]:] = best[:capacity + 1 - weight[var]] + value[var]
            better = shifted > new
            new[better] = shifted[better]
            choice[g, better] = j
        best = new
    return float(best[capacity]), choice


def _dp_core(p: Problem, rows: Rows, fixed: np.ndarray, core: np.ndarray,
             must_choose: np.ndarray, max_cells: int) -> np.ndarray | None:
    """Exact plan for the core of a budget-only problem, or None if too big.

    Applies when the costs lie on a grid (``_cost_unit``) and groups x
    (budget / unit) stays under ``max_cells``; then it is exact and fast where
    HiGHS's branch and bound on the same knapsack can run for minutes.
    """
    idx = np.flatnonzero(core)
    unit = _cost_unit(p.cost[idx])
    rest = rows.b[0] - math.fsum(p.cost[fixed])
    if unit is None or rest < 0:
        return None
    capacity = int(math.floor((rest + _BUDGET_SLACK) / unit + 1e-9))
    groups, first = np.unique(p.group[idx], return_index=True)
    if len(groups) * (capacity + 1) > max_cells:
        return None
    weight = np.zeros(p.n, dtype=np.int64)
    weight[idx] = np.round(p.cost[idx] / unit).astype(np.int64)
    options = np.split(idx, first[1:])
    optimum, choice = _dp_tables(options, weight, p.value, capacity, ~must_choose[groups])
    if not np.isfinite(optimum):  # a must-choose group fits nowhere: leave it to HiGHS
        return None
    chosen, s = fixed.copy(), capacity
    for g in range(len(options) - 1, -1, -1):
        j = int(choice[g, s])
        if j:
            chosen[options[g][j - 1]] = True
            s -= int(weight[options[g][j - 1]])
    return chosen


def _fixable(p: Problem, duals: Duals, incumbent: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Options that can still be in a plan worth at least the incumbent's value.

    For any feasible plan, value <= bound - sum over groups of the penalty of
    the option it takes: ``pos - d_j`` for variable j, ``pos + y_group`` for
    taking nothing, where ``pos`` is the group's sum of max(d, 0). Options with a
    penalty above bound - incumbent are excluded; the incumbent's own options
    are always kept (they satisfy the test up to rounding).

    Returns:
        (kept variables mask, per group: whether "take nothing" is kept).
    """
    pos = np.add.reduceat(np.maximum(duals.d, 0.0), p.starts)
    slack = duals.bound - math.fsum(p.value[incumbent])
    slack += 1e-9 * max(1.0, abs(duals.bound))
    keep_var = (pos[p.group] - duals.d <= slack) | incumbent
    has_incumbent = np.add.reduceat(incumbent.astype(np.int64), p.starts) > 0
    keep_none = (pos + duals.y_group <= slack) | ~has_incumbent
    return keep_var, keep_none


def _exact(p: Problem, rows: Rows, duals: Duals, incumbent: np.ndarray,
           time_limit: float) -> tuple[np.ndarray, bool, str]:
    """Optimal plan: fix what the duals rule out, HiGHS MILP on the core.

    Returns (chosen mask, proven optimal, detail). If HiGHS stops early, the
    better of its plan and the incumbent is returned, not proven optimal.
    """
    keep_var, keep_none = _fixable(p, duals, incumbent)
    options = np.add.reduceat(keep_var.astype(np.int64), p.starts) + keep_none
    in_core = (options >= 2)[p.group]
    fixed, core = keep_var & ~in_core, keep_var & in_core
    detail = f"core of {int(core.sum()):,} of {p.n:,} items after reduced-cost fixing"
    if not core.any():
        return fixed, True, detail + "; nothing left to branch on"
    if rows.a.shape[0] == 1:  # budget only: a knapsack, try the exact DP first
        chosen = _dp_core(p, rows, fixed, core, ~keep_none, _DP_MAX_CELLS)
        if chosen is not None:
            return chosen, True, detail + "; core solved by dynamic programming"
    chosen, optimal, message = _sub_milp(p, rows, fixed, core, ~keep_none, time_limit)
    detail += f"; HiGHS: {message}"
    if chosen is None or math.fsum(p.value[chosen]) < math.fsum(p.value[incumbent]):
        return incumbent, False, detail + "; kept the heuristic plan"
    return chosen, optimal, detail


# --------------------------------------------------------------------------- solve


def _heuristic(p: Problem, rows: Rows, budget: float, constrained: bool,
               time_limit: float) -> tuple[np.ndarray, Duals, str]:
    """A feasible plan and LP duals: hull method when plain, HiGHS LP otherwise."""
    if not constrained:
        steps = _hull_steps(p)
        plan = _repair(p, rows, _greedy_from_steps(p, steps, budget))
        return plan, _hull_duals(p, steps, budget), "convex-hull LP, rounded down, greedy fill"
    x, duals = _highs_lp(p, rows)
    return _lp_rounding(p, rows, x, time_limit), duals, "HiGHS LP, fractional groups by MILP"


def solve(p: Problem, budget: float, shares: ShareCodes, capacity: CapacityCodes,
          exact_max_items: int, time_limit: float) -> Solution:
    """Take at most one item per group to maximise the total value.

    Args:
        p: The items (value may be <= 0: such items only help meet a minimum share).
        budget: Most total cost, >= 0.
        shares: Share class code -> (min_share, max_share) of the total spent.
        capacity: Capacity class code -> most items of the class taken.
        exact_max_items: Largest ``p.n`` for which the exact path runs; above it
            the heuristic plan is returned.
        time_limit: Seconds HiGHS may spend on one MILP.

    Returns:
        The items taken, the LP bound, the method and whether proven optimal.
    """
    method = "milp" if p.n <= exact_max_items else "greedy_lp"
    if p.n == 0:
        return Solution(np.zeros(0, dtype=bool), 0.0, method, True, "no item worth considering")
    rows = _coupling(p, budget, shares, capacity)
    incumbent, duals, detail = _heuristic(p, rows, budget, bool(shares or capacity),
                                          time_limit)
    if method == "milp":
        chosen, optimal, how = _exact(p, rows, duals, incumbent, time_limit)
        return Solution(chosen, duals.bound, method, optimal, f"{how} (incumbent: {detail})")
    value = math.fsum(p.value[incumbent])
    optimal = duals.bound - value <= 1e-9 * max(1.0, abs(duals.bound))
    return Solution(incumbent, duals.bound, method, optimal, f"{detail}; {p.n:,} items")
