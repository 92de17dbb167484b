"""Customer segments: a value x churn-risk grid with readable names, and their summary.

The budgeted action plan lives in :mod:`clv.decisions.allocation`.

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

from clv.config import DEFAULT_ACTION_COSTS, RECOMMENDATION_EMAIL_COST
from clv.data.catalog import NO_ACTION

__all__ = [
    "Action",
    "DEFAULT_ACTIONS",
    "EffectPrior",
    "SEGMENTS",
    "VALUE_TIERS",
    "assign_segments",
    "segment_summary",
]

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
#: Churn probability from which a customer's churn risk is "high" (at risk); the churn
#: alerts (:mod:`clv.decisions.alerts`) use the same line.
CHURN_THRESHOLD = 0.5
#: Churn probability from which a customer outside the high value tier is "lost".
LOST_THRESHOLD = 0.9


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
    from clv.data.frames import by_customer

    return by_customer(frame)


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
    scores: pd.DataFrame, churn_threshold: float = CHURN_THRESHOLD,
    lost_threshold: float = LOST_THRESHOLD,
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
    tier_code = np.where(clv <= low_max, 0, np.where(clv <= mid_max, 1, 2))
    high_risk = (p_churn >= churn_threshold).to_numpy()
    lost = (p_churn >= lost_threshold).to_numpy() & (tier_code != 2)
    tier = np.array(["low", "mid", "high"])[tier_code]
    risk = np.where(high_risk, "high", "low")
    # 3 tiers x 2 risks x lost or not: each text made once, not once per customer
    combos = [(t, r, is_lost) for t in ("low", "mid", "high") for r in ("low", "high")
              for is_lost in (False, True)]
    code = tier_code * 4 + high_risk * 2 + lost
    segment = np.array([LOST_SEGMENT if is_lost else SEGMENTS[(t, r)]
                        for t, r, is_lost in combos], dtype=object)[code]
    definition = np.array([f"{_value_tier_text(t, low_max, mid_max)} and "
                           f"{_churn_risk_text(r, is_lost, churn_threshold, lost_threshold)}"
                           for t, r, is_lost in combos], dtype=object)[code]
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
class EffectPrior:
    """An assumed absolute effect with its stated range (``low <= expected <= high``)."""

    expected: float
    low: float
    high: float

    def __post_init__(self) -> None:
        values = (self.low, self.expected, self.high)
        if not all(np.isfinite(v) for v in values) or not self.low <= self.expected <= self.high:
            raise ValueError(f"need finite low <= expected <= high, got {values}")


NO_EFFECT = EffectPrior(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Action:
    """A marketing action that can be sent to one customer, and what it moves.

    Each action declares what it moves (revenue, retention) as absolute priors (used
    wherever no randomised experiment measured the action; see :mod:`clv.decisions.effects`):

    Attributes:
        name: Identifier written to the plan.
        cost: Cost per customer, in the currency of predicted_clv; must be > 0.
        revenue: Extra revenue per customer in the response window (money).
        retention: Change in the probability of staying active over the horizon.
        evidence: Where the prior comes from, in words (shown to analysts).
        channel: How it reaches the customer; opt-outs and frequency caps are per
            channel (:mod:`clv.decisions.contact_policy`).
    """

    name: str
    cost: float
    revenue: EffectPrior = NO_EFFECT
    retention: EffectPrior = NO_EFFECT
    evidence: str = ""
    channel: str = "email"

    def __post_init__(self) -> None:
        if not self.name or self.name == NO_ACTION:
            raise ValueError(f"action name must be non-empty and not {NO_ACTION!r}")
        if not self.cost > 0:
            raise ValueError(f"action {self.name!r}: cost must be > 0, got {self.cost}")
        if not (-1 <= self.retention.low and self.retention.high <= 1):
            raise ValueError(f"action {self.name!r}: a retention effect is a probability change")


#: The catalogue. E-mails move short-term revenue; the coupon and the perk move
#: retention (the coupon a little revenue too). The two Hillstrom e-mails' priors are
#: the experiment's overall effects (difference in mean two-week spend, 95% Welch
#: interval: Mens +0.770 [0.485, 1.055], Womens +0.424 [0.169, 0.680]; tests check
#: them against the data); the win-back e-mail is assumed to do what the weaker arm
#: did, to lapsed customers. The retention priors are assumptions stated as ranges:
#: the product replaces them with measured effects once the shop's own campaigns
#: (every plan keeps a randomised holdout) have been measured.
DEFAULT_ACTIONS: tuple[Action, ...] = (
    Action("winback_email", DEFAULT_ACTION_COSTS["winback_email"],
           revenue=EffectPrior(0.42, 0.0, 0.68), retention=EffectPrior(0.01, 0.0, 0.02),
           evidence="assumed: Hillstrom's weaker e-mail arm, +1 point of retention"),
    Action("retention_coupon", DEFAULT_ACTION_COSTS["retention_coupon"],
           revenue=EffectPrior(0.50, 0.0, 1.50), retention=EffectPrior(0.04, 0.01, 0.07),
           evidence="assumed: +4 points of retention (1-7), a little revenue now"),
    Action("loyalty_perk", DEFAULT_ACTION_COSTS["loyalty_perk"],
           revenue=EffectPrior(0.0, 0.0, 0.50), retention=EffectPrior(0.06, 0.02, 0.10),
           evidence="assumed: +6 points of retention (2-10)",
           channel="account"),  # credited to the customer's account, not a message
    Action("mens_email", DEFAULT_ACTION_COSTS["mens_email"],
           revenue=EffectPrior(0.770, 0.485, 1.055),
           evidence="Hillstrom 2008, Mens E-Mail vs no e-mail, overall"),
    Action("womens_email", DEFAULT_ACTION_COSTS["womens_email"],
           revenue=EffectPrior(0.424, 0.169, 0.680),
           evidence="Hillstrom 2008, Womens E-Mail vs no e-mail, overall"),
    # offered only to customers with a product list (clv.decisions.recommendation_action)
    Action("recommendation_email", RECOMMENDATION_EMAIL_COST,
           revenue=EffectPrior(0.424, 0.0, 0.770),
           evidence="assumed: a personalised e-mail does what Hillstrom's weaker arm did "
                    "(up to the stronger arm's +0.77), until the shop's holdout measures it"),
)


def _summary_rows(frame: pd.DataFrame, grouping: str, by: str, n_total: int) -> pd.DataFrame:
    table = frame.groupby(by, sort=True).agg(
        customers=("customer_id", "size"),
        avg_predicted_clv=("predicted_clv", "mean"),
        total_predicted_clv=("predicted_clv", "sum"),
        avg_p_churn=("p_churn", "mean"),
        total_expected_revenue_30d=("expected_revenue_30d", "sum"),
        definition=("definition", lambda d: " | ".join(sorted(set(d)))),
    ).reset_index().rename(columns={by: "segment"})
    table.insert(0, "grouping", grouping)
    table.insert(3, "share", table["customers"] / float(n_total))
    table["segment"] = table["segment"].astype(str)
    return table


def segment_summary(segments: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Per segment of the value x risk grid and per behavioural cluster: size and value.

    Args:
        segments: customer_id, segment, segment_definition, and (optional) cluster,
            cluster_profile; one row per customer.
        scores: customer_id, predicted_clv, p_churn, expected_revenue_30d.

    Returns:
        grouping ("value_risk" or "behaviour_cluster"), segment (the segment's name,
        or "cluster_<n>"), customers, share (of all customers), avg_predicted_clv,
        total_predicted_clv, avg_p_churn, total_expected_revenue_30d, definition
        (the rule in words; several rules joined by " | " when the segment has more
        than one, e.g. lost); sorted by grouping, then segment.
    """
    from clv.data.frames import join_one_to_one

    frame = join_one_to_one(select_customer_columns(segments, tuple(
        c for c in ("customer_id", "segment", "segment_definition", "cluster",
                    "cluster_profile") if c in segments.columns)),
        select_customer_columns(scores, ("customer_id", "predicted_clv", "p_churn",
                                         "expected_revenue_30d")))
    if len(frame) != len(segments):
        raise ValueError(f"{len(segments) - len(frame)} segmented customers have no score")
    parts = [_summary_rows(frame.assign(definition=frame["segment_definition"]),
                           "value_risk", "segment", len(frame))]
    if "cluster" in frame.columns:
        clusters = frame.assign(definition=frame["cluster_profile"],
                                cluster="cluster_" + frame["cluster"].astype(str))
        parts.append(_summary_rows(clusters, "behaviour_cluster", "cluster", len(frame)))
    return pd.concat(parts, ignore_index=True)
