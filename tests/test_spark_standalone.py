"""Cluster mode: the feature job on a Spark standalone cluster equals the local run.

A standalone master and two workers (1 core, 1 GiB each; ``tests/spark_cluster.py``)
start on 127.0.0.1 from the pip pyspark (``bin/spark-class ...deploy.master.Master`` /
``...worker.Worker``; the pip package ships no ``sbin/start-*.sh``), on free ports,
with their work and scratch folders in a temp dir, and are torn down (their process
groups, executors included) whatever happens. The job is ``jobs/build_features.py``
run by a separate Python process whose only change is what a user would set:
``CLV_SPARK_MASTER=spark://127.0.0.1:<port>`` (plus a smaller driver heap and fewer
shuffle partitions, ``CLV_SPARK_DRIVER_MEMORY`` / ``CLV_SPARK_SHUFFLE_PARTITIONS``, to
keep the test lean). Its outputs (``features.customer_features`` and
``features.training_examples``) are compared with the same job run in this
process on the local master: same rows, same values (doubles to 1e-9 relative: the
order in which Spark adds a customer's amounts may differ between the runs).

The second test kills one worker, with its executor, while a Spark job of the
feature build is running with tasks already done, and checks that the build still
completes with the same output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from spark_cluster import Cluster, progress_of, run_driver, running_cluster

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
N_CUSTOMERS = 2_000
SEED = 31
HORIZON = 90
JOB_TIMEOUT_S = 300

#: The driver: jobs/build_features.py's main(), plus a thread that reports the
#: number of executors and the progress of the running Spark job on stdout.
DRIVER = r"""
import importlib.util, sys, threading, time
from clv.data.spark import get_spark

spark = get_spark("clv-pipeline")
sc = spark.sparkContext
print("MASTER", sc.master, flush=True)

def report():
    tracker = sc.statusTracker()
    while True:
        try:
            done = 0  # tasks finished so far by the running jobs, over all their stages
            for job_id in tracker.getActiveJobsIds():
                job_info = tracker.getJobInfo(job_id)
                for stage in (job_info.stageIds if job_info else []):
                    info = tracker.getStageInfo(stage)
                    done += info.numCompletedTasks if info else 0
            executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
            print(f"PROGRESS executors={executors} active_jobs={len(tracker.getActiveJobsIds())}"
                  f" tasks_done={done}", flush=True)
        except Exception:
            return
        time.sleep(0.1)

threading.Thread(target=report, daemon=True).start()
spec = importlib.util.spec_from_file_location("build_features", sys.argv[1])
job = importlib.util.module_from_spec(spec)
spec.loader.exec_module(job)
sys.exit(job.main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("spark_cluster")) as c:
        yield c


@pytest.fixture(scope="module")
def orders_home(spark, tmp_path_factory):
    """A CLV_HOME whose warehouse holds synthetic raw.orders (written by the local session)."""
    from clv.config import load_settings
    from clv.data import synthetic, warehouse

    home = tmp_path_factory.mktemp("cluster_orders_home")
    spec = synthetic.SyntheticSpec(N_CUSTOMERS, seed=SEED)
    saved = os.environ.get("CLV_HOME")
    os.environ["CLV_HOME"] = str(home)
    try:
        warehouse.write_partition(synthetic.orders_frame(spark, spec), "raw.orders",
                                  spec.as_of_date, load_settings())
    finally:
        os.environ["CLV_HOME"] = saved or ""
    return home, spec.as_of_date


def _copy_home(src: Path, dst: Path) -> Path:
    shutil.copytree(src / "warehouse", dst / "warehouse")
    return dst


def _outputs(spark, home: Path, as_of: dt.date) -> dict[str, pd.DataFrame]:
    from clv.config import load_settings
    from clv.data import warehouse

    saved = os.environ.get("CLV_HOME")
    os.environ["CLV_HOME"] = str(home)
    try:
        settings = load_settings()
        out = {}
        for table, keys in (("features.customer_features", ["customer_id"]),
                            ("features.training_examples", ["cutoff_date", "customer_id"])):
            frame = warehouse.read_table(spark, table, as_of, settings).drop("run_id").toPandas()
            out[table] = frame.sort_values(keys).reset_index(drop=True)
        return out
    finally:
        os.environ["CLV_HOME"] = saved or ""


@pytest.fixture(scope="module")
def local_run(spark, orders_home, tmp_path_factory):
    """The reference: the same job, in this process, on the local master."""
    from clv import pipeline

    src, as_of = orders_home
    home = _copy_home(src, tmp_path_factory.mktemp("local_run_home"))
    saved = os.environ.get("CLV_HOME")
    os.environ["CLV_HOME"] = str(home)
    try:
        assert spark.sparkContext.master.startswith("local")
        pipeline.build_features(as_of, HORIZON, "local")
    finally:
        os.environ["CLV_HOME"] = saved or ""
    return _outputs(spark, home, as_of)


def _run_on_cluster(cluster: Cluster, home: Path, as_of: dt.date, on_progress=None) -> dict:
    """jobs/build_features.py in a new process with CLV_SPARK_MASTER pointing at the cluster."""
    out, events = [], {}

    def on_line(line: str) -> None:
        out.append(line)
        if line.startswith("MASTER"):
            events["master"] = line.split()[1]
        if on_progress is not None and line.startswith("PROGRESS"):
            on_progress(progress_of(line), events)

    run_driver(cluster, home, ["-c", DRIVER, str(REPO / "jobs" / "build_features.py"),
                               "--as-of-date", as_of.isoformat(), "--horizon-days",
                               str(HORIZON), "--run-id", "cluster"], on_line, JOB_TIMEOUT_S)
    body = "".join(x for x in out if not x.startswith(("PROGRESS", "MASTER")))
    events["report"] = json.loads(body[body.index("{"):])
    return events


def _assert_same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for table, frame in want.items():
        assert len(got[table]) == len(frame) > 0, table
        pd.testing.assert_frame_equal(got[table], frame, check_exact=False, rtol=1e-9,
                                      obj=table)


def test_feature_job_on_a_standalone_cluster_equals_the_local_run(
        spark, cluster, orders_home, local_run, tmp_path):
    src, as_of = orders_home
    home = _copy_home(src, tmp_path)
    events = _run_on_cluster(cluster, home, as_of)
    assert events["master"] == cluster.url
    assert events["report"]["customers"] == N_CUSTOMERS
    _assert_same(_outputs(spark, home, as_of), local_run)


def test_feature_job_survives_a_worker_killed_mid_job(
        spark, cluster, orders_home, local_run, tmp_path):
    src, as_of = orders_home
    home = _copy_home(src, tmp_path)

    def kill_when_running(progress: dict, events: dict) -> None:
        # Both executors up and a Spark job running with tasks done: kill worker 2 and its
        # executor (SIGKILL to the process group), as if the machine died.
        if ("killed_at" not in events and progress["executors"] == 2
                and progress["active_jobs"] > 0 and progress["tasks_done"] > 0):
            cluster.kill("worker2")
            events["killed_at"] = progress

    events = _run_on_cluster(cluster, home, as_of, kill_when_running)
    assert "killed_at" in events, "the job finished before a worker could be killed"
    assert cluster.procs["worker2"].wait(timeout=30) is not None
    _assert_same(_outputs(spark, home, as_of), local_run)
