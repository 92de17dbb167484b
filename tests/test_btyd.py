"""BG/NBD and Gamma-Gamma reproduce the published CDNOW estimates (to 1%)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from clv import btyd


@pytest.fixture(scope="module")
def cdnow_sample(shared_data) -> pd.DataFrame:
    summary = shared_data / "cdnow" / "cdnow_customers_summary_with_transactions.csv"
    if not summary.exists():
        pytest.fail(f"reference data missing: {summary}")
    return pd.read_csv(summary)


@pytest.fixture(scope="module")
def bg(cdnow_sample):
    return btyd.fit_bgnbd(cdnow_sample["x"], cdnow_sample["t_x"], cdnow_sample["T"])


def test_bgnbd_matches_fader_hardie_lee_2005(bg):
    # Published (FHL 2005, 2,357-customer sample, 39 weeks): r=0.243 alpha=4.414 a=0.793 b=2.426
    for got, published in ((bg.r, 0.243), (bg.alpha, 4.414), (bg.a, 0.793), (bg.b, 2.426)):
        assert got == pytest.approx(published, rel=0.01)
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=1.0)


def test_bgnbd_likelihood_at_the_published_parameters(cdnow_sample):
    ll = btyd.bgnbd_log_likelihood(np.array([0.243, 4.414, 0.793, 2.426]), cdnow_sample["x"],
                                   cdnow_sample["t_x"], cdnow_sample["T"])
    assert ll == pytest.approx(-9582.4, abs=1.5)  # rounding of the published parameters


def test_conditional_expectation_of_the_papers_worked_example():
    # FHL 2005 (section 4): customer 1 of the sample, x=2, t_x=30.43, T=38.86, at the
    # published parameters, is expected to make 1.226 purchases in the next 39 weeks.
    m = btyd.BgNbd(0.243, 4.414, 0.793, 2.426, log_likelihood=0.0)
    got = m.expected_purchases(39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert got[0] == pytest.approx(1.226, abs=5e-4)


def test_p_alive_of_a_customer_with_no_repeat_is_one(bg):
    assert bg.p_alive(np.array([0.0]), np.array([0.0]), np.array([30.0]))[0] == 1.0
    # a customer who bought often long ago is less likely alive than one who just bought
    old, recent = bg.p_alive(np.array([5.0, 5.0]), np.array([5.0, 38.0]), np.array([39.0] * 2))
    assert old < recent


def test_gamma_gamma_matches_fader_hardie_2013(cdnow_sample):
    repeat = cdnow_sample[cdnow_sample["x"] > 0]
    assert len(repeat) == 946  # the paper's 946 repeat customers
    gg = btyd.fit_gamma_gamma(repeat["x"], repeat["zbar"])
    # Published: p=6.25, q=3.74, gamma=15.44
    for got, published in ((gg.p, 6.25), (gg.q, 3.74), (gg.gamma, 15.44)):
        assert got == pytest.approx(published, rel=0.01)


def test_gamma_gamma_expected_spend_by_hand():
    gg = btyd.GammaGamma(p=6.25, q=3.74, gamma=15.44, log_likelihood=0.0)
    # population mean p*gamma/(q-1) = 6.25*15.44/2.74 = 35.2190; x=2, m=20:
    # weight = p*x/(p*x+q-1) = 12.5/15.24 = 0.820210 -> 0.179790*35.2190 + 0.820210*20 = 22.736
    got = gg.expected_spend(np.array([0.0, 2.0]), np.array([0.0, 20.0]))
    assert got == pytest.approx([35.2190, 22.736], abs=1e-3)


def test_p_no_purchase_by_hand_and_limits():
    m = btyd.BgNbd(0.243, 4.414, 0.793, 2.426, log_likelihood=0.0)
    # no repeat purchase: alive for sure, so P(none in t) = ((alpha+T)/(alpha+T+t))^r
    got = m.p_no_purchase(39.0, np.array([0.0]), np.array([0.0]), np.array([30.0]))
    assert got[0] == pytest.approx((34.414 / 73.414) ** 0.243)
    x, t_x, T = np.array([2.0]), np.array([30.43]), np.array([38.86])
    short, long_, forever = (m.p_no_purchase(t, x, t_x, T)[0] for t in (1.0, 39.0, 1e12))
    assert forever < long_ < short < 1.0  # more time, more chance to buy
    assert forever == pytest.approx(1.0 - m.p_alive(x, t_x, T)[0], abs=1e-6)


def test_rft_from_features_by_hand():
    frame = pd.DataFrame({"frequency": [0, 2], "tenure_days": [100, 300],
                          "recency_days": [100, 20], "total_spend": [30.0, 90.0],
                          "n_purchase_days": [1, 3]})
    x, t_x, T, m = btyd.rft_from_features(frame)
    assert x.tolist() == [0, 2] and T.tolist() == [100, 300]
    assert t_x.tolist() == [0, 280]  # last purchase 20 days before the cutoff, first 300
    assert m.tolist() == [30.0, 30.0]


def test_baseline_from_features_predicts_more_for_frequent_recent_buyers(cdnow_sample):
    # the paper's sample in weeks, as feature columns (x, t_x, T -> frequency, recency, tenure)
    frame = pd.DataFrame({"frequency": cdnow_sample["x"], "tenure_days": cdnow_sample["T"],
                          "recency_days": cdnow_sample["T"] - cdnow_sample["t_x"],
                          "n_purchase_days": cdnow_sample["x"] + 1,
                          "total_spend": cdnow_sample["zbar"] * (cdnow_sample["x"] + 1)})
    base = btyd.BtydBaseline.fit(frame)
    assert base.bgnbd.r == pytest.approx(0.243, rel=0.01)
    spend, churn = base.predict_spend(frame, 39.0), base.predict_churn(frame, 39.0)
    assert (spend >= 0).all() and ((churn >= 0) & (churn <= 1)).all()
    busy = (frame["frequency"] >= 5) & (frame["recency_days"] < 5)
    assert spend[busy].mean() > 5 * spend[frame["frequency"] == 0].mean()
    assert churn[busy].mean() < churn[frame["frequency"] == 0].mean()


def test_baseline_fits_on_a_seeded_sample_and_predicts_everyone(cdnow_sample):
    frame = pd.DataFrame({"frequency": cdnow_sample["x"], "tenure_days": cdnow_sample["T"],
                          "recency_days": cdnow_sample["T"] - cdnow_sample["t_x"],
                          "n_purchase_days": cdnow_sample["x"] + 1,
                          "total_spend": cdnow_sample["zbar"] * (cdnow_sample["x"] + 1)})
    base = btyd.BtydBaseline.fit(frame, max_customers=1000)
    assert base.n_fit_customers == 1000
    # the same rows by hand: a seeded draw without replacement
    rows = np.sort(np.random.default_rng(btyd.SAMPLE_SEED).choice(len(frame), 1000,
                                                                  replace=False))
    x, t_x, T, m = (v[rows] for v in btyd.rft_from_features(frame))
    by_hand = btyd.fit_bgnbd(x, t_x, T)
    assert (base.bgnbd.r, base.bgnbd.alpha, base.bgnbd.a, base.bgnbd.b) == pytest.approx(
        (by_hand.r, by_hand.alpha, by_hand.a, by_hand.b), rel=1e-9)
    assert base.gamma_gamma.p == pytest.approx(btyd.fit_gamma_gamma(x, m).p, rel=1e-9)
    assert len(base.predict_spend(frame, 39.0)) == len(frame)
    # a smaller frame is fitted whole
    assert btyd.BtydBaseline.fit(frame).n_fit_customers == len(frame)


# --------------------------------------------------------------------------- Pareto/NBD
#
# Independent references: the published CDNOW estimates (Fader & Hardie 2005 note;
# Fader, Hardie & Lee 2005) and brute-force numerical integration of the individual
# likelihood over the mixing distributions with scipy.integrate.

PARETO_PUBLISHED = (0.553, 10.578, 0.606, 11.669)


@pytest.fixture(scope="module")
def pareto(cdnow_sample):
    return btyd.fit_pareto_nbd(cdnow_sample["x"], cdnow_sample["t_x"], cdnow_sample["T"])


def test_pareto_nbd_matches_the_published_cdnow_fit(pareto):
    # Published: r=0.553 alpha=10.578 s=0.606 beta=11.669, LL=-9595.0
    got = (pareto.r, pareto.alpha, pareto.s, pareto.beta)
    for g, published in zip(got, PARETO_PUBLISHED):
        assert g == pytest.approx(published, rel=0.01)
    assert pareto.log_likelihood == pytest.approx(-9595.0, abs=1.0)


def test_pareto_nbd_likelihood_at_the_published_parameters(cdnow_sample):
    ll = btyd.pareto_nbd_log_likelihood(np.array(PARETO_PUBLISHED), cdnow_sample["x"],
                                        cdnow_sample["t_x"], cdnow_sample["T"])
    assert ll == pytest.approx(-9595.0, abs=1.5)


def _gamma_pdf(v: float, shape: float, rate: float) -> float:
    # scalar, with math: scipy.stats' per-call overhead makes dblquad take minutes
    if v <= 0.0:
        return 0.0
    return math.exp(shape * math.log(rate) + (shape - 1) * math.log(v) - rate * v
                    - math.lgamma(shape))


def _pareto_individual(lam: float, mu: float, x: int, t_x: float, T: float) -> float:
    """Likelihood given (lambda, mu): alive throughout, or died in (t_x, T]."""
    alive = lam ** x * math.exp(-(lam + mu) * T)
    died = lam ** x * mu / (lam + mu) * (math.exp(-(lam + mu) * t_x) - math.exp(-(lam + mu) * T))
    return alive + died


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("params", [PARETO_PUBLISHED, (2.0, 3.0, 0.7, 25.0),
                                    (0.8, 30.0, 1.5, 2.0)])  # alpha < beta and alpha > beta
def test_pareto_nbd_likelihood_equals_brute_force_integration(params):
    r, alpha, s, beta = params
    for x, t_x, T in ((0, 0.0, 38.86), (2, 30.43, 38.86), (7, 12.0, 30.0), (1, 38.0, 38.5)):
        def integrand(mu, lam):
            return (_pareto_individual(lam, mu, x, t_x, T) * _gamma_pdf(lam, r, alpha)
                    * _gamma_pdf(mu, s, beta))
        ref, _ = integrate.dblquad(integrand, 0, np.inf, 0, np.inf, epsabs=0, epsrel=1e-9)
        got = btyd.pareto_nbd_log_likelihood(np.array(params), np.array([x]), np.array([t_x]),
                                             np.array([T]))
        assert got == pytest.approx(math.log(ref), abs=1e-7), (params, x, t_x, T)
