"""One run's allocation under the contact policy, and what the policy cost.

:func:`allocate_with_policy` solves the run's allocation twice, with the contact
policy (:mod:`clv.decisions.contact_policy`) and without it, counts who each rule
kept from which action, and computes the frontier and the budget summary: every
frame the decide step publishes, from the candidates and the rules, without I/O.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clv.decisions import closed_loop
from clv.decisions.allocation.candidates import ELIGIBLE_COLUMN, NO_ACTION
from clv.decisions.allocation.plan import AllocationResult, allocate, prepared
from clv.decisions.allocation.reporting import INCREMENT_NAMES, budget_summary
from clv.decisions.allocation.tradeoff import frontier
from clv.decisions.contact_policy import RULES, ContactPolicy
from clv.decisions.segments import LOST_SEGMENT, SEGMENTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyAllocation:
    """A run's allocation with the contact policy and what the policy cost.

    Attributes:
        result: The plan that honours the policy; its plan's budget column is the
            run's budget (what the treated may spend).
        without_policy: The same solve as if there were no policy; its plan holds the
            customers it treats only.
        planned_budget: The budget the allocator planned for (the holdout included,
            :func:`clv.decisions.closed_loop.allocation_budget`).
        excluded: segment, action, rule, customers: who each rule kept from each action.
        excluded_customers: Rule -> distinct customers it excluded.
        policy: ``marts.contact_policy``'s row (:func:`contact_policy_row`).
        frontier: :func:`clv.decisions.allocation.tradeoff.frontier` at the run's budget.
        summary: :func:`clv.decisions.allocation.reporting.budget_summary`, increments
            named for analysts.
    """

    result: AllocationResult
    without_policy: AllocationResult
    planned_budget: float
    excluded: pd.DataFrame
    excluded_customers: dict[str, int]
    policy: pd.DataFrame
    frontier: pd.DataFrame
    summary: pd.DataFrame


def present_share_bounds(bounds: Mapping[str, tuple[float | None, float | None]],
                         present: set[str]) -> dict[str, tuple[float | None, float | None]]:
    """Share bounds of the segments this run has. A known segment that is empty
    this time is skipped (logged); an unknown name is a typo and fails."""
    known = set(SEGMENTS.values()) | {LOST_SEGMENT}
    unknown = sorted(set(bounds) - known)
    if unknown:
        raise ValueError(f"segment_share_bounds: unknown segment(s) {unknown}; "
                         f"segments are {sorted(known)}")
    absent = sorted(set(bounds) - present)
    if absent:
        log.info("segment_share_bounds: no customer in %s this run; their bounds are skipped",
                 absent)
    return {k: v for k, v in bounds.items() if k in present}


def policy_exclusions(candidates: pd.DataFrame, rules: np.ndarray, clv_weight: float,
                      min_net_value: float | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """(segment, action, rule, customers: who each rule kept from each action; rule ->
    distinct customers it excluded). The threshold's exclusions are counted among the
    candidates the other rules allow, at ``clv_weight``.

    Args:
        candidates: :func:`clv.decisions.allocation.candidates.build_candidates`.
        rules: Per candidate, the contact rule that rules it out ("" = eligible).
        clv_weight: The weight on incr_clv of the net value the threshold applies to.
        min_net_value: The contact policy's net-value threshold (None: none).
    """
    rules = rules.copy()
    if min_net_value is not None:
        value = (clv_weight * candidates["incr_clv"].to_numpy(float)
                 + (1 - clv_weight) * candidates["incr_revenue"].to_numpy(float)
                 - candidates["cost"].to_numpy(float))
        rules[(rules == "") & (value < min_net_value)] = "min_net_value"
    hit = rules != ""
    frame = pd.DataFrame({"segment": candidates["segment"].to_numpy()[hit],
                          "action": candidates["action"].to_numpy()[hit],
                          "rule": rules[hit], "customer_id": candidates["customer_id"]
                          .to_numpy()[hit]})
    out = frame.groupby(["segment", "action", "rule"], sort=True).size().rename(
        "customers").reset_index()
    distinct = frame.groupby("rule")["customer_id"].nunique()
    return out, {str(r): int(n) for r, n in distinct.items()}


def contact_policy_row(as_of_date: dt.date, budget: float, planned_budget: float,
                       clv_weight: float, contact: ContactPolicy, result: AllocationResult,
                       free: AllocationResult, excluded: pd.DataFrame,
                       distinct: dict[str, int]) -> pd.DataFrame:
    """``marts.contact_policy``: the run's plan with (``result``) and without (``free``)
    the policy, on one row, with the policy's settings and its exclusion counts."""
    def totals(r: AllocationResult) -> dict[str, float]:
        chosen = r.plan[r.plan["action"] != NO_ACTION]
        return {"value": r.objective, "spent": r.spent, "selected": len(chosen),
                "incremental_clv": float(chosen["incr_clv"].sum()),
                "incremental_revenue": float(chosen["incr_revenue"].sum())}

    with_, without = totals(result), totals(free)
    row = {"plan_id": closed_loop.plan_id_for(as_of_date), "budget": budget,
           "planned_budget": planned_budget, "clv_weight": clv_weight,
           "contact_min_days": contact.min_days_between,
           "contact_max_per_window": contact.max_per_window,
           "contact_window_days": contact.window_days,
           "min_net_value": contact.min_net_value,
           **{f"{k}_with_policy": v for k, v in with_.items()},
           **{f"{k}_without_policy": v for k, v in without.items()},
           "policy_cost_value": without["value"] - with_["value"],
           "policy_cost_spend": without["spent"] - with_["spent"],
           **{f"customers_{r}": distinct.get(r, 0) for r in RULES},
           **{f"candidates_{r}": int(excluded.loc[excluded["rule"] == r, "customers"].sum())
              for r in RULES}}
    frame = pd.DataFrame([row])
    for column in ("contact_max_per_window", "min_net_value"):
        frame[column] = frame[column].astype(float)  # null when not set
    return frame


def allocate_with_policy(
    candidates: pd.DataFrame,
    rules: np.ndarray,
    as_of_date: dt.date,
    budget: float,
    clv_weight: float,
    contact: ContactPolicy,
    present_segments: set[str],
    segment_share_bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    action_capacity: Mapping[str, int] | None = None,
) -> PolicyAllocation:
    """The run's allocation: with the contact policy, without it, and its frontier.

    The allocator plans for ``budget / (1 - holdout share)``, so that the treated part
    of the plan (:func:`clv.decisions.closed_loop.trim_to_budget`) spends at most the
    budget.

    Args:
        candidates: :func:`clv.decisions.allocation.candidates.build_candidates`; its
            ``eligible`` column is set here (``rules == ""``), in place: at 2.57M
            customers a copy of the 12.85M candidates is not worth making.
        rules: Per candidate, the contact rule that rules it out ("" = eligible;
            :func:`clv.decisions.contact_policy.excluded_by`).
        as_of_date: The run's as-of date (the plan id).
        budget: The run's budget.
        clv_weight: The weight on incr_clv.
        contact: The contact policy (its ``min_net_value`` applies to the plan and the
            frontier).
        present_segments: Segments this run has: bounds of the others are skipped
            (:func:`present_share_bounds`).
        segment_share_bounds: Segment -> (min_share, max_share) of the amount spent.
        action_capacity: Action -> most customers that may receive it.

    Returns:
        The plans, the exclusions and the tables derived from them.
    """
    candidates[ELIGIBLE_COLUMN] = rules == ""
    constraints = dict(segment_share_bounds=present_share_bounds(segment_share_bounds or {},
                                                                 present_segments) or None,
                       action_capacity=action_capacity or None)
    planned_budget = closed_loop.allocation_budget(budget)
    threshold = contact.min_net_value
    solvable = prepared(candidates)  # one preparation for the three solves below
    result = allocate(solvable, planned_budget, clv_weight, min_net_value=threshold,
                      **constraints)
    result.plan["budget"] = budget  # the run's budget: what the treated may spend
    free = allocate(solvable, planned_budget, clv_weight, honour_eligibility=False,
                    **constraints)
    # only its totals are reported: keep its treated customers, not a row per customer
    # (0.44 GiB at 2.57M customers while the frontier is solved)
    free = dataclasses.replace(free, plan=free.plan[free.plan["action"] != NO_ACTION]
                               .reset_index(drop=True))
    excluded, distinct = policy_exclusions(candidates, rules, clv_weight, threshold)
    policy = contact_policy_row(as_of_date, budget, planned_budget, clv_weight, contact,
                                result, free, excluded, distinct)
    front = frontier(solvable, budget, min_net_value=threshold, **constraints)
    del solvable
    summary = budget_summary(result.plan, excluded).rename(columns=INCREMENT_NAMES)
    return PolicyAllocation(result=result, without_policy=free, planned_budget=planned_budget,
                            excluded=excluded, excluded_customers=distinct, policy=policy,
                            frontier=front, summary=summary)
