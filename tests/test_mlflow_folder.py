"""mlflow/: the development server runs over the pipeline's own store (what make up starts)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _server_argv(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, str(REPO / "mlflow" / "server.py"), "--print",
                          "--host", "127.0.0.1", "--port", "5123"],
                         env=env, capture_output=True, text=True, check=True)
    return shlex.split(out.stdout)


def test_dev_server_serves_the_pipelines_registry_and_artifacts(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",
                                                           "CLV_MLFLOW_ARTIFACTS")}
    env["CLV_HOME"] = str(tmp_path)
    argv = _server_argv(env)
    assert argv[1:3] == ["server", "--host"]
    assert argv[argv.index("--port") + 1] == "5123"
    store = argv[argv.index("--backend-store-uri") + 1]
    assert store == f"sqlite:///{tmp_path.resolve()}/.state/mlflow/mlflow.db"
    artifacts = Path(argv[argv.index("--default-artifact-root") + 1])
    assert artifacts == tmp_path.resolve() / ".state" / "mlflow" / "artifacts"
    assert artifacts.is_dir() and oct(artifacts.stat().st_mode & 0o777) == "0o700"


def test_dev_server_refuses_when_the_pipeline_already_talks_to_a_server(tmp_path):
    env = {**os.environ, "CLV_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    out = subprocess.run([sys.executable, str(REPO / "mlflow" / "server.py"), "--print"],
                         env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "is a server already" in out.stderr


def test_versions_pickled_under_the_old_module_paths_still_load():
    """A pickle written before the stage folders names clv.btyd_models.BtydModel."""
    import pickle

    from clv.models.btyd_pyfunc import BtydModel

    payload = pickle.dumps(BtydModel.__new__(BtydModel), protocol=0)  # names as text
    old = payload.replace(b"clv.models.btyd_pyfunc", b"clv.btyd_models")
    assert b"clv.btyd_models" in old and b"clv.models.btyd_pyfunc" not in old
    assert type(pickle.loads(old)) is BtydModel
    import clv.ziln  # noqa: F401  (the old path of the ZILN pyfunc)
    from clv.models import ziln
    assert sys.modules["clv.ziln"] is ziln
