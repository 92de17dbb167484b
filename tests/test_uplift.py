"""Uplift estimates: by hand, against an independent difference in means on the
Hillstrom experiment, and against Hillstrom's published figures."""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.decisions.segments import DEFAULT_ACTIONS
from clv.decisions.uplift import (
    UPLIFT_COLUMNS,
    estimate_uplift,
    latest_campaign,
    load_hillstrom,
)

# Same location rule as tests/conftest.py's SHARED_DATA (checkout/../shared/data).
SHARED_DATA = Path(os.environ.get(
    "CLV_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
HILLSTROM = SHARED_DATA / "hillstrom" / "hillstrom.csv.gz"
Z95 = 1.959963984540054  # standard normal 97.5% quantile


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    if not HILLSTROM.exists():
        pytest.fail(f"reference data missing: {HILLSTROM} (see ../shared/data/README.md)")
    return pd.read_csv(HILLSTROM)


@pytest.fixture(scope="module")
def responses(raw) -> pd.DataFrame:
    return load_hillstrom(HILLSTROM)


# --------------------------------------------------------------------------- by hand


def _tiny() -> pd.DataFrame:
    """Control: converted 0,1,0,0 / revenue 0,10,0,0. Action "a": 1,1,0 / 5,15,0.
    One control row is labelled "a" (a hold-out of that action): still control."""
    return pd.DataFrame({
        "customer_id": list("abcdefg"),
        "campaign_id": "c1",
        "sent_date": pd.Timestamp("2024-01-01"),
        "treatment": [0, 0, 0, 0, 1, 1, 1],
        "action": ["none", "none", "a", "none", "a", "a", "a"],
        "converted": [0, 1, 0, 0, 1, 1, 0],
        "revenue": [0.0, 10.0, 0.0, 0.0, 5.0, 15.0, 0.0],
    })


def test_uplift_by_hand():
    est = estimate_uplift(_tiny(), by=None)
    assert len(est) == 1
    row = est.iloc[0]
    assert (row["segment"], row["action"], row["n_treated"], row["n_control"]) == ("all", "a", 3, 4)
    # conversion: 2/3 - 1/4 = 5/12; s_t^2 = (2/3)(1/3)(3/2) = 1/3, s_c^2 = (1/4)(3/4)(4/3) = 1/4
    # se = sqrt(1/3 / 3 + 1/4 / 4) = sqrt(1/9 + 1/16) = sqrt(25/144) = 5/12
    assert row["uplift_conversion"] == pytest.approx(5 / 12)
    assert row["uplift_conversion_low"] == pytest.approx(5 / 12 - Z95 * 5 / 12)
    assert row["uplift_conversion_high"] == pytest.approx(5 / 12 + Z95 * 5 / 12)
    # revenue: mean 20/3 vs 10/4 = 2.5 -> 25/6. s_t^2 = (1.667^2 + 8.333^2 + 6.667^2)/2
    # = (25/9 + 625/9 + 400/9)/2 = 175/3; s_c^2 = (3 * 2.5^2 + 7.5^2)/3 = 75/3 = 25
    # se = sqrt(175/9 + 25/4) = sqrt(925/36); lift = (25/6) / 2.5 = 5/3
    se = math.sqrt(925 / 36)
    assert row["uplift_revenue"] == pytest.approx(25 / 6)
    assert row["uplift_revenue_low"] == pytest.approx(25 / 6 - Z95 * se)
    assert row["uplift_revenue_high"] == pytest.approx(25 / 6 + Z95 * se)
    assert row["lift_revenue"] == pytest.approx(5 / 3)
    assert row["source"] == "experiment" and row["confidence"] == 0.95
    assert list(est.columns) == list(UPLIFT_COLUMNS)


def test_each_campaign_uses_its_own_control_group():
    # Campaign c2: control converts 1 of 2, action "a" 2 of 2 -> uplift 1/2 (not
    # 1 - 1/4 or 1 - 2/6, which mixing in c1's controls would give).
    c2 = pd.DataFrame({
        "customer_id": list("wxyz"), "campaign_id": "c2", "sent_date": pd.Timestamp("2024-02-01"),
        "treatment": [0, 0, 1, 1], "action": ["none", "none", "a", "a"],
        "converted": [1, 0, 1, 1], "revenue": [4.0, 0.0, 6.0, 8.0],
    })
    est = estimate_uplift(pd.concat([_tiny(), c2]), by=None).set_index("campaign_id")
    assert est.loc["c1", "uplift_conversion"] == pytest.approx(5 / 12)
    assert est.loc["c2", "uplift_conversion"] == pytest.approx(0.5)
    assert est.loc["c2", "uplift_revenue"] == pytest.approx(7.0 - 2.0)


def test_confidence_level_sets_the_interval_width():
    # 90%: z = 1.6448536 -> half-width 1.6448536 * 5/12
    row = estimate_uplift(_tiny(), by=None, confidence=0.90).iloc[0]
    assert row["uplift_conversion_high"] - row["uplift_conversion"] == pytest.approx(
        1.6448536269514722 * 5 / 12)


def test_bad_responses_are_rejected():
    with pytest.raises(ValueError, match="missing"):
        estimate_uplift(_tiny().drop(columns="revenue"), by=None)
    with pytest.raises(ValueError, match="missing"):
        estimate_uplift(_tiny(), by="segment")
    with pytest.raises(ValueError, match="treatment"):
        estimate_uplift(_tiny().assign(treatment=2), by=None)
    with pytest.raises(ValueError, match="confidence"):
        estimate_uplift(_tiny(), by=None, confidence=1.0)


# --------------------------------------------------------------------------- priors


def test_the_e_mail_priors_are_hillstroms_measured_overall_effects(responses):
    # The catalogue states Hillstrom's overall absolute effects as the e-mails' priors
    # (expected, 95% low, 95% high): they must be what the data says, to the cent.
    est = estimate_uplift(responses, by=None).set_index("action")
    catalogue = {a.name: a for a in DEFAULT_ACTIONS}
    for action in ("mens_email", "womens_email"):
        prior, row = catalogue[action].revenue, est.loc[action]
        assert (prior.expected, prior.low, prior.high) == pytest.approx(
            (row["uplift_revenue"], row["uplift_revenue_low"], row["uplift_revenue_high"]),
            abs=0.001)


# --------------------------------------------------------------------------- Hillstrom


def test_hillstrom_mapping(raw, responses):
    assert len(responses) == 64_000
    assert responses["customer_id"].is_unique and responses["customer_id"].iat[0] == "1"
    assert (responses["campaign_id"] == "hillstrom_2008").all()
    arms = responses.groupby(["action", "treatment"]).size().to_dict()
    expected = raw["segment"].value_counts()
    assert arms == {("mens_email", 1): expected["Mens E-Mail"],
                    ("womens_email", 1): expected["Womens E-Mail"],
                    ("none", 0): expected["No E-Mail"]}
    assert (responses["converted"].to_numpy() == raw["conversion"].to_numpy()).all()
    assert (responses["revenue"].to_numpy() == raw["spend"].to_numpy()).all()
    # Segment from the numeric history must agree with Hillstrom's own band labels
    # (1) -> 0-100, 2) and 3) -> 100-350, 4) to 7) -> 350+).
    band = raw["history_segment"].str[0].astype(int)
    independent = np.select([band == 1, band <= 3], ["history_0_100", "history_100_350"],
                            "history_350_plus")
    assert (responses["segment"].to_numpy() == independent).all()
    # the pre-campaign covariates the effect models learn from are Hillstrom's own columns
    assert responses["recency_months"].tolist() == raw["recency"].astype(float).tolist()
    assert responses["history"].tolist() == raw["history"].tolist()
    assert responses["newbie"].tolist() == raw["newbie"].astype(float).tolist()


def test_hillstrom_overall_matches_published_figures(responses):
    est = estimate_uplift(responses, by=None).set_index("action")
    # Published: conversion control 0.573%, Mens 1.253%, Womens 0.883%;
    # spend per customer control $0.653, Mens $1.423, Womens $1.077.
    assert est.loc["mens_email", "conversion_control"] == pytest.approx(0.00573, abs=1e-4)
    assert est.loc["mens_email", "conversion_treated"] == pytest.approx(0.01253, abs=1e-4)
    assert est.loc["womens_email", "conversion_treated"] == pytest.approx(0.00883, abs=1e-4)
    assert est.loc["mens_email", "revenue_control"] == pytest.approx(0.653, abs=0.01)
    assert est.loc["mens_email", "revenue_treated"] == pytest.approx(1.423, abs=0.01)
    assert est.loc["womens_email", "revenue_treated"] == pytest.approx(1.077, abs=0.01)
    assert est.loc["mens_email", "uplift_conversion"] == pytest.approx(0.0068, abs=1e-4)
    assert est.loc["womens_email", "uplift_revenue"] == pytest.approx(1.077 - 0.653, abs=0.01)
    # Both e-mails work: the intervals exclude zero.
    assert (est["uplift_conversion_low"] > 0).all() and (est["uplift_revenue_low"] > 0).all()


def test_hillstrom_visit_rates_match_published_figures(responses, raw):
    # The same estimator on another binary outcome: visit rate control 10.62%,
    # Mens 18.28%, Womens 15.14%.
    est = estimate_uplift(responses.assign(converted=raw["visit"].to_numpy()), by=None)
    est = est.set_index("action")
    assert est.loc["mens_email", "conversion_control"] == pytest.approx(0.1062, abs=1e-4)
    assert est.loc["mens_email", "conversion_treated"] == pytest.approx(0.1828, abs=1e-4)
    assert est.loc["womens_email", "conversion_treated"] == pytest.approx(0.1514, abs=1e-4)


def _independent_difference(raw: pd.DataFrame) -> pd.DataFrame:
    """Difference in means and Welch interval per band and arm, from the raw file."""
    band = raw["history_segment"].str[0].astype(int)
    raw = raw.assign(group=np.select([band == 1, band <= 3], ["history_0_100",
                                                              "history_100_350"],
                                     "history_350_plus"))
    rows = []
    for (group, arm), treated in raw[raw["segment"] != "No E-Mail"].groupby(["group", "segment"]):
        control = raw[(raw["segment"] == "No E-Mail") & (raw["group"] == group)]
        row = {"segment": group, "action": {"Mens E-Mail": "mens_email",
                                            "Womens E-Mail": "womens_email"}[arm]}
        for outcome, column in (("conversion", "conversion"), ("revenue", "spend")):
            t, c = treated[column].to_numpy(float), control[column].to_numpy(float)
            se = np.sqrt(t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c))
            row[f"uplift_{outcome}"] = t.mean() - c.mean()
            row[f"se_{outcome}"] = se
        rows.append(row)
    return pd.DataFrame(rows).set_index(["segment", "action"]).sort_index()


def test_hillstrom_per_segment_equals_independent_difference_in_means(raw, responses):
    est = estimate_uplift(responses).set_index(["segment", "action"]).sort_index()
    ref = _independent_difference(raw)
    assert list(est.index) == list(ref.index) and len(est) == 6
    for outcome in ("conversion", "revenue"):
        diff, low, high = (est[f"uplift_{outcome}{s}"] for s in ("", "_low", "_high"))
        np.testing.assert_allclose(diff, ref[f"uplift_{outcome}"], rtol=1e-12, atol=1e-15)
        assert ((low <= ref[f"uplift_{outcome}"]) & (ref[f"uplift_{outcome}"] <= high)).all()
        np.testing.assert_allclose(high - diff, Z95 * ref[f"se_{outcome}"], rtol=1e-9)
    # the segments partition the overall sample
    assert est["n_treated"].sum() == (raw["segment"] != "No E-Mail").sum()


# --------------------------------------------------------------------------- for the allocation


def _campaign(campaign_id: str, sent: str, rows: list[tuple]) -> pd.DataFrame:
    """rows: (customer_id, treatment, action, converted, revenue)."""
    return pd.DataFrame([{"customer_id": c, "campaign_id": campaign_id,
                          "sent_date": pd.Timestamp(sent), "treatment": t, "action": a,
                          "converted": k, "revenue": r} for c, t, a, k, r in rows])


def test_latest_campaign_is_the_newest_sent_before_the_as_of_date():
    old = _campaign("old", "2024-01-01", [("a", 0, "none", 0, 0.0)])
    new = _campaign("new", "2024-03-01", [("b", 0, "none", 0, 0.0)])
    future = _campaign("future", "2024-06-01", [("c", 0, "none", 0, 0.0)])
    both = pd.concat([future, old, new], ignore_index=True)
    assert latest_campaign(both, dt.date(2024, 5, 1))["campaign_id"].tolist() == ["new"]
    # sent on the as-of date itself: not known yet
    assert latest_campaign(both, dt.date(2024, 3, 1))["campaign_id"].tolist() == ["old"]
    assert latest_campaign(both, dt.date(2023, 1, 1)).empty
