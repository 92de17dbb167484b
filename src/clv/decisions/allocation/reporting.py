"""What an allocation reports: the budget summary, the published plan, the action effects.

Frames for the marts (``marts.budget_summary``, ``marts.budget_allocation``,
``marts.action_effects``), computed from the plan and the effects; no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clv.data.catalog import NO_ACTION
from clv.data.frames import by_customer, join_one_to_one
from clv.decisions import effects
from clv.decisions.contact_policy import RULES
from clv.decisions.segments import DEFAULT_ACTIONS

#: The plan's increments, named for analysts.
INCREMENT_NAMES = {"incr_clv": "expected_incremental_clv",
                   "incr_revenue": "expected_incremental_revenue",
                   "incr_retention": "expected_incremental_retention",
                   "incr_revenue_low": "expected_incremental_revenue_low",
                   "incr_revenue_high": "expected_incremental_revenue_high"}


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



def published_plan(plan: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """The plan as ``marts.budget_allocation`` holds it: named increments
    (:data:`INCREMENT_NAMES`), the scores' model versions.

    Args:
        plan: ``AllocationResult.plan``.
        scores: customer_id, clv_model_version, churn_model_version; one row per customer.

    Returns:
        The plan renamed, uplift_source and effect_method "none" where no action, with
        the model versions that scored each customer.
    """
    plan = plan.rename(columns=INCREMENT_NAMES)
    for column in ("uplift_source", "effect_method"):
        plan[column] = plan[column].fillna(NO_ACTION)
    return join_one_to_one(plan, scores[["customer_id", "clv_model_version",
                                         "churn_model_version"]])


def action_effects_table(per_customer: pd.DataFrame, covariates: pd.DataFrame,
                         measured: dict[str, Any]) -> pd.DataFrame:
    """``marts.action_effects``: per action and history cell, the expected effects and
    their evidence.

    Args:
        per_customer: :func:`clv.decisions.effects.customer_effects` (sorted by
            customer_id, then action).
        covariates: :func:`clv.decisions.effects.effect_covariates` of the same customers.
        measured: Action -> its fitted effect (:func:`clv.decisions.effects.fit_action_effect`);
            actions absent keep the catalogue's prior.

    Returns:
        One row per (action, cell): customers, the effects' mean / range / bounds, and the
        evidence (campaign, cell counts, measured effect, shrink, Qini, outside support).
    """
    evidence = {a.name: a.evidence for a in DEFAULT_ACTIONS}
    cells = pd.Categorical(effects.cell_of(
        by_customer(covariates)["history"].to_numpy(float)))
    n = len(cells)
    k = len(per_customer) // n if n else 0
    actions = per_customer["action"].to_numpy()
    names = list(actions[:k])
    if n * k != len(per_customer) or names != sorted(set(names)) or not np.array_equal(
            actions, np.tile(np.asarray(names, dtype=object), n)):
        raise ValueError("per_customer must hold one row per customer of covariates and "
                         "action, sorted by customer_id then action (customer_effects)")
    # Grouped by codes: no copy of the 15M (customer, action) rows, no hashing of names
    frame = pd.DataFrame({
        "action": pd.Categorical.from_codes(np.tile(np.arange(k), n), categories=names),
        "cell": pd.Categorical.from_codes(np.repeat(cells.codes, k), cells.categories),
        **{c: per_customer[c].to_numpy() for c in per_customer.columns if c != "action"}},
        copy=False)
    table = frame.groupby(["action", "cell"], sort=True, observed=True).agg(
        customers=("customer_id", "size"),
        uplift_source=("uplift_source", "first"), effect_method=("effect_method", "first"),
        incr_revenue_mean=("incr_revenue", "mean"), incr_revenue_min=("incr_revenue", "min"),
        incr_revenue_max=("incr_revenue", "max"),
        incr_revenue_low=("incr_revenue_low", "mean"),
        incr_revenue_high=("incr_revenue_high", "mean"),
        incr_retention=("incr_retention", "mean"),
        incr_retention_low=("incr_retention_low", "mean"),
        incr_retention_high=("incr_retention_high", "mean")).reset_index()
    table = table.astype({"action": object, "cell": object})
    rows = []
    for r in table.itertuples(index=False):
        e = measured.get(r.action)
        cell = e.cells.loc[r.cell] if e is not None and r.cell in e.cells.index else None
        rows.append({
            "campaign_id": e.campaign_id if e else None,
            "evidence": (f"{e.source} {e.campaign_id}, {e.method}" if e else evidence[r.action]),
            "n_treated": float(cell["n_treated"]) if cell is not None else np.nan,
            "n_control": float(cell["n_control"]) if cell is not None else np.nan,
            "measured_effect": float(cell["effect"]) if cell is not None else np.nan,
            "shrink": float(cell["shrink"]) if cell is not None else np.nan,
            "qini_uplift_model": e.qini[effects.MODEL] if e else np.nan,
            "qini_segment_average": e.qini[effects.AVERAGE] if e else np.nan,
            "outside_support": effects.outside_support(e, covariates) if e else np.nan})
    return pd.concat([table, pd.DataFrame(rows)], axis=1)
