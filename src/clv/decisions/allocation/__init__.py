"""Marketing budget allocation: at most one action per customer, lifetime value vs revenue.

A *candidate* is one (customer, action) pair with a cost and two expected
increments: ``incr_clv`` (lifetime value over the horizon) and ``incr_revenue``
(short-term revenue, 30 days). For a weight ``lam`` in [0, 1] its net value is::

    net_value = lam * incr_clv + (1 - lam) * incr_revenue - cost

:func:`allocate` picks at most one candidate per customer to maximise the total
net value subject to

* total cost <= ``budget``;
* optional per-segment share bounds: for a segment with (min_share, max_share),
  ``min_share * spent <= spent on the segment <= max_share * spent`` where
  ``spent`` is the total actually spent (not the budget), so the empty plan is
  always feasible and a minimum share never forces the budget to be used up;
* optional per-action capacities: at most ``capacity[action]`` customers get it;
* the contact policy (:mod:`clv.decisions.contact_policy`): candidates whose ``eligible``
  column is False are never chosen, and with ``min_net_value`` only candidates
  whose net value reaches it are.

Two solvers, both reporting an upper bound from the LP relaxation:

* ``"milp"`` (up to ``exact_max_candidates`` candidates considered): exact. A
  fast heuristic plan (below) gives an incumbent value L; the LP duals give
  every option of a customer a *penalty* (how far choosing it pulls the
  Lagrangian bound U down). An option whose penalty exceeds U - L cannot be
  part of any plan worth at least L, so customers left with a single option are
  fixed and only the remaining *core* is solved: by dynamic programming over
  the budget when the only constraint is the budget and the costs lie on a grid
  (0.50, 5.00, 8.00 share 0.50) small enough, otherwise by HiGHS
  (``scipy.optimize.milp``) within ``time_limit``. Why not HiGHS on everything:
  a knapsack whose items have near-equal value per cost is its worst case; on
  20,000 customers x 3 actions its presolve alone ran past 30 s, and even a
  core of 443 such items was not proven optimal in 10 s, where the DP takes
  milliseconds. If HiGHS stops at its time limit the result is the better of
  its plan and the heuristic's, with ``optimal=False`` and the certified gap.
* ``"greedy_lp"``: the heuristic plan itself. Without side constraints the LP
  relaxation is a multiple-choice knapsack, solved exactly in O(n log n) by the
  convex-hull / incremental-efficiency method (Sinha & Zoltners 1979); rounding
  down its one fractional customer and filling the leftover budget greedily is
  feasible and within one candidate's value of the bound. With side constraints
  the LP is solved by HiGHS (interior point + crossover); customers it leaves
  fractional (few in a vertex solution) are solved by a small MILP after a
  repair of any share row the rounding broke. That path is slower (1,000,000
  customers: about 2.5 minutes, see bench/bench_allocation.py --constraints).

Share bounds and capacities hold to HiGHS's feasibility tolerance (about 1e-6);
the budget is never exceeded by more than 1e-9 (checked on an exact sum).

Without share bounds only candidates with net_value > 0 are considered (others
can only lower the objective). With share bounds every candidate is: spending at
a loss in one segment can be what lets a profitable segment stay under its
maximum share. Everything is ordered by (customer_id, action) first, so the
result does not depend on the input's row order; the greedy breaks ties in
efficiency by customer_id, then action.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from clv.decisions.segments import select_customer_columns

__all__ = [
    "CANDIDATE_COLUMNS",
    "DEFAULT_LAMBDAS",
    "DEFAULT_EXACT_MAX_CANDIDATES",
    "NO_ACTION",
    "AllocationResult",
    "allocate",
    "budget_summary",
    "build_candidates",
    "frontier",
    "plot_frontier",
    "value_if_retained",
]

CANDIDATE_COLUMNS = ("customer_id", "segment", "action", "cost", "incr_clv", "incr_revenue")
SCORE_COLUMNS = ("customer_id", "segment", "predicted_clv", "p_churn")
#: Floor on P(active) when a customer's value if retained is derived from their
#: churn-weighted prediction (:func:`value_if_retained`): at most 10x predicted_clv.
MIN_P_ACTIVE = 0.1
NO_ACTION = "none"
#: Optional boolean candidate column: False = the contact policy forbids the candidate.
ELIGIBLE_COLUMN = "eligible"
#: Up to this many candidates considered (net value > 0; all with share bounds)
#: the exact path runs. Measured on 2 cores (bench/bench_allocation.py), budget
#: only, costs on a 0.50 grid: 30,000 considered -> proven optimal in 0.2 s,
#: 100,000 -> 1.6 s (DP core 13,000 customers x 12,000 budget units); beyond it
#: the core outgrows the DP and HiGHS runs into its time limit. With cent-level
#: costs or side constraints HiGHS solves the core and may stop at ``time_limit``
#: with the best plan found (never worse than the heuristic) and its gap.
DEFAULT_EXACT_MAX_CANDIDATES = 100_000
DEFAULT_TIME_LIMIT_S = 10.0
#: Largest dynamic-programming table (core customers x budget units): one byte
#: of choice per cell, so at most about 400 MB.
_DP_MAX_CELLS = 400_000_000
#: Slack on the budget, in currency units: absorbs float rounding (0.1 + 0.2 > 0.3
#: in binary) and nothing more; the same as decisioning's.
_BUDGET_SLACK = 1e-9
#: An LP value this close to 0 or 1 counts as integral.
_INTEGRAL_TOL = 1e-9
#: The frontier's default grid: lambda = 0, 0.1, ..., 1.
DEFAULT_LAMBDAS = tuple(float(x) for x in np.linspace(0.0, 1.0, 11))
ShareBounds = Mapping[str, tuple[float | None, float | None]]


# --------------------------------------------------------------------------- candidates


def _validate_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """The score columns, sorted by customer_id, after checking them."""
    frame = select_customer_columns(scores, SCORE_COLUMNS)
    if frame["segment"].isna().any():
        raise ValueError("every customer needs a segment")
    numbers = frame[["predicted_clv", "p_churn"]].to_numpy(float)
    if not np.isfinite(numbers).all():
        raise ValueError("predicted_clv and p_churn must be finite")
    return frame.sort_values("customer_id", kind="mergesort").reset_index(drop=True)


def value_if_retained(predicted_clv: np.ndarray, p_churn: np.ndarray) -> np.ndarray:
    """Expected spend over the horizon of a customer who stays active.

    ``predicted_clv`` is P(active) x E[spend | active] with P(active) = 1 - p_churn,
    so E[spend | active] = predicted_clv / (1 - p_churn), with 1 - p_churn floored at
    ``MIN_P_ACTIVE`` so that a near-certain churner's value is not blown up by a
    division by almost zero.
    """
    return predicted_clv / np.maximum(1.0 - p_churn, MIN_P_ACTIVE)


def build_candidates(
    scores: pd.DataFrame, effects: pd.DataFrame, actions: Mapping[str, float]
) -> pd.DataFrame:
    """One candidate per customer x action, with its expected increments.

    With the customer's absolute effects from ``effects`` (:func:`clv.decisions.effects.customer_effects`)::

        incr_revenue = the revenue channel (money in the response window)
        incr_clv     = incr_revenue + min(incr_retention, p_churn) x value_if_retained

    The retention channel can only keep customers who would otherwise churn (a
    change in P(active) is at most p_churn), and one kept is worth their expected
    spend if active (:func:`value_if_retained`). So an action that only moves
    revenue wins on revenue and on CLV alike, and one that moves retention wins
    on CLV only: the weight lambda decides between them.

    Args:
        scores: customer_id, segment, predicted_clv, p_churn; one row per customer.
        effects: ``clv.decisions.effects.EFFECT_COLUMNS`` for these customers and actions,
            sorted by customer_id then action (what customer_effects returns).
        actions: Action name -> cost per customer (> 0).

    Returns:
        customer_id, segment, action, cost, incr_clv, incr_revenue, incr_retention,
        incr_revenue_low, incr_revenue_high, uplift_source, effect_method;
        sorted by customer_id, then action.
    """
    if not actions or NO_ACTION in actions or any(not c > 0 for c in actions.values()):
        raise ValueError(f"actions must map names other than {NO_ACTION!r} to costs > 0")
    frame = _validate_scores(scores)
    names = sorted(actions)
    n, k = len(frame), len(names)
    ids = np.repeat(frame["customer_id"].to_numpy(), k)
    act = np.tile(np.asarray(names, dtype=object), n)
    if len(effects) != n * k or not (
            np.array_equal(effects["customer_id"].to_numpy(), ids)
            and np.array_equal(effects["action"].to_numpy(), act)):
        raise ValueError("effects must hold one row per (customer, action) of the scores and "
                         "the actions, sorted by customer_id then action "
                         "(clv.decisions.effects.customer_effects)")
    revenue = effects["incr_revenue"].to_numpy(float)
    retention = effects["incr_retention"].to_numpy(float)
    if not (np.isfinite(revenue).all() and np.isfinite(retention).all()):
        raise ValueError("incr_revenue and incr_retention must be finite")
    p_churn = np.repeat(frame["p_churn"].to_numpy(float), k)
    kept = np.minimum(retention, p_churn) * np.repeat(value_if_retained(
        frame["predicted_clv"].to_numpy(float), frame["p_churn"].to_numpy(float)), k)
    return pd.DataFrame({
        "customer_id": ids,
        "segment": np.repeat(frame["segment"].to_numpy(), k),
        "action": act,
        "cost": np.tile(np.asarray([actions[a] for a in names], dtype=float), n),
        "incr_clv": revenue + kept,
        "incr_revenue": revenue,
        "incr_retention": np.minimum(retention, p_churn),
        "incr_revenue_low": effects["incr_revenue_low"].to_numpy(float),
        "incr_revenue_high": effects["incr_revenue_high"].to_numpy(float),
        "uplift_source": effects["uplift_source"].to_numpy(),
        "effect_method": effects["effect_method"].to_numpy(),
    }, copy=False)  # the arrays are new: no second copy of 12.85M rows at 2.57M customers


# --------------------------------------------------------------------------- problem


@dataclass(frozen=True)
class AllocationResult:
    """An allocation and how good it provably is.

    Attributes:
        plan: One row per customer in the candidates, sorted by customer_id:
            customer_id, segment, action (``"none"`` if not chosen), cost,
            incr_clv, incr_revenue, net_value (0 for none), the candidates' extra
            columns (empty for none), budget, clv_weight (= lam).
        objective: Total net value of the plan.
        lp_bound: Upper bound on any plan's objective (LP relaxation / its dual).
        gap: (lp_bound - objective) / lp_bound; 0 when lp_bound is 0.
        method: "milp" or "greedy_lp".
        optimal: True when the plan is proven optimal (the exact path finished).
        spent: Total cost of the plan (exactly summed).
        budget: The budget.
        lam: The weight on incremental CLV.
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
    lam: float
    detail: str


@dataclass(frozen=True)
class _Problem:
    """The candidates considered, as arrays, sorted by customer then action."""

    rows: np.ndarray  # row positions in the sorted candidates frame
    customer: np.ndarray  # 0..n_customers-1, contiguous runs
    starts: np.ndarray  # first position of each customer's run
    cost: np.ndarray
    value: np.ndarray  # net value
    segment: np.ndarray  # segment codes
    action: np.ndarray  # action codes

    @property
    def n(self) -> int:
        return len(self.cost)


@dataclass(frozen=True)
class _Rows:
    """Coupling constraints ``a @ x <= b`` (budget first), all in <= form."""

    a: sp.csr_matrix
    b: np.ndarray


@dataclass(frozen=True)
class _Duals:
    """A Lagrangian bound: ``bound = y.b + sum(y_customer) + sum(max(d, 0))``.

    ``d`` is each variable's reduced value (net value minus its priced use of
    the constraints), ``y_customer`` the price of each customer's one-action row.
    The bound holds for any non-negative prices (weak duality), so imprecise
    duals only loosen it.
    """

    d: np.ndarray
    y_customer: np.ndarray
    bound: float


@dataclass(frozen=True)
class _Candidates:
    """Validated candidates sorted by (customer_id, action), as integer codes.

    Prepared once per call (and once for a whole :func:`frontier`): on 12.85M
    candidates (2.57M customers x 5 actions) factorising the string ids took most
    of an allocation's 39 s when every lambda redid it.
    """

    frame: pd.DataFrame  # sorted, index 0..n-1
    customer: np.ndarray  # customer code per row, non-decreasing
    numbers: np.ndarray  # (n, 3): cost, incr_clv, incr_revenue
    segment: np.ndarray  # segment code per row
    action: np.ndarray  # action code per row
    segments: np.ndarray  # code -> segment name
    actions: np.ndarray  # code -> action name
    eligible: np.ndarray | None = None  # the contact policy's verdict per row, if given

    def net_value(self, lam: float) -> np.ndarray:
        if not 0 <= lam <= 1:
            raise ValueError(f"lam must lie in [0, 1], got {lam}")
        return lam * self.numbers[:, 1] + (1 - lam) * self.numbers[:, 2] - self.numbers[:, 0]


def _prepare(candidates: pd.DataFrame) -> _Candidates:
    """Check the candidates and sort them by (customer_id, action)."""
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates is missing columns {missing}")
    if candidates[["customer_id", "segment", "action"]].isna().any().any():
        raise ValueError("customer_id, segment and action must be present on every row")
    customer = pd.factorize(candidates["customer_id"], sort=True)[0]
    action, actions = pd.factorize(candidates["action"], sort=True)
    order = np.lexsort((action, customer))
    if (order == np.arange(len(order))).all():  # build_candidates' order: no copy
        frame = candidates
        if not candidates.index.equals(pd.RangeIndex(len(candidates))):
            frame = candidates.reset_index(drop=True)
    else:
        frame = candidates.take(order).reset_index(drop=True)
        customer, action = customer[order], action[order]
    numbers = frame[["cost", "incr_clv", "incr_revenue"]].to_numpy(float)
    if not np.isfinite(numbers).all() or not (numbers[:, 0] > 0).all():
        raise ValueError("cost must be > 0 and cost, incr_clv, incr_revenue finite")
    same = customer[1:] == customer[:-1]
    if (same & (action[1:] == action[:-1])).any() or NO_ACTION in set(actions):
        raise ValueError(f"one row per (customer_id, action) and no action {NO_ACTION!r}")
    segment, segments = pd.factorize(frame["segment"], sort=True)
    if (same & (segment[1:] != segment[:-1])).any():
        raise ValueError("each customer must be in one segment")
    eligible = None
    if ELIGIBLE_COLUMN in frame.columns:
        eligible = frame[ELIGIBLE_COLUMN].to_numpy()
        if eligible.dtype != bool:
            raise ValueError(f"{ELIGIBLE_COLUMN} must be boolean (True = the contact policy "
                             f"allows the candidate)")
    return _Candidates(frame, customer, numbers, segment, action,
                       np.asarray(segments), np.asarray(actions), eligible)


def _problem(c: _Candidates, value: np.ndarray, keep: np.ndarray) -> _Problem:
    """Arrays of the kept candidates (net ``value`` at this lambda)."""
    rows = np.flatnonzero(keep)
    kept = c.customer[rows]
    new = np.r_[True, kept[1:] != kept[:-1]] if len(rows) else np.zeros(0, bool)
    return _Problem(rows=rows, customer=np.cumsum(new) - 1, starts=np.flatnonzero(new),
                    cost=c.numbers[rows, 0], value=value[rows],
                    segment=c.segment[rows], action=c.action[rows])


def _share_rows(p: _Problem, shares: dict[int, tuple[float, float]]) -> list[np.ndarray]:
    """Dense <= 0 rows: c * (min - [in s]) for a minimum, c * ([in s] - max) for a maximum."""
    rows = []
    for code, (low, high) in sorted(shares.items()):
        inside = (p.segment == code).astype(float)
        if low > 0:
            rows.append(p.cost * (low - inside))
        if high < 1:
            rows.append(p.cost * (inside - high))
    return rows


def _coupling(p: _Problem, budget: float, shares: dict[int, tuple[float, float]],
              capacity: dict[int, int]) -> _Rows:
    """Budget, share and capacity rows over the problem's variables."""
    dense = [p.cost] + _share_rows(p, shares)
    b = [budget] + [0.0] * (len(dense) - 1)
    blocks = [sp.csr_matrix(np.vstack(dense))]
    for code, cap in sorted(capacity.items()):
        blocks.append(sp.csr_matrix((p.action == code).astype(float)[None, :]))
        b.append(float(cap))
    return _Rows(a=sp.vstack(blocks, format="csr"), b=np.asarray(b, dtype=float))


def _customer_rows(p: _Problem, customers: np.ndarray) -> sp.csr_matrix:
    """One row per listed customer (sorted codes): the sum of their variables."""
    member = np.isin(p.customer, customers)
    row = np.searchsorted(customers, p.customer[member])
    return sp.csr_matrix((np.ones(int(member.sum())), (row, np.flatnonzero(member))),
                         shape=(len(customers), p.n))


# --------------------------------------------------------------------------- hull LP


@dataclass(frozen=True)
class _Steps:
    """Convex-hull upgrades of every customer, in global efficiency order.

    Step k of a customer moves it from hull point k to k + 1 (point 0 = no action)
    at cost ``dcost`` for value ``dvalue``; along one customer's hull the
    efficiency dvalue / dcost decreases, so this order respects each customer's
    step order (ties are ordered by customer, then step).
    """

    var: np.ndarray
    customer: np.ndarray
    k: np.ndarray
    dcost: np.ndarray
    dvalue: np.ndarray


def _next_hull_point(p: _Problem, cur_cost: np.ndarray, cur_value: np.ndarray) -> np.ndarray:
    """Per customer, the variable of the steepest upgrade from its current point.

    Ties in slope go to the cheaper option (a finer step is easier to round),
    then to the lower action code. Returns variable positions, one per customer
    that still has an upgrade.
    """
    cc, cv = cur_cost[p.customer], cur_value[p.customer]
    ok = (p.cost > cc) & (p.value > cv)
    slope = np.full(p.n, -np.inf)
    slope[ok] = (p.value[ok] - cv[ok]) / (p.cost[ok] - cc[ok])
    steepest = np.maximum.reduceat(slope, p.starts)[p.customer]
    tie = ok & (slope == steepest)
    cheapest = np.minimum.reduceat(np.where(tie, p.cost, np.inf), p.starts)[p.customer]
    pick = np.flatnonzero(tie & (p.cost == cheapest))
    first = np.r_[True, p.customer[pick][1:] != p.customer[pick][:-1]] if len(pick) else pick
    return pick[first.astype(bool)]


def _hull_steps(p: _Problem) -> _Steps:
    """Every customer's upper convex hull of (cost, value), as sorted upgrade steps."""
    n_customers = len(p.starts)
    cur_cost, cur_value = np.zeros(n_customers), np.zeros(n_customers)
    parts: list[tuple[np.ndarray, ...]] = []
    for k in range(int(np.diff(np.r_[p.starts, p.n]).max(initial=0))):
        var = _next_hull_point(p, cur_cost, cur_value)
        if not len(var):
            break
        c = p.customer[var]
        parts.append((var, c, np.full(len(var), k),
                      p.cost[var] - cur_cost[c], p.value[var] - cur_value[c]))
        cur_cost[c], cur_value[c] = p.cost[var], p.value[var]
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return _Steps(empty, empty, empty, np.zeros(0), np.zeros(0))
    var, customer, k, dcost, dvalue = (np.concatenate(col) for col in zip(*parts, strict=True))
    order = np.lexsort((k, customer, -(dvalue / dcost)))
    return _Steps(var[order], customer[order], k[order], dcost[order], dvalue[order])


def _hull_duals(p: _Problem, steps: _Steps, budget: float) -> _Duals:
    """Exact LP dual of the plain problem: budget price = the critical efficiency.

    The LP takes steps in efficiency order until the budget runs out (the last
    one fractionally); with the budget priced at that step's efficiency mu,
    each customer's price is max(0, max_j value_j - mu * cost_j) and the
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
    return _Duals(d=reduced - price[p.customer], y_customer=price, bound=bound)


def _greedy_from_steps(p: _Problem, steps: _Steps, budget: float) -> np.ndarray:
    """Round the hull LP down and fill the leftover budget greedily.

    Steps are taken in efficiency order while they fit; after the first that
    does not, later steps are still taken if they fit and follow the customer's
    previous step. Returns the chosen variable mask.
    """
    cumulative = np.cumsum(steps.dcost)
    taken = int(np.searchsorted(cumulative, budget + _BUDGET_SLACK, side="right"))
    # cumsum drifts on long sums: trust only an exact sum of what is taken.
    while taken and math.fsum(steps.dcost[:taken]) > budget + _BUDGET_SLACK:
        taken -= 1
    level = np.bincount(steps.customer[:taken], minlength=len(p.starts))
    left = budget + _BUDGET_SLACK - math.fsum(steps.dcost[:taken])
    extra = []
    for i in taken + np.flatnonzero(steps.dcost[taken:] <= left):
        if steps.dcost[i] <= left and level[steps.customer[i]] == steps.k[i]:
            extra.append(i)
            left -= steps.dcost[i]
            level[steps.customer[i]] += 1
    picked = np.r_[np.arange(taken), np.asarray(extra, dtype=np.int64)]
    # each customer ends on its highest step taken
    chosen = np.zeros(p.n, dtype=bool)
    final = picked[steps.k[picked] == level[steps.customer[picked]] - 1]
    chosen[steps.var[final]] = True
    return chosen


# --------------------------------------------------------------------------- constrained LP


def _highs_lp(p: _Problem, rows: _Rows) -> tuple[np.ndarray, _Duals]:
    """LP relaxation with every constraint, by HiGHS; its solution and duals."""
    n_customers = len(p.starts)
    multi = np.flatnonzero(np.diff(np.r_[p.starts, p.n]) > 1)
    a = sp.vstack([rows.a, _customer_rows(p, multi)], format="csr")
    b = np.r_[rows.b, np.ones(len(multi))]
    # Interior point + crossover (a vertex, so few fractional customers): 6x
    # faster than dual simplex here (20 s vs 112 s on 600,000 candidates), the
    # dense share rows being what slows the simplex down.
    res = linprog(-p.value, A_ub=a, b_ub=b, bounds=(0, 1), method="highs-ipm")
    if res.status != 0:
        raise RuntimeError(f"HiGHS could not solve the LP relaxation: {res.message}")
    # linprog minimises -value: marginals are <= 0; clipping keeps weak duality valid.
    y = np.maximum(-res.ineqlin.marginals, 0.0)
    m = len(rows.b)
    y_customer = np.zeros(n_customers)
    y_customer[multi] = y[m:]
    d = p.value - rows.a.T @ y[:m] - y_customer[p.customer]
    bound = float(y[:m] @ rows.b) + math.fsum(y_customer) + math.fsum(np.maximum(d, 0.0))
    return res.x, _Duals(d=d, y_customer=y_customer, bound=bound)


def _row_excess(p: _Problem, rows: _Rows, chosen: np.ndarray) -> np.ndarray:
    """How far each coupling row is violated (<= 0: holds).

    The budget row (row 0) is summed exactly and gets only the budget slack;
    the other rows also get float noise relative to their magnitude.
    """
    x = chosen.astype(float)
    magnitude = abs(rows.a) @ x
    excess = rows.a @ x - rows.b - (_BUDGET_SLACK + 1e-12 * magnitude)
    excess[0] = math.fsum(p.cost[chosen]) - rows.b[0] - _BUDGET_SLACK
    return excess


def _repair(p: _Problem, rows: _Rows, chosen: np.ndarray) -> np.ndarray:
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


def _sub_milp(p: _Problem, rows: _Rows, fixed: np.ndarray, free: np.ndarray,
              must_choose: np.ndarray, time_limit: float
              ) -> tuple[np.ndarray | None, bool, str]:
    """MILP over the ``free`` variables with the ``fixed`` ones taken.

    ``must_choose`` (per customer) turns a free customer's <= 1 row into = 1.
    Returns the full chosen mask (fixed + solved), or None when unsolved.
    """
    idx = np.flatnonzero(free)
    customers, count = np.unique(p.customer[idx], return_counts=True)
    # A customer with one free variable needs no row: its bounds say it all.
    multi = customers[count > 1]
    a = sp.vstack([rows.a[:, idx], _customer_rows(p, multi)[:, idx]], format="csr")
    rest = rows.b - rows.a @ fixed.astype(float)
    lo = np.r_[np.full(len(rows.b), -np.inf), must_choose[multi].astype(float)]
    hi = np.r_[rest, np.ones(len(multi))]
    single = np.isin(p.customer[idx], customers[count == 1])
    x_min = (single & must_choose[p.customer[idx]]).astype(float)
    x, optimal, message = _solve_milp(p.value[idx], a, lo, hi, x_min, time_limit)
    if x is None:
        return None, False, message
    chosen = fixed.copy()
    chosen[idx[x]] = True
    return chosen, optimal, message


def _lp_rounding(p: _Problem, rows: _Rows, x: np.ndarray, time_limit: float) -> np.ndarray:
    """Feasible plan from the LP: keep integral customers, solve the rest exactly.

    Customers the LP leaves fractional (at most about two per coupling row in a
    vertex solution), and any the share repair had to drop, are re-solved by a
    small MILP with the others fixed; if that fails they get no action.
    """
    frac = (x > _INTEGRAL_TOL) & (x < 1 - _INTEGRAL_TOL)
    loose = np.zeros(len(p.starts), dtype=bool)
    loose[p.customer[frac]] = True
    integral = (x >= 1 - _INTEGRAL_TOL) & ~loose[p.customer]
    kept = _repair(p, rows, integral)
    loose[p.customer[integral & ~kept]] = True
    if not loose.any():
        return kept
    solved, _, _ = _sub_milp(p, rows, kept, loose[p.customer], np.zeros_like(loose), time_limit)
    return kept if solved is None else solved


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

    best[s] is the most value with total weight <= s; each group (customer)
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


def _dp_core(p: _Problem, rows: _Rows, fixed: np.ndarray, core: np.ndarray,
             must_choose: np.ndarray, max_cells: int) -> np.ndarray | None:
    """Exact plan for the core of a budget-only problem, or None if too big.

    Applies when the costs lie on a grid (``_cost_unit``) and customers x
    (budget / unit) stays under ``max_cells``; then it is exact and fast where
    HiGHS's branch and bound on the same knapsack can run for minutes.
    """
    idx = np.flatnonzero(core)
    unit = _cost_unit(p.cost[idx])
    rest = rows.b[0] - math.fsum(p.cost[fixed])
    if unit is None or rest < 0:
        return None
    capacity = int(math.floor((rest + _BUDGET_SLACK) / unit + 1e-9))
    customers, first = np.unique(p.customer[idx], return_index=True)
    if len(customers) * (capacity + 1) > max_cells:
        return None
    weight = np.zeros(p.n, dtype=np.int64)
    weight[idx] = np.round(p.cost[idx] / unit).astype(np.int64)
    options = np.split(idx, first[1:])
    optimum, choice = _dp_tables(options, weight, p.value, capacity, ~must_choose[customers])
    if not np.isfinite(optimum):  # a must-choose customer fits nowhere: leave it to HiGHS
        return None
    chosen, s = fixed.copy(), capacity
    for g in range(len(options) - 1, -1, -1):
        j = int(choice[g, s])
        if j:
            chosen[options[g][j - 1]] = True
            s -= int(weight[options[g][j - 1]])
    return chosen


def _fixable(p: _Problem, duals: _Duals, incumbent: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Options that can still be in a plan worth at least the incumbent's value.

    For any feasible plan, value <= bound - sum over customers of the penalty of
    the option it takes: ``pos - d_j`` for variable j, ``pos + y_customer`` for
    no action, where ``pos`` is the customer's sum of max(d, 0). Options with a
    penalty above bound - incumbent are excluded; the incumbent's own options
    are always kept (they satisfy the test up to rounding).

    Returns:
        (kept variables mask, per customer: whether "no action" is kept).
    """
    pos = np.add.reduceat(np.maximum(duals.d, 0.0), p.starts)
    slack = duals.bound - math.fsum(p.value[incumbent])
    slack += 1e-9 * max(1.0, abs(duals.bound))
    keep_var = (pos[p.customer] - duals.d <= slack) | incumbent
    has_incumbent = np.add.reduceat(incumbent.astype(np.int64), p.starts) > 0
    keep_none = (pos + duals.y_customer <= slack) | ~has_incumbent
    return keep_var, keep_none


def _exact(p: _Problem, rows: _Rows, duals: _Duals, incumbent: np.ndarray,
           time_limit: float) -> tuple[np.ndarray, bool, str]:
    """Optimal plan: fix what the duals rule out, HiGHS MILP on the core.

    Returns (chosen mask, proven optimal, detail). If HiGHS stops early, the
    better of its plan and the incumbent is returned, not proven optimal.
    """
    keep_var, keep_none = _fixable(p, duals, incumbent)
    options = np.add.reduceat(keep_var.astype(np.int64), p.starts) + keep_none
    in_core = (options >= 2)[p.customer]
    fixed, core = keep_var & ~in_core, keep_var & in_core
    detail = f"core of {int(core.sum()):,} of {p.n:,} candidates after reduced-cost fixing"
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


# --------------------------------------------------------------------------- allocate


def _constraint_codes(c: _Candidates, shares: ShareBounds | None,
                      capacity: Mapping[str, int] | None) -> tuple[dict, dict]:
    """The constraints keyed by segment and action code."""
    seg_code = {s: i for i, s in enumerate(c.segments)}
    act_code = {a: i for i, a in enumerate(c.actions)}
    bounds: dict[int, tuple[float, float]] = {}
    for name, (low, high) in (shares or {}).items():
        low, high = 0.0 if low is None else float(low), 1.0 if high is None else float(high)
        if name not in seg_code or not 0 <= low <= high <= 1:
            raise ValueError(f"share bounds for {name!r}: need a known segment and "
                             f"0 <= min <= max <= 1, got ({low}, {high})")
        bounds[seg_code[name]] = (low, high)
    if sum(low for low, _ in bounds.values()) > 1:
        raise ValueError("minimum segment shares add up to more than 1")
    caps: dict[int, int] = {}
    for name, cap in (capacity or {}).items():
        if name not in act_code or int(cap) != cap or cap < 0:
            raise ValueError(f"capacity for {name!r}: need a known action and an integer >= 0")
        caps[act_code[name]] = int(cap)
    return bounds, caps


def _heuristic(p: _Problem, rows: _Rows, budget: float, constrained: bool,
               time_limit: float) -> tuple[np.ndarray, _Duals, str]:
    """A feasible plan and LP duals: hull method when plain, HiGHS LP otherwise."""
    if not constrained:
        steps = _hull_steps(p)
        plan = _repair(p, rows, _greedy_from_steps(p, steps, budget))
        return plan, _hull_duals(p, steps, budget), "convex-hull LP, rounded down, greedy fill"
    x, duals = _highs_lp(p, rows)
    return _lp_rounding(p, rows, x, time_limit), duals, "HiGHS LP, fractional customers by MILP"


def _solve(p: _Problem, budget: float, shares: dict, caps: dict, exact_max: int,
           time_limit: float) -> tuple[np.ndarray, float, str, bool, str]:
    """(chosen mask, LP bound, method, proven optimal, detail)."""
    method = "milp" if p.n <= exact_max else "greedy_lp"
    if p.n == 0:
        return np.zeros(0, dtype=bool), 0.0, method, True, "no candidate worth considering"
    rows = _coupling(p, budget, shares, caps)
    incumbent, duals, detail = _heuristic(p, rows, budget, bool(shares or caps), time_limit)
    if method == "milp":
        chosen, optimal, how = _exact(p, rows, duals, incumbent, time_limit)
        return chosen, duals.bound, method, optimal, f"{how} (incumbent: {detail})"
    value = math.fsum(p.value[incumbent])
    optimal = duals.bound - value <= 1e-9 * max(1.0, abs(duals.bound))
    return incumbent, duals.bound, method, optimal, f"{detail}; {p.n:,} candidates"


def _plan(c: _Candidates, value: np.ndarray, picked: np.ndarray, budget: float,
          lam: float) -> pd.DataFrame:
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
    plan["clv_weight"] = float(lam)
    return plan


@dataclass(frozen=True)
class _Solved:
    picked: np.ndarray  # rows of the prepared frame chosen
    value: np.ndarray  # net value of every row at this lambda
    objective: float
    lp_bound: float
    gap: float
    method: str
    optimal: bool
    spent: float
    detail: str


def _allocate(c: _Candidates, budget: float, lam: float, shares: dict, caps: dict,
              exact_max: int, time_limit: float, min_net_value: float | None = None,
              honour_eligibility: bool = True) -> _Solved:
    value = c.net_value(lam)
    # Non-positive candidates only matter when share bounds may need the spend.
    keep = np.ones(len(value), bool) if shares else value > 0
    if honour_eligibility and c.eligible is not None:
        keep &= c.eligible
    if min_net_value is not None:
        keep &= value >= min_net_value
    p = _problem(c, value, keep)
    chosen, bound, method, optimal, detail = _solve(p, budget, shares, caps, exact_max,
                                                    time_limit)
    spent = math.fsum(p.cost[chosen])
    if spent > budget + _BUDGET_SLACK:  # every path guarantees this; a bug if not
        raise RuntimeError(f"allocation spent {spent} > budget {budget}")
    objective = math.fsum(p.value[chosen])
    gap = max(bound - objective, 0.0) / bound if bound > 0 else 0.0
    return _Solved(p.rows[chosen], value, objective, bound, gap, method, bool(optimal), spent,
                   detail)


def _check_threshold(min_net_value: float | None) -> float | None:
    if min_net_value is not None and not np.isfinite(min_net_value):
        raise ValueError(f"min_net_value must be finite (or None), got {min_net_value}")
    return None if min_net_value is None else float(min_net_value)


def _check_budget(budget: float) -> float:
    if not np.isfinite(budget) or budget < 0:
        raise ValueError(f"budget must be a finite number >= 0, got {budget}")
    return float(budget)


def allocate(
    candidates: pd.DataFrame,
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
        candidates: ``CANDIDATE_COLUMNS`` (+ any extra columns, carried to the plan).
        budget: Total cost allowed, >= 0.
        lam: Weight on incr_clv (1 - lam on incr_revenue), in [0, 1].
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
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    c = _prepare(candidates)
    shares, caps = _constraint_codes(c, segment_share_bounds, action_capacity)
    r = _allocate(c, budget, lam, shares, caps, exact_max_candidates, time_limit,
                  _check_threshold(min_net_value), honour_eligibility)
    return AllocationResult(
        plan=_plan(c, r.value, r.picked, budget, lam), objective=r.objective,
        lp_bound=r.lp_bound, gap=r.gap, method=r.method, optimal=r.optimal, spent=r.spent,
        budget=budget, lam=float(lam), detail=r.detail)


# --------------------------------------------------------------------------- reporting


def budget_summary(plan: pd.DataFrame, excluded: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per segment and action: customers, spend and expected increments, and how many
    customers the contact policy kept from the action.

    Args:
        plan: ``AllocationResult.plan`` (rows with action "none" count too).
        excluded: segment, action, rule, customers: customers for whom ``rule``
            (:data:`clv.decisions.contact_policy.RULES`) ruled the action out; None = no policy.

    Returns:
        segment, action, customers, spent, expected_incremental_clv,
        expected_incremental_revenue, net_value, one ``excluded_<rule>`` count per
        rule, plus the plan's budget and clv_weight; sorted by segment, action. A
        (segment, action) that no customer got but a rule excluded someone from has
        customers 0.
    """
    from clv.decisions.contact_policy import RULES

    summary = plan.groupby(["segment", "action"], sort=True).agg(
        customers=("customer_id", "size"), spent=("cost", "sum"),
        expected_incremental_clv=("incr_clv", "sum"),
        expected_incremental_revenue=("incr_revenue", "sum"),
        net_value=("net_value", "sum"),
    ).reset_index()
    counts = pd.DataFrame(columns=["segment", "action", *[f"excluded_{r}" for r in RULES]])
    if excluded is not None and len(excluded):
        unknown = set(excluded["rule"]) - set(RULES)
        if unknown:
            raise ValueError(f"excluded: unknown rule(s) {sorted(unknown)}; rules are {RULES}")
        counts = (excluded.pivot_table(index=["segment", "action"], columns="rule",
                                       values="customers", aggfunc="sum", fill_value=0)
                  .reindex(columns=list(RULES), fill_value=0)
                  .add_prefix("excluded_").reset_index())
        counts.columns.name = None
    summary = summary.merge(counts, on=["segment", "action"], how="outer", sort=True)
    numbers = [c for c in summary.columns if c not in ("segment", "action")]
    summary[numbers] = summary[numbers].astype(float).fillna(0.0)
    for column in ["customers", *[f"excluded_{r}" for r in RULES]]:
        summary[column] = summary[column].astype("int64")
    for column in ("budget", "clv_weight"):
        if column in plan.columns and len(plan):
            summary[column] = plan[column].iat[0]
    return summary.sort_values(["segment", "action"], kind="mergesort").reset_index(drop=True)


def frontier(
    candidates: pd.DataFrame,
    budget: float,
    lambdas: Sequence[float] | np.ndarray = DEFAULT_LAMBDAS,
    segment_share_bounds: ShareBounds | None = None,
    action_capacity: Mapping[str, int] | None = None,
    exact_max_candidates: int = DEFAULT_EXACT_MAX_CANDIDATES,
    min_net_value: float | None = None,
) -> pd.DataFrame:
    """Short-term revenue vs lifetime value of the best plan at each lambda.

    Args:
        candidates: As for :func:`allocate`.
        budget: Total cost allowed.
        lambdas: Weights on incr_clv to solve for.
        segment_share_bounds: As for :func:`allocate`.
        action_capacity: As for :func:`allocate`.
        exact_max_candidates: As for :func:`allocate`.
        min_net_value: As for :func:`allocate` (applied at each lambda); the
            candidates' ``eligible`` column is honoured.

    Returns:
        One row per lambda: clv_weight, expected_incremental_revenue,
        expected_incremental_clv, expected_net_revenue (revenue - spent: what lambda
        trades away, non-increasing in lambda for exact plans even where the budget does
        not bind), spent, objective, lp_bound, gap, method, budget.
    """
    budget = _check_budget(budget)
    lambdas = [float(lam) for lam in lambdas]
    if any(not 0 <= lam <= 1 for lam in lambdas):
        raise ValueError(f"every lambda must lie in [0, 1], got {lambdas}")
    c = _prepare(candidates)  # once for every lambda
    shares, caps = _constraint_codes(c, segment_share_bounds, action_capacity)
    rows = []
    for lam in lambdas:
        r = _allocate(c, budget, lam, shares, caps, exact_max_candidates,
                      DEFAULT_TIME_LIMIT_S, _check_threshold(min_net_value))
        rows.append({
            "clv_weight": lam,
            "expected_incremental_revenue": math.fsum(c.numbers[r.picked, 2]),
            "expected_incremental_clv": math.fsum(c.numbers[r.picked, 1]),
            "expected_net_revenue": math.fsum(c.numbers[r.picked, 2]) - r.spent,
            "spent": r.spent, "objective": r.objective,
            "lp_bound": r.lp_bound, "gap": r.gap, "method": r.method,
            "budget": budget,
        })
    return pd.DataFrame(rows)


def _points_with_weights(frontier_df: pd.DataFrame) -> dict[tuple[float, float], list[float]]:
    """Distinct frontier points (to 0.1% of the axes' spans) -> the lambdas giving them."""
    x, y = frontier_df["expected_incremental_revenue"], frontier_df["expected_incremental_clv"]
    tol_x = max(float(x.max() - x.min()), 1e-9) * 1e-3
    tol_y = max(float(y.max() - y.min()), 1e-9) * 1e-3
    points: dict[tuple[float, float], list[float]] = {}
    for lam, xi, yi in sorted(zip(frontier_df["clv_weight"], x, y, strict=True)):
        key = next((k for k in points if abs(k[0] - xi) <= tol_x and abs(k[1] - yi) <= tol_y),
                   (float(xi), float(yi)))
        points.setdefault(key, []).append(float(lam))
    return points


def plot_frontier(frontier_df: pd.DataFrame, path: str | Path) -> Path:
    """Write the frontier as a PNG: revenue (x) vs CLV (y), each point labelled lambda.

    Args:
        frontier_df: Output of :func:`frontier`.
        path: Where to write the PNG (parent folders are created).

    Returns:
        The path written.
    """
    # Figure + Agg canvas directly: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x, y = frontier_df["expected_incremental_revenue"], frontier_df["expected_incremental_clv"]
    ax.plot(x, y, marker="o")
    # One label per distinct point: at a small budget every lambda picks the same plan,
    # and eleven labels on one point were unreadable (#21).
    # Labels alternate above and below the curve, so neighbours do not run into each other.
    for i, ((xi, yi), lams) in enumerate(_points_with_weights(frontier_df).items()):
        label = f"λ={lams[0]:.1f}" if len(lams) == 1 else f"λ={lams[0]:.1f}–{lams[-1]:.1f}"
        ax.annotate(label, (xi, yi), textcoords="offset points",
                    xytext=(5, 6) if i % 2 == 0 else (5, -13), fontsize=8)
    ax.margins(0.15)  # a single point sits in the middle, not on the frame
    if x.nunique() == 1 and y.nunique() == 1:  # a degenerate axis would be 0-wide
        ax.set_xlim(x.iat[0] - max(abs(x.iat[0]), 1) * 0.2, x.iat[0] + max(abs(x.iat[0]), 1) * 0.2)
        ax.set_ylim(y.iat[0] - max(abs(y.iat[0]), 1) * 0.2, y.iat[0] + max(abs(y.iat[0]), 1) * 0.2)
    ax.set_xlabel("expected incremental short-term revenue (30 days)")
    ax.set_ylabel("expected incremental CLV (horizon)")
    ax.set_title(f"Allocation frontier, budget {frontier_df['budget'].iat[0]:,.0f}")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()  # the axis labels inside the image at any tick width
    fig.savefig(path, format="png")
    return path
