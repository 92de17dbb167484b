"""CPU priority of the DAG's side branches.

The DAG runs tasks side by side on few cores: the challenger fits beside the longest one
(the ZILN network), the SHAP reasons and the segments beside measure_outcomes -> allocate.
The plan waits for the critical path only, so a side task's process yields the CPU to it:
its nice value is raised (``CLV_SIDE_TASK_NICE``, default 10; ``0`` leaves it). A yielding
task still gets every cycle the path leaves idle, and nothing it computes changes.

Only a process of its own yields: ``airflow dags test`` (``make run``, ``clv demo``) runs
every task in one process one after another, where a raised nice value would stay with
the tasks that follow (lowering it again needs privileges).
"""

from __future__ import annotations

import logging
import os

from clv.config import DEFAULT_SIDE_TASK_NICE, side_task_nice
from clv.pipeline.task_process import task_has_own_process, tasks_share_this_process

__all__ = ["DEFAULT_SIDE_TASK_NICE", "side_task_nice", "task_has_own_process",
           "tasks_share_this_process", "yield_cpu", "yield_to_the_path"]

log = logging.getLogger(__name__)



def yield_cpu(nice: int) -> int:
    """Raise the nice value of every thread of this process to ``nice`` and return the
    value the process now has.

    Linux keeps a nice value per thread and a new thread inherits its creator's, so every
    thread running now is set (thread pools made at import time included) and the ones
    made later follow. A value already higher is kept."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice <= current:
        return current
    for tid in os.listdir("/proc/self/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
    return nice


def yield_to_the_path(task_id: str) -> int:
    """Called first thing by a side task: yields the CPU when the task has a process of
    its own (and ``CLV_SIDE_TASK_NICE`` is not 0); logs and returns the process's nice
    value."""
    nice = side_task_nice()
    if nice and task_has_own_process():
        value = yield_cpu(nice)
        log.info("%s runs beside the critical path: its process now at nice %d "
                 "(CLV_SIDE_TASK_NICE)", task_id, value)
        return value
    value = os.getpriority(os.PRIO_PROCESS, 0)
    why = ("CLV_SIDE_TASK_NICE=0" if not nice else
           "it shares its process with the other tasks (airflow dags test)")
    log.info("%s runs beside the critical path; nice left at %d: %s", task_id, value, why)
    return value
