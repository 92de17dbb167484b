"""Fitted effects against the generator's known truth (#14), and the plans they make.

The experiment lives in ``bench/bench_effects_truth.py`` (one home; the bench runs it
at 200,000 customers and writes docs/effects_truth.md): a randomised campaign over
60,000 ``sample_customer_features`` customers (a third e-mail, a third coupon, a
third nothing), effects fitted by ``clv.decisions.effects.fit_action_effect`` as the shop's own
experiment, compared with ``clv.data.synthetic.true_effects``. Pure pandas/numpy/XGBoost.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from clv.decisions import effects

_SPEC = importlib.util.spec_from_file_location(
    "bench_effects_truth", Path(__file__).resolve().parents[1] / "bench" / "bench_effects_truth.py")
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)

N, SEED = 60_000, 7


@pytest.fixture(scope="module")
def world():
    feats, scores, truth = bench.population(N, SEED)
    return feats, scores, truth, bench.fit_effects(feats, SEED)


def test_email_effect_per_customer_tracks_the_truth(world):
    feats, _, truth, fitted = world
    acc = bench.effect_accuracy(feats, truth, fitted["email"])
    print(f"\ne-mail revenue effect vs truth at {N:,}: {acc}")
    # Measured (seed 7): the T-learner wins the held-out Qini (0.040 vs 0.021 for the
    # cell averages); correlation 0.54. Calibration slope (truth on estimate): 0.35 from
    # the raw T-learner (its estimates spread ~3x wider than the truth: the noise of
    # 20,000 customers per arm at ~8% conversion); 1.53 once the held-out bands keep only
    # the spread they confirm (effects.calibration_slope), i.e. now a little too narrow,
    # the safe side for a budget. Mean 0.671 vs true 0.661, campaign se 0.124.
    assert acc["method"] == effects.MODEL
    assert acc["qini_model"] > acc["qini_segment_average"] > 0
    assert 0.40 <= acc["correlation"] <= 0.70
    assert 0.8 <= acc["calibration_slope"] <= 2.0
    assert abs(acc["mean_estimate"] - acc["mean_truth"]) <= 3 * acc["campaign_se"]


def test_plans_with_fitted_effects_reach_a_share_of_the_true_optimum(world):
    feats, scores, truth, fitted = world
    frames = bench.effect_frames(feats, truth, fitted)
    values = bench.plan_values(scores, frames, bench.BUDGET_PER_CUSTOMER * N,
                               lambdas=(0.0, 0.5, 1.0))
    values["fitted_share"] = values["value_fitted"] / values["value_truth"]
    print("\n" + values.to_markdown(index=False, floatfmt=".4g"))
    # Measured (seed 7, budget 2,400): value under the truth of the plan made with the
    # fitted effects / with the true effects = 0.61 (lambda 0), 0.66 (0.5), 0.78 (1);
    # 0.61, 0.58, 0.61 before the held-out calibration of the model's spread.
    # The true-optimal plan is the best any plan can do at this budget (up to LP rounding).
    assert (values["value_truth"] > 0).all()
    assert (values["value_fitted"] <= values["value_truth"] * 1.001).all()
    assert (values["fitted_share"] >= 0.55).all(), values
    # the retention channel matters only through lambda: no coupon at lambda 0
    assert values.loc[values["lambda"] == 0.0, "coupons_truth"].item() == 0
    assert np.all(np.diff(values["coupons_truth"].to_numpy()) >= 0)
