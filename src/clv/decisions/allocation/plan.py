"""Budget allocation: at most one action per customer, lifetime value vs revenue.

:func:`allocate` picks at most one candidate (:mod:`clv.decisions.allocation.candidates`)
per customer to maximise the total net value at the weight ``clv_weight`` (the
public keyword is ``lam``), subject to

* total cost <= ``budget``;
* optional per-segment share bounds: for a segment with (min_share, max_share),
  ``min_share * spent <= spent on the segment <= max_share * spent`` where
  ``spent`` is the total actually spent (not the budget), so the empty plan is
  always feasible and a minimum share never forces the budget to be used up;
* optional per-action capacities: at most ``capacity[action]`` customers get it;
* the contact policy (:mod:`clv.decisions.contact_policy`): candidates whose ``eligible``
  column is False are never chosen, and with ``min_net_value`` only candidates
  whose net value reaches it are.

Customers are the knapsack's groups, segments its share classes and actions its
capacity classes; :mod:`clv.decisions.allocation.knapsack` solves it exactly
(``"milp"``, up to ``exact_max_candidates`` candidates considered) or by its
LP-rounding heuristic (``"greedy_lp"``; with side constraints about 2.5 minutes
for 1,000,000 customers, see bench/bench_allocation.py --constraints), both with
an upper bound from the LP relaxation and the certified gap.

Without share bounds only candidates with net_value > 0 are considered (others
can only lower the objective). With share bounds every candidate is: spending at
a loss in one segment can be what lets a profitable segment stay under its
maximum share. Everything is ordered by (customer_id, action) first, so the
result does not depend on the input's row order; the greedy breaks ties in
efficiency by customer_id, then action.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clv.decisions.allocation.candidates import ELIGIBLE_COLUMN, NO_ACTION, _Candidates, _prepare
from clv.decisions.allocation.knapsack import Problem, solve
from clv.decisions.allocation.knapsack_model import _BUDGET_SLACK, CapacityCodes, ShareCodes

#: Up to this many candidates considered (net value > 0; all with share bounds)
#: the exact path runs. Measured on 2 cores (bench/bench_allocation.py), budget
#: only, costs on a 0.50 grid: 30,000 considered -> proven optimal in 0.2 s,
#: 100,000 -> 1.6 s (DP core 13,000 customers x 12,000 budget units); beyond it
#: the core outgrows the DP and HiGHS runs into its time limit. With cent-level
#: costs or side constraints HiGHS solves the core and may stop at ``time_limit``
#: with the best plan found (never worse than the heuristic) and its gap.
DEFAULT_EXACT_MAX_CANDIDATES = 100_000
DEFAULT_TIME_LIMIT_S = 10.0
ShareBounds = Mapping[str, tuple[float | None, float | None]]


@dataclass(frozen=True)
class AllocationResult:
    """An allocation and how good it provably is.

    Attributes:
        plan: One row per customer in the candidates, sorted by customer_id:
            customer_id, segment, action (``"none"`` if not chosen), cost,
            incr_clv, incr_revenue, net_value (0 for none), the candidates' extra
            columns (empty for none), budget, clv_weight.
        objective: Total net value of the plan.
        lp_bound: Upper bound on any plan's objective (LP relaxation / its dual).
        gap: (lp_bound - objective) / lp_bound; 0 when lp_bound is 0.
        method: "milp" or "greedy_lp".
        optimal: True when the plan is proven optimal (the exact path finished).
        spent: Total cost of the plan (exactly summed).
        budget: The budget.
        clv_weight: The weight on incremental CLV (``lam`` of :func:`allocate`).
        detail: How it was solved (sizes, solver status), for the run log.
    """

    plan: pd.DataFrame
    objective: float
    lp_bound: float
    gap: float
    method: str
    optimal: bool
    spent: float
    budget: float
    clv_weight: float
    detail: str

    @property
    def lam(self) -> float:
        """The former name of :attr:`clv_weight`."""
        return self.clv_weight



def _problem(c: _Candidates, value: np.ndarray, rows: np.ndarray) -> Problem:
    """The knapsack over the candidates at ``rows`` (net ``value`` at this clv_weight):
    customers are its groups, segments its share classes, actions its capacity classes."""
    kept = c.customer[rows]
    new = np.r_[True, kept[1:] != kept[:-1]] if len(rows) else np.zeros(0, bool)
    return Problem(group=np.cumsum(new) - 1, starts=np.flatnonzero(new),
                   cost=c.numbers[rows, 0], value=value[rows],
                   share_class=c.segment[rows], capacity_class=c.action[rows])


def _constraint_codes(c: _Candidates, shares: ShareBounds | None,
                      capacity: Mapping[str, int] | None) -> tuple[ShareCodes, CapacityCodes]:
    """The constraints keyed by segment and action code."""
    seg_code = {s: i for i, s in enumerate(c.segments)}
    act_code = {a: i for i, a in enumerate(c.actions)}
    bounds: ShareCodes = {}
    for name, (low, high) in (shares or {}).items():
        low, high = 0.0 if low is None else float(low), 1.0 if high is None else float(high)
        if name not in seg_code or not 0 <= low <= high <= 1:
            raise ValueError(f"share bounds for {name!r}: need a known segment and "
                             f"0 <= min <= max <= 1, got ({low}, {high})")
        bounds[seg_code[name]] = (low, high)
    if sum(low for low, _ in bounds.values()) > 1:
        raise ValueError("minimum segment shares add up to more than 1")
    caps: CapacityCodes = {}
    for name, cap in (capacity or {}).items():
        if name not in act_code or int(cap) != cap or cap < 0:
            raise ValueError(f"capacity for {name!r}: need a known action and an integer >= 0")
        caps[act_code[name]] = int(cap)
    return bounds, caps



def _plan(c: _Candidates, value: np.ndarray, picked: np.ndarray, budget: float,
          clv_weight: float) -> pd.DataFrame:
    """One row per customer: its chosen candidate (``picked`` = frame rows) or none."""
    first = (np.flatnonzero(np.r_[True, c.customer[1:] != c.customer[:-1]])
             if len(c.customer) else np.zeros(0, dtype=int))
    plan = c.frame.iloc[first][["customer_id", "segment"]].reset_index(drop=True)
    everyone = np.arange(len(plan))
    owner = c.customer[picked]  # customer codes are 0..n-1 in plan order
    columns = {col: c.frame[col].to_numpy() for col in c.frame.columns
               if col not in ("customer_id", "segment", ELIGIBLE_COLUMN)}
    columns["net_value"] = value
    for column, data in columns.items():
        plan[column] = pd.Series(data[picked], index=owner).reindex(everyone).to_numpy()
    plan["action"] = plan["action"].fillna(NO_ACTION)
    # No action, no cost and no increment: every numeric column of an unchosen customer is 0.
    numeric = [c for c, data in columns.items() if np.issubdtype(np.asarray(data).dtype,
                                                                  np.number)]
    for column in numeric:
        plan[column] = plan[column].astype(float).fillna(0.0)
    plan["budget"] = float(budget)
    plan["clv_weight"] = float(clv_weight)
    return plan


@dataclass(frozen=True)
class _Solved:
    picked: np.ndarray  # rows of the prepared frame chosen
    value: np.ndarray  # net value of every row at this clv_weight
    objective: float
    lp_bound: float
    gap: float
    method: str
    optimal: bool
    spent: float
    detail: str


def _allocate(c: _Candidates, budget: float, clv_weight: float, shares: ShareCodes,
              caps: CapacityCodes, exact_max: int, time_limit: float,
              min_net_value: float | None = None, honour_eligibility: bool = True) -> _Solved:
    """Solve the knapsack of the candidates worth considering at ``clv_weight``."""
    value = c.net_value(clv_weight)
    # Non-positive candidates only matter when share bounds may need the spend.
    keep = np.ones(len(value), bool) if shares else value > 0
    if honour_eligibility and c.eligible is not None:
        keep &= c.eligible
    if min_net_value is not None:
        keep &= value >= min_net_value
    rows = np.flatnonzero(keep)
    solved = solve(_problem(c, value, rows), budget, shares, caps, exact_max, time_limit)
    picked, bound = rows[solved.chosen], solved.lp_bound
    spent = math.fsum(c.numbers[picked, 0])
    if spent > budget + _BUDGET_SLACK:  # every path guarantees this; a bug if not
        raise RuntimeError(f"allocation spent {spent} > budget {budget}")
    objective = math.fsum(value[picked])
    gap = max(bound - objective, 0.0) / bound if bound > 0 else 0.0
    return _Solved(picked, value, objective, bound, gap, solved.method, bool(solved.optimal),
                   spent, solved.detail)


def _check_threshold(min_net_value: float | None) -> float | None:
    if min_net_value is not None and not np.isfinite(min_net_value):
        raise ValueError(f"min_net_value must be finite (or None), got {min_net_value}")
    return None if min_net_value is None else float(min_net_value)


def _check_budget(budget: float) -> float:
    if not np.isfinite(budget) or budget < 0:
        raise ValueError(f"budget must be a finite number >= 0, got {budget}")
    return float(budget)


def prepared(candidates: pd.DataFrame | _Candidates) -> _Candidates:
    """``candidates`` checked and sorted for the solver; already prepared ones as they are:
    a caller solving the same candidates several times prepares them once (at 12.85M
    candidates each preparation factorises 12.85M customer ids)."""
    return candidates if isinstance(candidates, _Candidates) else _prepare(candidates)


def allocate(
    candidates: pd.DataFrame | _Candidates,
    budget: float,
    lam: float,
    segment_share_bounds: ShareBounds | None = None,
    action_capacity: Mapping[str, int] | None = None,
    exact_max_candidates: int = DEFAULT_EXACT_MAX_CANDIDATES,
    time_limit: float = DEFAULT_TIME_LIMIT_S,
    min_net_value: float | None = None,
    honour_eligibility: bool = True,
) -> AllocationResult:
    """Choose at most one action per customer to maximise the total net value.

    See the module docstring for the objective, constraints and methods.

    Args:
        candidates: ``CANDIDATE_COLUMNS`` (+ any extra columns, carried to the plan),
            or the same already :func:`prepared`.
        budget: Total cost allowed, >= 0.
        lam: The clv_weight: weight on incr_clv (1 - lam on incr_revenue), in [0, 1];
            the plan's and the result's ``clv_weight`` (the keyword keeps its old name).
        segment_share_bounds: segment -> (min_share, max_share) of the total spent;
            None for no bound on that side.
        action_capacity: action -> most customers that may get it.
        exact_max_candidates: Largest number of candidates considered for which
            the exact path runs; above it the greedy/LP plan is returned.
        time_limit: Seconds HiGHS may spend on one MILP; past it the best plan
            found is returned with ``optimal=False``.
        min_net_value: Take a candidate only when its net value at ``lam`` is at
            least this (None: no threshold).
        honour_eligibility: Leave out candidates whose ``eligible`` column (the
            contact policy, :mod:`clv.decisions.contact_policy`) is False; False solves as if
            there were no policy (what the policy costs is the difference).

    Returns:
        The plan with its objective, LP bound and gap.
    """
    budget = _check_budget(budget)
    if not 0 <= lam <= 1:
        raise ValueError(f"lam (clv_weight) must lie in [0, 1], got {lam}")
    clv_weight = float(lam)
    c = prepared(candidates)
    shares, caps = _constraint_codes(c, segment_share_bounds, action_capacity)
    r = _allocate(c, budget, clv_weight, shares, caps, exact_max_candidates, time_limit,
                  _check_threshold(min_net_value), honour_eligibility)
    return AllocationResult(
        plan=_plan(c, r.value, r.picked, budget, clv_weight), objective=r.objective,
        lp_bound=r.lp_bound, gap=r.gap, method=r.method, optimal=r.optimal, spent=r.spent,
        budget=budget, clv_weight=clv_weight, detail=r.detail)

