"""Nothing of the project listens beyond loopback (issue #20, point 8).

Found as an attacker would: the Spark driver listened on the machine's external address
during an import, and `make up` left Airflow's task-log servers on 0.0.0.0:8793/8794.
These tests run the components that open sockets (a local Spark job; `make up` as a user
runs it: MLflow, Spark Connect with a job on it, Airflow's api-server, scheduler,
dag-processor and triggerer), then list every LISTEN socket of their processes (psutil)
and require a loopback address. `make down` must return only once they have all exited.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _listeners(procs: list[psutil.Process]) -> list[tuple[str, int, str, int]]:
    """(process name, pid, address, port) of every listening TCP socket of ``procs``."""
    found = []
    for p in procs:
        try:
            conns = p.net_connections(kind="tcp")
            name = " ".join(p.cmdline()[:3])[:120]
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        found += [(name, p.pid, c.laddr.ip, c.laddr.port) for c in conns
                  if c.status == psutil.CONN_LISTEN]
    return found


def _exposed(listeners: list[tuple[str, int, str, int]]) -> list[tuple[str, int, str, int]]:
    return [entry for entry in listeners if not _is_loopback(entry[2])]


def test_the_loopback_check_itself():
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("::ffff:127.0.0.1")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("::")
    assert not _is_loopback("10.1.2.3") and not _is_loopback("fe80::1%eth0")


def test_a_local_spark_job_listens_on_loopback_only(spark):
    """The driver's RPC, block manager (and UI if on) of a local session doing a shuffle."""
    from pyspark.sql import functions as F

    df = spark.range(20_000).withColumn("k", F.col("id") % 7)
    assert len(df.groupBy("k").count().collect()) == 7  # a shuffle: the block manager serves
    me = psutil.Process()
    listeners = _listeners([me, *me.children(recursive=True)])
    assert any("java" in name for name, *_ in listeners), listeners  # the JVM was seen
    assert _exposed(listeners) == []


def _group_members(pgids: set[int]) -> list[psutil.Process]:
    members = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) in pgids and p.status() != psutil.STATUS_ZOMBIE:
                members.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return members


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dev_home(tmp_path):
    """A checkout-shaped folder for `make up`: the Makefile, DAGs and plugins of this
    repository, the existing venv (never one created here)."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "Makefile", home / "Makefile")
    for name in ("dags", "plugins", "mlflow", "requirements.txt", "constraints.txt",
                 "pyproject.toml"):
        (home / name).symlink_to(REPO / name)
    return home


def _make(home: Path, target: str, env: dict[str, str], timeout: int) -> str:
    # -o: the venv's install stamp counts as up to date (no pip run from a test)
    out = subprocess.run(["make", "--no-print-directory", "-C", str(home), target,
                          f"VENV={VENV}", "-o", str(VENV / ".installed")],
                         env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def _wait_listening(ports: set[int], members, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while True:
        listeners = _listeners(members())
        if ports <= {port for *_, port in listeners} or time.monotonic() > deadline:
            return listeners
        time.sleep(2)


def test_make_up_listens_on_loopback_only_and_make_down_waits(dev_home):
    ports = {"AIRFLOW_PORT": _free_port(), "MLFLOW_PORT": _free_port(),
             "SPARK_CONNECT_PORT": _free_port()}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MLFLOW_", "CLV_", "SPARK_"))}
    env.update({k: str(v) for k, v in ports.items()}, HOST="127.0.0.1",
               PYTHONPATH=str(REPO / "src"), CLV_SPARK_DRIVER_MEMORY="1g",
               # where a task-log server would listen: free ports, not 8793/8794
               AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
               AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(_free_port()))
    state = dev_home / ".state"
    pgids: set[int] = set()

    def members():
        return _group_members(pgids)

    try:
        _make(dev_home, "up", env, timeout=900)
        pgids |= {int(p.read_text()) for p in state.glob("*.pid")}
        assert {p.stem for p in state.glob("*.pid")} == {"airflow", "mlflow", "spark-connect"}
        # a job on the Spark Connect server: its driver's block manager serves a shuffle
        job = ("from pyspark.sql import SparkSession, functions as F; "
               f"s = SparkSession.builder.remote('sc://127.0.0.1:{ports['SPARK_CONNECT_PORT']}')"
               ".getOrCreate(); df = s.range(20000).withColumn('k', F.col('id') % 7); "
               "print(len(df.groupBy('k').count().collect()))")
        out = subprocess.run([sys.executable, "-c", job], env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.stdout.strip().endswith("7"), out.stderr[-3000:]
        listeners = _wait_listening(set(ports.values()), members, timeout=300)
        time.sleep(5)  # the scheduler's and triggerer's children, had they any, are up
        listeners = _listeners(members())
        assert set(ports.values()) <= {port for *_, port in listeners}, listeners
        assert _exposed(listeners) == []

        _make(dev_home, "down", env, timeout=300)
        assert members() == []  # every process of every service has exited
        assert list(state.glob("*.pid")) == []
    finally:  # whatever `make up` started, even if the test failed half-way
        pgids |= {int(p.read_text()) for p in state.glob("*.pid") if p.read_text().strip()}
        for pgid in pgids:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
