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
