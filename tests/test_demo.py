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
demo._warm_task_api().join()
app = in_process_api_server().app  # the one `airflow dags test` asks for (cached)
print("initialised", app._cadwyn_initialized, flush=True)
"""


def test_task_api_is_built_before_the_dag_run(tmp_path):
    """The thread leaves Airflow's in-process task API built, routes included, in the
    very object ``airflow dags test`` then uses (a cached singleton)."""
    import os

    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    out = subprocess.run([sys.executable, "-c", WARM], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "initialised True" in out.stdout
    assert "warming Airflow's task API failed" not in out.stderr
