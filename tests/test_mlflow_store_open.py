"""Processes that open a new SQLite MLflow store at once (the training tasks a scheduler
starts together on a fresh home) all get the experiment: the opening is serialised."""

from __future__ import annotations

import os
import subprocess
import sys
import time

# Each child imports MLflow first (the slow part), then waits for a shared start time so
# that the four openings, each migrating the new database, really overlap.
CHILD = """
import sys, time
import mlflow  # noqa: F401
from clv.models.registry.store import configure_mlflow
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
print("experiment", configure_mlflow())
"""


def test_four_processes_opening_a_new_store_at_once_all_get_the_one_experiment(tmp_path):
    env = {**os.environ, "CLV_HOME": str(tmp_path)}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CLV_MLFLOW_ARTIFACTS"):
        env.pop(name, None)
    start = time.time() + 20  # after every child has imported MLflow on 2 cores
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(start)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for _ in range(4)]
    outputs = [c.communicate(timeout=240)[0] for c in children]
    # Without the lock, most of them fail in MLflow's migrations (measured: 3 or 4 of 4).
    assert [c.returncode for c in children] == [0, 0, 0, 0], "\n".join(outputs)
    ids = {line for out in outputs for line in out.splitlines() if line.startswith("experiment")}
    assert len(ids) == 1, ids
    assert (tmp_path / ".state" / "mlflow" / "store-open.lock").exists()
