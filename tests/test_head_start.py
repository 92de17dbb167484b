"""Head starts (clv.pipeline.head_start): work begun in a thread, taken by its task."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.pipeline import head_start


@pytest.fixture(autouse=True)
def _nothing_left_begun():
    yield
    for key in head_start.pending():  # a failed test must not hand work to the next
        with contextlib.suppress(Exception):
            head_start.take(key, lambda: None)
    head_start._stop_process()


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


def test_work_queued_behind_other_work_is_waited_for_not_run_by_the_task(dags_test):
    """A task whose work waits in the queue waits for it: running it in the task's own
    thread would compete, at full priority, with a head start's process (the ZILN fit)."""
    release, started = threading.Event(), threading.Event()
    ran_in = []

    def blocker():
        started.set()
        release.wait(30)
        return "blocker"

    head_start.begin("first", blocker, customers=lambda: 10)
    assert started.wait(30)
    head_start.begin("second", lambda: ran_in.append(threading.current_thread().name) or 2,
                     customers=lambda: 10)
    threading.Timer(0.3, release.set).start()
    assert head_start.take("second", lambda: "inline") == 2
    assert head_start.take("first", lambda: "inline") == "blocker"
    assert len(ran_in) == 1 and ran_in[0].startswith("head-start")


def test_the_head_start_thread_yields_the_cpu_and_the_tasks_thread_does_not(dags_test,
                                                                          monkeypatch):
    monkeypatch.setenv("CLV_SIDE_TASK_NICE", "7")
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    head_start._pool = None  # a new thread, made under this test's nice value
    try:
        assert head_start.begin(
            "k", lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
            customers=lambda: 10)
        assert head_start.take("k", lambda: "inline") == max(7, before)
    finally:
        head_start._pool = None
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


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


# --------------------------------------------------------------------------- in a process


def _pid_and_twice(x: int) -> tuple[int, int]:
    return os.getpid(), 2 * x


def _fail(message: str) -> None:
    raise ValueError(message)


def _die() -> None:
    os._exit(3)  # the process dies: killed, out of memory


def _mark_setup(path: str) -> None:
    Path(path).write_text(str(os.getpid()))


def test_outside_airflow_dags_test_no_process_starts_and_inputs_are_not_read():
    prepared = []
    assert not head_start.start_process()
    assert not head_start.begin_in_process(
        "p", lambda: prepared.append(1) or (_pid_and_twice, (1,), None), lambda: 10)
    assert prepared == [] and head_start.pending() == []
    assert head_start.take("p", lambda: "inline") == "inline"


def test_work_begun_in_a_process_runs_there_and_take_returns_what_finish_makes(dags_test):
    prepared = []

    def prepare():
        prepared.append(os.getpid())  # the inputs are read here, in the tasks' process
        return _pid_and_twice, (21,), lambda result: ("finished", *result)

    assert head_start.begin_in_process("p", prepare, customers=lambda: 10)
    finished, pid, value = head_start.take("p", lambda: "inline")
    assert (finished, value) == ("finished", 42)
    assert pid != os.getpid() and prepared == [os.getpid()]
    assert head_start.take("p", lambda: "inline") == "inline"  # taken once


def test_a_process_started_ahead_runs_its_setup_and_then_the_work(dags_test, tmp_path):
    import functools

    marker = tmp_path / "setup-pid"
    assert head_start.start_process(functools.partial(_mark_setup, str(marker)))
    assert head_start.begin_in_process("p", lambda: (_pid_and_twice, (1,), _same),
                                       customers=lambda: 10)
    pid, _ = head_start.take("p", lambda: "inline")
    assert marker.read_text() == str(pid) != str(os.getpid())


def test_a_process_started_ahead_stops_when_its_work_does_not_begin(dags_test, monkeypatch):
    monkeypatch.setenv("CLV_HEAD_START_MAX_CUSTOMERS", "5")
    assert head_start.start_process()
    assert not head_start.begin_in_process("p", lambda: (_pid_and_twice, (1,), _same),
                                           customers=lambda: 6)
    assert head_start._process_pool is None


def test_the_process_works_error_is_raised_by_take(dags_test):
    assert head_start.begin_in_process(
        "p", lambda: (_fail, ("features.training_examples: bad column",), _same), lambda: 1)
    with pytest.raises(ValueError, match="bad column"):
        head_start.take("p", lambda: "inline")


def test_inputs_that_cannot_be_read_mean_no_head_start_not_a_failure(dags_test):
    """validate_features must not fail for the training data: the ZILN task reads it again
    and fails as itself."""
    assert head_start.start_process()

    def prepare():
        raise OSError("features.training_examples: no such partition")

    assert not head_start.begin_in_process("p", prepare, customers=lambda: 1)
    assert head_start.pending() == [] and head_start._process_pool is None
    with pytest.raises(OSError, match="no such partition"):
        head_start.take("p", prepare)


def test_work_whose_process_died_is_done_by_the_task(dags_test):
    assert head_start.begin_in_process("p", lambda: (_die, (), _same), customers=lambda: 1)
    assert head_start.take("p", lambda: "inline") == "inline"


def _same(x):
    return x


def _sleep_and_return_pid(seconds: float) -> int:
    import time

    time.sleep(seconds)
    return os.getpid()


def test_dropped_process_work_is_killed_and_its_task_does_the_work(dags_test):
    """A check that fails after the ZILN fit began (build_features, validate_features)
    must not leave its process fitting: the run's end would wait for it."""
    import time

    assert head_start.begin_in_process("p", lambda: (_sleep_and_return_pid, (120,), _same),
                                       customers=lambda: 1)
    [process] = head_start._begun["p"][2].args[0]._processes.values()  # its pool's
    started = time.monotonic()
    assert head_start.drop("p")
    assert not head_start.drop("p")  # dropped once
    assert head_start.pending() == []
    assert head_start.take("p", lambda: "inline") == "inline"
    process.join(30)
    assert not process.is_alive()
    assert time.monotonic() - started < 60  # not the 120 s of the work


def test_dropped_on_error_drops_the_work_and_raises_and_keeps_it_otherwise(dags_test):
    release = threading.Event()
    assert head_start.begin("a", lambda: release.wait(30), customers=lambda: 1)
    assert head_start.begin("b", lambda: "queued", customers=lambda: 1)
    with head_start.dropped_on_error("a", "b"):
        pass
    assert sorted(head_start.pending()) == ["a", "b"]
    with pytest.raises(ValueError, match="features failed"), \
            head_start.dropped_on_error("b"):
        raise ValueError("features failed")
    assert head_start.pending() == ["a"]
    assert head_start.take("b", lambda: "inline") == "inline"  # queued work cancelled
    release.set()
    assert head_start.take("a", lambda: "inline") is True


def test_path_work_runs_in_a_thread_of_its_own_at_the_process_nice_value(dags_test,
                                                                          monkeypatch):
    monkeypatch.setenv("CLV_SIDE_TASK_NICE", "7")
    head_start._pool = head_start._path_pool = None  # new threads, made under this test
    release = threading.Event()
    before = os.getpriority(os.PRIO_PROCESS, 0)

    def nice_and_name():
        return (os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
                threading.current_thread().name)

    try:
        assert head_start.begin("side", lambda: release.wait(30) and nice_and_name(),
                                customers=lambda: 1)
        # the side thread is busy: path work still runs at once, in its own thread
        assert head_start.begin("path", nice_and_name, customers=lambda: 1, on_path=True)
        nice, name = head_start.take("path", lambda: "inline")
        assert name.startswith("head-start-path") and nice == before
        release.set()
        side_nice, side_name = head_start.take("side", lambda: "inline")
        assert side_nice == max(7, before) and not side_name.startswith("head-start-path")
    finally:
        release.set()
        head_start._pool = head_start._path_pool = None


def test_work_after_failed_work_does_not_run_and_raises_its_error(dags_test):
    """allocate's work after measure_outcomes': no plan published when the upstream task
    failed (the scheduler would not run allocate)."""
    ran = []
    assert head_start.begin("measure", lambda: _fail("raw.orders: no rows"),
                            customers=lambda: 1, on_path=True)
    assert head_start.begin("allocate", lambda: ran.append(1) or "plan",
                            customers=lambda: 1, on_path=True, after="measure")
    with pytest.raises(ValueError, match="no rows"):
        head_start.take("allocate", lambda: "inline")
    assert ran == []
    assert not head_start.begin("later", lambda: 1, customers=lambda: 1,
                                after="never begun")
    assert head_start.begin("ok", lambda: 1, customers=lambda: 1, on_path=True)
    assert head_start.begin("next", lambda: 2, customers=lambda: 1, on_path=True,
                            after="ok")
    assert head_start.take("next", lambda: "inline") == 2


def test_a_failed_features_check_drops_the_ziln_fit_build_features_began(dags_test):
    from clv import pipeline
    from clv.pipeline import train_tasks

    day = dt.date(1998, 7, 1)
    key = train_tasks._fit_key("ziln", day, "run-1")
    assert head_start.begin_in_process(key, lambda: (_sleep_and_return_pid, (120,), _same),
                                       customers=lambda: 1)
    assert pipeline.begin_ziln_fit(day, "run-1")  # validate_features: begun already
    with pipeline.ziln_fit_dropped_on_error(day, "run-2"):
        pass  # another run's: not this one
    assert head_start.pending() == [key]
    with pytest.raises(ValueError, match="customer_features"), \
            pipeline.ziln_fit_dropped_on_error(day, "run-1"):
        raise ValueError("features.customer_features: recency_days below 0")
    assert head_start.pending() == []


def test_after_score_the_plans_chain_runs_on_the_path_and_bad_params_begin_no_plan(
        dags_test, monkeypatch):
    """score begins measure_outcomes -> allocate in the path thread and explain, segment
    in the head-start thread; each task takes its own work; params allocate would refuse
    begin no plan (the task then refuses them itself). The work functions are stand-ins:
    what is under test is who runs them where, the e2e test runs the real ones."""
    from clv import pipeline
    from clv.pipeline import decide_tasks, loop_tasks, score_tasks

    ran = []

    def work(name, value):
        return lambda *args: ran.append((name, threading.current_thread().name)) or value

    monkeypatch.setattr(score_tasks.warehouse, "row_count", lambda *args, **kw: 100)
    monkeypatch.setattr(loop_tasks, "_measure_outcomes", work("measure", "measured"))
    monkeypatch.setattr(decide_tasks, "_allocate", work("allocate", "plan"))
    monkeypatch.setattr(score_tasks, "_explain", work("explain", "reasons"))
    monkeypatch.setattr(score_tasks, "_segment", work("segment", "segments"))
    day, params = dt.date(1998, 7, 1), {"budget": 5000.0}
    assert score_tasks.begin_after_score(day, 180, "run-1", params) == dict.fromkeys(
        ("measure_outcomes", "allocate", "explain", "segment"), True)
    assert pipeline.segment(day, "run-1") == "segments"
    assert pipeline.explain(day, "run-1") == "reasons"
    assert pipeline.measure_outcomes(day, 180, "run-1") == "measured"
    assert pipeline.allocate(day, pipeline.AllocationParams.from_params(params),
                             "run-1") == "plan"
    where = dict(ran)
    assert where["measure"] == where["allocate"] and where["measure"].startswith(
        "head-start-path")
    assert where["explain"] == where["segment"] != where["measure"]
    assert [name for name, _ in ran if name in ("measure", "allocate")] == ["measure",
                                                                            "allocate"]
    assert head_start.pending() == []

    bad = {"budget": 1.0, "segment_share_bounds": {"lost": 0.2}}
    assert "allocate" not in score_tasks.begin_after_score(day, 180, "run-2", bad)


def test_outside_a_task_the_check_imports_no_airflow():
    """jobs/build_features.py runs build_features, which asks whether to begin the ZILN
    fit: importing Airflow there sent the job's logs to stdout, where its JSON report is
    read from (tests/test_spark_standalone.py)."""
    import subprocess
    import sys

    code = ("import sys; from clv.pipeline.task_process import tasks_share_this_process; "
            "print(tasks_share_this_process(), 'airflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    assert out.stdout.split() == ["False", "False"]
