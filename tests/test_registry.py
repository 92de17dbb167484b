"""The champion/challenger policy and the device choice, decided in one place each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.models import device, registry


def _spend(*models):
    """Metric rows of clv_spend versions and baselines: (model, version, family, gini,
    aggregate_error, decile_mape) each."""
    rows = []
    for model, version, family, gini, agg, mape in models:
        for metric, value in (("normalized_gini", gini), ("aggregate_error", agg),
                              ("decile_mape", mape), ("spearman", 0.4), ("mae", 10.0)):
            rows.append(dict(model_name=model, model_version=version, model_family=family,
                             metric=metric, value=value))
    return pd.DataFrame(rows)


#: The baselines of CDNOW's holdout (make run, issue #15), rounded.
BASELINES = [("btyd_bgnbd_gg", "baseline", "btyd", 0.640, -0.046, 0.219),
             ("naive_past_spend_rate", "baseline", "naive", 0.600, 0.310, 0.520)]


def _aliases(decisions):
    return {d.version: d.alias for d in decisions}


def test_best_gini_with_a_44_percent_level_error_is_refused_and_a_sound_one_wins():
    # issue #15: XGBoost v1 won on Gini by 0.0007 at +44% aggregate error
    table = _spend(("clv_spend", "1", "xgboost", 0.6557, 0.443, 0.857),
                   ("clv_spend", "2", "tensorflow", 0.6550, 0.046, 0.202), *BASELINES)
    d = {x.version: x for x in registry.decide_aliases("clv_spend", table, None)}
    assert (d["1"].alias, d["2"].alias) == (None, "champion")
    assert "|aggregate_error| 0.443 > 0.15" in d["1"].reason
    # 1.2 x the best baseline's decile MAPE (BTYD's 0.219) = 0.263 < 0.857
    assert "decile_mape 0.857 > 0.263" in d["1"].reason
    assert "aggregate_error=+0.046" in d["2"].reason and "there was no champion" in d["2"].reason
    # the same table with v1 the champion: it fails the level rule on this holdout and a
    # qualifying version exists, so it loses the alias
    d = {x.version: x for x in registry.decide_aliases("clv_spend", table, "1")}
    assert (d["1"].alias, d["2"].alias) == (None, "champion")
    assert "champion v1 does not qualify" in d["2"].reason


def test_each_gate_on_its_own():
    table = _spend(("clv_spend", "1", "xgboost", 0.70, 0.16, 0.20),     # aggregate 16%
                   ("clv_spend", "2", "xgboost", 0.70, -0.10, 0.27),    # 0.27 > 1.2 x 0.219
                   ("clv_spend", "3", "xgboost", 0.63, 0.00, 0.20),     # below BTYD's Gini
                   ("clv_spend", "4", "xgboost", 0.65, -0.15, 0.26),    # on both bounds
                   *BASELINES)
    assert _aliases(registry.decide_aliases("clv_spend", table, None)) == {
        "1": None, "2": None, "3": None, "4": "champion"}


def test_incumbent_kept_within_the_margin_and_beaten_beyond_it(monkeypatch):
    monkeypatch.setattr(registry.policy, "PROMOTION_MARGIN", 0.01)
    table = _spend(("clv_spend", "1", "tensorflow", 0.700, 0.05, 0.20),
                   ("clv_spend", "2", "xgboost", 0.705, 0.02, 0.20), *BASELINES)
    d = registry.decide_aliases("clv_spend", table, "1")
    assert _aliases(d) == {"1": "champion", "2": "challenger"}
    assert "champion kept" in d[0].reason
    table = _spend(("clv_spend", "1", "tensorflow", 0.700, 0.05, 0.20),
                   ("clv_spend", "2", "xgboost", 0.711, 0.02, 0.20),
                   ("clv_spend", "3", "btyd", 0.705, 0.01, 0.20), *BASELINES)
    d = registry.decide_aliases("clv_spend", table, "1")
    assert _aliases(d) == {"1": None, "2": "champion", "3": "challenger"}
    assert "beats champion v1's normalized_gini 0.7000 by more than 0.01" in d[1].reason
    assert "qualifies, behind challenger v3" in d[0].reason


def test_nothing_qualifies_keeps_the_champion():
    table = _spend(("clv_spend", "1", "xgboost", 0.66, 0.44, 0.86),
                   ("clv_spend", "2", "xgboost", 0.67, 0.30, 0.50), *BASELINES)
    d = registry.decide_aliases("clv_spend", table, "1")
    assert _aliases(d) == {"1": "champion", "2": None}
    assert "champion kept although it does not qualify" in d[0].reason


def test_first_run_falls_back_to_the_best_level_passing_the_floor():
    # nothing beats the baselines; no champion yet: the product must still score
    table = _spend(("clv_spend", "1", "xgboost", 0.62, 0.40, 0.80),
                   ("clv_spend", "2", "tensorflow", 0.55, -0.08, 0.25),
                   ("clv_spend", "3", "xgboost", 0.0, 0.01, 0.20),  # Gini 0: below the floor
                   *BASELINES)
    d = registry.decide_aliases("clv_spend", table, None)
    assert _aliases(d) == {"1": None, "2": "champion", "3": None}
    assert "no version qualifies and there is no champion yet" in d[1].reason
    assert "does not pass the floor 0.0" in d[2].reason
    only_random = _spend(("clv_spend", "1", "xgboost", -0.1, 0.0, 0.2), *BASELINES)
    assert _aliases(registry.decide_aliases("clv_spend", only_random, None)) == {"1": None}


def test_a_btyd_version_is_not_gated_on_the_btyd_baseline():
    # the same model fitted at another cutoff: its Gini ties the baseline's, not a rival
    table = _spend(("clv_spend", "1", "btyd", 0.640, -0.05, 0.22), *BASELINES)
    d = registry.decide_aliases("clv_spend", table, None)
    assert _aliases(d) == {"1": "champion"}
    assert "best baseline naive_past_spend_rate 0.6000" in d[0].reason
    table = _spend(("clv_spend", "1", "xgboost", 0.640, -0.05, 0.22), *BASELINES)
    assert "does not beat the baseline btyd_bgnbd_gg" in registry.decide_aliases(
        "clv_spend", table, None)[0].reason


def _churn(*models):
    rows = []
    for model, version, family, auc, brier in models:
        for metric, value in (("roc_auc", auc), ("brier", brier), ("pr_auc", 0.8)):
            rows.append(dict(model_name=model, model_version=version, model_family=family,
                             metric=metric, value=value))
    return pd.DataFrame(rows)


def test_churn_level_is_brier_against_the_probability_baseline_only():
    # the naive recency rank has a Brier too, but it is no probability: not a bound
    base = [("btyd_bgnbd_gg", "baseline", "btyd", 0.75, 0.150),
            ("naive_recency", "baseline", "naive", 0.70, 0.100)]
    table = _churn(("clv_churn", "1", "xgboost", 0.80, 0.160),
                   ("clv_churn", "2", "tensorflow", 0.79, 0.140), *base)
    d = registry.decide_aliases("clv_churn", table, None)
    assert _aliases(d) == {"1": None, "2": "champion"}
    assert "brier 0.1600 > 0.1575" in d[0].reason  # 1.05 x 0.150
    # AUC 0.5 is random: no alias whatever its Brier
    table = _churn(("clv_churn", "1", "xgboost", 0.5, 0.10), *base)
    assert _aliases(registry.decide_aliases("clv_churn", table, None)) == {"1": None}


def test_selection_rule_records_the_bounds(monkeypatch):
    monkeypatch.setattr(registry.policy, "MAX_AGGREGATE_ERROR", 0.1)
    rule = registry.selection_rule("clv_spend")
    assert rule["max_abs_aggregate_error"] == 0.1 and rule["decile_mape_ratio"] == 1.2
    assert rule["primary_metric"] == "normalized_gini"
    assert registry.selection_rule("clv_churn")["brier_ratio"] == 1.05


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
    a_inside, b_trying = threading.Event(), threading.Event()

    def run_a():
        with registry.alias_lock("clv_spend", clv_home):
            order.append("a-in")
            a_inside.set()
            assert b_trying.wait(30)  # b is now asking for the lock a holds
            time.sleep(0.3)
            order.append("a-out")

    def run_b():
        assert a_inside.wait(30)  # a holds the lock first, whatever the scheduler does
        b_trying.set()
        with registry.alias_lock("clv_spend", clv_home):
            order.append("b-in")
            order.append("b-out")

    threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert order == ["a-in", "a-out", "b-in", "b-out"]


def test_first_run_fallback_prefers_a_version_that_ranks_above_the_baselines():
    # Seasonal data (bench_champion --synthetic): every level is off, nothing qualifies.
    # v1 has the smallest level error but ranks below the baselines; v2 ranks above them:
    # the first champion is v2, not a model worse than the naive rate at ranking.
    table = _spend(("clv_spend", "1", "btyd", 0.60, 0.20, 0.70),
                   ("clv_spend", "2", "xgboost", 0.70, 0.60, 0.90), *BASELINES)
    d = registry.decide_aliases("clv_spend", table, None)
    assert _aliases(d) == {"1": None, "2": "champion"}
    assert "versions passing the floor and the rank gate" in d[1].reason
