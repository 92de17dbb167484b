"""Synthetic campaigns whose per-customer effects are known (the effects' ground truth).

Customers' features are sampled (:func:`sample_customer_features`); each action's true
effect on 30-day revenue and on retention depends on them (:func:`true_effects`);
:func:`simulate_campaign_outcomes` draws what a plan's customers then do, and
:func:`randomised_campaign_responses` a randomised campaign in the responses contract.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy import special

from clv.data.catalog import NO_ACTION
from clv.data.synthetic.hashing import customer_keys, uniforms

# --------------------------------------------------------------------------- action effects

#: Actions of the synthetic campaigns with known heterogeneous effects, and their
#: channel: the e-mail moves short-term revenue, the coupon moves retention.
EFFECT_ACTIONS = ("email", "retention_coupon")
#: Label of customers who get no action (the control arm).
_S_EFFECT_CONVERT, _S_EFFECT_BASKET, _S_EFFECT_ACTIVE, _S_EFFECT_ARM = range(30, 34)
_S_FEAT_R, _S_FEAT_T, _S_FEAT_M, _S_FEAT_W = range(40, 44)
#: Shape of the Gamma(mean 1) noise on a converted customer's basket.
_BASKET_SHAPE = 2.0


def past_year_spend(features: pd.DataFrame) -> pd.Series:
    """Spend in the 12 periods before the as-of date (``spend_p01..spend_p12``)."""
    columns = [f"spend_p{k:02d}" for k in range(1, 13)]
    missing = [c for c in columns + ["recency_days", "tenure_days"] if c not in features]
    if missing:
        raise ValueError(f"features: missing column(s) {missing}")
    return features[columns].sum(axis=1).astype(float)


def true_effects(features: pd.DataFrame) -> pd.DataFrame:
    """The true effect of each synthetic action per customer, from pre-treatment features.

    With R = ``recency_days``, T = ``tenure_days`` and M = past-year spend
    (:func:`past_year_spend`), and nothing else:

    * ``email``: ``tau_revenue = 4 exp(-R / 60) (0.3 + 0.7 min(M, 600) / 600)`` (money in
      the 30-day response window: 0 to 4, recent big spenders respond most);
      ``tau_retention = 0``.
    * ``retention_coupon``: ``tau_retention = 0.2 R / (R + 60) exp(-R / 240) min(T / 365, 1)``
      (probability of staying active over the horizon: 0 to about 0.08, largest for
      established customers who are lapsing, around R = 100 days); ``tau_revenue = 0``.

    Returns:
        customer_id, action, tau_revenue, tau_retention; one row per customer x action.
    """
    m = past_year_spend(features).to_numpy()
    r = features["recency_days"].to_numpy(float)
    t = features["tenure_days"].to_numpy(float)
    email = 4.0 * np.exp(-r / 60.0) * (0.3 + 0.7 * np.minimum(m, 600.0) / 600.0)
    coupon = 0.2 * r / (r + 60.0) * np.exp(-r / 240.0) * np.minimum(t / 365.0, 1.0)
    n = len(features)
    zeros = np.zeros(n)
    return pd.DataFrame({
        "customer_id": np.tile(features["customer_id"].to_numpy(), 2),
        "action": np.repeat(np.array(EFFECT_ACTIONS, dtype=object), n),
        "tau_revenue": np.concatenate([email, zeros]),
        "tau_retention": np.concatenate([zeros, coupon]),
    })


def _baseline(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """Untreated outcome model: 30-day conversion p0, basket size, P(active over horizon) q0."""
    m = past_year_spend(features).to_numpy()
    r = features["recency_days"].to_numpy(float)
    return {"p0": 0.02 + 0.25 * np.exp(-r / 45.0),
            "basket": 20.0 + 0.05 * np.minimum(m, 2000.0),
            "q0": 0.15 + 0.6 * np.exp(-r / 120.0)}


def expected_outcomes(features: pd.DataFrame, actions: pd.Series | np.ndarray) -> pd.DataFrame:
    """Expected outcomes per customer if given ``actions`` (aligned with ``features``; "none"
    for no action): ``p_convert`` (30 days), ``revenue`` (30 days), ``p_active`` (horizon).

    Treated = baseline + the true effect, exactly: conversion rises by
    ``tau_revenue / basket`` (a converted customer spends ``basket`` on average), so
    revenue rises by ``tau_revenue``; ``p_active = q0 + tau_retention``.
    """
    base = _baseline(features)
    actions = np.asarray(actions, dtype=object)
    unknown = sorted(set(actions) - set(EFFECT_ACTIONS) - {NO_ACTION})
    if unknown:
        raise ValueError(f"actions: unknown action(s) {unknown}; known {EFFECT_ACTIONS}")
    truth = true_effects(features)
    n = len(features)
    tau_rev, tau_ret = np.zeros(n), np.zeros(n)
    for k, action in enumerate(EFFECT_ACTIONS):
        mine = actions == action
        tau_rev[mine] = truth["tau_revenue"].to_numpy()[k * n:(k + 1) * n][mine]
        tau_ret[mine] = truth["tau_retention"].to_numpy()[k * n:(k + 1) * n][mine]
    p = base["p0"] + tau_rev / base["basket"]
    return pd.DataFrame({"customer_id": features["customer_id"].to_numpy(),
                         "p_convert": p, "revenue": p * base["basket"],
                         "p_active": base["q0"] + tau_ret, "basket": base["basket"]})


def simulate_campaign_outcomes(features: pd.DataFrame, assignment: pd.DataFrame,
                               seed: int) -> pd.DataFrame:
    """Randomised outcomes of an assignment: baseline + the true effect for the treated.

    Args:
        features: customer_id, recency_days, tenure_days, spend_p01..spend_p12.
        assignment: customer_id, action (the planned action), treated (1 = sent, 0 =
            held out: baseline outcomes).
        seed: Same seed and rows -> same outcomes (counter-based draws per customer id).

    Returns:
        The assignment's rows with ``converted`` (bought in the 30-day window),
        ``revenue`` (spent in it; a converted customer spends ``basket`` x Gamma(2, 1/2)),
        ``active`` (bought at least once over the horizon: converted, or otherwise with
        the probability that makes ``P(active) = q0 + tau_retention`` exactly).
    """
    missing = [c for c in ("customer_id", "action", "treated") if c not in assignment]
    if missing:
        raise ValueError(f"assignment: missing column(s) {missing}")
    feats = features.set_index("customer_id").loc[assignment["customer_id"]].reset_index()
    given = np.where(assignment["treated"].to_numpy() == 1,
                     assignment["action"].to_numpy(dtype=object), NO_ACTION)
    exp = expected_outcomes(feats, given)
    keys = customer_keys(assignment["customer_id"])
    p, q = exp["p_convert"].to_numpy(), exp["p_active"].to_numpy()
    if np.any(q < p):
        raise ValueError("the outcome model needs P(active) >= P(convert) for every customer")
    converted = uniforms(seed, _S_EFFECT_CONVERT, keys) < p
    noise = special.gammaincinv(_BASKET_SHAPE, uniforms(seed, _S_EFFECT_BASKET, keys))
    revenue = np.where(converted, np.round(exp["basket"].to_numpy() * noise / _BASKET_SHAPE,
                                           2), 0.0)
    other = 1.0 - (1.0 - q) / (1.0 - p)  # P(active | not converted)
    active = converted | (uniforms(seed, _S_EFFECT_ACTIVE, keys) < other)
    out = assignment.reset_index(drop=True).copy()
    out["converted"] = converted.astype("int64")
    out["revenue"] = revenue
    out["active"] = active.astype("int64")
    return out


def randomised_campaign_responses(features: pd.DataFrame, sent_date: dt.date, seed: int,
                                  campaign_id: str = "synthetic_effects",
                                  actions: tuple[str, ...] = EFFECT_ACTIONS) -> pd.DataFrame:
    """A campaign randomised over every customer: each gets one of ``actions`` or none,
    with equal probability (1 / (len(actions) + 1)), by a hash of (seed, customer id).

    Returns:
        The ``raw.campaign_responses`` contract (``RESPONSE_COLUMNS``; control rows have
        ``treatment`` 0 and action "none") plus ``retained`` (1 = active over the
        horizon), which the contract has no column for; ``clv.ingest.load_campaign_responses``
        writes the contract's columns.
    """
    arms = np.array([NO_ACTION, *actions], dtype=object)
    keys = customer_keys(features["customer_id"])
    arm = arms[np.minimum((uniforms(seed, _S_EFFECT_ARM, keys) * len(arms)).astype(int),
                          len(arms) - 1)]
    assignment = pd.DataFrame({"customer_id": features["customer_id"].to_numpy(),
                               "action": arm, "treated": (arm != NO_ACTION).astype("int64")})
    sim = simulate_campaign_outcomes(features, assignment, seed)
    out = pd.DataFrame({"customer_id": sim["customer_id"].astype(str),
                        "campaign_id": campaign_id, "sent_date": sent_date,
                        "treatment": sim["treated"], "action": sim["action"],
                        "converted": sim["converted"], "revenue": sim["revenue"]})
    out["retained"] = sim["active"]
    return out


def sample_customer_features(n_customers: int, seed: int) -> pd.DataFrame:
    """A features frame (``clv.features`` columns that the effects read) for pure-pandas
    tests of the closed loop: ``customer_id`` "c<k>", recency 1-365 days (skewed to
    recent), tenure >= recency, past-year spend Gamma(shape 1.5, mean 300) spread over
    ``spend_p01..spend_p12``."""
    k = np.arange(n_customers)
    recency = 1 + np.floor(364 * uniforms(seed, _S_FEAT_R, k) ** 1.5)
    tenure = recency + np.floor(730 * uniforms(seed, _S_FEAT_T, k))
    spend = special.gammaincinv(1.5, uniforms(seed, _S_FEAT_M, k)) * 200.0
    weights = uniforms(seed, _S_FEAT_W, k[:, None], np.arange(12)[None, :])
    weights = weights / weights.sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"customer_id": np.char.add("c", k.astype(str)).astype(object),
                          "recency_days": recency.astype(int),
                          "tenure_days": tenure.astype(int)})
    for j in range(12):
        frame[f"spend_p{j + 1:02d}"] = spend * weights[:, j]
    return frame
