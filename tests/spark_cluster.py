"""A Spark standalone cluster on 127.0.0.1 for the cluster tests (``pytest.mark.cluster``).

A master and workers (1 core, 1 GiB each by default) start from the pip pyspark
(``bin/spark-class ...deploy.master.Master`` / ``...worker.Worker``; the pip package
ships no ``sbin/start-*.sh``), on free ports, with their work and scratch folders under
``root``; :meth:`Cluster.stop` tears down their process groups, executors included.
Used by ``test_spark_standalone.py`` (the feature job) and ``test_cluster_models.py``
(XGBoost fits and scoring on the executors).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_class() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-class")


class Cluster:
    """A standalone master and workers on 127.0.0.1, each in its own process group."""

    def __init__(self, root: Path):
        self.root = root
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DAEMON_MEMORY": "256m",
                    "SPARK_LOCAL_DIRS": str(root / "scratch"), "SPARK_NO_DAEMONIZE": "1"}

    def _start(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen(
            [spark_class(), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def start(self, n_workers: int = 2) -> None:
        (self.root / "scratch").mkdir(parents=True, exist_ok=True)
        self._start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(self.ui_port))
        self._wait(lambda s: True, "the master")
        for i in range(1, n_workers + 1):
            work = self.root / f"worker{i}"
            work.mkdir()
            self._start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", "--host",
                        "127.0.0.1", "--cores", "1", "--memory", "1g", "--work-dir", str(work),
                        "--webui-port", str(free_port()), self.url)
        self._wait(lambda s: s.get("aliveworkers") == n_workers, f"{n_workers} alive workers")

    def state(self) -> dict:
        url = f"http://127.0.0.1:{self.ui_port}/json/"
        with urllib.request.urlopen(url, timeout=5) as fh:
            return json.load(fh)

    def _wait(self, ok, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: {self.log(name)}")
            try:
                if ok(self.state()):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"waited {timeout} s for {what}; master log: {self.log('master')}")

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()[-3000:]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill a daemon's process group: the daemon and, for a worker, its executors."""
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            self.kill(name, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(name, signal.SIGKILL)
                proc.wait(timeout=15)



@contextmanager
def running_cluster(root: Path, n_workers: int = 2) -> Iterator[Cluster]:
    """A started :class:`Cluster` under ``root``, stopped whatever happens."""
    c = Cluster(root)
    try:
        c.start(n_workers)
        yield c
    finally:
        c.stop()


def run_driver(cluster: Cluster, home: Path, argv: list[str], on_line, timeout_s: float,
               env: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> None:
    """``python argv...`` in a new session with CLV_SPARK_MASTER pointing at ``cluster``
    and CLV_HOME at ``home`` (plus ``env``, less ``drop``); each line of its stdout goes
    to ``on_line``; its stderr to ``home/driver.log``. Killed (its process group) past
    ``timeout_s`` or on any error; a non-zero exit fails the test with the log's tail."""
    import queue
    import sys
    import threading

    full = {**os.environ, "CLV_HOME": str(home), "CLV_SPARK_MASTER": cluster.url,
            "CLV_SPARK_DRIVER_MEMORY": "1g", "CLV_SPARK_SHUFFLE_PARTITIONS": "4",
            "SPARK_LOCAL_IP": "127.0.0.1", **(env or {})}
    for name in ("CLV_WAREHOUSE_URI", "MLFLOW_TRACKING_URI", "CLV_MLFLOW_ARTIFACTS", *drop):
        full.pop(name, None)
    stderr = open(home / "driver.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, *argv], env=full, stdout=subprocess.PIPE,
                            stderr=stderr, text=True, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)],
                     daemon=True).start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty:
                raise TimeoutError(f"cluster job ran over {timeout_s} s") from None
            if line is None:
                break
            on_line(line)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stderr.close()
    assert rc == 0, f"cluster job failed (rc {rc}):\n{(home / 'driver.log').read_text()[-4000:]}"


def progress_of(line: str) -> dict[str, int]:
    """The counters of a ``PROGRESS k=v ...`` line."""
    return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
