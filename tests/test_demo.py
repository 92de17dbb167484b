"""``clv demo`` (make run): the pieces that are not the DAG itself (the DAG run is
tests/test_e2e.py's; make run's timings are in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys

from clv.ops import demo

SCRIPT = """
import os, subprocess, sys
from pathlib import Path
from clv.ops import demo
print("before", flush=True)
with demo._output_to(Path(sys.argv[1])):
    print("python stdout")
    print("python stderr", file=sys.stderr)
    os.write(2, b"fd 2, as the JVM writes\\n")
    # a child process inherits the redirected descriptors (Spark's JVM is one)
    subprocess.run([sys.executable, "-c", "print('child process')"], check=True)
print("after", flush=True)
"""


def test_output_to_captures_the_file_descriptors_and_restores_them(tmp_path):
    log = tmp_path / "run.log"
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(log)], capture_output=True,
                         text=True, check=True)
    text = log.read_text()
    for line in ("python stdout", "python stderr", "fd 2, as the JVM writes", "child process"):
        assert line in text
        assert line not in out.stdout and line not in out.stderr
    assert out.stdout.split() == ["before", "after"]


def test_airflow_cli_runs_in_process(tmp_path, monkeypatch, capsys):
    """The Airflow CLI parser and a command, without a new interpreter."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    demo._airflow("version")
    import airflow

    assert airflow.__version__ in capsys.readouterr().out


WARM = """
import sys
from clv.ops import demo
from airflow.sdk.execution_time.supervisor import in_process_api_server
assert not in_process_api_server.cache_info().currsize
demo._warm_up().join()
app = in_process_api_server().app  # the one `airflow dags test` asks for (cached)
print("initialised", app._cadwyn_initialized, flush=True)
from clv.models.registry import store
print("experiment ids cached", len(store._EXPERIMENT_IDS), flush=True)
print("tensorflow imported", "tensorflow" in sys.modules, flush=True)
"""


def test_task_api_is_built_and_the_mlflow_store_opened_before_the_dag_run(tmp_path):
    """The thread leaves Airflow's in-process task API built, routes included, in the
    very object ``airflow dags test`` then uses (a cached singleton), the MLflow store of
    the home created, with the experiment the training tasks log to, and TensorFlow
    imported."""
    import os
    import sqlite3

    from clv.config import EXPERIMENT_NAME

    home = tmp_path / "home"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "CLV_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([sys.executable, "-c", WARM], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "initialised True" in out.stdout
    assert "experiment ids cached 1" in out.stdout
    assert "tensorflow imported True" in out.stdout
    assert "failed" not in out.stderr
    with sqlite3.connect(home / ".state" / "mlflow" / "mlflow.db") as db:
        names = [r[0] for r in db.execute("select name from experiments")]
    assert EXPERIMENT_NAME in names


SMALL = """
import sys
from clv.data.spark import get_spark
spark = get_spark("quick-jvm-test", quick_jvm=True)
bean = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
print("arguments", " ".join(bean.getInputArguments()), flush=True)
total = spark.range(1000).selectExpr("sum(cast(id as double) * cast(0.1 as double)) as s")
print("sum", total.first()["s"], flush=True)
"""


def test_a_small_input_starts_a_quick_jvm_that_computes_the_same(tmp_path):
    """CDNOW is a small input; the driver JVM it starts really runs with the quick JIT
    and serial collector, and gives Spark's usual answer (summed in one task, in order,
    so Python's float sum of the same terms is the reference)."""
    import os

    from clv.data.spark import QUICK_JVM_OPTIONS

    assert demo._small_input(None)
    env = {**os.environ, "CLV_HOME": str(tmp_path / "home")}
    env.pop("CLV_SPARK_REMOTE", None)
    env["CLV_SPARK_MASTER"] = "local[1]"
    out = subprocess.run([sys.executable, "-c", SMALL], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    arguments = next(line for line in out.stdout.splitlines() if line.startswith("arguments"))
    for option in QUICK_JVM_OPTIONS.split():
        assert option in arguments.split()
    expected = 0.0
    for i in range(1000):
        expected += i * 0.1
    assert f"sum {expected!r}" in out.stdout


def test_small_input_is_decided_by_the_bytes_of_the_file_or_export(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "QUICK_JVM_MAX_BYTES", 1000)
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    small.write_bytes(b"x" * 1000)
    large.write_bytes(b"x" * 1001)
    assert demo._small_input(demo.OrdersFile(small))
    assert not demo._small_input(demo.OrdersFile(large))
    export = tmp_path / "olist"
    (export / "sub").mkdir(parents=True)
    (export / "a.csv").write_bytes(b"x" * 600)
    (export / "sub" / "b.csv").write_bytes(b"x" * 400)
    assert demo._small_input(demo.OlistExport(export))
    (export / "c.csv").write_bytes(b"x")
    assert not demo._small_input(demo.OlistExport(export))
