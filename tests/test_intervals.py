"""Spend intervals: ZILN quantiles against SciPy, band calibration and coverage by hand,
and coverage of an oracle ZILN and of a real XGBoost model on data with a known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clv.features import FEATURE_COLUMNS
from clv.models import intervals


def test_ziln_quantiles_are_zero_inside_the_atom_and_lognormal_quantiles_above_it():
    # p = 0.5: P(spend = 0) = 0.5, so P10 and P50 are 0; P90 is the lognormal's
    # (0.9 - 0.5) / 0.5 = 0.8 quantile: exp(Phi^-1(0.8)) = exp(0.8416212) = 2.3201
    q = intervals.ziln_quantiles([0.5], [0.0], [1.0])
    np.testing.assert_allclose(q, [[0.0, 0.0, 2.320125]], rtol=1e-6)
    # p = 1 (everyone buys): plain lognormal quantiles (SciPy as the reference)
    q = intervals.ziln_quantiles([1.0, 1.0], [np.log(100.0), 2.0], [0.5, 1.5])
    ref = [stats.lognorm.ppf([0.1, 0.5, 0.9], s=s, scale=np.exp(m))
           for m, s in ((np.log(100.0), 0.5), (2.0, 1.5))]
    np.testing.assert_allclose(q, ref, rtol=1e-9)
    np.testing.assert_allclose(q[0, 1], 100.0)


def test_ziln_cdf_inverts_the_quantiles_and_counts_the_atom():
    p, mu, sigma = np.array([0.3, 0.95]), np.array([1.0, 4.0]), np.array([0.7, 0.2])
    q = intervals.ziln_quantiles(p, mu, sigma)
    assert q[0, 0] == 0.0 and q[0, 1] == 0.0  # 1 - p = 0.7 >= 0.5
    np.testing.assert_allclose(intervals.ziln_cdf(q[0, 2], p[0], mu[0], sigma[0]), 0.9)
    np.testing.assert_allclose(intervals.ziln_cdf(q[1], p[1], mu[1], sigma[1]), [0.1, 0.5, 0.9])
    np.testing.assert_allclose(intervals.ziln_cdf([0.0, -1.0], 0.3, 1.0, 0.7), [0.7, 0.0])


def test_band_calibration_by_hand():
    pred = [1, 1, 1, 1, 2, 2, 2, 2]
    actual = [0, 0, 1, 3, 0, 2, 4, 8]  # ratios band 1: 0 0 1 3; band 2: 0 1 2 4
    cal = intervals.BandCalibration.fit(pred, actual, n_bands=2, min_rows=4)
    np.testing.assert_array_equal(cal.edges, [1.0])
    # linear quantiles of 4 values at 0.1 / 0.5 / 0.9: positions 0.3, 1.5, 2.7
    np.testing.assert_allclose(cal.ratios, [[0.0, 0.5, 2.4], [0.3, 1.5, 3.4]])
    np.testing.assert_allclose(cal.predict([1.0, 2.0, 0.5, 3.0]),
                               [[0, 0.5, 2.4], [0.6, 3.0, 6.8], [0, 0.25, 1.2], [0.9, 4.5, 10.2]])
    # too few rows for two bands of 4: one band, the pooled quantiles
    one = intervals.BandCalibration.fit(pred, actual, n_bands=2, min_rows=5)
    assert one.edges.size == 0 and one.ratios.shape == (1, 3)


def test_band_calibration_refuses_a_holdout_without_positive_predictions():
    with pytest.raises(ValueError, match="no customer with a positive, finite predicted"):
        intervals.BandCalibration.fit([0.0, 0.0], [1.0, 2.0])


def test_coverage_counts_a_realised_zero_inside_zero_to_p90_and_negatives_as_zero():
    actual = [0.0, 5.0, -2.0, 10.0, 3.0]
    lower = [0.0, 1.0, 0.0, 0.0, 4.0]
    upper = [2.0, 5.0, 1.0, 9.0, 6.0]
    assert intervals.interval_coverage(actual, lower, upper) == pytest.approx(3 / 5)


def test_calibration_half_is_stable_and_about_half():
    ids = [f"c{k:05d}" for k in range(2000)]
    half = intervals.calibration_half(ids)
    np.testing.assert_array_equal(intervals.calibration_half(ids[::-1]), half[::-1])
    assert 0.45 < half.mean() < 0.55


def _ziln_customers(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray,
                                                   np.ndarray]:
    """Customers whose spend is drawn from a known ZILN: p and mu follow two features."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.gamma(2.0, 1.0, (n, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    frame.insert(0, "customer_id", [f"c{k:05d}" for k in range(n)])
    p = 1.0 / (1.0 + np.exp(-(frame["n_orders"].to_numpy() - 2.0)))
    mu = 2.0 + 0.5 * frame["total_spend"].to_numpy()
    sigma = np.full(n, 0.6)
    buys = rng.random(n) < p
    frame["spend_next"] = np.where(buys, np.exp(mu + sigma * rng.standard_normal(n)), 0.0)
    return frame, p, mu, sigma


class _OracleZiln:
    """The generator's true distribution, as a model (the truth the intervals must match)."""

    def __init__(self, frame: pd.DataFrame, p, mu, sigma):
        self._by_id = dict(zip(frame["customer_id"], zip(p, mu, sigma, strict=True),
                               strict=True))
        self._ids = frame["customer_id"]

    def _rows(self, x: pd.DataFrame) -> np.ndarray:
        return np.array([self._by_id[c] for c in self._ids.loc[x.index]])

    def predict_distribution(self, x: pd.DataFrame):
        rows = self._rows(x)
        return rows[:, 0], rows[:, 1], rows[:, 2]

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        p, mu, sigma = self.predict_distribution(x)
        return p * np.exp(mu + sigma**2 / 2)


def test_the_true_ziln_distribution_covers_as_often_as_it_says():
    frame, p, mu, sigma = _ziln_customers(8000, seed=5)
    out = intervals.holdout_coverage(_OracleZiln(frame, p, mu, sigma), frame)
    assert out["method"] == intervals.ZILN_METHOD
    assert 3700 < out["n_customers"] < 4300
    # atom at 0: nominal is 0.9 where P10 = 0 (1 - p >= 0.1), 0.8 elsewhere
    assert 0.8 < out[intervals.NOMINAL_METRIC] < 0.9
    # binomial standard error at n ~ 4000 is ~0.006: 4 of them
    assert out[intervals.COVERAGE_METRIC] == pytest.approx(out[intervals.NOMINAL_METRIC],
                                                           abs=0.025)
    assert out[intervals.PIT_METRIC] == pytest.approx(0.8, abs=0.025)  # exact target


def test_xgboost_intervals_calibrated_on_one_half_cover_the_other_half():
    import xgboost as xgb

    from clv.models.registry import ScoringModel
    from clv.models.training import feature_matrix

    learn, *_ = _ziln_customers(3000, seed=6)
    holdout, *_ = _ziln_customers(6000, seed=7)
    model = xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5,
                             n_estimators=60, max_depth=3, learning_rate=0.1, n_jobs=1)
    model.fit(feature_matrix(learn), learn["spend_next"])
    scoring = ScoringModel("clv_spend", "1", "xgboost", model)
    out = intervals.holdout_coverage(scoring, holdout)
    assert out["method"] == intervals.BAND_METHOD
    # the calibration half covers ~its own nominal; the unseen half within sampling error
    assert out[intervals.COVERAGE_METRIC] == pytest.approx(out[intervals.NOMINAL_METRIC],
                                                           abs=0.03)
    assert 0.75 < out[intervals.COVERAGE_METRIC] < 0.95
    assert out[intervals.PIT_METRIC] == pytest.approx(0.8, abs=0.04)
    q = intervals.fit_intervals(scoring, holdout).quantiles(
        scoring, None, scoring.predict(feature_matrix(holdout)))
    assert (np.diff(q, axis=1) >= 0).all()


def test_pit_coverage_by_hand():
    # y = 0 with F(0) = 0.5: the atom [0, 0.5] has 0.4 of its 0.5 inside [0.1, 0.9] -> 0.8;
    # y = 0 with F(0) = 0.05: the atom lies below 0.1 -> 0; y = 5 at F = 0.5 -> 1;
    # y = 7 at F = 0.95 -> 0
    assert intervals.pit_coverage([0, 0, 5, 7], [0.5, 0.05, 0.3, 0.3],
                                  [0.5, 0.05, 0.5, 0.95]) == pytest.approx(0.45)


def test_band_cdf_by_hand():
    cal = intervals.BandCalibration.fit([1, 1, 1, 1, 2, 2, 2, 2], [0, 0, 1, 3, 0, 2, 4, 8],
                                        n_bands=2, min_rows=4)
    # band 1 ratios 0 0 1 3: F(0) = 0.5, F(1) = 0.75; band 2 ratios 0 1 2 4: F(0) = 0.25,
    # y = 3 at prediction 2 is ratio 1.5: F = 0.5
    f0, fy = cal.cdf([1.0, 2.0], [1.0, 3.0])
    np.testing.assert_allclose(f0, [0.5, 0.25])
    np.testing.assert_allclose(fy, [0.75, 0.5])
