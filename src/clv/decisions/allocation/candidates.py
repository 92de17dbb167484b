"""Allocation candidates: one (customer, action) pair with its cost and expected increments.

A *candidate* has a cost and two expected increments: ``incr_clv`` (lifetime
value over the horizon) and ``incr_revenue`` (short-term revenue, 30 days). For
the weight ``clv_weight`` in [0, 1] its net value is::

    net_value = clv_weight * incr_clv + (1 - clv_weight) * incr_revenue - cost

An optional boolean ``eligible`` column carries the contact policy's verdict
(:mod:`clv.decisions.contact_policy`): False = never chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clv.data.catalog import NO_ACTION
from clv.decisions.segments import select_customer_columns

CANDIDATE_COLUMNS = ("customer_id", "segment", "action", "cost", "incr_clv", "incr_revenue")
SCORE_COLUMNS = ("customer_id", "segment", "predicted_clv", "p_churn")
#: Floor on P(active) when a customer's value if retained is derived from their
#: churn-weighted prediction (:func:`value_if_retained`): at most 10x predicted_clv.
MIN_P_ACTIVE = 0.1
#: Optional boolean candidate column: False = the contact policy forbids the candidate.
ELIGIBLE_COLUMN = "eligible"


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

    With the customer's absolute effects from ``effects``
    (:func:`clv.decisions.effects.customer_effects`)::

        incr_revenue = the revenue channel (money in the response window)
        incr_clv     = incr_revenue + min(incr_retention, p_churn) x value_if_retained

    The retention channel can only keep customers who would otherwise churn (a
    change in P(active) is at most p_churn), and one kept is worth their expected
    spend if active (:func:`value_if_retained`). So an action that only moves
    revenue wins on revenue and on CLV alike, and one that moves retention wins
    on CLV only: the weight clv_weight decides between them.

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



@dataclass(frozen=True)
class _Candidates:
    """Validated candidates sorted by (customer_id, action), as integer codes.

    Prepared once per call (and once for a whole
    :func:`clv.decisions.allocation.tradeoff.frontier`): on 12.85M
    candidates (2.57M customers x 5 actions) factorising the string ids took most
    of an allocation's 39 s when every clv_weight redid it.
    """

    frame: pd.DataFrame  # sorted, index 0..n-1
    customer: np.ndarray  # customer code per row, non-decreasing
    numbers: np.ndarray  # (n, 3): cost, incr_clv, incr_revenue
    segment: np.ndarray  # segment code per row
    action: np.ndarray  # action code per row
    segments: np.ndarray  # code -> segment name
    actions: np.ndarray  # code -> action name
    eligible: np.ndarray | None = None  # the contact policy's verdict per row, if given

    def net_value(self, clv_weight: float) -> np.ndarray:
        """Every candidate's net value at the weight ``clv_weight`` on incr_clv."""
        if not 0 <= clv_weight <= 1:
            raise ValueError(f"clv_weight must lie in [0, 1], got {clv_weight}")
        # clv_weight * incr_clv + (1 - clv_weight) * incr_revenue - cost, the same float
        # operations in the same order, with two arrays alive instead of four
        value = np.multiply(self.numbers[:, 1], clv_weight)
        value += np.multiply(self.numbers[:, 2], 1 - clv_weight)
        value -= self.numbers[:, 0]
        return value


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
    # codes are only compared and used as indexes: int32 / int16 instead of int64 hold
    # 15.4M candidates' codes (2.57M customers x 6 actions) in 0.3 GiB less
    return _Candidates(frame, _narrow(customer), numbers, _narrow(segment), _narrow(action),
                       np.asarray(segments), np.asarray(actions), eligible)


def _narrow(codes: np.ndarray) -> np.ndarray:
    """Factorize codes (0..m-1) in the smallest signed integer type that holds them."""
    top = int(codes.max(initial=0))
    return codes.astype(np.int16 if top < 2**15 else np.int32 if top < 2**31 else np.int64)
