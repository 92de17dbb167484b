"""Where fits and scoring run (clv.models.distributed.placement), and when a fit on the
executors is retried: no Spark needed (the cluster itself: test_cluster_models.py).

The default on a ``local`` master is the driver (``make run`` unchanged); a cluster
master, ``CLV_DISTRIBUTED=on`` or enough rows send the work to the executors; over
Spark Connect an XGBoost fit stays on the driver, with the reason. A failed fit is
retried only when executors were lost, on the slots still alive.
"""

from __future__ import annotations

import dataclasses

import pytest

from clv.config import DISTRIBUTED_MIN_ROWS, load_settings
from clv.models.distributed import placement, training


@pytest.fixture
def settings(monkeypatch, tmp_path):
    for name in ("CLV_DISTRIBUTED", "CLV_DISTRIBUTED_MIN_ROWS", "CLV_SPARK_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLV_HOME", str(tmp_path))
    return load_settings()


def _never() -> int:
    raise AssertionError("rows were counted where the decision does not need them")


@pytest.mark.parametrize("master", ["local[2]", "local[*]", "local"])
def test_a_local_master_keeps_the_driver_below_the_threshold(settings, master):
    where = placement.choose("fit", dataclasses.replace(settings, spark_master=master),
                             rows=lambda: DISTRIBUTED_MIN_ROWS - 1)
    assert (where.distributed, where.master) == (False, placement.LOCAL)
    assert f"{DISTRIBUTED_MIN_ROWS - 1} rows <" in where.reason


def test_enough_rows_go_to_the_executors_on_a_local_master(settings, monkeypatch):
    monkeypatch.setenv("CLV_DISTRIBUTED_MIN_ROWS", "1000")
    where = placement.choose("fit", settings, rows=lambda: 1000)
    assert (where.distributed, where.master) == (True, "local[2]")


@pytest.mark.parametrize("master", ["spark://10.0.0.1:7077", "yarn", "k8s://https://k:443"])
def test_a_cluster_master_goes_to_the_executors_without_counting(settings, master):
    where = placement.choose("fit", dataclasses.replace(settings, spark_master=master),
                             rows=_never, needs_spark_context=True)
    assert (where.distributed, where.master) == (True, master)
    assert "is a cluster" in where.reason


def test_on_and_off_override_the_master(settings, monkeypatch):
    cluster = dataclasses.replace(settings, spark_master="spark://h:7077")
    monkeypatch.setenv("CLV_DISTRIBUTED", "off")
    assert not placement.choose("scoring", cluster, rows=_never).distributed
    monkeypatch.setenv("CLV_DISTRIBUTED", "ON")
    assert placement.choose("scoring", settings, rows=_never).distributed
    monkeypatch.setenv("CLV_DISTRIBUTED", "sometimes")
    with pytest.raises(ValueError, match="CLV_DISTRIBUTED='sometimes'"):
        placement.choose("scoring", settings, rows=_never)


def test_over_spark_connect_a_fit_stays_on_the_driver_and_scoring_does_not(settings,
                                                                          monkeypatch):
    monkeypatch.setenv("CLV_SPARK_REMOTE", "sc://127.0.0.1:15002")
    # the Connect server's own master (asked over the connection in production)
    monkeypatch.setattr(placement, "spark_master", lambda s: "spark://h:7077")
    fit = placement.choose("fit", settings, rows=_never, needs_spark_context=True)
    assert (fit.distributed, fit.master) == (False, placement.LOCAL)
    assert "Spark Connect" in fit.reason and "classic SparkContext" in fit.reason
    assert placement.choose("scoring", settings, rows=_never).distributed


def _flaky_fit(monkeypatch, slots: list[int], failures: int) -> list[int]:
    """_fit_once failing ``failures`` times; executor_slots reading ``slots`` in turn.
    Returns the num_workers each attempt got."""
    seen, state = [], {"slots": iter(slots), "now": slots[0]}

    def now(spark) -> int:
        state["now"] = next(state["slots"], state["now"])
        return state["now"]

    def fit_once(spark, model, learn, features, workers):
        seen.append(workers)
        if len(seen) <= failures:
            raise RuntimeError("Could not recover from a failed barrier ResultStage")
        return "booster"

    monkeypatch.setattr(training, "_settled_slots", now)
    monkeypatch.setattr(training, "executor_slots", now)
    monkeypatch.setattr(training, "_fit_once", fit_once)
    return seen


def test_a_fit_that_lost_an_executor_is_retried_on_the_slots_left(monkeypatch, caplog):
    # 2 slots at the start, 1 after the failure: the retry runs on 1 worker
    seen = _flaky_fit(monkeypatch, [2, 1, 1], failures=1)
    assert training._fit_surviving_lost_executors(None, None, None, []) == ("booster", 1, 2)
    assert seen == [2, 1]
    assert "failed (attempt 1 of 3, 1 slot(s) left" in caplog.text


def test_a_fit_that_fails_with_every_executor_alive_is_not_retried(monkeypatch):
    seen = _flaky_fit(monkeypatch, [2, 2], failures=1)
    with pytest.raises(RuntimeError, match="barrier"):
        training._fit_surviving_lost_executors(None, None, None, [])
    assert seen == [2]


def test_retries_stop_after_the_last_attempt(monkeypatch):
    seen = _flaky_fit(monkeypatch, [4, 3, 3, 2, 2, 1], failures=training.MAX_FIT_ATTEMPTS)
    with pytest.raises(RuntimeError):
        training._fit_surviving_lost_executors(None, None, None, [])
    assert seen == [4, 3, 2]
