"""Turn scores into decisions: customer segments and a budgeted action plan.

Input everywhere is a scores frame with one row per customer and the columns
``customer_id``, ``predicted_clv`` (predicted spend over the horizon) and
``p_churn`` (predicted probability of no purchase over the horizon).
Outputs are sorted by ``customer_id`` so they are identical whatever the row
order of the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "Action",
    "DEFAULT_ACTIONS",
    "SEGMENTS",
    "VALUE_TIERS",
    "allocate_budget",
    "assign_segments",
    "expected_incremental_value",
]

ArrayOrFloat = np.ndarray | pd.Series | float
SCORE_COLUMNS = ("customer_id", "predicted_clv", "p_churn")
VALUE_TIERS = ("low", "mid", "high")
#: (value tier, churn risk) -> segment name. "lost" overrides it (see assign_segments).
SEGMENTS: dict[tuple[str, str], str] = {
    ("high", "low"): "champions",
    ("mid", "low"): "loyal",
    ("low", "low"): "promising",
    ("high", "high"): "at_risk_high_value",
    ("mid", "high"): "needs_attention",
    ("low", "high"): "hibernating",
}
LOST_SEGMENT = "lost"
NO_ACTION = "none"
#: Slack when checking that a cost fits the remaining budget, in currency units:
#: it absorbs float rounding (0.1 + 0.2 > 0.3 in binary) and nothing more.
_BUDGET_SLACK = 1e-9


def select_customer_columns(scores: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``columns`` of a one-row-per-customer frame, after checking they exist and that
    ``customer_id`` is present and unique. Raises ValueError naming what is wrong."""
    missing = [c for c in columns if c not in scores.columns]
    if missing:
        raise ValueError(f"scores is missing columns {missing}; needs {list(columns)}")
    frame = scores.loc[:, list(columns)]
    if frame["customer_id"].isna().any() or frame["customer_id"].duplicated().any():
        raise ValueError("customer_id must be present and unique (one row per customer)")
    return frame


def _validate_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Check the scores frame and return its score columns sorted by customer_id."""
    frame = select_customer_columns(scores, SCORE_COLUMNS)
    for column in ("predicted_clv", "p_churn"):
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any() or np.isinf(values.to_numpy(dtype=float)).any():
            raise ValueError(f"{column} must be finite numbers (no NaN)")
        frame[column] = values.astype(float)
    if ((frame["p_churn"] < 0) | (frame["p_churn"] > 1)).any():
        raise ValueError("p_churn must lie in [0, 1]")
    return frame.sort_values("customer_id", kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------- segments


def _value_tier_text(tier: str, low_max: float, mid_max: float) -> str:
    """Human-readable definition of a value tier."""
    if tier == "low":
        return f"value tier low (predicted_clv <= {low_max:.2f})"
    if tier == "mid":
        return f"value tier mid ({low_max:.2f} < predicted_clv <= {mid_max:.2f})"
    return f"value tier high (predicted_clv > {mid_max:.2f})"


def _churn_risk_text(risk: str, lost: bool, churn_threshold: float, lost_threshold: float) -> str:
    """Human-readable definition of a churn-risk level."""
    if lost:
        return f"churn risk lost (p_churn >= {lost_threshold:.2f})"
    if risk == "high":
        return f"churn risk high (p_churn >= {churn_threshold:.2f})"
    return f"churn risk low (p_churn < {churn_threshold:.2f})"


def assign_segments(
    scores: pd.DataFrame, churn_threshold: float = 0.5, lost_threshold: float = 0.9
) -> pd.DataFrame:
    """Place every customer in a value tier, a churn-risk level and a named segment.

    Value tiers are terciles of predicted_clv within ``scores``: low <= 1/3 quantile
    < mid <= 2/3 quantile < high (linear-interpolated quantiles; a value equal to a
    threshold goes to the lower tier). Churn risk is "high" when p_churn >=
    ``churn_threshold``. The segment comes from ``SEGMENTS``, except that a
    customer outside the high tier with p_churn >= ``lost_threshold`` is "lost"
    (a high-value customer is never written off: they stay at_risk_high_value).

    Args:
        scores: customer_id, predicted_clv, p_churn; one row per customer.
        churn_threshold: Churn probability from which risk is "high".
        lost_threshold: Churn probability from which a non-high-value customer is lost.

    Returns:
        customer_id, value_tier, churn_risk, segment, segment_definition,
        value_low_max, value_mid_max; sorted by customer_id.
    """
    if not 0 <= churn_threshold <= lost_threshold <= 1:
        raise ValueError("thresholds must satisfy 0 <= churn_threshold <= lost_threshold <= 1")
    frame = _validate_scores(scores)
    if frame.empty:
        raise ValueError("scores is empty: terciles are undefined")
    low_max, mid_max = (float(q) for q in frame["predicted_clv"].quantile([1 / 3, 2 / 3]))
    clv, p_churn = frame["predicted_clv"], frame["p_churn"]
    tier = np.where(clv <= low_max, "low", np.where(clv <= mid_max, "mid", "high"))
    risk = np.where(p_churn >= churn_threshold, "high", "low")
    lost = (p_churn >= lost_threshold).to_numpy() & (tier != "high")
    segment = [
        LOST_SEGMENT if is_lost else SEGMENTS[(t, r)]
        for t, r, is_lost in zip(tier, risk, lost, strict=True)
    ]
    definition = [
        f"{_value_tier_text(t, low_max, mid_max)} and "
        f"{_churn_risk_text(r, is_lost, churn_threshold, lost_threshold)}"
        for t, r, is_lost in zip(tier, risk, lost, strict=True)
    ]
    return pd.DataFrame({
        "customer_id": frame["customer_id"],
        "value_tier": tier,
        "churn_risk": risk,
        "segment": segment,
        "segment_definition": definition,
        "value_low_max": low_max,
        "value_mid_max": mid_max,
    })


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Action:
    """A marketing action that can be sent to one customer.

    Attributes:
        name: Identifier written to the plan.
        cost: Cost per customer, in the currency of predicted_clv; must be > 0.
        retention_uplift: Share of an at-risk customer's value the action saves.
        spend_uplift: Relative lift in spend of a customer who stays active.
    """

    name: str
    cost: float
    retention_uplift: float
    spend_uplift: float

    def __post_init__(self) -> None:
        if not self.name or self.name == NO_ACTION:
            raise ValueError(f"action name must be non-empty and not {NO_ACTION!r}")
        if not self.cost > 0:
            raise ValueError(f"action {self.name!r}: cost must be > 0, got {self.cost}")


DEFAULT_ACTIONS: tuple[Action, ...] = (
    Action("winback_email", cost=0.50, retention_uplift=0.02, spend_uplift=0.00),
    Action("retention_coupon", cost=5.00, retention_uplift=0.10, spend_uplift=0.00),
    Action("loyalty_perk", cost=8.00, retention_uplift=0.03, spend_uplift=0.05),
)


def expected_incremental_value(
    action: Action, predicted_clv: ArrayOrFloat, p_churn: ArrayOrFloat
) -> ArrayOrFloat:
    """Expected extra value from sending ``action``, before its cost.

    The at-risk part of the value (clv x p_churn) is saved at the retention uplift;
    the safe part (clv x (1 - p_churn)) grows by the spend uplift.

    Args:
        action: The action.
        predicted_clv: Predicted value over the horizon.
        p_churn: Predicted churn probability over the horizon.

    Returns:
        predicted_clv * (retention_uplift * p_churn + spend_uplift * (1 - p_churn)).
    """
    return predicted_clv * (
        action.retention_uplift * p_churn + action.spend_uplift * (1 - p_churn)
    )


def _best_actions(frame: pd.DataFrame, actions: tuple[Action, ...]) -> pd.DataFrame:
    """Each customer's most efficient profitable action (value per cost), if any.

    Actions with equal value per cost are resolved by catalogue order (first wins).
    """
    best = pd.DataFrame({
        "customer_id": frame["customer_id"],
        "action": NO_ACTION,
        "cost": 0.0,
        "expected_incremental_value": 0.0,
        "value_per_cost": np.nan,
    })
    for action in actions:
        value = expected_incremental_value(action, frame["predicted_clv"], frame["p_churn"])
        ratio = value / action.cost
        better = (value > action.cost) & ~(ratio <= best["value_per_cost"])  # NaN: none yet
        best.loc[better, "action"] = action.name
        best.loc[better, "cost"] = action.cost
        best.loc[better, "expected_incremental_value"] = value[better]
        best.loc[better, "value_per_cost"] = ratio[better]
    return best


def _greedy_pick(candidates: pd.DataFrame, budget: float) -> list[int]:
    """Row labels taken in value-per-cost order; an item that does not fit is
    skipped and the walk goes on, since a cheaper one further down may still fit."""
    ordered = candidates.sort_values(
        ["value_per_cost", "customer_id"], ascending=[False, True], kind="mergesort"
    )
    taken: list[int] = []
    spent = 0.0
    for label, cost in ordered["cost"].items():
        if spent + cost <= budget + _BUDGET_SLACK:
            taken.append(label)
            spent += cost
    return taken


def allocate_budget(
    scores: pd.DataFrame, budget: float, actions: tuple[Action, ...] = DEFAULT_ACTIONS
) -> pd.DataFrame:
    """Greedy action plan: the most value per unit cost first, within ``budget``.

    Each customer is offered at most one action: the one with the highest expected
    value per unit cost among those whose expected value exceeds their cost.
    Candidates are walked by value per cost (descending, ties by customer_id
    ascending) and taken while their cost fits the remaining budget.

    Args:
        scores: customer_id, predicted_clv, p_churn; one row per customer.
        budget: Total spend allowed, >= 0.
        actions: The action catalogue; names must be unique.

    Returns:
        One row per customer, sorted by customer_id: customer_id, action ("none" if
        not chosen), cost and expected_incremental_value (0 if none),
        value_per_cost (NaN if none), rank (1..k in pick order, <NA> if none), budget.
    """
    if not np.isfinite(budget) or budget < 0:
        raise ValueError(f"budget must be a finite number >= 0, got {budget}")
    names = [a.name for a in actions]
    if len(set(names)) != len(names):
        raise ValueError(f"action names must be unique, got {names}")
    frame = _validate_scores(scores)
    best = _best_actions(frame, tuple(actions))
    taken = _greedy_pick(best[best["action"] != NO_ACTION], float(budget))
    plan = best.copy()
    plan["rank"] = pd.Series(pd.NA, index=plan.index, dtype="Int64")
    plan.loc[taken, "rank"] = np.arange(1, len(taken) + 1)
    not_taken = ~plan.index.isin(taken)
    plan.loc[not_taken, ["action", "cost", "expected_incremental_value", "value_per_cost"]] = [
        NO_ACTION, 0.0, 0.0, np.nan
    ]
    plan["budget"] = float(budget)
    return plan
