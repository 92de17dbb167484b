"""Campaign response uplift: average effects measured by randomised experiments.

The input contract is ``raw.campaign_responses``: one row per customer and
campaign, with the columns ``customer_id, campaign_id, sent_date, treatment,
action, converted, revenue``. ``treatment`` is 1 when the customer was sent
``action`` and 0 when they were held out; ``converted`` is 0/1 and ``revenue``
the spend in the campaign's response window (0 when none).

Within one campaign every held-out row (``treatment == 0``) is the control group
of every action the campaign tested, whatever its ``action`` label says: the
randomisation is done per campaign, so that is the comparable group. The uplift
of an action is the difference in means treated - control (conversion rate and
revenue per customer), with a normal-approximation confidence interval built on
the unpooled (Welch) standard error ``sqrt(s_t^2 / n_t + s_c^2 / n_c)``.

These are the *average* effects of a campaign (overall and per segment), for
reporting and for the closed loop's measurements. What the allocation uses per
customer, in absolute units and with its evidence, is built by :mod:`clv.decisions.effects`
from the same rows; a campaign may carry the pre-treatment covariates
``recency_months, history, newbie`` (``COVARIATE_COLUMNS``; Hillstrom's do), which
the per-customer effect models learn from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

# The contract of raw.campaign_responses belongs to the import (clv.ingest.feedback);
# re-exported here.
from clv.data.catalog import NO_ACTION as CONTROL_ACTION
from clv.ingest import COVARIATE_COLUMNS, RESPONSE_COLUMNS

__all__ = [
    "ALL_SEGMENTS",
    "CONTROL_ACTION",
    "COVARIATE_COLUMNS",
    "HILLSTROM_CAMPAIGN",
    "HISTORY_BANDS",
    "RESPONSE_COLUMNS",
    "UPLIFT_COLUMNS",
    "MIN_ARM_SIZE",
    "estimate_uplift",
    "latest_campaign",
    "load_hillstrom",
]

UPLIFT_COLUMNS = (
    "campaign_id", "segment", "action", "n_treated", "n_control",
    "conversion_treated", "conversion_control", "uplift_conversion",
    "uplift_conversion_low", "uplift_conversion_high",
    "revenue_treated", "revenue_control", "uplift_revenue",
    "uplift_revenue_low", "uplift_revenue_high", "lift_revenue", "confidence", "source",
)
#: Fewest customers per arm (treated and control) for a segment's own estimate;
#: smaller segments use the campaign's overall estimate (segment "all"). At 0.6%
#: conversion a 2,000-customer arm sees about 12 conversions: fewer and the
#: per-segment interval is wider than the effect.
MIN_ARM_SIZE = 2_000
#: Segment label of rows estimated over every customer (``by=None``).
ALL_SEGMENTS = "all"
#: Action label of held-out customers in the Hillstrom mapping.
HILLSTROM_CAMPAIGN = "hillstrom_2008"
#: Nominal: the data set does not say when the e-mails went out, only that the
#: outcomes cover the two weeks after; the challenge was published in March 2008.
HILLSTROM_SENT_DATE = pd.Timestamp("2008-03-01")
_HILLSTROM_ACTIONS = {"Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email",
                      "No E-Mail": CONTROL_ACTION}
#: Past-year spend (Hillstrom ``history``) bands that name the Hillstrom segments;
#: the edges are those of its own ``history_segment`` (bands 1 | 2-3 | 4-7 merged
#: so that each segment keeps > 4,000 customers per arm).
HISTORY_BANDS = ((100.0, "history_0_100"), (350.0, "history_100_350"),
                  (np.inf, "history_350_plus"))

def _history_segment(history: pd.Series) -> np.ndarray:
    """Segment label per customer from past-year spend (see ``HISTORY_BANDS``)."""
    edges = np.array([edge for edge, _ in HISTORY_BANDS])
    names = np.array([name for _, name in HISTORY_BANDS])
    return names[np.searchsorted(edges, history.to_numpy(dtype=float), side="right")]


def load_hillstrom(path: str | Path) -> pd.DataFrame:
    """The Hillstrom e-mail experiment in the ``raw.campaign_responses`` contract.

    Mapping: customer_id = 1-based row number (as text); campaign_id =
    ``"hillstrom_2008"``; sent_date = 2008-03-01 (nominal, see
    ``HILLSTROM_SENT_DATE``); treatment = 1 for "Mens E-Mail" / "Womens E-Mail"
    and 0 for "No E-Mail"; action = "mens_email" / "womens_email" / "none";
    converted = ``conversion``; revenue = ``spend``. The extra ``segment`` column
    is a pre-campaign attribute, the past-year spend band: ``history_0_100``
    (< $100), ``history_100_350`` ($100 to < $350), ``history_350_plus``; the
    pre-campaign covariates ``COVARIATE_COLUMNS`` are Hillstrom's ``recency``
    (months), ``history`` (past-year spend) and ``newbie``.

    Args:
        path: The Hillstrom CSV (gzip is fine).

    Returns:
        The contract's columns plus ``segment``, one row per customer, in file order.
    """
    raw = pd.read_csv(path)
    unknown = set(raw["segment"].unique()) - set(_HILLSTROM_ACTIONS)
    if unknown:
        raise ValueError(f"unexpected Hillstrom arms {sorted(unknown)}")
    action = raw["segment"].map(_HILLSTROM_ACTIONS)
    return pd.DataFrame({
        "customer_id": (np.arange(len(raw)) + 1).astype(str),
        "campaign_id": HILLSTROM_CAMPAIGN,
        "sent_date": HILLSTROM_SENT_DATE,
        "treatment": (action != CONTROL_ACTION).astype("int64"),
        "action": action,
        "converted": raw["conversion"].astype("int64"),
        "revenue": raw["spend"].astype(float),
        "segment": _history_segment(raw["history"]),
        "recency_months": raw["recency"].astype(float),
        "history": raw["history"].astype(float),
        "newbie": raw["newbie"].astype(float),
    })


def _validate_responses(responses: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Check the contract and return the columns the estimate needs."""
    needed = ["campaign_id", "treatment", "action", "converted", "revenue"]
    needed += [by] if by is not None else []
    missing = [c for c in needed if c not in responses.columns]
    if missing:
        raise ValueError(f"responses is missing columns {missing}")
    frame = responses.loc[:, needed].copy()
    if by is None:
        frame["segment"] = ALL_SEGMENTS
    else:
        frame = frame.rename(columns={by: "segment"})
    if frame["segment"].isna().any():
        raise ValueError(f"{by} must be present on every row")
    if not frame["treatment"].isin([0, 1]).all():
        raise ValueError("treatment must be 0 (control) or 1 (treated)")
    if not frame["converted"].isin([0, 1]).all():
        raise ValueError("converted must be 0 or 1")
    if frame["revenue"].isna().any():
        raise ValueError("revenue must be present (0 when the customer did not buy)")
    return frame


def _arm_stats(frame: pd.DataFrame, keys: list[str], suffix: str) -> pd.DataFrame:
    """n, means and sample variances (ddof=1) of converted and revenue per group."""
    stats = frame.groupby(keys, sort=True, observed=True).agg(
        n=("converted", "size"),
        conversion=("converted", "mean"), conversion_var=("converted", "var"),
        revenue=("revenue", "mean"), revenue_var=("revenue", "var"),
    )
    return stats.add_suffix(suffix).reset_index()


def _difference(table: pd.DataFrame, outcome: str, z: float) -> pd.DataFrame:
    """Add uplift_<outcome> and its Welch normal-approximation interval."""
    diff = table[f"{outcome}_t"] - table[f"{outcome}_c"]
    se = np.sqrt(table[f"{outcome}_var_t"] / table["n_t"]
                 + table[f"{outcome}_var_c"] / table["n_c"])
    table[f"uplift_{outcome}"] = diff
    table[f"uplift_{outcome}_low"] = diff - z * se
    table[f"uplift_{outcome}_high"] = diff + z * se
    return table


def estimate_uplift(
    responses: pd.DataFrame, by: str | None = "segment", confidence: float = 0.95
) -> pd.DataFrame:
    """Uplift of each tested action over its campaign's control group, per group.

    For every campaign, group (value of ``by``) and action with treated rows:
    means of ``converted`` and ``revenue`` among the treated and among the
    campaign's controls in the same group, their difference, and a two-sided
    ``confidence`` interval ``diff +- z * sqrt(s_t^2/n_t + s_c^2/n_c)`` (sample
    variances, ddof=1). An arm with fewer than 2 rows gives a NaN interval.

    Args:
        responses: Rows in the ``raw.campaign_responses`` contract.
        by: Column to estimate per value of (named ``segment`` in the output),
            or None for one estimate over everyone (segment ``"all"``).
        confidence: Coverage of the interval, in (0, 1).

    Returns:
        ``UPLIFT_COLUMNS``; source ``"experiment"``; sorted by campaign, segment, action.
        Groups with no control rows are left out.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    frame = _validate_responses(responses, by)
    keys = ["campaign_id", "segment"]
    treated = _arm_stats(frame[frame["treatment"] == 1], keys + ["action"], "_t")
    control = _arm_stats(frame[frame["treatment"] == 0], keys, "_c")
    table = treated.merge(control, on=keys, how="inner")
    z = float(norm.ppf(0.5 + confidence / 2))
    table = _difference(_difference(table, "conversion", z), "revenue", z)
    table = table.rename(columns={
        "n_t": "n_treated", "n_c": "n_control",
        "conversion_t": "conversion_treated", "conversion_c": "conversion_control",
        "revenue_t": "revenue_treated", "revenue_c": "revenue_control",
    })
    # NaN, not inf, where the control group spent nothing: the lift is undefined.
    control_revenue = table["revenue_control"].where(table["revenue_control"] != 0)
    table["lift_revenue"] = table["uplift_revenue"] / control_revenue
    table["confidence"] = confidence
    table["source"] = "experiment"
    return table.loc[:, list(UPLIFT_COLUMNS)].sort_values(
        ["campaign_id", "segment", "action"], kind="mergesort").reset_index(drop=True)


def latest_campaign(responses: pd.DataFrame, as_of_date) -> pd.DataFrame:
    """The rows of the most recent campaign sent strictly before ``as_of_date``.

    Point in time: a campaign sent on or after the as-of date is not known yet.
    Ties in sent_date go to the larger campaign_id. Empty when none qualifies.
    """
    if responses.empty:
        return responses
    sent = pd.to_datetime(responses["sent_date"])
    known = responses[sent < pd.Timestamp(as_of_date)]
    if known.empty:
        return known
    last = known.assign(_sent=sent[known.index]).sort_values(
        ["_sent", "campaign_id"], kind="mergesort")["campaign_id"].iat[-1]
    return known[known["campaign_id"] == last]
