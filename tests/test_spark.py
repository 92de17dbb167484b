"""Nothing of Spark listens beyond loopback on a local master (#20)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys

import psutil

from clv.data.spark import network_conf


def _listening(pids: list[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket those processes listen on."""
    found = []
    for pid in pids:
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                found.append((conn.laddr.ip, conn.laddr.port))
    return found


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address.is_loopback or (
        isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None
        and address.ipv4_mapped.is_loopback)


def test_the_test_sessions_jvm_listens_on_loopback_only(spark):
    jvms = [p.pid for p in psutil.Process().children(recursive=True)
            if "java" in p.name()]
    sockets = _listening(jvms)
    assert sockets, "the driver's RPC and block manager ports should be listening"
    assert [s for s in sockets if not _loopback(s[0])] == []


SESSION_WITH_UI = """
import json, psutil
from clv.data.spark import get_spark
spark = get_spark("listener-check")
assert spark.range(10).count() == 10  # executors at work, the block manager up
print("UI " + json.dumps(spark.sparkContext.uiWebUrl))
print("PIDS " + json.dumps([p.pid for p in psutil.Process().children(recursive=True)]))
import sys; sys.stdout.flush()
input()  # keep the session alive while the test reads the sockets
spark.stop()
"""


def test_a_session_with_the_ui_on_listens_on_loopback_only(tmp_path):
    """A fresh session (driver RPC, block manager, and the web UI switched on)."""
    env = {**os.environ, "CLV_SPARK_UI": "true", "CLV_HOME": str(tmp_path),
           "CLV_SPARK_DRIVER_MEMORY": "512m"}
    env.pop("SPARK_LOCAL_IP", None)
    proc = subprocess.Popen([sys.executable, "-c", SESSION_WITH_UI], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        lines = {}
        while "PIDS" not in lines:
            line = proc.stdout.readline()
            assert line, f"the session did not start (exit {proc.poll()})"
            key, _, value = line.partition(" ")
            lines[key] = json.loads(value) if key in ("UI", "PIDS") else value
        sockets = _listening(lines["PIDS"])
        ui_port = int(lines["UI"].rsplit(":", 1)[1])
        assert ui_port in {port for _, port in sockets}
        assert len(sockets) >= 3  # RPC, block manager, UI
        assert [s for s in sockets if not _loopback(s[0])] == []
    finally:
        proc.communicate("\n", timeout=120)


def test_cluster_masters_keep_their_address_configurable(monkeypatch):
    assert network_conf("local[2]") == {"spark.driver.bindAddress": "127.0.0.1",
                                        "spark.driver.host": "127.0.0.1"}
    assert network_conf("local") == network_conf("local[*]") == network_conf("local[2]")
    monkeypatch.delenv("CLV_SPARK_DRIVER_HOST", raising=False)
    monkeypatch.delenv("CLV_SPARK_DRIVER_BIND_ADDRESS", raising=False)
    assert network_conf("spark://10.0.0.5:7077") == {}  # executors must reach the driver
    monkeypatch.setenv("CLV_SPARK_DRIVER_HOST", "10.0.0.9")
    assert network_conf("yarn") == {"spark.driver.host": "10.0.0.9"}
