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
  ``on_path``: in a second thread, at the process's nice value, for a chain the run
  waits for that the command would otherwise reach after the side tasks, in its order
  (after ``score``: measure_outcomes -> allocate, beside explain and segment).
* :func:`begin_in_process`: in a new Python process (spawned: nothing of this one's
  threads or JVM is copied), for work that holds the interpreter, the ZILN fit. Its
  inputs are read here and handed over by pickle; :func:`start_process` starts that
  process (and imports TensorFlow in it) earlier still. A process that dies (killed,
  out of memory) only means the task does the work itself.

Work begun before the checks its task waits for (the ZILN fit, on the training
examples, before the features are validated) is dropped when one fails (:func:`drop`,
:func:`dropped_on_error`): its process is killed, queued work cancelled.

Where a task has a process of its own (the scheduler, ``make up``) nothing begins and
:func:`take` calls the function. ``CLV_HEAD_START=off`` turns head starts off; past
:func:`clv.config.max_head_start_customers` customers they stay off, so work begun
early never holds a large table beside the tasks that run meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from clv.pipeline.task_process import tasks_share_this_process

log = logging.getLogger(__name__)

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
#: The path thread of ``begin(..., on_path=True)``.
_path_pool: ThreadPoolExecutor | None = None
#: The process the next :func:`begin_in_process` uses, started ahead by :func:`start_process`.
_process_pool: ProcessPoolExecutor | None = None
#: Work begun: its future, what makes the task's result of the future's, and what stops it.
_begun: dict[Hashable, tuple[Future, Callable[[Any], Any], Callable[[], Any]]] = {}


def enabled() -> bool:
    """``CLV_HEAD_START``: on (default) unless ``off``/``0``/``false``/``no``."""
    text = (os.environ.get("CLV_HEAD_START") or "on").strip().lower()
    if text in ("0", "off", "false", "no"):
        return False
    if text in ("1", "on", "true", "yes"):
        return True
    raise ValueError(f"CLV_HEAD_START={text!r}: expected on or off")


def begin(key: Hashable, fn: Callable[[], Any], customers: Callable[[], int], *,
          on_path: bool = False, after: Hashable | None = None) -> bool:
    """Start ``fn`` in the head-start thread under ``key`` when the tasks share this
    process, head starts are on and ``customers()`` (asked only then) is within
    :func:`clv.config.max_head_start_customers`; True when it was started. Work already
    begun under ``key`` is left as it is. ``on_path``: in the path thread instead, which
    keeps the process's nice value: the run waits for this work (the plan's chain
    beside the side tasks). ``after``: the key of work begun before in the same thread
    whose task is upstream of this one: ``fn`` runs only if that work succeeded (else
    its error is this work's, and the task, upstream-failed, never takes it); not begun
    when that work was not."""
    global _pool, _path_pool
    if not _may_begin(key, customers):
        return False
    with _lock:
        if key in _begun:
            return False
        if after is not None:
            if after not in _begun:
                return False
            fn = functools.partial(_after, _begun[after][0], fn)
        # one thread each: head starts run one after another
        if on_path and _path_pool is None:
            _path_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="head-start-path")
        elif not on_path and _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="head-start",
                                       initializer=_yield_thread)
        future = (_path_pool if on_path else _pool).submit(fn)
        _begun[key] = future, _same, future.cancel  # work already running runs out
    log.info("head start for %s%s (the tasks share this process: airflow dags test)", key,
             " on the run's path" if on_path else "")
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
        _begun[key] = future, finish, functools.partial(_kill, pool)
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


def _kill(pool: ProcessPoolExecutor) -> None:
    """End ``pool``'s process now, mid-work (Python 3.14 has ``terminate_workers``; until
    then its processes are only reachable through ``_processes``)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
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


def _after(upstream: Future, fn: Callable[[], T]) -> T:
    upstream.result()  # done: the same thread ran it first
    return fn()


def _same(result: T) -> T:
    return result


def take(key: Hashable, fn: Callable[[], T]) -> T:
    """The result of the work begun under ``key`` (waited for), else ``fn()``; the work's
    exception is raised here; work whose process died is done here by ``fn()``."""
    with _lock:
        entry = _begun.pop(key, None)
    if entry is None:
        return fn()
    future, finish, _ = entry
    log.info("taking the head start of %s", key)
    try:
        result = future.result()
    except BrokenProcessPool as exc:
        log.warning("the head start of %s lost its process (%s): the task does the work",
                    key, exc)
        return fn()
    return finish(result)


def drop(key: Hashable) -> bool:
    """Forget the work begun under ``key``, whose task will not take it (a check before
    that task failed): a process of its own is killed, work still queued is cancelled,
    work already running in the thread runs out unseen. True when there was work."""
    with _lock:
        entry = _begun.pop(key, None)
    if entry is None:
        return False
    entry[2]()
    log.info("head start for %s dropped: a check before its task failed", key)
    return True


@contextlib.contextmanager
def dropped_on_error(*keys: Hashable) -> Iterator[None]:
    """:func:`drop` the work begun under ``keys`` when the block raises (then re-raised)."""
    try:
        yield
    except BaseException:
        for key in keys:
            drop(key)
        raise


def task_key(task: str, as_of_date: Any, run_id: str) -> tuple:
    """The key of a task's work for one run and as-of date."""
    return (task, as_of_date.isoformat(), run_id)


def pending() -> list[Hashable]:
    """Keys begun and not yet taken."""
    with _lock:
        return list(_begun)
