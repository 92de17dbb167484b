"""How Airflow runs the current task: in a process of its own (a worker's task process)
or in the process that runs every task of the run (``airflow dags test``).

Read from the task SDK's link to the task's supervisor. Used by
:mod:`clv.ops.priority` (only a process of its own may lower its priority) and
:mod:`clv.pipeline.head_start` (only a shared process can begin a later task's work).
"""

from __future__ import annotations

import sys


def _supervisor_comms() -> tuple[object | None, bool]:
    """The task SDK's link to this task's supervisor (None outside a task), and whether
    it is ``airflow dags test``'s in-process one."""
    # Airflow runs every task through this module: not imported, no task. Importing it
    # here would cost a plain job (jobs/build_features.py) Airflow's import and its
    # logging setup (structlog to stdout).
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if task_runner is None:
        return None, False
    from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return comms, isinstance(comms, InProcessSupervisorComms)


def task_has_own_process() -> bool:
    """True in a task process of an Airflow worker (LocalExecutor, Celery, ...), False
    under ``airflow dags test``, which runs the task inside its own process, and outside
    Airflow."""
    comms, in_process = _supervisor_comms()
    return comms is not None and not in_process


def tasks_share_this_process() -> bool:
    """True under ``airflow dags test``, which runs every task of the run in its own
    process one after another; False in a worker's task process and outside Airflow."""
    return _supervisor_comms()[1]
