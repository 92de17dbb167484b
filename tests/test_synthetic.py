"""Synthetic data with known truth: determinism, the contracts, and parameter recovery.

Recovery tolerance, honestly: the maximum-likelihood estimates are asymptotically
normal around the truth with the covariance given by the inverse observed Fisher
information. Each parameter is checked in log space (where the likelihood is closer
to quadratic) as ``|log est - log true| <= 4 * se``, se from the numerical Hessian
of the log-likelihood at the estimate. With 7 parameters the chance that a correct
generator fails is at most 7 * P(|Z| > 4) = 0.04%. Calibration was checked on
120 seeds of the same design (5,000 customers): the z-scores had mean ~0 and
standard deviation ~1 (see docs/benchmarks.md). At 5,000 customers the
standard errors are 3-11% per parameter, so the test also asserts they stay below
15%: a generator wrong by more than ~60% in any parameter cannot pass.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from clv.data import synthetic
from clv.models import btyd

N_RECOVERY = 5_000
Z_MAX = 4.0


def _hessian(f, theta: np.ndarray, h: float = 1e-4) -> np.ndarray:
    k = len(theta)
    eye = np.eye(k) * h
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            out[i, j] = out[j, i] = (
                f(theta + eye[i] + eye[j]) - f(theta + eye[i] - eye[j])
                - f(theta - eye[i] + eye[j]) + f(theta - eye[i] - eye[j])) / (4 * h * h)
    return out


def _log_se(neg_ll, estimate: np.ndarray) -> np.ndarray:
    """Standard errors of log(parameters) from the observed information."""
    theta = np.log(estimate)
    cov = np.linalg.inv(_hessian(lambda t: neg_ll(np.exp(t)), theta))
    return np.sqrt(np.diag(cov))


@pytest.fixture(scope="module")
def recovery(spark):
    spec = synthetic.SyntheticSpec(n_customers=N_RECOVERY, seed=20261122)
    orders = synthetic.orders_frame(spark, spec)
    rft = synthetic.rft_summary(orders, spec).toPandas()  # one row per customer
    return spec, rft


def test_recovers_the_bgnbd_parameters(recovery):
    spec, rft = recovery
    assert len(rft) == N_RECOVERY
    x, t_x, T = (rft[c].to_numpy(float) for c in ("x", "t_x", "T"))
    fit = btyd.fit_bgnbd(x, t_x, T)
    est = np.array([fit.r, fit.alpha, fit.a, fit.b])
    se = _log_se(lambda p: -btyd.bgnbd_log_likelihood(p, x, t_x, T), est)
    truth = np.array([spec.r, spec.alpha, spec.a, spec.b])
    z = (np.log(est) - np.log(truth)) / se
    assert np.all(se < 0.15), f"uninformative sample: se(log) = {se}"
    assert np.all(np.abs(z) <= Z_MAX), f"r, alpha, a, b = {est} vs {truth}; z = {z}"


def test_recovers_the_gamma_gamma_parameters(recovery):
    spec, rft = recovery
    x, m = rft["x"].to_numpy(float), rft["m"].to_numpy(float)
    fit = btyd.fit_gamma_gamma(x, m)
    est = np.array([fit.p, fit.q, fit.gamma])
    keep = x > 0
    se = _log_se(lambda p: -btyd.gamma_gamma_log_likelihood(p, x[keep], m[keep]), est)
    truth = np.array([spec.p, spec.q, spec.gamma])
    z = (np.log(est) - np.log(truth)) / se
    assert np.all(se < 0.15), f"uninformative sample: se(log) = {se}"
    assert np.all(np.abs(z) <= Z_MAX), f"p, q, gamma = {est} vs {truth}; z = {z}"


def test_orders_per_customer_match_the_model(recovery):
    spec, rft = recovery
    orders = rft["x"].to_numpy(float) + 1
    expected = synthetic.expected_orders_per_customer(spec)
    se = orders.std(ddof=1) / np.sqrt(len(orders))
    assert abs(orders.mean() - expected) <= Z_MAX * se, (orders.mean(), expected, se)


def test_same_seed_gives_identical_rows_whatever_the_partitioning(spark):
    spec = synthetic.SyntheticSpec(n_customers=1_500, seed=11, weekly_amplitude=0.3)
    a = sorted(synthetic.orders_frame(spark, spec, num_partitions=2).collect())
    b = sorted(synthetic.orders_frame(spark, spec, num_partitions=5).collect())
    assert a == b and len(a) > 1_500
    other = synthetic.SyntheticSpec(n_customers=1_500, seed=12, weekly_amplitude=0.3)
    assert sorted(synthetic.orders_frame(spark, other, num_partitions=2).collect()) != a


def test_orders_pass_the_ingest_rules_and_feed_the_feature_job(spark):
    from clv import features, ingest

    spec = synthetic.SyntheticSpec(n_customers=800, seed=5)
    orders = synthetic.orders_frame(spark, spec)
    assert orders.columns == list(synthetic.ORDER_COLUMNS)
    accepted, rejected = ingest.split_valid_orders(orders, "t", spec.as_of_date)
    assert rejected.count() == 0
    n = accepted.count()
    feats = features.customer_features(accepted, spec.as_of_date)
    row = feats.agg({"n_orders": "sum", "customer_id": "count"}).first()
    assert (row["sum(n_orders)"], row["count(customer_id)"]) == (n, 800)
    bounds = orders.agg({"order_ts": "min", "amount": "min"}).first()
    assert bounds["min(order_ts)"] >= dt.datetime.combine(spec.start_date, dt.time())
    assert bounds["min(amount)"] >= 0.01


def test_seasonality_moves_orders_in_time_but_keeps_the_counts():
    ids = np.arange(3_000)
    flat = synthetic.simulate_orders(synthetic.SyntheticSpec(3_000, seed=3), ids)
    spec = synthetic.SyntheticSpec(3_000, seed=3, weekly_amplitude=0.6)
    seasonal = synthetic.simulate_orders(spec, ids)
    pd.testing.assert_frame_equal(flat.drop(columns="order_us"),
                                  seasonal.drop(columns="order_us"))
    # the warp inverts: S(calendar(u)) = u
    u = np.linspace(0, 700, 1_001)
    assert np.allclose(synthetic.operational_days(spec, synthetic.calendar_days(spec, u)), u,
                       atol=1e-6)
    # intensity 1 + 0.6 sin(2 pi t / 7): more orders in the half-cycle where sin > 0
    t = (seasonal["order_us"] - synthetic._epoch_us(spec.start_date)) / 86_400e6
    phase = np.sin(2 * np.pi * t.to_numpy() / 7)
    share_high = float(np.mean(phase > 0))
    # expected share in the high half: (3.5 + 0.6 * 7 / pi) / 7 = 0.691; flat would be 0.5
    assert share_high == pytest.approx(0.5 + 0.6 / np.pi, abs=0.02)


def test_campaign_responses_contract_and_true_uplift(spark):
    from clv.decisions.uplift import RESPONSE_COLUMNS, estimate_uplift

    campaign = synthetic.CampaignSpec(base_conversion=0.10, uplift_conversion=0.05)
    spec = synthetic.SyntheticSpec(n_customers=6_000, seed=8, campaign=campaign)
    frame = synthetic.responses_frame(spark, spec)
    assert tuple(frame.columns) == RESPONSE_COLUMNS
    responses = frame.toPandas()  # customer level, one row per randomised customer
    assert responses["customer_id"].is_unique
    births = synthetic.customer_latents(spec, np.arange(6_000))["birth"]
    assert len(responses) == int((births < campaign.sent_week).sum())
    est = estimate_uplift(responses, by=None, confidence=0.9999)  # +-3.9 se
    row = est.iloc[0]
    assert row["uplift_conversion_low"] <= 0.05 <= row["uplift_conversion_high"]
    true_revenue = 0.05 * spec.p * spec.gamma / (spec.q - 1)
    assert row["uplift_revenue_low"] <= true_revenue <= row["uplift_revenue_high"]


def _job():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "jobs" / "generate_synthetic.py"
    spec = importlib.util.spec_from_file_location("generate_synthetic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generate_job_writes_parquet_and_truth(spark, tmp_path, capsys):
    import json

    assert _job().main(["--customers", "400", "--seed", "4", "--out", str(tmp_path),
                        "--campaign", "--partitions", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    spec = synthetic.SyntheticSpec(400, seed=4, campaign=synthetic.CampaignSpec())
    expected = sorted(synthetic.orders_frame(spark, spec, num_partitions=3).collect())
    assert sorted(spark.read.parquet(str(tmp_path / "orders")).collect()) == expected
    assert report["orders"] == len(expected)
    assert json.loads((tmp_path / "truth.json").read_text())["r"] == spec.r
    assert spark.read.parquet(str(tmp_path / "campaign_responses")).count() > 0


def test_generate_job_loads_raw_orders_through_ingest(spark, clv_home, capsys):
    from clv.data import warehouse

    assert _job().main(["--orders", "1000", "--seed", "2", "--campaign"]) == 0
    out = capsys.readouterr().out
    start = out.rfind("\n{\n")  # the job's report is the last thing it prints
    report = __import__("json").loads(out[start + 1:] if start >= 0 else out)
    spec = synthetic.SyntheticSpec(report["customers"], seed=2)
    loaded = warehouse.read_table(spark, "raw.orders", spec.as_of_date)
    assert loaded.count() == report["orders"] > 500
    assert "0 rejected" in report["load"]
    responses = warehouse.read_table(spark, "raw.campaign_responses", spec.as_of_date)
    assert responses.where("run_id = 'synthetic'").count() > 0


def test_customers_for_orders_inverts_the_expectation():
    per = synthetic.expected_orders_per_customer(synthetic.SyntheticSpec(1))
    assert synthetic.customers_for_orders(1_000_000) == round(1_000_000 / per)
    assert 2.5 < per < 6


# --------------------------------------------------------------------------- action effects

def _features(rows):
    """A features frame by hand: (customer_id, recency, tenure, past-year spend in p01)."""
    frame = pd.DataFrame(rows, columns=["customer_id", "recency_days", "tenure_days",
                                        "spend_p01"])
    for k in range(2, 13):
        frame[f"spend_p{k:02d}"] = 0.0
    return frame


def test_true_effects_follow_the_documented_formulas():
    feats = _features([("a", 60, 730, 600.0), ("b", 120, 182.5, 0.0)])
    truth = synthetic.true_effects(feats).set_index(["customer_id", "action"])
    # email: 4 e^-1 (0.3 + 0.7) = 1.4715; 4 e^-2 (0.3) = 0.16240
    assert truth.loc[("a", "email"), "tau_revenue"] == pytest.approx(4 * np.exp(-1))
    assert truth.loc[("b", "email"), "tau_revenue"] == pytest.approx(1.2 * np.exp(-2))
    # coupon: 0.2 * 60/120 * e^-0.25 * 1 = 0.077880; 0.2 * 120/180 * e^-0.5 * 0.5 = 0.040435
    assert truth.loc[("a", "retention_coupon"), "tau_retention"] == pytest.approx(
        0.1 * np.exp(-0.25))
    assert truth.loc[("b", "retention_coupon"), "tau_retention"] == pytest.approx(
        0.2 * 2 / 3 * np.exp(-0.5) * 0.5)
    assert truth.loc[(slice(None), "email"), "tau_retention"].eq(0).all()
    assert truth.loc[(slice(None), "retention_coupon"), "tau_revenue"].eq(0).all()


def test_expected_outcomes_add_exactly_the_true_effect():
    feats = synthetic.sample_customer_features(500, seed=3)
    none = synthetic.expected_outcomes(feats, np.full(500, "none"))
    truth = synthetic.true_effects(feats)
    for action in synthetic.EFFECT_ACTIONS:
        got = synthetic.expected_outcomes(feats, np.full(500, action))
        tau = truth[truth["action"] == action]
        np.testing.assert_allclose(got["revenue"] - none["revenue"], tau["tau_revenue"])
        np.testing.assert_allclose(got["p_active"] - none["p_active"], tau["tau_retention"])


def test_simulated_differences_match_the_mean_true_effect():
    """Difference in means treated - control per action and channel is within 4 standard
    errors (Welch) of the mean true effect over the randomised customers of that arm."""
    feats = synthetic.sample_customer_features(60_000, seed=21)
    resp = synthetic.randomised_campaign_responses(feats, dt.date(2024, 1, 1), seed=5)
    assert tuple(resp.columns[:7]) == synthetic.RESPONSE_COLUMNS
    truth = synthetic.true_effects(feats)
    control = resp[resp["treatment"] == 0]
    assert len(control) == pytest.approx(60_000 / 3, rel=0.03)
    for action in synthetic.EFFECT_ACTIONS:
        arm = resp[resp["action"] == action]
        tau = truth[(truth["action"] == action) & truth["customer_id"].isin(arm["customer_id"])]
        for outcome, channel in (("revenue", "tau_revenue"), ("retained", "tau_retention")):
            diff = arm[outcome].mean() - control[outcome].mean()
            se = np.sqrt(arm[outcome].var() / len(arm) + control[outcome].var() / len(control))
            assert abs(diff - tau[channel].mean()) <= 4 * se, (action, outcome, diff, se)
            assert se < 0.25 * max(tau[channel].mean(), 1e-9) or tau[channel].mean() == 0


def test_campaign_outcomes_are_deterministic_and_independent_of_row_order():
    feats = synthetic.sample_customer_features(2_000, seed=1)
    assignment = pd.DataFrame({"customer_id": feats["customer_id"],
                               "action": "email", "treated": np.arange(2_000) % 2})
    a = synthetic.simulate_campaign_outcomes(feats, assignment, seed=9)
    shuffled = assignment.sample(frac=1.0, random_state=0)
    b = synthetic.simulate_campaign_outcomes(feats.iloc[::-1], shuffled, seed=9)
    b = b.set_index("customer_id").loc[a["customer_id"]].reset_index()
    pd.testing.assert_frame_equal(a, b[a.columns])
    c = synthetic.simulate_campaign_outcomes(feats, assignment, seed=10)
    assert not a["revenue"].equals(c["revenue"])
    assert (a.loc[a["converted"] == 1, "active"] == 1).all()


def test_randomised_campaign_loads_as_raw_campaign_responses(spark, clv_home):
    """The synthetic campaign passes the campaign_responses suite and lands in the table."""
    from clv import ingest
    from clv.data import warehouse

    feats = synthetic.sample_customer_features(300, seed=4)
    resp = synthetic.randomised_campaign_responses(feats, dt.date(2024, 1, 1), seed=1)
    out = ingest.load_campaign_responses(spark, resp, "synthetic")
    assert out["rows"] == 300 and out["as_of_date"] == "2024-01-02"
    loaded = warehouse.read_partition_pandas("raw.campaign_responses", dt.date(2024, 1, 2))
    assert sorted(loaded["action"].unique()) == ["email", "none", "retention_coupon"]
    assert (loaded.loc[loaded["action"] == "none", "treatment"] == 0).all()


def test_generate_job_writes_the_effects_campaign_and_its_truth(spark, tmp_path, capsys):
    import json

    assert _job().main(["--customers", "300", "--seed", "6", "--out", str(tmp_path),
                        "--effects-campaign"]) == 0
    report = json.loads(capsys.readouterr().out)
    sent = dt.date.fromisoformat(report["effects_sent_date"])
    spec = synthetic.SyntheticSpec(300, seed=6)
    assert sent == spec.as_of_date - dt.timedelta(days=60)
    responses = pd.read_parquet(report["effects_responses_path"])
    truth = pd.read_parquet(report["true_effects"])
    # every customer acquired before the send is randomised; two actions each in the truth
    assert len(responses) == report["effects_customers"] == len(truth) / 2 > 100
    assert set(responses["action"]) == {"none", "email", "retention_coupon"}
    assert set(truth["customer_id"]) == set(responses["customer_id"])
