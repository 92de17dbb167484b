"""The champion/challenger policy and the device choice, decided in one place each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv import device, registry


def test_first_version_passing_the_floor_becomes_champion():
    d = registry.decide_alias("clv_spend", "1", 0.42, None)
    assert (d.alias, d.version) == ("champion", "1")


def test_version_at_or_below_the_floor_gets_no_alias():
    assert registry.decide_alias("clv_spend", "1", 0.0, None).alias is None  # Gini 0 = random
    assert registry.decide_alias("clv_churn", "1", 0.5, None).alias is None  # AUC 0.5 = random
    assert registry.decide_alias("clv_churn", "1", 0.51, None).alias == "champion"


def test_later_version_must_beat_the_champion_on_the_same_data():
    better = registry.decide_alias("clv_churn", "2", 0.81, 0.80)
    equal = registry.decide_alias("clv_churn", "3", 0.80, 0.80)
    worse = registry.decide_alias("clv_churn", "4", 0.79, 0.80)
    assert (better.alias, equal.alias, worse.alias) == ("champion", "challenger", "challenger")
    assert "0.7900" in worse.reason and "0.8000" in worse.reason


def test_forced_device(monkeypatch):
    device.xgboost_device.cache_clear()
    monkeypatch.setenv("CLV_DEVICE", "cuda")
    assert device.xgboost_device() == "cuda"
    device.xgboost_device.cache_clear()
    monkeypatch.setenv("CLV_DEVICE", "cpu")
    assert device.xgboost_device() == "cpu"
    device.xgboost_device.cache_clear()


def test_no_gpu_means_cpu(monkeypatch):
    device.xgboost_device.cache_clear()
    monkeypatch.delenv("CLV_DEVICE", raising=False)
    monkeypatch.setattr(device.shutil, "which", lambda name: None)  # no nvidia-smi on PATH
    assert device.xgboost_device() == "cpu"
    device.xgboost_device.cache_clear()


@pytest.mark.parametrize("name", ["clv_spend", "clv_churn"])
def test_every_model_has_a_primary_metric_and_floor(name):
    assert name in registry.PRIMARY_METRIC and name in registry.QUALITY_FLOOR


def test_later_version_must_beat_the_btyd_baseline_to_get_any_alias():
    # beats the champion but not the baseline: no alias (the champion is worse still)
    d = registry.decide_alias("clv_spend", "2", 0.60, 0.55, baseline_score=0.65)
    assert d.alias is None and "BTYD" in d.reason and "0.6500" in d.reason
    # beats the baseline, not the champion: challenger
    assert registry.decide_alias("clv_spend", "3", 0.70, 0.72, 0.65).alias == "challenger"
    # beats both: champion
    assert registry.decide_alias("clv_spend", "4", 0.75, 0.72, 0.65).alias == "champion"
    # the very first version becomes champion even below the baseline (the product must
    # score); the reason records the comparison
    first = registry.decide_alias("clv_churn", "1", 0.70, None, baseline_score=0.75)
    assert first.alias == "champion" and "0.7500" in first.reason
    assert registry.decide_alias("clv_churn", "2", float("nan"), 0.7, 0.6).alias is None


def test_promotion_margin(monkeypatch):
    monkeypatch.setattr(registry, "PROMOTION_MARGIN", 0.01)
    assert registry.decide_alias("clv_spend", "2", 0.705, 0.70, 0.6).alias == "challenger"
    assert registry.decide_alias("clv_spend", "3", 0.711, 0.70, 0.6).alias == "champion"


class _Xgb:
    def predict(self, x):
        return np.array([-1.0, 2.0])

    def predict_proba(self, x):
        return np.array([[0.9, 0.1], [0.3, 0.7]])


class _Pyfunc:
    def predict(self, x):
        return pd.DataFrame({"0": [1.5, -0.5]})


def test_scoring_model_gives_spend_or_churn_whatever_the_family():
    assert registry.ScoringModel("clv_spend", "1", "xgboost", _Xgb()).predict(None).tolist() == [
        0.0, 2.0]  # spend is never negative
    assert registry.ScoringModel("clv_churn", "1", "xgboost", _Xgb()).predict(None).tolist() == [
        0.1, 0.7]  # the probability of class 1 (churned), not the label
    assert registry.ScoringModel("clv_spend", "2", "tensorflow", _Pyfunc()).predict(
        None).tolist() == [1.5, 0.0]
    assert registry.ScoringModel("clv_churn", "2", "tensorflow", _Pyfunc()).predict(
        None).tolist() == [1.0, 0.0]


def test_alias_lock_serialises_two_runs(clv_home):
    import threading
    import time

    order = []

    def run(tag):
        with registry.alias_lock("clv_spend", clv_home):
            order.append(f"{tag}-in")
            time.sleep(0.2)
            order.append(f"{tag}-out")

    threads = [threading.Thread(target=run, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert order == ["a-in", "a-out", "b-in", "b-out"]
