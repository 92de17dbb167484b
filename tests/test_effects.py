"""Per-customer absolute effects: covariates, Qini by hand, recovery of a known truth,
honest bounds, the allocator on true effects, and Hillstrom's held-out comparison."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from clv.decisions import effects
from clv.decisions.allocation import allocate, build_candidates
from clv.decisions.segments import Action, EffectPrior

HILLSTROM = SHARED_DATA / "hillstrom" / "hillstrom.csv.gz"


def test_covariates_follow_hillstroms_definitions():
    feats = pd.DataFrame({"customer_id": ["a", "b", "c"], "recency_days": [1, 61, 900],
                          "tenure_days": [30, 365, 1000]})
    for k in range(1, 13):
        feats[f"spend_p{k:02d}"] = [10.0 * (k == 1), 5.0, 0.0]
    got = effects.effect_covariates(feats)
    # months since the last purchase, 1..12; spend of the last 12 x 30 days; new <= 365 days
    assert got["recency_months"].tolist() == [1, 3, 12]
    assert got["history"].tolist() == [10.0, 60.0, 0.0]
    assert got["newbie"].tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="spend_p12"):
        effects.effect_covariates(feats.drop(columns="spend_p12"))


def test_qini_by_hand():
    # Ranked 4 > 3 > 2 > 1: treated responder, control, treated non-responder, control
    # responder. Gains Y_t - Y_c N_t / N_c after 1..4 customers: 1, 1, 1, 1 - 1 * 2/2 = 0,
    # per customer 0.25, 0.25, 0.25, 0 over x = 0.25..1; the random line is 0, so the area
    # is 0.25 * (0.125 + 0.25 + 0.25 + 0.125) = 0.1875.
    tau, t, y = [4, 3, 2, 1], [1, 0, 1, 0], [1, 0, 0, 1]
    x, gain = effects.qini_curve(tau, t, y)
    assert x.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert gain.tolist() == [0, 0.25, 0.25, 0.25, 0.0]
    assert effects.qini_coefficient(tau, t, y) == pytest.approx(0.1875)
    # one tie group: no order, no credit
    assert effects.qini_coefficient([1, 1, 1, 1], t, y) == 0.0
    # the top half: treated 1 responder of 1, control 0 of 1
    assert effects.uplift_at_k(tau, t, y, share=0.5) == 1.0


def _campaign_with_known_effects(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A randomised campaign whose effect on revenue depends on recency *within* each
    spend cell (so the cell averages cannot see it): tau = 0.5 + 2 [recency <= 3]
    + 0.002 min(history, 500)."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"recency_months": rng.integers(1, 13, n).astype(float),
                      "history": np.round(rng.lognormal(4.8, 0.9, n), 2),
                      "newbie": rng.integers(0, 2, n).astype(float)})
    tau = 0.5 + 2.0 * (x["recency_months"] <= 3) + 0.002 * np.minimum(x["history"], 500)
    t = rng.integers(0, 2, n)
    base = 1.0 + 0.004 * x["history"] - 0.05 * x["recency_months"]
    y = base + t * tau + rng.normal(0.0, 2.0, n)
    return x.assign(treatment=t, revenue=y, action=np.where(t == 1, "mail", "none")), \
        tau.to_numpy()


def test_uplift_model_recovers_a_known_heterogeneous_effect():
    rows, truth = _campaign_with_known_effects(40_000, seed=1)
    fitted = effects.fit_action_effect(rows, "mail", "synthetic", effects.OWN)
    # the held-out Qini prefers the model: the cells cannot see the recency effect
    assert fitted.method == effects.MODEL
    assert fitted.qini[effects.MODEL] > fitted.qini[effects.AVERAGE]
    estimate, low, high = fitted.per_customer(rows)
    corr = np.corrcoef(estimate, truth)[0, 1]
    slope = np.polyfit(estimate, truth, 1)[0]  # calibration: truth on estimate
    print(f"known truth: corr {corr:.3f}, calibration slope {slope:.3f}, "
          f"mean {estimate.mean():.3f} vs {truth.mean():.3f}")
    assert corr > 0.85
    assert 0.8 < slope < 1.2
    assert estimate.mean() == pytest.approx(truth.mean(), rel=0.1)
    # own evidence: no shrinkage, every estimate inside its cell's 95% interval
    assert (fitted.cells["shrink"] == 1.0).all()
    assert ((estimate >= low - 1e-12) & (estimate <= high + 1e-12)).all()


def test_external_evidence_is_bounded_by_its_cell_and_shrunk():
    cells = pd.DataFrame({"n_treated": [100, 100], "n_control": [100, 100],
                          "effect": [1.0, 2.0], "se": [1.0, 0.5]},
                         index=pd.Index(["all", "history_0_100"], name="cell"))
    cells["low"], cells["high"] = cells["effect"] - 1.96 * cells["se"], \
        cells["effect"] + 1.96 * cells["se"]
    cells["shrink"] = effects._shrinkage(cells, effects.EXTERNAL)
    # shrink = est^2 / (est^2 + se^2): 1 / 2 and 4 / 4.25
    assert cells["shrink"].tolist() == pytest.approx([0.5, 4 / 4.25])
    fitted = effects.ActionEffect("mail", "c", effects.EXTERNAL, effects.AVERAGE, cells,
                                  None, {}, {}, support={"history": (30.0, 6_000.0)})
    # cell history_0_100; a cell the campaign lacks -> "all"
    covariates = pd.DataFrame({"history": [50.0, 5_000.0]})
    est, low, high = fitted.per_customer(covariates)
    assert est.tolist() == pytest.approx([2.0 * 4 / 4.25, 1.0 * 0.5])
    assert high.tolist() == pytest.approx([(2.0 + 1.96 * 0.5) * 4 / 4.25, 2.96 * 0.5])
    # outside the experiment's range (history 10 < 30): the cell's lower bound, >= 0
    outside = pd.DataFrame({"history": [10.0, 7_000.0]})
    est, low, _ = fitted.per_customer(outside)
    assert fitted.outside(outside).tolist() == [True, True]
    assert est.tolist() == pytest.approx([(2.0 - 1.96 * 0.5) * 4 / 4.25, 0.0])
    assert effects.outside_support(fitted, pd.concat([covariates, outside])) == 0.5
    assert effects._shrinkage(cells, effects.OWN).tolist() == [1.0, 1.0]


def test_customer_effects_measured_where_tested_priors_elsewhere():
    catalogue = [Action("mail", 0.25, revenue=EffectPrior(0.3, 0.1, 0.5)),
                 Action("perk", 8.0, revenue=EffectPrior(0.0, 0.0, 0.2),
                        retention=EffectPrior(0.05, 0.02, 0.08))]
    cells = pd.DataFrame({"effect": [0.7], "se": [0.1], "low": [0.5], "high": [0.9],
                          "shrink": [1.0]}, index=pd.Index(["all"], name="cell"))
    measured = {"mail": effects.ActionEffect("mail", "c9", effects.OWN, effects.AVERAGE,
                                             cells, None, {}, {})}
    covariates = pd.DataFrame({"customer_id": ["b", "a"], "recency_months": 1.0,
                               "history": 10.0, "newbie": 0.0})
    got = effects.customer_effects(covariates, ["perk", "mail"], measured, catalogue)
    assert list(got.columns) == list(effects.EFFECT_COLUMNS)
    assert got[["customer_id", "action"]].values.tolist() == [
        ["a", "mail"], ["a", "perk"], ["b", "mail"], ["b", "perk"]]
    assert got["incr_revenue"].tolist() == pytest.approx([0.7, 0.0, 0.7, 0.0])
    assert got["incr_revenue_high"].tolist() == pytest.approx([0.9, 0.2, 0.9, 0.2])
    assert got["incr_retention"].tolist() == pytest.approx([0.0, 0.05, 0.0, 0.05])
    assert got["uplift_source"].tolist() == ["own_experiment", "prior"] * 2
    assert got["effect_method"].tolist() == ["segment_average", "prior"] * 2
    with pytest.raises(ValueError, match="no effect prior for action"):
        effects.customer_effects(covariates, ["teleport"], catalogue=catalogue)


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
def test_allocator_finds_the_true_optimum_given_the_true_effects(lam):
    # 7 customers, a revenue e-mail and a retention perk with known per-customer effects;
    # every plan (3^7) is enumerated: the allocator's plan is worth the best one.
    rng = np.random.default_rng(11)
    n = 7
    scores = pd.DataFrame({"customer_id": np.arange(n), "segment": "s",
                           "predicted_clv": rng.gamma(2.0, 40.0, n),
                           "p_churn": rng.uniform(0.1, 0.9, n)})
    truth = pd.DataFrame({"customer_id": np.repeat(np.arange(n), 2),
                          "action": np.tile(["mail", "perk"], n),
                          "incr_revenue": np.ravel([[rng.uniform(0, 3), 0.0] for _ in range(n)]),
                          "incr_retention": np.ravel([[0.0, rng.uniform(0, 0.2)]
                                                      for _ in range(n)])})
    truth = truth.assign(incr_revenue_low=truth["incr_revenue"],
                         incr_revenue_high=truth["incr_revenue"], incr_retention_low=0.0,
                         incr_retention_high=1.0, uplift_source="prior", effect_method="prior")
    cands = build_candidates(scores, truth, {"mail": 1.0, "perk": 4.0})
    budget = 9.0
    net = (lam * cands["incr_clv"] + (1 - lam) * cands["incr_revenue"] - cands["cost"]).to_numpy()
    cost = cands["cost"].to_numpy()
    best = 0.0
    for choice in itertools.product((None, 0, 1), repeat=n):
        rows = [2 * i + c for i, c in enumerate(choice) if c is not None]
        if cost[rows].sum() <= budget:
            best = max(best, net[rows].sum())
    result = allocate(cands, budget, lam)
    assert result.optimal
    assert result.objective == pytest.approx(best)


def test_hillstrom_held_out_qini_of_both_methods_and_the_better_one_is_used():
    from clv.decisions.uplift import load_hillstrom

    if not HILLSTROM.exists():
        pytest.fail(f"reference data missing: {HILLSTROM}")
    responses = load_hillstrom(HILLSTROM)
    rows = responses[(responses["action"] == "mens_email") | (responses["treatment"] == 0)]
    fitted = effects.fit_action_effect(rows, "mens_email", "hillstrom_2008", effects.EXTERNAL)
    print("Hillstrom mens_email held-out Qini:", fitted.qini, "uplift@30%:", fitted.uplift_at_30)
    assert set(fitted.qini) == {effects.MODEL, effects.AVERAGE}
    better = max(fitted.qini, key=fitted.qini.get)
    assert fitted.method == better
    # overall cell = the independent difference in means (0.770 on 21,307 vs 21,306)
    overall = fitted.cells.loc["all"]
    assert (overall["n_treated"], overall["n_control"]) == (21_307, 21_306)
    assert overall["effect"] == pytest.approx(0.7698, abs=1e-4)
    # external evidence: shrunk, and never above its cell's upper bound
    assert ((fitted.cells["shrink"] > 0) & (fitted.cells["shrink"] < 1)).all()
    covariates = rows[list(effects.COVARIATES)]
    est, low, high = fitted.per_customer(covariates)
    assert (est <= high + 1e-12).all() and (est >= low - 1e-12).all()
    assert math.isclose(float(np.max(high)), float(
        (fitted.cells["high"] * fitted.cells["shrink"]).max()), rel_tol=1e-9)


def test_calibration_slope_keeps_only_the_confirmed_spread():
    # Five bands of predicted effect 1..5 (200 rows each, half treated); the measured
    # effect in each band is half the prediction: slope 0.5. The +-1 noise is the same
    # in both arms, so each band's difference in means is exactly 0.5 x its prediction.
    tau = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 200)
    t = np.tile([1, 0], 500)
    noise = np.tile([1.0, 1.0, -1.0, -1.0], 250)
    y = 10.0 + noise + t * 0.5 * tau
    assert effects.calibration_slope(tau, t, y) == pytest.approx(0.5)
    # effects twice as spread as predicted: clipped to 1 (never widened); none: 0
    assert effects.calibration_slope(tau, t, 10.0 + noise + t * 2.0 * tau) == 1.0
    assert effects.calibration_slope(tau, t, 10.0 + noise + t * 3.0) == pytest.approx(0.0)
