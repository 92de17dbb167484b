"""Head starts (clv.pipeline.head_start): work begun in a thread, taken by its task."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pandas as pd
import pytest

from clv.pipeline import head_start


@pytest.fixture(autouse=True)
def _nothing_left_begun():
    yield
    for key in head_start.pending():  # a failed test must not hand work to the next
        head_start.take(key, lambda: None)


@pytest.fixture
def dags_test():
    """Inside a task as ``airflow dags test`` runs it: the task SDK's in-process comms."""
    from airflow.sdk.execution_time.supervisor import (
        InProcessSupervisorComms,
        set_supervisor_comms,
    )

    with set_supervisor_comms(InProcessSupervisorComms(supervisor=None)):
        assert head_start.tasks_share_this_process()
        yield


def test_outside_airflow_dags_test_nothing_begins_and_take_calls_the_function():
    assert not head_start.tasks_share_this_process()
    calls = []
    assert not head_start.begin("k", lambda: calls.append("begun"),
                                customers=lambda: calls.append("counted") or 10)
    assert head_start.pending() == []
    assert head_start.take("k", lambda: "inline") == "inline"
    assert calls == []


def test_begun_work_runs_in_the_head_start_thread_and_take_returns_its_result(dags_test):
    ran_in, started = [], threading.Event()

    def work():
        ran_in.append(threading.current_thread().name)
        started.set()
        return 42

    assert head_start.begin("k", work, customers=lambda: 10)
    assert not head_start.begin("k", lambda: -1, customers=lambda: 10)  # left as is
    assert started.wait(30)
    assert head_start.take("k", lambda: "inline") == 42
    assert ran_in[0].startswith("head-start") and ran_in[0] != threading.current_thread().name
    assert head_start.pending() == []
    assert head_start.take("k", lambda: "inline") == "inline"  # taken once


def test_the_works_error_is_raised_by_take(dags_test):
    started = threading.Event()

    def work():
        started.set()
        raise ValueError("features.customer_features: bad column")

    head_start.begin("k", work, customers=lambda: 10)
    assert started.wait(30)
    with pytest.raises(ValueError, match="bad column"):
        head_start.take("k", lambda: "inline")


def test_work_not_yet_under_way_is_cancelled_and_run_by_the_task(dags_test):
    release, started = threading.Event(), threading.Event()
    queued = []

    def blocker():
        started.set()
        release.wait(30)
        return "blocker"

    head_start.begin("first", blocker, customers=lambda: 10)
    assert started.wait(30)
    head_start.begin("second", lambda: queued.append("ran in the pool"), customers=lambda: 10)
    assert head_start.take("second", lambda: threading.current_thread().name) == \
        threading.current_thread().name
    release.set()
    assert head_start.take("first", lambda: "inline") == "blocker"
    assert queued == []  # the queued copy never ran


def test_off_switch_and_customer_limit(monkeypatch, dags_test):
    monkeypatch.setenv("CLV_HEAD_START", "off")
    assert not head_start.begin("k", lambda: 1, customers=lambda: 10)
    monkeypatch.setenv("CLV_HEAD_START", "maybe")
    with pytest.raises(ValueError, match="CLV_HEAD_START='maybe'"):
        head_start.begin("k", lambda: 1, customers=lambda: 10)
    monkeypatch.setenv("CLV_HEAD_START", "on")
    monkeypatch.setenv("CLV_HEAD_START_MAX_CUSTOMERS", "100")
    assert not head_start.begin("k", lambda: 1, customers=lambda: 101)
    assert head_start.begin("k", lambda: 1, customers=lambda: 100)
    assert head_start.take("k", lambda: 1) == 1  # from the thread, or run here if not begun


def _features(n: int = 300, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 40.0, (n, 3)) * (rng.random((n, 3)) < 0.4)
    frequency = rng.integers(1, 20, n)
    return pd.DataFrame({
        "customer_id": [f"c{i:04d}" for i in range(n)],
        "recency_days": rng.integers(1, 400, n), "tenure_days": rng.integers(400, 900, n),
        "frequency": frequency, "avg_order_value": rng.gamma(3.0, 20.0, n),
        "total_spend": frequency * rng.gamma(3.0, 20.0, n),
        "spend_p01": spend[:, 0], "spend_p02": spend[:, 1], "spend_p03": spend[:, 2]})


def test_segment_clusters_begun_ahead_are_the_clusters_of_the_task(spark, clv_home,
                                                                  dags_test):
    """The K-means begun in the thread (Spark jobs from a second Python thread) gives the
    assignments and profiles the task computes itself, value for value."""
    from clv.data import warehouse
    from clv.pipeline import FEATURES, score_tasks

    day = dt.date(2024, 3, 1)
    warehouse.write_partition(spark.createDataFrame(_features()), FEATURES, day)
    inline = score_tasks._clusters(day)
    key = score_tasks._clusters_key(day, "run-1")
    ran_in, started = [], threading.Event()

    def work():
        ran_in.append(threading.current_thread().name)
        started.set()
        return score_tasks._clusters(day)

    assert head_start.begin(key, work, lambda: 300)
    assert started.wait(60)
    ahead = head_start.take(key, work)
    assert ran_in == [ran_in[0]] and ran_in[0].startswith("head-start")
    assert ahead.k == inline.k == 5
    pd.testing.assert_frame_equal(ahead.assignments, inline.assignments)
    pd.testing.assert_frame_equal(ahead.profiles, inline.profiles)
    assert inline.assignments["cluster"].nunique() == 5
