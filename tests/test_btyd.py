"""BG/NBD and Gamma-Gamma reproduce the published CDNOW estimates (to 1%)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from clv.models import btyd


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
    for g, published in zip(got, PARETO_PUBLISHED, strict=True):
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
    def integrand(mu, lam, x, t_x, T):
        return (_pareto_individual(lam, mu, x, t_x, T) * _gamma_pdf(lam, r, alpha)
                * _gamma_pdf(mu, s, beta))

    for x, t_x, T in ((0, 0.0, 38.86), (2, 30.43, 38.86), (7, 12.0, 30.0), (1, 38.0, 38.5)):
        ref, _ = integrate.dblquad(integrand, 0, np.inf, 0, np.inf, args=(x, t_x, T),
                                   epsabs=0, epsrel=1e-9)
        got = btyd.pareto_nbd_log_likelihood(np.array(params), np.array([x]), np.array([t_x]),
                                             np.array([T]))
        assert got == pytest.approx(math.log(ref), abs=1e-7), (params, x, t_x, T)


def _pareto_buys_given_alive(mu, lam, params, x, T, t):
    r, alpha, s, beta = params
    rate = lam + mu
    return (lam / rate * -math.expm1(-rate * t) * _gamma_pdf(lam, r + x, alpha + T)
            * _gamma_pdf(mu, s, beta + T))


def test_pareto_nbd_p_no_purchase_equals_brute_force_integration():
    # P(purchase in t | alive) = E[lambda/(lambda+mu) (1 - exp(-(lambda+mu) t))] under the
    # posterior given alive, lambda ~ Gamma(r+x, alpha+T), mu ~ Gamma(s, beta+T)
    for params in (PARETO_PUBLISHED, (0.8, 30.0, 1.5, 2.0), (0.5, 4.0, 1.0, 9.0)):  # s = 1
        model = btyd.ParetoNbd(*params, log_likelihood=0.0)
        r, alpha, s, beta = params
        for x, t_x, T, t in ((0, 0.0, 38.86, 39.0), (2, 30.43, 38.86, 10.0),
                             (6, 20.0, 40.0, 52.0)):
            p_buy, _ = integrate.dblquad(_pareto_buys_given_alive, 0, np.inf, 0, np.inf,
                                         args=(params, x, T, t), epsabs=1e-13, epsrel=1e-10)
            alive = model.p_alive([x], [t_x], [T])[0]
            got = model.p_no_purchase(t, [x], [t_x], [T])[0]
            assert got == pytest.approx(1.0 - alive * p_buy, abs=1e-8), (params, x, t_x, T, t)


def _simulate_pareto_nbd(params, T, horizon, n, rng):
    """Customers drawn from the Pareto/NBD story.

    Returns (x, t_x, alive at T, purchases in (T, T + horizon]).
    """
    r, alpha, s, beta = params
    lam, mu = rng.gamma(r, 1.0 / alpha, n), rng.gamma(s, 1.0 / beta, n)
    death = rng.exponential(1.0 / mu)
    seen = np.minimum(death, T)
    x = rng.poisson(lam * seen)
    # the last of x uniform purchase times on (0, seen]
    t_x = np.where(x > 0, seen * rng.random(n) ** (1.0 / np.maximum(x, 1)), 0.0)
    future = rng.poisson(lam * np.clip(np.minimum(death, T + horizon) - T, 0.0, None))
    return x, t_x, death > T, future


def _simulate_mbgnbd(params, T, horizon, n, rng, drop_at_zero=True):
    """Customers drawn from the MBG/NBD story (BG/NBD's with ``drop_at_zero=False``).

    Returns (x, t_x, alive at T, purchases in (T, T + horizon]).
    """
    r, alpha, a, b = params
    lam, p = rng.gamma(r, 1.0 / alpha, n), rng.beta(a, b, n)
    # purchases before dropping out: out at time 0 w.p. p, then after each purchase w.p. p
    budget = rng.geometric(p) - (1 if drop_at_zero else 0)
    ticks = rng.poisson(lam * T)  # purchase opportunities in (0, T]
    x = np.minimum(ticks, budget)
    # the x-th of `ticks` uniform times on (0, T] is T * Beta(x, ticks - x + 1)
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(ticks - x + 1, 1)), 0.0)
    alive = budget > ticks
    future = np.where(alive, np.minimum(rng.poisson(lam * horizon), budget - ticks), 0)
    return x, t_x, alive, future


MC_CUSTOMERS = 2_000_000
MC_T, MC_HORIZON = 38.86, 39.0


def _assert_matches_simulation(model, simulate, params, seed):
    """P(alive), E[purchases] and P(no purchase) against customers simulated from the model.

    Conditioning on a continuous t_x needs a window; comparing the simulated outcome with
    the model's prediction at each simulated customer's own t_x (not at the window's
    centre) makes the comparison unbiased, so the tolerance is sampling error alone:
    4 standard errors of the mean difference (a correct model fails with p < 1e-4).
    """
    x, t_x, alive, future = simulate(params, MC_T, MC_HORIZON, MC_CUSTOMERS,
                                     np.random.default_rng(seed))
    for x_k, lo, hi in ((0, 0.0, 0.0), (2, 25.0, 35.0), (5, 30.0, 38.86)):
        sel = (x == x_k) & (t_x >= lo) & (t_x <= hi)
        assert sel.sum() > 2_000, (x_k, int(sel.sum()))
        xs, ts, Ts = np.full(sel.sum(), float(x_k)), t_x[sel], np.full(sel.sum(), MC_T)
        pairs = ((alive[sel], model.p_alive(xs, ts, Ts)),
                 (future[sel], model.expected_purchases(MC_HORIZON, xs, ts, Ts)),
                 (future[sel] == 0, model.p_no_purchase(MC_HORIZON, xs, ts, Ts)))
        for simulated, predicted in pairs:
            diff = simulated.astype(float) - predicted
            se = diff.std() / math.sqrt(len(diff))
            assert abs(diff.mean()) <= 4 * se, (x_k, simulated.mean(), predicted.mean(), se)


def test_pareto_nbd_predictions_match_simulation_from_the_model():
    model = btyd.ParetoNbd(*PARETO_PUBLISHED, log_likelihood=0.0)
    _assert_matches_simulation(model, _simulate_pareto_nbd, PARETO_PUBLISHED, seed=7)


def test_pareto_nbd_p_alive_direction_and_limits():
    model = btyd.ParetoNbd(*PARETO_PUBLISHED, log_likelihood=0.0)
    x, T = np.array([3.0, 3.0, 3.0]), np.array([39.0] * 3)
    old, mid, now = model.p_alive(x, np.array([5.0, 20.0, 39.0]), T)
    assert old < mid < now == pytest.approx(1.0)  # bought at T: certainly alive
    # no purchase ever (given alive) with probability E[mu/(lambda+mu)] < 1
    forever = model.p_no_purchase(1e12, [2.0], [30.43], [38.86])[0]
    dead = 1.0 - model.p_alive([2.0], [30.43], [38.86])[0]
    assert dead < forever < 1.0


# --------------------------------------------------------------------------- MBG/NBD


def _mbg_individual(lam: float, p: float, x: int, t_x: float, T: float) -> float:
    """Likelihood given (lambda, p): alive at T, or dropped right after the purchase at t_x."""
    return (1 - p) ** x * lam ** x * ((1 - p) * math.exp(-lam * T) + p * math.exp(-lam * t_x))


def _beta_pdf(v: float, a: float, b: float) -> float:
    if not 0.0 < v < 1.0:
        return 0.0
    return math.exp((a - 1) * math.log(v) + (b - 1) * math.log1p(-v) - math.lgamma(a)
                    - math.lgamma(b) + math.lgamma(a + b))


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("params", [(0.525, 6.18, 0.891, 1.614), (2.0, 10.0, 3.0, 5.0)])
def test_mbgnbd_likelihood_equals_brute_force_integration(params):
    r, alpha, a, b = params
    def integrand(p, lam, x, t_x, T):
        return (_mbg_individual(lam, p, x, t_x, T) * _gamma_pdf(lam, r, alpha)
                * _beta_pdf(p, a, b))

    for x, t_x, T in ((0, 0.0, 38.86), (2, 30.43, 38.86), (7, 12.0, 30.0)):
        ref, _ = integrate.dblquad(integrand, 0, np.inf, 0, 1, args=(x, t_x, T),
                                   epsabs=0, epsrel=1e-9)
        got = btyd.mbgnbd_log_likelihood(np.array(params), np.array([x]), np.array([t_x]),
                                         np.array([T]))
        assert got == pytest.approx(math.log(ref), abs=1e-7), (params, x, t_x, T)


def test_mbgnbd_p_alive_by_hand():
    m = btyd.MbgNbd(0.5, 6.0, 0.9, 1.6, log_likelihood=0.0)
    # x = 0: dropout at time 0 is possible, so P(alive) = 1/(1 + a/b ((alpha+T)/alpha)^r) < 1
    got = m.p_alive([0.0], [0.0], [30.0])[0]
    assert got == pytest.approx(1.0 / (1.0 + 0.9 / 1.6 * (36.0 / 6.0) ** 0.5))
    # x = 2, t_x = 20, T = 30: 1/(1 + a/(b+2) (36/26)^2.5)
    got = m.p_alive([2.0], [20.0], [30.0])[0]
    assert got == pytest.approx(1.0 / (1.0 + 0.9 / 3.6 * (36.0 / 26.0) ** 2.5))


@pytest.fixture(scope="module")
def mbg(cdnow_sample):
    return btyd.fit_mbgnbd(cdnow_sample["x"], cdnow_sample["t_x"], cdnow_sample["T"])


def test_mbgnbd_fit_is_the_likelihood_maximum(mbg, cdnow_sample):
    # the reported log-likelihood is the likelihood at the estimate, and no nearby point
    # (each parameter moved 1% either way) is higher
    data = (cdnow_sample["x"], cdnow_sample["t_x"], cdnow_sample["T"])
    est = np.array([mbg.r, mbg.alpha, mbg.a, mbg.b])
    assert btyd.mbgnbd_log_likelihood(est, *data) == pytest.approx(mbg.log_likelihood, abs=1e-6)
    for i in range(4):
        for step in (0.99, 1.01):
            moved = est.copy()
            moved[i] *= step
            assert btyd.mbgnbd_log_likelihood(moved, *data) < mbg.log_likelihood


def test_mbgnbd_predictions_match_simulation_from_the_model(mbg):
    params = (mbg.r, mbg.alpha, mbg.a, mbg.b)
    _assert_matches_simulation(mbg, _simulate_mbgnbd, params, seed=11)


def _log_se(neg_ll, estimate: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Standard errors of log(parameters) from the numerical Hessian (observed information)."""
    theta, k = np.log(estimate), len(estimate)
    f, eye, hess = (lambda t: neg_ll(np.exp(t))), np.eye(k) * h, np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            hess[i, j] = hess[j, i] = (
                f(theta + eye[i] + eye[j]) - f(theta + eye[i] - eye[j])
                - f(theta - eye[i] + eye[j]) + f(theta - eye[i] - eye[j])) / (4 * h * h)
    return np.sqrt(np.diag(np.linalg.inv(hess)))


def _recovery(simulate, fit, log_likelihood, fields, truth, seed):
    """(estimate, se of its log, z of log est - log truth) on 5,000 simulated customers."""
    rng = np.random.default_rng(seed)
    T = rng.uniform(26.0, 78.0, 5_000)
    x, t_x, _, _ = simulate(truth, T, 1.0, len(T), rng)
    model = fit(x, t_x, T)
    est = np.array([getattr(model, f) for f in fields])
    se = _log_se(lambda p: -log_likelihood(p, x, t_x, T), est)
    return est, se, (np.log(est) - np.log(truth)) / se


def test_mbgnbd_recovers_the_parameters_of_simulated_customers():
    # 5,000 customers from the MBG/NBD story with ages of 26-78 weeks; MLE is asymptotically
    # normal, so |log est - log truth| <= 4 se (se from the observed information: 6-13% here;
    # over 24 other seeds the mean log error was within 1.3 of its standard error)
    truth = np.array([0.8, 5.0, 1.2, 3.0])
    est, se, z = _recovery(_simulate_mbgnbd, btyd.fit_mbgnbd, btyd.mbgnbd_log_likelihood,
                           ("r", "alpha", "a", "b"), truth, 20261202)
    assert np.all(se < 0.2), f"uninformative sample: se(log) = {se}"
    assert np.all(np.abs(z) <= 4.0), f"r, alpha, a, b = {est} vs {truth}; z = {z}"


def test_pareto_nbd_recovers_the_parameters_of_simulated_customers():
    # as for MBG/NBD; alpha > beta here (CDNOW's fit has alpha < beta), the other branch
    # of the likelihood's 2F1. Lifetimes are the weakly identified part: se(log beta) ~0.2
    truth = np.array([0.8, 12.0, 0.7, 6.0])
    est, se, z = _recovery(_simulate_pareto_nbd, btyd.fit_pareto_nbd,
                           btyd.pareto_nbd_log_likelihood, ("r", "alpha", "s", "beta"),
                           truth, 20261203)
    assert np.all(se < 0.3), f"uninformative sample: se(log) = {se}"
    assert np.all(np.abs(z) <= 4.0), f"r, alpha, s, beta = {est} vs {truth}; z = {z}"


# --------------------------------------------------------------------------- any family


def test_fit_purchase_model_dispatches_by_family_name(cdnow_sample, bg, pareto, mbg):
    data = (cdnow_sample["x"], cdnow_sample["t_x"], cdnow_sample["T"])
    for family, direct in (("bgnbd", bg), ("pareto_nbd", pareto), ("mbgnbd", mbg)):
        model = btyd.fit_purchase_model(family, *data)
        assert type(model) is type(direct) and model == direct
        # the shared interface: same shapes and ranges from every family
        alive, buys = model.p_alive(*data), model.expected_purchases(39.0, *data)
        quiet = model.p_no_purchase(39.0, *data)
        assert alive.shape == buys.shape == quiet.shape == (len(cdnow_sample),)
        assert ((alive > 0) & (alive <= 1) & (buys >= 0) & (quiet > 0) & (quiet < 1)).all()
    with pytest.raises(ValueError, match="unknown BTYD purchase family 'pareto'"):
        btyd.fit_purchase_model("pareto", *data)


def test_baseline_takes_the_purchase_family(cdnow_sample, pareto):
    frame = pd.DataFrame({"frequency": cdnow_sample["x"], "tenure_days": cdnow_sample["T"],
                          "recency_days": cdnow_sample["T"] - cdnow_sample["t_x"],
                          "n_purchase_days": cdnow_sample["x"] + 1,
                          "total_spend": cdnow_sample["zbar"] * (cdnow_sample["x"] + 1)})
    base = btyd.BtydBaseline.fit(frame, family="pareto_nbd")
    assert base.family == "pareto_nbd" and isinstance(base.purchases, btyd.ParetoNbd)
    # t_x comes back as T - (T - t_x): equal up to rounding, so the fit up to tolerance
    got = (base.purchases.r, base.purchases.alpha, base.purchases.s, base.purchases.beta)
    assert got == pytest.approx((pareto.r, pareto.alpha, pareto.s, pareto.beta), rel=1e-4)
    x, t_x, T, m = btyd.rft_from_features(frame)
    np.testing.assert_allclose(base.predict_churn(frame, 39.0),
                               base.purchases.p_no_purchase(39.0, x, t_x, T))
    np.testing.assert_allclose(base.predict_spend(frame, 39.0), btyd.predict_clv(
        base.purchases, base.gamma_gamma, 39.0, x, t_x, T, m))
    with pytest.raises(AttributeError, match="pareto_nbd"):
        base.bgnbd  # noqa: B018 - a Pareto/NBD baseline has no BG/NBD fit to hand out
    assert btyd.BtydBaseline.fit(frame).family == "bgnbd"
    head = frame.head(50)
    hx, htx, hT, hm = btyd.rft_from_features(head)
    np.testing.assert_array_equal(
        base.predict_spend_quantiles(head, 39.0, n_sims=200, seed=4),
        btyd.btyd_spend_quantiles(base.purchases, base.gamma_gamma, 39.0, hx, htx, hT, hm,
                                  n_sims=200, seed=4))
    with pytest.raises(ValueError, match="unknown BTYD purchase family"):
        btyd.BtydBaseline.fit(frame, family="nbd")


# --------------------------------------------------------------------------- spend intervals

GG_PUBLISHED = (6.25, 3.74, 15.44)
SPEND_FAMILIES = [  # (model, forward simulator of its story)
    (btyd.BgNbd(2.0, 8.0, 1.0, 10.0, 0.0),
     lambda *args: _simulate_mbgnbd(*args, drop_at_zero=False)),
    (btyd.ParetoNbd(2.0, 8.0, 0.8, 60.0, 0.0), _simulate_pareto_nbd),
    (btyd.MbgNbd(2.0, 8.0, 1.0, 10.0, 0.0), _simulate_mbgnbd),
]


@pytest.mark.parametrize("model", [btyd.BgNbd(0.243, 4.414, 0.793, 2.426, 0.0),
                                   btyd.ParetoNbd(*PARETO_PUBLISHED, 0.0),
                                   btyd.MbgNbd(0.525, 6.18, 0.891, 1.614, 0.0)],
                         ids=["bgnbd", "pareto_nbd", "mbgnbd"])
def test_posterior_draws_match_the_closed_forms(model):
    # the simulated purchases and spend of a customer have the closed forms' mean and
    # P(zero): E[spend] = E[purchases] * E[spend per purchase] (nu independent of the rates)
    gg = btyd.GammaGamma(*GG_PUBLISHED, 0.0)
    x, t_x, T = np.array([0.0, 2.0, 7.0]), np.array([0.0, 30.43, 35.0]), np.array([38.86] * 3)
    m, n_sims = np.array([0.0, 22.35, 40.0]), 200_000
    rng = np.random.default_rng(5)
    purchases = model.sample_purchases(39.0, x, t_x, T, n_sims, rng)
    spend = gg.sample_spend(purchases, x, m, rng)
    pairs = ((purchases, model.expected_purchases(39.0, x, t_x, T)),
             (purchases == 0, model.p_no_purchase(39.0, x, t_x, T)),
             (spend, btyd.predict_clv(model, gg, 39.0, x, t_x, T, m)))
    for draws, closed_form in pairs:
        se = draws.std(axis=1) / math.sqrt(n_sims)
        assert np.all(np.abs(draws.mean(axis=1) - closed_form) <= 4 * se), (
            draws.mean(axis=1), closed_form, se)


def _simulate_spend(x, future, rng):
    """Gamma-Gamma spend: nu ~ Gamma(q, gamma) per customer, each purchase Gamma(p, nu).

    Returns (mean spend of the x past repeat purchases (0 if none), future spend).
    """
    p, q, gamma = GG_PUBLISHED
    nu = rng.gamma(q, 1.0 / gamma, len(x))
    m = np.where(x > 0, rng.gamma(p * x, 1.0) / nu / np.maximum(x, 1), 0.0)
    return m, rng.gamma(p * future, 1.0) / nu


@pytest.mark.parametrize("model, simulate", SPEND_FAMILIES, ids=["bgnbd", "pareto_nbd", "mbgnbd"])
def test_spend_intervals_cover_simulated_customers_at_the_nominal_rate(model, simulate):
    # 4,000 customers simulated from the model's story and Gamma-Gamma spend, aged 26-78
    # weeks; their realised spend over the next 52 weeks against the predicted quantiles
    rng = np.random.default_rng(3)
    T = rng.uniform(26.0, 78.0, 4_000)
    x, t_x, _, future = simulate(model_params(model), T, 52.0, len(T), rng)
    m, spend = _simulate_spend(x, future, rng)
    gg = btyd.GammaGamma(*GG_PUBLISHED, 0.0)
    q = btyd.btyd_spend_quantiles(model, gg, 52.0, x, t_x, T, m, n_sims=500, seed=1)
    assert q.shape == (len(T), 3) and np.all(np.diff(q, axis=1) >= 0)
    # spend is 0 with positive probability, so a quantile q_tau only satisfies
    # P(Y < q_tau) <= tau <= P(Y <= q_tau); checked over all customers (2% slack)
    for j, tau in enumerate((0.1, 0.5, 0.9)):
        assert (spend < q[:, j]).mean() <= tau + 0.02
        assert (spend <= q[:, j]).mean() >= tau - 0.02
    # where the atom at 0 is below 10% the 80% interval is a plain one: it covers ~80%
    # (the share has a standard error of ~1.5% over these 700-1,500 customers)
    steady = model.p_no_purchase(52.0, x, t_x, T) < 0.1
    assert steady.sum() >= 500
    covered = (spend >= q[:, 0]) & (spend <= q[:, 2])
    assert 0.75 <= covered[steady].mean() <= 0.85


def model_params(model) -> tuple[float, ...]:
    if isinstance(model, btyd.ParetoNbd):
        return (model.r, model.alpha, model.s, model.beta)
    return (model.r, model.alpha, model.a, model.b)


def test_spend_quantiles_are_chunked_and_seeded(monkeypatch):
    model, gg = btyd.MbgNbd(0.525, 6.18, 0.891, 1.614, 0.0), btyd.GammaGamma(*GG_PUBLISHED, 0.0)
    x, t_x, T = np.array([0.0, 2.0, 7.0, 1.0]), np.array([0.0, 30.43, 35.0, 5.0]), np.full(4, 38.86)
    m = np.array([0.0, 22.35, 40.0, 10.0])
    whole = btyd.btyd_spend_quantiles(model, gg, 39.0, x, t_x, T, m, n_sims=1_000, seed=9)
    again = btyd.btyd_spend_quantiles(model, gg, 39.0, x, t_x, T, m, n_sims=1_000, seed=9)
    np.testing.assert_array_equal(whole, again)
    # one customer per chunk: the same as one customer at a time with one generator
    monkeypatch.setattr(btyd.simulation, "SIM_CELLS", 1_000)
    chunked = btyd.btyd_spend_quantiles(model, gg, 39.0, x, t_x, T, m, n_sims=1_000, seed=9)
    rng = np.random.default_rng(9)
    for i in range(4):
        k = model.sample_purchases(39.0, x[i:i + 1], t_x[i:i + 1], T[i:i + 1], 1_000, rng)
        draws = gg.sample_spend(k, x[i:i + 1], m[i:i + 1], rng)
        np.testing.assert_array_equal(chunked[i], np.quantile(draws[0], (0.1, 0.5, 0.9)))
    with pytest.raises(ValueError, match="quantiles in"):
        btyd.btyd_spend_quantiles(model, gg, 39.0, x, t_x, T, m, quantiles=(0.5, 90.0))
