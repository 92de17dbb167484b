"""ZILN network: loss and expected value against scipy, seeded reproducibility, learning."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clv.features import FEATURE_COLUMNS, period_columns
from clv.models import metrics, ziln

pytest.importorskip("tensorflow")

SMALL = ziln.ZilnConfig(static_units=16, gru_units=8, hidden_units=16, max_epochs=12,
                        patience=3, batch_size=64, learning_rate=5e-3)


def _reference_nll(y: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """-log density of the zero-inflated lognormal, from scipy, one value per customer."""
    p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
    mu = logits[:, 1]
    sigma = np.log1p(np.exp(logits[:, 2]))
    buyer_density = p * stats.lognorm.pdf(np.where(y > 0, y, 1.0), s=sigma, scale=np.exp(mu))
    return -np.log(np.where(y > 0, buyer_density, 1.0 - p))


def test_loss_is_the_zero_inflated_lognormal_negative_log_likelihood():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 3)).astype("float64")
    y = np.where(rng.random(50) < 0.4, 0.0, rng.lognormal(3.0, 1.0, 50))
    got = np.asarray(ziln.ziln_loss(y, logits))
    assert got.shape == (50,)
    np.testing.assert_allclose(got, _reference_nll(y, logits), rtol=1e-9, atol=1e-9)


def test_loss_by_hand_for_one_buyer_and_one_non_buyer():
    # logit 0 -> p = 1/2; mu = 0; raw sigma s.t. softplus = 1 -> log(e - 1)
    logits = np.array([[0.0, 0.0, np.log(np.e - 1.0)]] * 2)
    got = np.asarray(ziln.ziln_loss(np.array([0.0, 1.0]), logits))
    # non-buyer: -log(1/2); buyer with y = 1: -log(1/2) - log(1 / sqrt(2 pi))
    assert got == pytest.approx([np.log(2.0), np.log(2.0) + 0.5 * np.log(2.0 * np.pi)])


def test_expected_value_and_churn_probability_match_scipy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(40, 3))
    p, mu, sigma = ziln.ziln_parameters(logits)
    reference = p * stats.lognorm.mean(s=np.log1p(np.exp(logits[:, 2])), scale=np.exp(mu))
    np.testing.assert_allclose(ziln.expected_value(logits), reference, rtol=1e-12)
    np.testing.assert_allclose(p, stats.logistic.cdf(logits[:, 0]), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.log1p(np.exp(logits[:, 2])), rtol=1e-12)


def synthetic_customers(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Customers whose next-horizon spend follows their spend history's level."""
    rng = np.random.default_rng(seed)
    level = rng.lognormal(0.0, 1.0, n)
    frame = pd.DataFrame(0.0, index=range(n), columns=FEATURE_COLUMNS)
    spend_cols = period_columns()[:12]
    order_cols = period_columns()[12:]
    active = rng.random((n, 12)) < np.clip(0.15 * level, 0.02, 0.9)[:, None]
    frame[order_cols] = active.astype(float)
    frame[spend_cols] = active * (20.0 * level)[:, None] * rng.lognormal(0, 0.3, (n, 12))
    frame["n_orders"] = active.sum(axis=1) + 1
    frame["n_purchase_days"] = frame["n_orders"]
    frame["frequency"] = frame["n_orders"] - 1
    frame["total_spend"] = frame[spend_cols].sum(axis=1) + 20.0
    frame["avg_order_value"] = frame["total_spend"] / frame["n_orders"]
    frame["max_order_value"] = frame[spend_cols].max(axis=1).clip(lower=20.0)
    frame["tenure_days"] = 365.0
    frame["recency_days"] = rng.integers(1, 365, n).astype(float)
    frame["mean_ipt_days"] = np.where(frame["n_orders"] > 1, 365.0 / frame["n_orders"], np.nan)
    frame["std_ipt_days"] = np.where(frame["n_orders"] > 2, 10.0, np.nan)
    buys = rng.random(n) < np.clip(0.2 + 0.3 * np.log1p(level), 0.0, 0.95)
    spend = np.where(buys, 30.0 * level * rng.lognormal(0.0, 0.4, n), 0.0)
    return frame, spend, level


@pytest.fixture(scope="module")
def trained():
    frame, spend, level = synthetic_customers(400, seed=3)
    return frame, spend, level, ziln.ZilnModel.fit(frame, spend, SMALL)


def test_same_seed_same_predictions(trained):
    frame, spend, _, model = trained
    again = ziln.ZilnModel.fit(frame, spend, SMALL)
    np.testing.assert_array_equal(again.predict_logits(frame), model.predict_logits(frame))
    assert again.history == model.history


def test_learns_that_higher_spending_history_means_higher_value(trained):
    _, _, _, model = trained
    test_frame, test_spend, test_level = synthetic_customers(300, seed=4)
    pred = model.predict_spend(test_frame)
    assert model.history["epochs_run"] >= 2
    assert metrics.spearman(test_level, pred) > 0.6
    assert metrics.normalized_gini(test_spend, pred) > 0.3
    churn = model.predict_churn(test_frame)
    assert ((churn >= 0) & (churn <= 1)).all()
    top, bottom = test_level > np.quantile(test_level, 0.8), test_level < np.quantile(
        test_level, 0.2)
    assert pred[top].mean() > 2 * pred[bottom].mean()
    assert churn[top].mean() < churn[bottom].mean()


def test_save_and_load_give_the_same_predictions(trained, tmp_path):
    frame, _, _, model = trained
    loaded = ziln.ZilnModel.load(model.save(tmp_path / "m"))
    before = model.predict_spend(frame)
    ziln._LOGITS.clear()  # the loaded network itself predicts, not the remembered result
    np.testing.assert_allclose(loaded.predict_spend(frame), before, rtol=1e-6)
    assert loaded.config == model.config


def test_a_fit_in_a_process_of_its_own_gives_the_same_network(trained, tmp_path):
    """The head start's way (clv.pipeline.train_tasks.begin_fits): fitted and saved in a
    new process set up by fit_process_setup (other thread counts), loaded here; the
    same weights, so the same predictions, bit for bit."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    frame, spend, _, model = trained
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=ziln.fit_process_setup) as pool:
        folder = pool.submit(ziln.fit_saved, str(tmp_path / "m"), frame, spend, SMALL,
                             len(frame)).result(timeout=300)
    loaded = ziln.ZilnModel.load(folder)
    ziln._LOGITS.clear()
    here = model.predict_logits(frame)
    ziln._LOGITS.clear()  # the loaded network itself predicts, not the remembered result
    np.testing.assert_array_equal(loaded.predict_logits(frame), here)
    assert loaded.history == model.history and loaded.spend_scale == model.spend_scale


def test_missing_feature_column_is_a_clear_error(trained):
    frame, _, _, model = trained
    with pytest.raises(ValueError, match="recency_days"):
        model.predict_spend(frame.drop(columns=["recency_days"]))


def test_expected_value_is_balanced_on_the_learning_customers(trained):
    frame, spend, _, model = trained
    assert model.predict_spend(frame).sum() == pytest.approx(spend.sum(), rel=1e-4)
    assert model.spend_scale == model.history["spend_scale"] > 0


def test_static_inputs_are_clipped_to_the_learning_range_when_asked():
    frame, _, _ = synthetic_customers(100, seed=5)
    far = frame.head(3).assign(recency_days=1e6)  # far beyond any learning customer
    column = ziln.RFM_FEATURES.index("recency_days")
    clipped = ziln.Preprocessor.fit(frame, clip=True)
    assert clipped.transform(far)[0][:, column] == pytest.approx(
        [clipped.static_max[column]] * 3)
    np.testing.assert_array_equal(  # the same as the oldest recency it learnt from
        clipped.transform(far)[0],
        clipped.transform(far.assign(recency_days=frame["recency_days"].max()))[0])
    free = ziln.Preprocessor.fit(frame)
    assert (free.transform(far)[0][:, column] > free.static_max[column] + 1).all()


def test_learning_sample_is_capped_seeded_and_equal_to_fitting_that_sample(trained):
    """max_learn_rows: the model learns from a seeded subset, exactly as if it had been
    given that subset (same rows, same spend), and records both counts."""
    from dataclasses import replace

    frame, spend, _, full = trained
    capped = replace(SMALL, max_learn_rows=150)
    model = ziln.ZilnModel.fit(frame, spend, capped)
    assert (model.history["n_learn_rows"], model.history["n_offered_rows"]) == (150, 400)
    assert full.history["n_learn_rows"] == 400
    keep = np.sort(np.random.default_rng(capped.seed).choice(400, size=150, replace=False))
    by_hand = ziln.ZilnModel.fit(frame.iloc[keep].reset_index(drop=True), spend[keep],
                                 replace(capped, max_learn_rows=0))
    np.testing.assert_array_equal(model.predict_logits(frame), by_hand.predict_logits(frame))
    assert not np.allclose(model.predict_logits(frame), full.predict_logits(frame))


def test_the_last_logits_are_remembered_by_the_network_and_inputs(trained, tmp_path):
    """evaluate predicts one network as its spend version, its churn version (each loaded
    on its own) and in the interval code, over the same customers: one pass serves all."""
    frame, spend, _, model = trained
    ziln._LOGITS.clear()
    first = model.predict_logits(frame)
    np.testing.assert_array_equal(first, model._predict_logits(frame))
    churn_version = ziln.ZilnModel.load(model.save(tmp_path / "churn"))
    assert churn_version.predict_logits(frame.copy()) is first  # no second pass
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0] = 0.0
    changed = frame.copy()
    changed.loc[7, "total_spend"] += 50.0  # one input of one customer
    fresh = model.predict_logits(changed)
    assert fresh is not first and not np.array_equal(fresh[7], first[7])
    np.testing.assert_array_equal(fresh, model._predict_logits(changed))
    other = ziln.ZilnModel.fit(frame, spend, dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    assert other.predict_logits(changed) is not fresh  # another network: its own pass
    np.testing.assert_array_equal(other.predict_logits(changed), other._predict_logits(changed))


def test_predict_both_equals_the_two_predictions(trained):
    frame, _, _, model = trained
    spend, churn = model.predict_both(frame)
    np.testing.assert_allclose(spend, model.predict_spend(frame), rtol=1e-12)
    np.testing.assert_allclose(churn, model.predict_churn(frame), rtol=1e-12)


def test_chunked_prediction_equals_one_pass(trained, monkeypatch):
    frame, _, _, model = trained
    whole = model._predict_logits(frame)  # not remembered: each call runs the network
    monkeypatch.setattr(ziln, "PREDICT_CHUNK_ROWS", 128)  # 400 rows: chunks 128+128+128+16
    monkeypatch.setattr(ziln, "PREDICT_BATCH", 64)
    chunked = model._predict_logits(frame)
    assert chunked.shape == whole.shape == (len(frame), 3)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


def test_predict_distribution_has_the_scaled_spend_as_its_mean_and_1_minus_churn_as_p(trained):
    frame, _, _, model = trained
    p, mu, sigma = model.predict_distribution(frame)
    # mean of the zero-inflated lognormal, by hand: p * exp(mu + sigma^2 / 2)
    np.testing.assert_allclose(p * np.exp(mu + sigma**2 / 2), model.predict_spend(frame),
                               rtol=1e-9)
    np.testing.assert_allclose(1.0 - p, model.predict_churn(frame), rtol=1e-12)
    assert model.spend_scale != 1.0  # the shift by log(spend_scale) is really exercised


def test_a_large_learning_sample_takes_larger_batches_at_a_root_scaled_rate():
    base = ziln.ZilnConfig()  # 512 rows a step at 3e-4, at most 100 steps an epoch
    assert ziln.step_settings(base, 18_856) == (512, 3e-4)  # CDNOW's learning rows
    assert ziln.step_settings(base, 51_200) == (512, 3e-4)  # exactly 100 steps
    batch, rate = ziln.step_settings(base, 51_201)  # 101 steps of 512: doubled once
    assert batch == 1024 and rate == pytest.approx(3e-4 * 2 ** 0.5)
    batch, rate = ziln.step_settings(base, 200_000)  # 10M orders: 391, 196, then 98 steps
    assert batch == 2048 and rate == pytest.approx(6e-4)
    assert ziln.step_settings(dataclasses.replace(base, max_steps_per_epoch=0),
                              200_000) == (512, 3e-4)
