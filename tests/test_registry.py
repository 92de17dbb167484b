"""The champion/challenger policy and the device choice, decided in one place each."""

from __future__ import annotations

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
