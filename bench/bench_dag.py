"""The whole DAG end to end at a given size: wall time and peak memory per task.

    .venv/bin/python bench/bench_dag.py --cdnow                       # CDNOW, as make run
    .venv/bin/python bench/bench_dag.py --cdnow --scheduler           # CDNOW, as make up
    .venv/bin/python bench/bench_dag.py \\
        --orders .state/bench/data/orders-10000000-seed7/orders \\
        --as-of-date 2025-12-29 --horizon-days 90                    # 10M synthetic orders

It runs in its own ``--home`` (default ``.state/bench/dag-<name>``: warehouse, MLflow,
Airflow DB), so your ``make run`` state is untouched. One process, as ``make run``:
Airflow metadata DB, the orders into ``raw.orders`` (quarantine rules, atomic
publish), then ``airflow dags test`` (every task in this process, one Spark JVM).
A thread samples the memory (PSS, see :class:`MemorySampler`) of the process tree
(Python + the Spark driver JVM, whose executors run inside it in ``local[2]``) every 0.25 s; each
task's peak is the largest sample between its start and end in Airflow's metadata.

``--scheduler``: as ``make up`` runs it, literally. Airflow's scheduler (LocalExecutor:
each task a process forked from an executor worker), DAG processor, triggerer and API
server are started in the home, with one Spark Connect server; the DAG is triggered once
and timed from Airflow's metadata (``dag_wall_s``: trigger to the run's end). A thread
reads each task process's peak RSS (``VmHWM``) and CPU seconds, found by the title
Airflow's task runner gives it, and the Spark driver's PSS. This is the mode ``make
bench`` reports (``bench/bench_scale.py``).

``--isolated``: an imitation of a scheduled run, kept for comparison. One Spark Connect
server (the Spark driver, one JVM) is started, and every task runs in its own
process with ``airflow tasks test`` (its own interpreter, Airflow imported and an
in-process API server set up per task: ~6 s a task that a forked LocalExecutor task
does not pay), attached to it, started as the scheduler starts them: once its upstream tasks
succeeded, at most ``--parallelism`` at once and as many Spark tasks as the Spark
pool has slots (the task list, dependencies and pools are read from the DAG itself).
``--sequential`` runs one task at a time instead, for per-task figures without
overlap. Per task: start, wall seconds, the task process's peak RSS (``wait4``), and
the Spark driver's peak PSS while the task ran: the memory each side needs, not the
sum of a long-lived process that ran everything. Each task's log is
``<home>/logs/<task>.log``.

Prints a table and writes ``bench/results/bench_dag-<name>-<UTC time>.json`` (:mod:`recording`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import recording

from clv.config import DEFAULT_BUDGET, DEFAULT_HORIZON_DAYS, SPARK_POOL_ARGS

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".state" / "bench"


def _environment(home: Path) -> None:
    """What the Makefile exports, pointed at ``home`` (before Airflow is imported)."""
    os.environ.update({
        "CLV_HOME": str(home),
        "AIRFLOW_HOME": str(home / ".state" / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    })
    os.environ.pop("CLV_SPARK_REMOTE", None)


class MemorySampler(threading.Thread):
    """(UTC time, memory of a process and its children) every ``every`` s (default: this
    process).

    Memory is the sum of each process's PSS (proportional set size), not RSS: the JVM
    starts helpers (``jspawnhelper``) by forking, and a sample that catches the fork
    before its exec counted the parent's pages twice with RSS (measured: a 2.5 GiB
    Spark Connect JVM read as 5.08 GiB for one sample; 2.32 GiB when re-run alone).
    """

    def __init__(self, every: float = 0.25, pid: int | None = None) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.every, self.samples, self.stop = every, [], threading.Event()
        self.pid = pid

    def run(self) -> None:
        import psutil

        me = psutil.Process(self.pid)
        while not self.stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_full_info().pss
                except psutil.Error:
                    pass
            self.samples.append((dt.datetime.now(dt.UTC), total))
            self.stop.wait(self.every)


def _query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of ``sql`` on Airflow's SQLite metadata DB, opened read-only."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _utc(value: str) -> dt.datetime:
    """A timestamp of Airflow's metadata, UTC."""
    t = dt.datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _task_times(db: Path) -> tuple[str, list[tuple[str, float, str, dt.datetime, dt.datetime]]]:
    run_id = _query(db, "select run_id from dag_run where dag_id = 'clv_pipeline' "
                        "order by id desc limit 1")[0][0]
    rows = _query(db, "select task_id, duration, state, start_date, end_date from "
                      "task_instance where dag_id = 'clv_pipeline' and run_id = ? "
                      "order by start_date", [run_id])
    return run_id, [(t, d or 0.0, s, _utc(a), _utc(b)) for t, d, s, a, b in rows if a and b]


def dag_tasks() -> list[dict]:
    """The DAG's tasks in topological order: id, upstream ids and pool, read from
    ``dags/`` by Airflow itself (so the bench never runs a stale task list)."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(REPO / "dags")).dags["clv_pipeline"]
    return [{"task": t.task_id, "upstream": sorted(t.upstream_task_ids), "pool": t.pool}
            for t in dag.topological_sort()]


def _pool_slots() -> dict[str, int]:
    """Slots per pool as ``make up`` sets them (the Spark pool; default_pool is 128)."""
    return {SPARK_POOL_ARGS[2]: int(SPARK_POOL_ARGS[3]), "default_pool": 128}


def _run_child(argv: list[str], log_path: Path, sampler_pid: int | None = None
               ) -> tuple[int, float, float, float]:
    """(exit status, seconds, child's peak RSS GiB, Spark driver peak PSS GiB while it ran).

    The child's output goes to its own log file (tasks may run at the same time)."""
    jvm = MemorySampler(pid=sampler_pid) if sampler_pid else None
    if jvm:
        jvm.start()
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    driver = 0.0
    if jvm:
        jvm.stop.set()
        jvm.join()
        driver = max((rss for _, rss in jvm.samples), default=0) / 2**30
    return proc.returncode, seconds, usage.ru_maxrss / 2**20, driver


def schedule(tasks: list[dict], run_task, parallelism: int, slots: dict[str, int],
             on_done=None) -> tuple[list[dict], str | None]:
    """Run ``tasks`` as Airflow's LocalExecutor would: a task starts once all its
    upstream tasks succeeded, at most ``parallelism`` at once and at most ``slots[pool]``
    per pool, in topological order. ``run_task(task)`` returns a result dict with a
    ``state``; the first failure stops new starts. Returns (results in finish order,
    the failure or None)."""
    import queue

    done, running, results = set(), {}, []
    finished: queue.Queue = queue.Queue()
    failed = None
    pending = list(tasks)
    while pending or running:
        if not failed:
            for t in list(pending):
                in_pool = sum(1 for r in running.values() if r["pool"] == t["pool"])
                if (len(running) < parallelism and in_pool < slots.get(t["pool"], 128)
                        and set(t["upstream"]) <= done):
                    pending.remove(t)
                    running[t["task"]] = t
                    threading.Thread(target=lambda t=t: finished.put((t, run_task(t))),
                                     daemon=True).start()
        if not running:
            break
        t, result = finished.get()
        del running[t["task"]]
        results.append(result)
        if on_done:
            on_done(result)
        if result["state"] == "success":
            done.add(t["task"])
        elif not failed:
            failed = f"{t['task']}: {result['state']}"
    if pending and not failed:
        failed = "unreachable: " + ", ".join(t["task"] for t in pending)
    return results, failed


@contextlib.contextmanager
def _spark_connect(log, steps: dict):
    """The Airflow metadata DB and one Spark Connect server (the Spark driver every task
    attaches to, as under ``make up``), stopped on exit."""
    from clv.data.spark import free_port, start_connect_server

    bin_dir = Path(sys.executable).parent
    t0 = time.perf_counter()
    for argv in (["db", "migrate"], list(SPARK_POOL_ARGS)):
        subprocess.run([str(bin_dir / "airflow"), *argv], stdout=log,
                       stderr=subprocess.STDOUT, check=True)
    steps["airflow_db_s"] = time.perf_counter() - t0
    port = free_port()
    os.environ["CLV_SPARK_REMOTE"] = f"sc://127.0.0.1:{port}"
    t0 = time.perf_counter()
    server = start_connect_server(port, log)
    try:
        steps["spark_connect_start_s"] = time.perf_counter() - t0
        print(f"Spark Connect server up in {steps['spark_connect_start_s']:.1f} s "
              f"(pid {server.pid}, port {port})", flush=True)
        yield server
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def _load_orders(args: argparse.Namespace, as_of: dt.date, logs: Path, server_pid: int,
                 steps: dict) -> str | None:
    """The orders into ``raw.orders`` with the CLI, in its own process; a failure or None."""
    bin_dir = Path(sys.executable).parent
    load = ([str(bin_dir / "clv"), "import-cdnow", "--as-of-date", as_of.isoformat()]
            if args.cdnow else
            [str(bin_dir / "clv"), "import-orders", str(args.orders), "--format",
             "parquet", "--as-of-date", as_of.isoformat()])
    rc, seconds, peak, driver = _run_child(load, logs / "load.log", server_pid)
    steps["load_orders_s"] = seconds
    steps["load_orders_task_gib"], steps["load_orders_driver_gib"] = peak, driver
    print(f"load orders: {seconds:.1f} s, task process {peak:.2f} GiB, "
          f"Spark driver {driver:.2f} GiB", flush=True)
    return f"load exited {rc}" if rc else None


def run_isolated(args: argparse.Namespace, home: Path, name: str) -> int:
    """Every task in its own process, attached to one Spark Connect server, started as
    the scheduler starts them (dependencies, the Spark pool, ``--parallelism``)."""
    load_start = os.getloadavg()
    bin_dir = Path(sys.executable).parent
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    log_path = home / "dag.log"
    as_of = dt.date.fromisoformat(args.as_of_date)
    params = json.dumps({"as_of_date": as_of.isoformat(), "horizon_days": args.horizon_days,
                         "budget": args.budget})
    graph = dag_tasks()
    if args.tasks:  # a subset: dependencies outside it count as done
        graph = [{**t, "upstream": [u for u in t["upstream"] if u in args.tasks]}
                 for t in graph if t["task"] in args.tasks]
    parallelism = 1 if args.sequential else args.parallelism
    rows, steps, failed = [], {}, None
    with open(log_path, "w") as log, _spark_connect(log, steps) as server:
        if not args.tasks:  # a subset re-runs on the home's loaded orders
            failed = _load_orders(args, as_of, logs, server.pid, steps)
        # One DAG run for every task (as the scheduler would), so `evaluate` sees the
        # versions the training tasks registered under its run id.
        subprocess.run([str(bin_dir / "airflow"), "dags", "reserialize"], stdout=log,
                       stderr=subprocess.STDOUT, check=False)
        subprocess.run([str(bin_dir / "airflow"), "dags", "trigger", "clv_pipeline",
                        "--logical-date", f"{as_of.isoformat()}T00:00:00+00:00",
                        "--conf", params], stdout=log, stderr=subprocess.STDOUT,
                       check=False)
        dag_start = time.perf_counter()

        def run_task(t: dict) -> dict:
            task_log = logs / f"{t['task']}.log"
            started = time.perf_counter() - dag_start
            rc, seconds, peak, driver = _run_child(
                [str(bin_dir / "airflow"), "tasks", "test", "clv_pipeline", t["task"],
                 as_of.isoformat(), "--task-params", params], task_log, server.pid)
            if "Task failed with exception" in task_log.read_text(errors="replace"):
                rc = rc or 1  # `tasks test` exits 0 when the task fails
            return {"task": t["task"], "pool": t["pool"], "start_s": started,
                    "seconds": seconds, "state": "success" if rc == 0 else f"failed ({rc})",
                    "task_process_peak_gib": peak, "spark_driver_peak_gib": driver}

        if not failed:
            rows, failed = schedule(graph, run_task, parallelism, _pool_slots(), _report)
        steps["dag_wall_s"] = time.perf_counter() - dag_start
    how = (f"each task in its own process (parallelism {parallelism}, Spark pool "
           f"{_pool_slots()[SPARK_POOL_ARGS[2]]} slots), Spark driver = one Spark Connect "
           f"server")
    return _finish(f"bench_dag-isolated-{name}", "isolated", name, args, rows, steps, failed,
                   how, load_start, parallelism=parallelism)


#: Sampling period of the scheduled mode's samplers, in seconds.
SCHEDULED_SAMPLE_S = 1.0

_WORKER_TITLE = re.compile(r"^airflow worker -- ([0-9a-f]{8}-[0-9a-f-]{27})")


def _vm_hwm(pid: int) -> int:
    """A process's peak resident set so far (``VmHWM``, bytes); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ProcessPeaks(threading.Thread):
    """Every ``every`` s: each Airflow task process's peak RSS (``VmHWM``) and CPU seconds,
    keyed by the task instance id its title names (``airflow worker -- <ti id>``, set by
    Airflow's task runner), and the peak of every other process under ``root`` (the
    scheduler, its executor workers, the DAG processor, triggerer and API server)."""

    def __init__(self, root: int, every: float = 0.25) -> None:
        super().__init__(daemon=True, name="process-peaks")
        self.root, self.every, self.stop = root, every, threading.Event()
        self.tasks: dict[str, int] = {}
        self.cpu: dict[str, float] = {}  # CPU seconds (user + system), as last sampled
        self.others: dict[str, int] = {}

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            try:
                procs = psutil.Process(self.root).children(recursive=True)
            except psutil.Error:
                return
            for p in procs:
                try:
                    title = " ".join(p.cmdline())
                except psutil.Error:
                    continue
                peak = _vm_hwm(p.pid)
                m = _WORKER_TITLE.match(title)
                key = m.group(1).replace("-", "") if m else f"{title[:60]} (pid {p.pid})"
                into = self.tasks if m else self.others
                into[key] = max(into.get(key, 0), peak)
                if m:
                    try:
                        cpu = p.cpu_times()
                        self.cpu[key] = cpu.user + cpu.system
                    except psutil.Error:
                        pass
            self.stop.wait(self.every)


def _airflow_components(bin_dir: Path) -> str:
    """The Airflow processes ``make up`` starts (the Makefile's ``AIRFLOW_COMPONENTS``)."""
    a = bin_dir / "airflow"
    return (f"{a} scheduler --skip-serve-logs & {a} dag-processor & "
            f"{a} triggerer --skip-serve-logs & {a} api-server & wait")


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 180.0) -> None:
    import urllib.request

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"Airflow exited ({proc.returncode}) before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def _run_state(db: Path, run_id: str) -> tuple[str | None, list[tuple[str, str | None]]]:
    runs = _query(db, "select state from dag_run where dag_id = 'clv_pipeline' and "
                      "run_id = ?", [run_id])
    tis = _query(db, "select task_id, state from task_instance where dag_id = "
                     "'clv_pipeline' and run_id = ?", [run_id])
    return (runs[0][0] if runs else None), tis


def run_scheduled(args: argparse.Namespace, home: Path, name: str) -> int:
    """As ``make up`` runs it, literally: Airflow's scheduler (LocalExecutor: each task a
    process forked from an executor worker), DAG processor, triggerer and API server, one
    Spark Connect server; one triggered run, timed from Airflow's metadata."""
    from clv.data.spark import free_port

    load_start = os.getloadavg()
    bin_dir = Path(sys.executable).parent
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    log_path = home / "dag.log"
    api_port = free_port()
    os.environ.update({
        "CLV_SCHEDULE": "none",  # only the triggered run
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
    })
    as_of = dt.date.fromisoformat(args.as_of_date)
    params = json.dumps({"as_of_date": as_of.isoformat(), "horizon_days": args.horizon_days,
                         "budget": args.budget})
    db = home / ".state" / "airflow" / "airflow.db"
    steps: dict = {}
    rows, failed = [], None
    airflow = str(bin_dir / "airflow")
    run_id = f"bench__{as_of.isoformat()}"
    with open(log_path, "w") as log, _spark_connect(log, steps) as server:
        failed = _load_orders(args, as_of, logs, server.pid, steps)
        if not failed:
            for argv in (["dags", "reserialize"], ["dags", "unpause", "clv_pipeline"]):
                subprocess.run([airflow, *argv], stdout=log, stderr=subprocess.STDOUT,
                               check=True)
            components = subprocess.Popen(["bash", "-c", _airflow_components(bin_dir)],
                                          stdout=open(logs / "airflow.log", "w"),
                                          stderr=subprocess.STDOUT, start_new_session=True)
            # Once a second, not four times: the driver's PSS walks a 3 GiB JVM's page
            # tables (smaps_rollup): at 4 Hz this bench process used 104 CPU-s of a 751 s
            # run on 2 cores. VmHWM is a high-water mark, so no task peak is missed.
            peaks = ProcessPeaks(components.pid, every=SCHEDULED_SAMPLE_S)
            driver = MemorySampler(pid=server.pid, every=SCHEDULED_SAMPLE_S)
            try:
                t0 = time.perf_counter()
                _wait_http(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", components)
                steps["airflow_start_s"] = time.perf_counter() - t0
                peaks.start()
                driver.start()
                subprocess.run([airflow, "dags", "trigger", "clv_pipeline", "--run-id", run_id,
                                "--logical-date", f"{as_of.isoformat()}T00:00:00+00:00",
                                "--conf", params], stdout=log, stderr=subprocess.STDOUT,
                               check=True)
                t0, seen = time.perf_counter(), {}
                while True:
                    state, tis = _run_state(db, run_id)
                    for task, ti_state in tis:
                        if ti_state in ("success", "failed", "upstream_failed", "skipped") \
                                and task not in seen:
                            seen[task] = ti_state
                            print(f"{time.perf_counter() - t0:8.1f} s  {task:<20}{ti_state}",
                                  flush=True)
                    if state in ("success", "failed"):
                        break
                    if components.poll() is not None:
                        state = f"Airflow exited ({components.returncode})"
                        break
                    time.sleep(2)
                steps["dag_wall_s"] = time.perf_counter() - t0
                if state != "success":
                    failed = f"run {run_id}: {state}"
            finally:
                peaks.stop.set()
                driver.stop.set()
                os.killpg(components.pid, 15)
                try:
                    components.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(components.pid, 9)
                peaks.join()
                driver.join()
            rows = _scheduled_rows(db, run_id, peaks, driver)
            steps["airflow_processes_peak_gib"] = {k: v / 2**30 for k, v in peaks.others.items()}
            if rows:  # Airflow's own account: first task start to last task end
                steps["dag_tasks_span_s"] = max(r["start_s"] + r["seconds"] for r in rows)
    others = max(steps.get("airflow_processes_peak_gib", {}).values(), default=0)
    how = (f"scheduled by Airflow as make up runs it (LocalExecutor, Spark pool "
           f"{_pool_slots()[SPARK_POOL_ARGS[2]]} slots, one Spark Connect server; largest "
           f"other Airflow process {others:.2f} GiB)")
    return _finish(f"bench_dag-scheduled-{name}", "scheduled", name, args, rows, steps,
                   failed, how, load_start, run_id=run_id)


def _scheduled_rows(db: Path, run_id: str, peaks: ProcessPeaks,
                    driver: MemorySampler) -> list[dict]:
    """Per task, from Airflow's metadata: start (s after the run's first task started),
    seconds, state; its process's peak RSS and the Spark driver's peak PSS meanwhile."""
    tis = _query(db, "select id, task_id, pool, state, start_date, end_date from "
                     "task_instance where dag_id = 'clv_pipeline' and run_id = ? and "
                     "start_date is not null order by start_date", [run_id])
    if not tis:
        return []
    first = min(_utc(r[4]) for r in tis)
    rows = []
    for ti_id, task, pool, state, start, end in tis:
        a, b = _utc(start), _utc(end) if end else dt.datetime.now(dt.UTC)
        jvm = max((v for t, v in driver.samples if a <= t <= b), default=0)
        rows.append({"task": task, "pool": pool, "start_s": (a - first).total_seconds(),
                     "seconds": (b - a).total_seconds(), "state": state,
                     "task_process_peak_gib": peaks.tasks.get(str(ti_id).replace("-", ""), 0)
                     / 2**30,
                     "task_process_cpu_s": peaks.cpu.get(str(ti_id).replace("-", "")),
                     "spark_driver_peak_gib": jvm / 2**30})
    return rows


def _report(r: dict) -> None:
    print(f"{r['task']:<20}{r['seconds']:>9.1f} s (from {r['start_s']:7.1f} s)  "
          f"task process {r['task_process_peak_gib']:5.2f} GiB  Spark driver "
          f"{r['spark_driver_peak_gib']:5.2f} GiB  {r['state']}", flush=True)


def _finish(result: str, mode: str, name: str, args: argparse.Namespace, rows: list[dict],
            steps: dict, failed: str | None, how: str, load_start, **extra) -> int:
    """Print the per-task table and write the result file; the exit status."""
    as_of = args.as_of_date
    rows.sort(key=lambda r: r["start_s"])
    print(f"\nclv_pipeline on {name}, as of {as_of}, horizon {args.horizon_days} d, {how}")
    cpu = any(r.get("task_process_cpu_s") is not None for r in rows)
    print(f"{'task':<20}{'start':>8}{'seconds':>9}{'task GiB':>10}{'driver GiB':>12}"
          + (f"{'task CPU s':>12}" if cpu else "") + "  state")
    for r in rows:
        print(f"{r['task']:<20}{r['start_s']:>8.1f}{r['seconds']:>9.1f}"
              f"{r['task_process_peak_gib']:>10.2f}{r['spark_driver_peak_gib']:>12.2f}"
              + (f"{r.get('task_process_cpu_s') or 0:>12.1f}" if cpu else "")
              + f"  {r['state']}")
    total = sum(r["seconds"] for r in rows)
    print(f"{'tasks (sum)':<28}{total:>9.1f}"
          f"{max((r['task_process_peak_gib'] for r in rows), default=0):>10.2f}"
          f"{max((r['spark_driver_peak_gib'] for r in rows), default=0):>12.2f}")
    print(f"{'DAG (wall)':<28}{steps.get('dag_wall_s', 0):>9.1f}")
    if failed:
        print(f"FAILED: {failed}; logs: {Path(os.environ['CLV_HOME']) / 'logs'}")
    from clv.config import load_settings

    steps["spark_driver_memory"] = load_settings().spark_driver_memory  # the driver's heap
    payload = {"data": name, "mode": mode, **extra,
               "spark_pool_slots": _pool_slots()[SPARK_POOL_ARGS[2]],
               "as_of_date": as_of, "horizon_days": args.horizon_days,
               "steps": steps, "dag_wall_s": steps.get("dag_wall_s"), "tasks_sum_s": total,
               "max_task_process_gib": max((r["task_process_peak_gib"] for r in rows),
                                           default=0),
               "max_spark_driver_gib": max((r["spark_driver_peak_gib"] for r in rows),
                                           default=0),
               "tasks": rows, "failed": failed}
    out = recording.write(result, payload, load_start)
    print(f"wrote {out}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--cdnow", action="store_true", help="CDNOW (69,659 orders)")
    src.add_argument("--orders", type=Path, help="a Parquet folder of orders in the contract")
    parser.add_argument("--as-of-date", default="1998-07-01")
    parser.add_argument("--horizon-days", type=int, default=DEFAULT_HORIZON_DAYS)
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--isolated", action="store_true",
                        help="each task in its own process on one Spark Connect server")
    parser.add_argument("--scheduler", action="store_true",
                        help="as make up runs it: Airflow's scheduler, DAG processor, "
                             "triggerer and API server run the DAG (LocalExecutor)")
    parser.add_argument("--parallelism", type=int, default=32,
                        help="with --isolated: tasks at once (Airflow's [core] parallelism)")
    parser.add_argument("--sequential", action="store_true",
                        help="with --isolated: one task at a time (clean per-task figures)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK",
                        help="with --isolated: only these tasks, on the orders the home "
                             "already holds (e.g. the Spark tasks again with another "
                             "CLV_SPARK_DRIVER_MEMORY)")
    args = parser.parse_args(argv)
    name = "cdnow" if args.cdnow else args.orders.parent.name
    mode = "-scheduled" if args.scheduler else "-isolated" if args.isolated else ""
    home = (args.home or STATE / f"dag-{name}{mode}").resolve()
    home.mkdir(parents=True, exist_ok=True)
    _environment(home)
    if args.scheduler:
        return run_scheduled(args, home, name)
    if args.isolated:
        return run_isolated(args, home, name)

    from clv import ingest
    from clv.data.spark import get_spark
    from clv.ops import demo

    load_start = os.getloadavg()
    log_path = home / "dag.log"
    log_path.write_text("")
    sampler = MemorySampler()
    sampler.start()
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    with demo._output_to(log_path):
        demo._airflow("db", "migrate")
        demo._airflow(*SPARK_POOL_ARGS)
    steps["airflow_db_s"] = time.perf_counter() - t0
    print(f"airflow DB: {steps['airflow_db_s']:.1f} s", flush=True)
    t0 = time.perf_counter()
    with demo._output_to(log_path):
        spark = get_spark("clv-bench-dag")
        if args.cdnow:
            df = ingest.read_cdnow(spark, ingest.cdnow_packaged_path())
        else:
            df = ingest.read_orders_file(spark, args.orders, fmt="parquet")
        as_of = dt.date.fromisoformat(args.as_of_date)
        loaded = ingest.load_orders(spark, df, as_of, "bench-dag")
    steps["load_orders_s"] = time.perf_counter() - t0
    print(f"load orders: {steps['load_orders_s']:.1f} s: {loaded}", flush=True)
    conf = {"as_of_date": as_of.isoformat(), "horizon_days": args.horizon_days,
            "budget": args.budget}
    t0 = time.perf_counter()
    failed = None
    try:
        with demo._output_to(log_path):
            demo._airflow("dags", "test", "clv_pipeline", as_of.isoformat(), "-c",
                          json.dumps(conf))
    except SystemExit as exc:
        failed = str(exc)
    steps["dag_s"] = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    run_id, tasks = _task_times(home / ".state" / "airflow" / "airflow.db")
    rows = []
    for task, seconds, state, start, end in tasks:
        peak = max((rss for t, rss in sampler.samples if start <= t <= end), default=0)
        rows.append({"task": task, "seconds": seconds, "state": state,
                     "peak_rss_gib": peak / 2**30})
    overall = max(rss for _, rss in sampler.samples) / 2**30
    print(f"\nclv_pipeline on {name} ({loaded.rows_accepted:,} orders), as of {as_of}, "
          f"horizon {args.horizon_days} d; run {run_id}")
    print(f"{'task':<20}{'seconds':>9}{'peak GiB':>10}  state")
    for r in rows:
        print(f"{r['task']:<20}{r['seconds']:>9.1f}{r['peak_rss_gib']:>10.2f}  {r['state']}")
    print(f"{'DAG (wall)':<20}{steps['dag_s']:>9.1f}{overall:>10.2f}")
    if failed:
        print(f"DAG run FAILED ({failed}); log: {log_path}")
    out = recording.write(f"bench_dag-{name}", {
        "data": name, "mode": "one process", "orders": loaded.rows_accepted,
        "as_of_date": as_of.isoformat(), "steps": steps, "dag_wall_s": steps["dag_s"],
        "tasks": rows, "peak_rss_gib": overall, "failed": failed}, load_start)
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
