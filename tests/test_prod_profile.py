"""The production profile (issue #5) against live servers started here on 127.0.0.1.

The configuration comes from the same functions ``make prod-env`` / ``make up PROFILE=prod``
call (:mod:`clv.ops.prod`); the backing PostgreSQL is a throw-away one
(tests/pg_server.py).
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pg_server import pg_server  # noqa: F401  (session fixture)

psycopg = pytest.importorskip("psycopg")

from clv.ops import prod  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def prod_env(pg_server):  # noqa: F811
    """A generated env on the test server, its roles and databases set up like `make up`."""
    env = prod.generate_env(pg_port=pg_server.port)
    env["CLV_PG_ADMIN_URI"] = pg_server.uri(database="clv")  # the test server's superuser
    prod.pg_setup(env)
    return env


def _status(url: str, auth: tuple[str, str] | None = None) -> int:
    req = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:  # PBKDF2 on a busy host
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0  # not listening (yet)


def test_env_file_written_once_private_and_ignored(tmp_path):
    path = tmp_path / prod.ENV_FILE
    assert prod.write_env(path)
    first = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not prod.write_env(path)  # never overwrites
    assert path.read_text() == first
    env = prod.read_env(path)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://airflow:")
    assert env["CLV_MLFLOW_BACKEND_URI"].startswith("postgresql+psycopg://mlflow:")
    assert env["CLV_WAREHOUSE_URI"].startswith("postgresql://clv_writer:")
    pw = env["MLFLOW_TRACKING_PASSWORD"]
    assert len(pw) >= 20 and pw != prod.MLFLOW_LEGACY_DEFAULT_PASSWORD
    assert pw != prod.generate_env(pg_port=5432)["MLFLOW_TRACKING_PASSWORD"]
    ignored = subprocess.run(["git", "check-ignore", "-q", prod.ENV_FILE], cwd=REPO)
    assert ignored.returncode == 0, ".env.prod must be git-ignored"


def test_mlflow_basic_auth_server(prod_env, tmp_path, monkeypatch):
    """Unauthenticated: 401; admin with MLflow's old default password: 401; generated: 200.
    The clv package logs to it with MLFLOW_TRACKING_USERNAME/PASSWORD from the env file."""
    ini = prod.write_mlflow_auth_config(prod_env, tmp_path / "state" / "mlflow_auth.ini")
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600
    assert prod.MLFLOW_LEGACY_DEFAULT_PASSWORD not in ini.read_text()
    port = prod._free_port()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    argv, extra = prod.mlflow_server_command(prod_env, "127.0.0.1", port, artifacts, ini)
    env = {**os.environ, **extra, "MLFLOW_ENABLE_TELEMETRY": "false"}
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(k, None)
    log = open(tmp_path / "mlflow.log", "wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while _status(f"{base}/health") != 200:
            assert proc.poll() is None, (tmp_path / "mlflow.log").read_text()[-3000:]
            assert time.time() < deadline, "MLflow server did not come up in 120 s"
            time.sleep(1)
        api = f"{base}/api/2.0/mlflow/experiments/search?max_results=5"
        user, password = prod_env["MLFLOW_TRACKING_USERNAME"], prod_env["MLFLOW_TRACKING_PASSWORD"]
        assert _status(api) == 401
        assert _status(api, (user, prod.MLFLOW_LEGACY_DEFAULT_PASSWORD)) == 401
        assert _status(api, (user, password + "x")) == 401
        assert _status(api, (user, password)) == 200

        # the pipeline's client: registry.configure_mlflow with the env file's credentials
        monkeypatch.setenv("CLV_HOME", str(tmp_path))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", base)
        monkeypatch.setenv("CLV_MLFLOW_ARTIFACTS", str(artifacts))
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        import mlflow
        from clv.models.registry import configure_mlflow

        exp_id = configure_mlflow()
        with mlflow.start_run(experiment_id=exp_id) as run:
            mlflow.log_metric("auth_check", 1.0)
        got = mlflow.MlflowClient().get_run(run.info.run_id)
        assert got.data.metrics["auth_check"] == 1.0
        # the run is in PostgreSQL, not in a local file store
        with psycopg.connect(prod_env["CLV_MLFLOW_BACKEND_URI"].replace("+psycopg", "")) as c:
            assert c.execute("select count(*) from runs where run_uuid = %s",
                             [run.info.run_id]).fetchone()[0] == 1
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", prod.MLFLOW_LEGACY_DEFAULT_PASSWORD)
        with pytest.raises(Exception, match="401|nauthori|credentials"):
            mlflow.MlflowClient().get_run(run.info.run_id)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


def test_airflow_metadata_on_postgres_with_local_executor(prod_env, tmp_path):
    home = tmp_path / "airflow"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({k: v for k, v in prod_env.items() if k.startswith("AIRFLOW")})
    env.update(prod.airflow_env(prod_env, tmp_path, "127.0.0.1", 8080))
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"), PATH=f"{BIN}:{env['PATH']}")
    airflow = str(BIN / "airflow")

    def run(*args):
        r = subprocess.run([airflow, *args], env=env, capture_output=True, text=True,
                           timeout=240)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        return r.stdout.strip()

    run("db", "migrate")
    assert run("config", "get-value", "core", "executor") == "LocalExecutor"
    assert run("config", "get-value", "core", "simple_auth_manager_all_admins") == "False"
    with psycopg.connect(prod_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
                         .replace("+psycopg", "")) as c:
        assert c.execute("select count(*) from alembic_version").fetchone()[0] == 1
        assert c.execute("select current_user").fetchone()[0] == "airflow"
