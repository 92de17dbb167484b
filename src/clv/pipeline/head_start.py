"""Head starts: a later task's Spark work begun in a thread when every task shares one
process.

``airflow dags test`` (``make run``, ``clv demo``) runs the tasks of a run one after
another in one process. Work the scheduler would run beside the path then waits its
turn, even where it would hardly compete: the K-means of the ``segment`` task is Spark
jobs on the JVM, while the model fits after ``validate_features`` are Python holding
the interpreter lock (threads do not help those: the ZILN fit and the BTYD fits in two
threads took as long as one after the other, docs/benchmarks.md).

So the task that makes the work's input ready starts it (:func:`begin`), and the task
that needs it takes its result (:func:`take`): it waits for work under way, runs work
not yet begun itself (cancelling its queued copy), and re-raises the work's error as
its own. The work is the task's own function with the task's own arguments, so its
result is what the task computes alone.

Where a task has a process of its own (the scheduler, ``make up``) :func:`begin` does
nothing and :func:`take` calls the function. ``CLV_HEAD_START=off`` turns head starts
off; past :func:`clv.config.max_head_start_customers` customers they stay off, so work
begun early never holds a large table beside the tasks that run meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from clv.pipeline.task_process import tasks_share_this_process

log = logging.getLogger(__name__)

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_begun: dict[Hashable, Future] = {}


def enabled() -> bool:
    """``CLV_HEAD_START``: on (default) unless ``off``/``0``/``false``/``no``."""
    text = (os.environ.get("CLV_HEAD_START") or "on").strip().lower()
    if text in ("0", "off", "false", "no"):
        return False
    if text in ("1", "on", "true", "yes"):
        return True
    raise ValueError(f"CLV_HEAD_START={text!r}: expected on or off")


def begin(key: Hashable, fn: Callable[[], Any], customers: Callable[[], int]) -> bool:
    """Start ``fn`` in the head-start thread under ``key`` when the tasks share this
    process, head starts are on and ``customers()`` (asked only then) is within
    :func:`clv.config.max_head_start_customers`; True when it was started. Work already
    begun under ``key`` is left as it is."""
    from clv.config import max_head_start_customers

    if not tasks_share_this_process():
        return False
    if not enabled():
        log.info("no head start for %s: CLV_HEAD_START is off", key)
        return False
    limit, n = max_head_start_customers(), customers()
    if n > limit:
        log.info("no head start for %s: %d customers > %d (CLV_HEAD_START_MAX_CUSTOMERS)",
                 key, n, limit)
        return False
    global _pool
    with _lock:
        if key in _begun:
            return False
        if _pool is None:  # one thread: head starts run one after another
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="head-start")
        _begun[key] = _pool.submit(fn)
    log.info("head start for %s (the tasks share this process: airflow dags test)", key)
    return True


def take(key: Hashable, fn: Callable[[], T]) -> T:
    """The result of the work begun under ``key``, else ``fn()``: work not yet under way
    is cancelled and run here; the work's exception is raised here."""
    with _lock:
        future = _begun.pop(key, None)
    if future is None or future.cancel():
        return fn()
    log.info("taking the head start of %s", key)
    return future.result()


def pending() -> list[Hashable]:
    """Keys begun and not yet taken."""
    with _lock:
        return list(_begun)
