"""Side tasks yield the CPU to the critical path (clv.ops.priority): every thread of the
process, those made before and after, takes the nice value; a task sharing the process of
`airflow dags test` is left alone; a bad CLV_SIDE_TASK_NICE is refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from clv.ops import priority


@pytest.mark.parametrize("raw, expected", [("10", 10), (" 0 ", 0), ("19", 19)])
def test_the_setting_reads_a_nice_value(monkeypatch, raw, expected):
    monkeypatch.setenv("CLV_SIDE_TASK_NICE", raw)
    assert priority.side_task_nice() == expected


@pytest.mark.parametrize("raw", ["-1", "20", "ten", "2.5", ""])
def test_a_bad_setting_is_refused_by_name(monkeypatch, raw):
    monkeypatch.setenv("CLV_SIDE_TASK_NICE", raw)
    with pytest.raises(ValueError, match="CLV_SIDE_TASK_NICE=.*0 .* to 19"):
        priority.side_task_nice()


def test_the_default_is_ten(monkeypatch):
    monkeypatch.delenv("CLV_SIDE_TASK_NICE", raising=False)
    assert priority.side_task_nice() == priority.DEFAULT_SIDE_TASK_NICE == 10


def _in_a_fresh_process(body: str) -> dict:
    """Run ``body`` in a new interpreter (a raised nice value cannot be lowered again) and
    return the JSON it prints last."""
    code = textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_thread_yields_those_running_and_those_made_after():
    # Linux keeps a nice value per thread: os.nice() in the main thread alone would leave
    # a pool started at import time (BLAS, OpenMP) at 0.
    got = _in_a_fresh_process("""
        import json, os, threading
        from clv.ops.priority import yield_cpu
        gate = threading.Event()
        early = threading.Thread(target=gate.wait)
        early.start()
        before = {t: os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")}
        value = yield_cpu(7)
        after = {t: os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")}
        late = []
        t = threading.Thread(target=lambda: late.append(
            os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        t.start(); t.join()
        again = yield_cpu(3)  # never lowers
        gate.set(); early.join()
        print(json.dumps({"before": before, "after": after, "late": late[0],
                          "value": value, "again": again,
                          "early": str(early.native_id)}))
    """)
    assert set(got["before"].values()) == {0}
    assert got["early"] in got["after"] and len(got["after"]) >= 2
    assert set(got["after"].values()) == {7}
    assert got["late"] == 7 and got["value"] == 7 and got["again"] == 7


def test_only_a_task_with_a_process_of_its_own_yields(monkeypatch):
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import CommsDecoder
    from airflow.sdk.execution_time.supervisor import (
        InProcessSupervisorComms,
        set_supervisor_comms,
    )

    monkeypatch.setenv("CLV_SIDE_TASK_NICE", "10")
    assert not hasattr(task_runner, "SUPERVISOR_COMMS")  # outside any task
    assert priority.task_has_own_process() is False
    assert priority.tasks_share_this_process() is False
    # `airflow dags test`: the task runs in the process that runs every task
    in_process = InProcessSupervisorComms(supervisor=None)
    with set_supervisor_comms(in_process):
        assert priority.task_has_own_process() is False
        assert priority.tasks_share_this_process() is True
        before = os.getpriority(os.PRIO_PROCESS, 0)
        assert priority.yield_to_the_path("explain") == before  # left as it was
        assert os.getpriority(os.PRIO_PROCESS, 0) == before
    # a worker's task process talks to its supervisor over a socket
    decoder = CommsDecoder.__new__(CommsDecoder)
    with set_supervisor_comms(decoder):
        assert priority.task_has_own_process() is True
        assert priority.tasks_share_this_process() is False
