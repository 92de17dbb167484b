"""Marketing budget allocation: at most one action per customer, lifetime value vs revenue.

For the weight ``clv_weight`` in [0, 1] a candidate (customer, action) is worth
``clv_weight * incr_clv + (1 - clv_weight) * incr_revenue - cost``; the plan takes
at most one per customer under the budget, share bounds, capacities and the
contact policy, solved as a multiple-choice knapsack.

Submodules:

* ``candidates``: one candidate per customer x action, its net value and eligibility.
* ``knapsack_model``, ``knapsack_relaxation``, ``knapsack``: a general
  multiple-choice knapsack solver (items in groups, budget, share and capacity
  rows; LP bounds, heuristic and exact paths) that knows nothing of customers.
* ``plan``: :func:`allocate`, the candidates as a knapsack, and its result.
* ``tradeoff``: the revenue vs CLV frontier over ``clv_weight`` and its chart.
* ``reporting``: budget summary, the published plan, the action effects table.
* ``policy_plan``: one run's allocation with and without the contact policy.
"""

from clv.decisions.allocation.candidates import (
    CANDIDATE_COLUMNS,
    ELIGIBLE_COLUMN,
    MIN_P_ACTIVE,
    NO_ACTION,
    SCORE_COLUMNS,
    build_candidates,
    value_if_retained,
)
from clv.decisions.allocation.knapsack import _dp_tables
from clv.decisions.allocation.plan import (
    DEFAULT_EXACT_MAX_CANDIDATES,
    DEFAULT_TIME_LIMIT_S,
    AllocationResult,
    ShareBounds,
    allocate,
)
from clv.decisions.allocation.policy_plan import (
    PolicyAllocation,
    allocate_with_policy,
    contact_policy_row,
    policy_exclusions,
    present_share_bounds,
)
from clv.decisions.allocation.reporting import (
    INCREMENT_NAMES,
    action_effects_table,
    budget_summary,
    published_plan,
)
from clv.decisions.allocation.tradeoff import (
    DEFAULT_LAMBDAS,
    _points_with_weights,
    frontier,
    plot_frontier,
)

__all__ = [
    "CANDIDATE_COLUMNS",
    "DEFAULT_EXACT_MAX_CANDIDATES",
    "DEFAULT_LAMBDAS",
    "DEFAULT_TIME_LIMIT_S",
    "ELIGIBLE_COLUMN",
    "INCREMENT_NAMES",
    "MIN_P_ACTIVE",
    "NO_ACTION",
    "SCORE_COLUMNS",
    "AllocationResult",
    "PolicyAllocation",
    "ShareBounds",
    "_dp_tables",
    "_points_with_weights",
    "action_effects_table",
    "allocate",
    "allocate_with_policy",
    "budget_summary",
    "build_candidates",
    "contact_policy_row",
    "frontier",
    "plot_frontier",
    "policy_exclusions",
    "present_share_bounds",
    "published_plan",
    "value_if_retained",
]
