"""Shared fixtures: one SparkSession for the whole run, and an isolated CLV_HOME per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLV_SHARED_DATA", REPO.parent / "shared" / "data"))
CDNOW_MASTER = SHARED_DATA / "cdnow" / "CDNOW_master.txt.gz"


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local SparkSession shared by every test (the JVM starts once), started as
    ``clv demo`` starts it for a small input: the tests' Spark jobs are many and small."""
    # Never the checkout's own warehouse or MLflow store: tests get a scratch home.
    os.environ["CLV_HOME"] = str(tmp_path_factory.mktemp("clv_session_home"))
    for name in ("CLV_WAREHOUSE_URI", "MLFLOW_TRACKING_URI", "CLV_MLFLOW_ARTIFACTS"):
        os.environ.pop(name, None)
    from clv.data.spark import get_spark

    session = get_spark("clv-tests", quick_jvm=True)
    yield session
    session.stop()


#: ``mlflow.set_tracking_uri`` / ``set_registry_uri`` also write these into os.environ,
#: and :func:`clv.config.load_settings` reads MLFLOW_TRACKING_URI: a test that pointed
#: MLflow at its scratch store would hand that store to every later test's settings.
_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _mlflow_env_restored():
    """Put the MLflow URI variables back as they were before the test."""
    saved = {k: os.environ.get(k) for k in _MLFLOW_ENV}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _no_airflow_task_context():
    """No test starts inside an earlier test's Airflow task: a task run in this process
    (``dag.test()``) leaves its ``AIRFLOW_CTX_*`` variables in os.environ, and with them
    a validation would take itself for a DAG run's (its Data Docs page left to the end)."""
    for name in [k for k in os.environ if k.startswith("AIRFLOW_CTX_")]:
        del os.environ[name]
    yield


@pytest.fixture
def clv_home(tmp_path, monkeypatch):
    """A fresh, empty CLV_HOME (warehouse, MLflow store, state) for one test."""
    monkeypatch.setenv("CLV_HOME", str(tmp_path))
    monkeypatch.delenv("CLV_WAREHOUSE_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CLV_MLFLOW_ARTIFACTS", raising=False)
    from clv.config import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def cdnow_path() -> Path:
    if not CDNOW_MASTER.exists():
        pytest.fail(f"reference data missing: {CDNOW_MASTER} (see ../shared/data/README.md)")
    return CDNOW_MASTER


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only reference data folder (../shared/data)."""
    return SHARED_DATA


def in_memory_splits(by_split: dict):
    """A stand-in for ``clv.models.training.splits.load_split`` over frames in memory
    (``{"train": ..., "eval": ...}``), sampling as the warehouse read does."""
    from clv.models.training import splits

    def load_split(as_of, split, settings=None, max_rows=0, seed=splits.SAMPLE_SEED):
        frame = by_split[split]
        out = frame.iloc[splits.sample_positions(len(frame), max_rows, seed)]
        out = out.reset_index(drop=True)
        out.attrs["n_offered_rows"] = len(frame)
        return out
    return load_split
