"""Head starts: a later task's work begun early, when every task shares one process.

``airflow dags test`` (``make run``, ``clv demo``) runs the tasks of a run one after
another in one process, in an order of its own (a set's: new each run). Work the
scheduler would run side by side then waits its turn, and one core of two idles.

So the task that makes the work's input ready begins it, and the task that needs it
takes its result (:func:`take`): it waits for the work, and re-raises the work's error
as its own. The work is the task's own function with the task's own arguments, so its
result is what the task computes alone.

* :func:`begin`: in the head-start thread, one piece of work after another. Right for
  Spark jobs (the K-means of ``segment``: the thread waits on the JVM) and for work
  that only has to be out of the way of the run's order. Python holding the interpreter
  lock gains nothing from a thread (the ZILN fit and the BTYD fits in two threads took
  as long as one after the other, docs/benchmarks.md). The thread yields the CPU (its
  nice value, ``CLV_SIDE_TASK_NICE``): a task never runs queued work itself, it waits.
* :func:`begin_in_process`: in a new Python process (spawned: nothing of this one's
  threads or JVM is copied), for work that holds the interpreter, the ZILN fit. Its
  inputs are read here and handed over by pickle; :func:`start_process` starts that
  process (and imports TensorFlow in it) earlier still. A process that dies (killed,
  out of memory) only means the task does the work itself.

Where a task has a process of its own (the scheduler, ``make up``) nothing begins and
:func:`take` calls the function. ``CLV_HEAD_START=off`` turns head starts off; past
:func:`clv.config.max_head_start_customers` customers they stay off, so work begun
early never holds a large table beside the tasks that run meanwhile.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from clv.pipeline.task_process import tasks_share_this_process

log = logging.getLogger(__name__)

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
#: The process the next :func:`begin_in_process` uses, started ahead by :func:`start_process`.
_process_pool: ProcessPoolExecutor | None = None
#: Work begun: its future, and what makes the task's result of the future's.
_begun: dict[Hashable, tuple[Future, Callable[[Any], Any]]] = {}


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
    global _pool
    if not _may_begin(key, customers):
        return False
    with _lock:
        if key in _begun:
            return False
        if _pool is None:  # one thread: head starts run one after another
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="head-start",
                                       initializer=_yield_thread)
        _begun[key] = _pool.submit(fn), _same
    log.info("head start for %s (the tasks share this process: airflow dags test)", key)
    return True


def begin_in_process(key: Hashable,
                     prepare: Callable[[], tuple[Callable[..., Any], tuple, Callable[[Any], Any]]],
                     customers: Callable[[], int]) -> bool:
    """:func:`begin` for work that holds the interpreter: where ``begin`` would start,
    ``prepare()`` runs here and returns ``(fn, args, finish)``; ``fn(*args)`` then runs in
    a new Python process of its own (``fn`` importable, ``args`` picklable) and
    :func:`take` returns ``finish(its result)``, in the taking task. An error of
    ``prepare`` only means no head start: the task reads the inputs again, and its
    error is then the task's own."""
    global _process_pool
    if not _may_begin(key, customers):
        _stop_process()
        return False
    with _lock:
        if key in _begun:
            return False
    try:
        fn, args, finish = prepare()
    except Exception as exc:  # noqa: BLE001 -- the task reads it again and fails as its own
        log.warning("no head start for %s: its inputs could not be read (%r); the task "
                    "does the work", key, exc)
        _stop_process()
        return False
    with _lock:  # each process serves one head start
        pool, _process_pool = _process_pool or _new_process_pool(None), None
    future = pool.submit(fn, *args)
    future.add_done_callback(lambda _: pool.shutdown(wait=False))  # the process ends with it
    with _lock:
        _begun[key] = future, finish
    log.info("head start for %s in a process of its own (the tasks share this process: "
             "airflow dags test)", key)
    return True


def start_process(setup: Callable[[], Any] | None = None) -> bool:
    """Start the process the next :func:`begin_in_process` will use, and run ``setup``
    (importable; imports, thread counts) in it, now: where the tasks share this process
    and head starts are on (the customers are not known yet: a head start that does not
    begin stops it). A new Python process importing TensorFlow takes seconds that the
    tasks before the work then hide. True when it is started (or already was)."""
    global _process_pool
    if not tasks_share_this_process() or not enabled():
        return False
    with _lock:
        if _process_pool is None:
            _process_pool = _new_process_pool(setup)
            _process_pool.submit(os.getpid)  # the pool spawns its process on a first call
    log.info("head-start process started (%s)", getattr(setup, "__qualname__", "no setup"))
    return True


def _new_process_pool(setup: Callable[[], Any] | None) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_process_init, initargs=(setup,))


def _process_init(setup: Callable[[], Any] | None) -> None:
    """A head start's process logs to its inherited stderr (the run's log) at INFO, then
    runs ``setup``."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s [%(levelname)s] %(name)s (head start, pid "
                               "%(process)d): %(message)s")
    if setup is not None:
        setup()


def _stop_process() -> None:
    global _process_pool
    with _lock:
        pool, _process_pool = _process_pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def _may_begin(key: Hashable, customers: Callable[[], int]) -> bool:
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
    return True


def _yield_thread() -> None:
    """The head-start thread yields the CPU (its own nice value, ``CLV_SIDE_TASK_NICE``;
    threads it starts inherit it): its work waits for no one yet, while the tasks'
    thread and a head start's process are the run's path. Only this thread is lowered:
    it runs nothing else."""
    from clv.config import side_task_nice

    nice = side_task_nice()
    if nice > os.getpriority(os.PRIO_PROCESS, threading.get_native_id()):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def _same(result: T) -> T:
    return result


def take(key: Hashable, fn: Callable[[], T]) -> T:
    """The result of the work begun under ``key`` (waited for), else ``fn()``; the work's
    exception is raised here; work whose process died is done here by ``fn()``."""
    with _lock:
        entry = _begun.pop(key, None)
    if entry is None:
        return fn()
    future, finish = entry
    log.info("taking the head start of %s", key)
    try:
        result = future.result()
    except BrokenProcessPool as exc:
        log.warning("the head start of %s lost its process (%s): the task does the work",
                    key, exc)
        return fn()
    return finish(result)


def pending() -> list[Hashable]:
    """Keys begun and not yet taken."""
    with _lock:
        return list(_begun)
