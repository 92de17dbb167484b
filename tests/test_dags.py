"""Every DAG imports cleanly and follows the house policy (retries, timeouts, schedule)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"
HEAVY = ("pyspark", "xgboost", "mlflow", "great_expectations", "tensorflow", "duckdb")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "clv_pipeline" in dagbag.dags


def test_every_task_has_retries_and_a_timeout(dagbag):
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            assert t.retries >= 1, f"{dag.dag_id}.{t.task_id} has no retries"
            assert t.execution_timeout is not None, f"{dag.dag_id}.{t.task_id} has no timeout"


def test_dag_level_policy(dagbag):
    for dag in dagbag.dags.values():
        assert dag.catchup is False, f"{dag.dag_id}: catchup must be explicit and off"
        assert dag.max_active_runs == 1, dag.dag_id
        assert dag.doc_md and dag.tags, f"{dag.dag_id}: needs doc_md and tags"


def test_spark_tasks_use_the_spark_pool(dagbag):
    from clv.pipeline import SPARK_STEPS

    dag = dagbag.dags["clv_pipeline"]
    pools = {t.task_id: t.pool for t in dag.tasks}
    assert SPARK_STEPS <= set(pools)
    for task_id, pool in pools.items():
        assert (pool == "spark") == (task_id in SPARK_STEPS), f"{task_id} runs in pool {pool}"


def test_pipeline_params_and_order(dagbag):
    dag = dagbag.dags["clv_pipeline"]
    assert {"as_of_date", "horizon_days", "budget", "clv_weight", "action_costs",
            "segment_share_bounds", "action_capacity"} <= set(dag.params.keys())
    upstream = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
    assert upstream["validate_params"] == set()  # checked before anything reads data
    assert upstream["validate_raw"] == {"validate_params"}
    assert upstream["build_features"] == {"validate_raw"}
    assert upstream["train_clv"] == upstream["train_churn"] == {"validate_features"}
    assert upstream["train_ziln"] == upstream["train_btyd"] == {"validate_features"}
    assert upstream["evaluate"] == {"train_clv", "train_churn", "train_ziln", "train_btyd"}
    assert upstream["score"] == {"evaluate"}
    # the plan reads the segments from the scores: it does not wait for the K-means
    assert upstream["measure_outcomes"] == upstream["segment"] == {"score"}
    assert upstream["allocate"] == {"measure_outcomes"}
    assert upstream["explain"] == {"score"}
    assert upstream["churn_alerts"] == {"allocate", "explain"}
    assert upstream["backtest_scores"] == {"validate_raw"}
    assert upstream["recommend"] == {"validate_features"}
    assert upstream["publish_catalog"] == {"churn_alerts", "segment", "backtest_scores",
                                           "recommend"}
    assert upstream["summary"] == {"publish_catalog"}


def test_churn_alerts_task_updates_the_crm_asset(dagbag):
    from clv.config import CHURN_ALERTS_ASSET_URI

    task = dagbag.dags["clv_pipeline"].get_task("churn_alerts")
    assert [a.uri for a in task.outlets] == [CHURN_ALERTS_ASSET_URI]


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_dag_files_do_not_import_heavy_libraries(dag_file):
    """Parsing a DAG file must stay cheap: no Spark, XGBoost, MLflow or GX at top level."""
    code = (f"import runpy, sys; runpy.run_path({str(DAGS / dag_file)!r}); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([""], []), out.stdout


def _airflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    airflow = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run([airflow, *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_a_bad_param_fails_the_run_at_once_without_retries(tmp_path):
    """A real Airflow run (SQLite metadata) with a budget below 0 (the form's schema has no
    bounds it would clamp to, #21): the first task fails on its only try
    (AirflowFailException: never up_for_retry although the DAG's tasks have retries), and
    nothing downstream runs."""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
           "CLV_HOME": str(tmp_path / "home")}
    assert _airflow(["db", "migrate"], env).returncode == 0
    run = _airflow(["dags", "test", "clv_pipeline", "2024-01-01", "-c",
                    json.dumps({"budget": -5})], env)
    log = run.stdout + run.stderr
    assert run.returncode != 0 and "DagRun failed" in log, log[-3000:]
    assert "AirflowFailException: budget: -5 is outside [0.0, inf]" in log
    assert log.count("running task <TaskInstance: clv_pipeline.validate_params") == 1
    assert "up_for_retry" not in log
    runs = json.loads(_airflow(["dags", "list-runs", "clv_pipeline", "-o", "json"],
                               env).stdout.strip().splitlines()[-1])
    states = json.loads(_airflow(["tasks", "states-for-dag-run", "clv_pipeline",
                                  runs[0]["run_id"], "-o", "json"],
                                 env).stdout.strip().splitlines()[-1])
    by_task = {row["task_id"]: row["state"] for row in states}
    assert by_task.pop("validate_params") == "failed"
    assert set(by_task.values()) == {"upstream_failed"}  # nothing read or wrote data
    # a date that is no date is refused by the params' schema before any run exists
    bad = _airflow(["dags", "test", "clv_pipeline", "2024-01-02", "-c",
                    json.dumps({"as_of_date": "1998-13-45"})], env)
    assert bad.returncode != 0
    assert "Invalid input for param as_of_date: '1998-13-45' is not a 'date'" in (
        bad.stdout + bad.stderr)
