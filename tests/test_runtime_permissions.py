"""Run-time state is the owner's only: every folder the project creates under the warehouse,
the MLflow store (model artifacts included) and ``.state`` is 0700 and every file 0600,
whatever umask the shell had (issue #20: ``.state/`` and ``warehouse/`` were world-readable,
model pickles 0644)."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from clv.data import warehouse
from clv.models import registry


@pytest.fixture
def loose_umask():
    """A typical login shell's umask (022: files 0644, folders 0755) for the test."""
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def _modes(root: Path) -> dict[str, str]:
    """Relative path -> octal mode of ``root`` and everything under it."""
    out = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return out


def _loose(root: Path) -> dict[str, str]:
    """Entries whose mode gives the group or others any right, or is not 0700 / 0600."""
    bad = {}
    for rel, mode in _modes(root).items():
        path = root / rel
        want = "0o700" if path.is_dir() else "0o600"
        if mode != want:
            bad[rel] = mode
    return bad


def test_warehouse_files_written_by_spark_and_the_catalog_are_private(
        spark, clv_home, loose_umask):
    root = clv_home.warehouse_root
    root.mkdir(mode=0o755)  # a folder made world-readable before the fix: tightened
    os.chmod(root, 0o755)
    df = spark.createDataFrame([("o1", "c1", 10.0)], "order_id string, customer_id string, "
                                                      "amount double")
    warehouse.write_partition(df, "raw.orders", dt.date(2020, 1, 1))
    warehouse.refresh_catalog()
    assert (root / warehouse.CATALOG_FILE).exists()
    assert any(p.suffix == ".parquet" for p in root.rglob("*"))
    assert _loose(root) == {}


def test_mlflow_store_and_model_artifacts_are_private(clv_home, loose_umask):
    import mlflow

    experiment_id = registry.configure_mlflow()
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.log_dict({"a": 1}, "evaluation/x.json")
        mlflow.log_text("print('model')", "model/model.pkl")
    state = clv_home.state_dir
    assert (state / "mlflow" / "mlflow.db").exists()
    artifacts = list(clv_home.mlflow_artifact_root.rglob("model.pkl"))
    assert len(artifacts) == 1
    assert _loose(state / "mlflow") == {}
    assert oct(stat.S_IMODE(state.stat().st_mode)) == "0o700"


def test_spark_scratch_and_the_handoff_folder_are_private(spark, clv_home, loose_umask):
    import pandas as pd

    from clv.data.spark import get_spark

    get_spark("clv-tests")  # the process's session: it creates the scratch folder
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(5)], "x": range(5)})
    old = warehouse.LOCAL_RELATION_MAX_ROWS
    warehouse.LOCAL_RELATION_MAX_ROWS = 1  # through the Parquet hand-off folder
    try:
        with warehouse.spark_frame(spark, frame) as df:
            assert df.count() == 5
            handoff = clv_home.state_dir / "spark" / "handoff"
            assert _loose(handoff) == {}
    finally:
        warehouse.LOCAL_RELATION_MAX_ROWS = old
    assert _loose(clv_home.state_dir / "spark") == {}


def test_umask_is_configurable_and_checked(tmp_path, monkeypatch, loose_umask):
    from clv.config import load_settings, private_dir

    monkeypatch.setenv("CLV_UMASK", "027")  # share read access with the group
    assert oct(stat.S_IMODE(private_dir(tmp_path / "a" / "b").stat().st_mode)) == "0o750"
    load_settings()
    with open(tmp_path / "f", "w"):
        pass
    assert oct(stat.S_IMODE((tmp_path / "f").stat().st_mode)) == "0o640"
    monkeypatch.setenv("CLV_UMASK", "u=rwx")
    with pytest.raises(ValueError, match="CLV_UMASK"):
        load_settings()
