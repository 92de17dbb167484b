"""Production secrets per process (issue #20): every task inherited all production
secrets (the PostgreSQL superuser URI, the MLflow admin) and logged to MLflow as its
admin. Now Airflow's components, whose tasks inherit their environment, get the warehouse
writer and a non-admin MLflow user; the admin and superuser stay with the setup step."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from clv.ops import prod


def _secrets_only_setup_may_hold(env: dict[str, str]) -> dict[str, str]:
    """The secret strings of the setup-only credentials (passwords, whole URIs)."""
    def password(uri: str) -> str:
        return uri.split("://", 1)[1].split("@")[0].split(":", 1)[1]

    return {
        "postgres superuser": password(env["CLV_PG_ADMIN_URI"]),
        "mlflow db owner": password(env["CLV_MLFLOW_BACKEND_URI"]),
        "mlflow admin": env["MLFLOW_TRACKING_PASSWORD"],
        "airflow admin user": env["CLV_AIRFLOW_ADMIN_PASSWORD"],
        "analyst": env["CLV_PG_ANALYST_PASSWORD"],
        "mlflow flask key": env["MLFLOW_FLASK_SERVER_SECRET_KEY"],
    }


def _leaks(environ: dict[str, str], secrets: dict[str, str]) -> list[str]:
    return sorted(what for what, secret in secrets.items()
                  if any(secret in value for value in environ.values()))


def test_tasks_get_the_warehouse_writer_and_a_non_admin_mlflow_user_only():
    env = prod.generate_env(pg_port=5999)
    # an operator who sourced .env.prod into the shell that runs `make up`
    operator_shell = {"PATH": "/usr/bin", "HOME": "/root", **env}
    tasks = prod.task_env(env, operator_shell)
    assert _leaks(tasks, _secrets_only_setup_may_hold(env)) == []
    assert not set(prod.SETUP_ONLY) & (set(tasks) - {"MLFLOW_TRACKING_USERNAME",
                                                              "MLFLOW_TRACKING_PASSWORD"})
    assert tasks["CLV_WAREHOUSE_URI"].startswith("postgresql://clv_writer:")
    assert tasks["MLFLOW_TRACKING_USERNAME"] == prod.MLFLOW_PIPELINE_USER != "admin"
    assert tasks["MLFLOW_TRACKING_PASSWORD"] == env["CLV_MLFLOW_PIPELINE_PASSWORD"]
    # what Airflow itself needs stays, and the Spark and model-signing secrets
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__FERNET_KEY",
                "CLV_SPARK_AUTH_SECRET", "CLV_MODEL_SIGNING_KEY", "PATH"):
        assert tasks[key] == operator_shell[key]


def test_up_hands_each_service_only_its_own_secrets(tmp_path, monkeypatch):
    env = prod.generate_env(pg_port=5999)
    del env["CLV_MLFLOW_PIPELINE_PASSWORD"]  # an env file from before: completed by up
    prod.write_env(tmp_path / prod.ENV_FILE, env)
    started: dict[str, dict[str, str]] = {}
    calls: list[str] = []
    monkeypatch.setattr(prod, "pg_start", lambda env, root: calls.append("pg_start"))
    monkeypatch.setattr(prod, "pg_setup", lambda env: calls.append("pg_setup"))
    monkeypatch.setattr(prod.subprocess, "run",
                        lambda argv, env, **kw: started.setdefault(f"setup {argv[1]}", env))
    argvs: dict[str, list[str]] = {}
    monkeypatch.setattr(prod, "_start", lambda name, argv, env, state: (
        started.setdefault(name, env), argvs.setdefault(name, argv)))
    monkeypatch.setattr(prod, "_wait", lambda url, timeout=180: True)
    monkeypatch.setattr(prod, "ensure_mlflow_pipeline_user",
                        lambda env, uri: calls.append("mlflow user"))
    for key, value in env.items():  # the operator sourced the env file
        monkeypatch.setenv(key, value)
    assert prod.up(tmp_path, "127.0.0.1", 8080, 5000) == 0
    full = prod.read_env(tmp_path / prod.ENV_FILE)
    assert len(full["CLV_MLFLOW_PIPELINE_PASSWORD"]) >= 20
    secrets = _secrets_only_setup_may_hold(full)
    assert calls == ["pg_start", "pg_setup", "mlflow user"]
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer"):
        assert _leaks(started[name], secrets) == [], name
        assert started[name]["MLFLOW_TRACKING_USERNAME"] == prod.MLFLOW_PIPELINE_USER
    mlflow_env = started["mlflow"]
    assert mlflow_env["MLFLOW_BACKEND_STORE_URI"] == full["CLV_MLFLOW_BACKEND_URI"]
    for key in ("CLV_PG_ADMIN_URI", "AIRFLOW__CORE__FERNET_KEY", "CLV_WAREHOUSE_URI",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "MLFLOW_TRACKING_PASSWORD"):
        assert key not in mlflow_env, key
    # artifacts: proxied by the server (clients never open the folder), the folder 0700
    argv = argvs["mlflow"]
    folder = tmp_path / ".state" / "mlflow" / "artifacts"
    assert argv[argv.index("--artifacts-destination") + 1] == folder.as_uri()
    assert "--serve-artifacts" in argv
    assert argv[argv.index("--default-artifact-root") + 1] == "mlflow-artifacts:/"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # the setup step (airflow db migrate) may hold them: it is not a long-running service
    assert started["setup db"]["CLV_PG_ADMIN_URI"] == full["CLV_PG_ADMIN_URI"]


def _free_port() -> int:
    return prod._free_port()


@pytest.fixture
def mlflow_auth_server(tmp_path):
    """A basic-auth MLflow server on SQLite (users in a second SQLite file)."""
    env = prod.generate_env(pg_port=5999)
    env["CLV_MLFLOW_AUTH_DB_URI"] = f"sqlite:///{tmp_path / 'auth.db'}"
    env["CLV_MLFLOW_BACKEND_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ini = prod.write_mlflow_auth_config(env, tmp_path / "auth.ini")
    port = _free_port()
    (tmp_path / "artifacts").mkdir()
    argv, extra = prod.mlflow_server_command(env, "127.0.0.1", port,
                                                     tmp_path / "artifacts", ini)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    log = open(tmp_path / "mlflow.log", "wb")
    proc = subprocess.Popen(argv, env={**environ, **extra, "MLFLOW_ENABLE_TELEMETRY": "false"},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while not prod._wait(f"{uri}/health", timeout=2):
            assert proc.poll() is None, (tmp_path / "mlflow.log").read_text()[-3000:]
            assert time.time() < deadline, "MLflow did not come up in 180 s"
        yield env, uri
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a busy host: gunicorn's workers take their time
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
        log.close()


AS_USER = """
import json, sys
import mlflow
from mlflow.server import get_app_client
uri = sys.argv[1]
client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
out = {}
exp = client.get_experiment_by_name("clv")
run = client.create_run(exp.experiment_id)
client.log_metric(run.info.run_id, "m", 1.0)
out["logs_to_existing_experiment"] = True
client.set_registered_model_alias("clv_spend", "champion", "1")
out["moves_alias_of_existing_model"] = True
client.create_registered_model("uplift_mail")
out["creates_models"] = True
try:
    get_app_client("basic-auth", tracking_uri=uri).create_user("intruder", "x" * 20)
    out["creates_users"] = True
except Exception as exc:
    out["creates_users"] = False
print("RESULT", json.dumps(out))
"""


def test_the_pipeline_user_works_on_the_pipelines_objects_and_is_no_admin(
        mlflow_auth_server, tmp_path):
    import mlflow

    env, uri = mlflow_auth_server
    admin = {"MLFLOW_TRACKING_USERNAME": "admin",
             "MLFLOW_TRACKING_PASSWORD": env["MLFLOW_TRACKING_PASSWORD"]}
    os.environ.update(admin)
    try:  # what an earlier setup (the admin, as before #20) created
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        exp_id = client.create_experiment("clv")
        run = client.create_run(exp_id)
        client.create_registered_model("clv_spend")
        client.create_model_version("clv_spend", f"runs:/{run.info.run_id}/model",
                                    run.info.run_id)
    finally:
        for key in admin:
            os.environ.pop(key, None)
    prod.ensure_mlflow_pipeline_user(env, uri)
    prod.ensure_mlflow_pipeline_user(env, uri)  # idempotent (user exists)
    as_pipeline = {**{k: v for k, v in os.environ.items()
                      if not k.startswith("MLFLOW_TRACKING")},
                   "MLFLOW_TRACKING_USERNAME": prod.MLFLOW_PIPELINE_USER,
                   "MLFLOW_TRACKING_PASSWORD": env["CLV_MLFLOW_PIPELINE_PASSWORD"]}
    out = subprocess.run([sys.executable, "-c", AS_USER, uri], env=as_pipeline,
                         capture_output=True, text=True, timeout=300)
    assert "RESULT" in out.stdout, out.stderr[-3000:]
    result = out.stdout.split("RESULT", 1)[1].strip()
    assert result == ('{"logs_to_existing_experiment": true, "moves_alias_of_existing_model": '
                      'true, "creates_models": true, "creates_users": false}')


def _http_status(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    import base64
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization",
                       "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_artifacts_go_through_the_server_with_auth_never_the_folder(
        mlflow_auth_server, tmp_path, monkeypatch):
    """Issue #20: under the production profile the clients read and wrote the artifact
    folder themselves (models as 0644 files), so MLflow's auth did not cover them. Now
    the server proxies artifacts: a run logs them over HTTP with its credentials, the
    server alone writes its folder, and a request without credentials is refused."""
    import mlflow
    from clv.models.registry import configure_mlflow

    env, uri = mlflow_auth_server
    client_folder = tmp_path / "client_side_artifacts"  # what a task would have opened
    user, password = "admin", env["MLFLOW_TRACKING_PASSWORD"]
    monkeypatch.setenv("CLV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLV_MLFLOW_ARTIFACTS", str(client_folder))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    exp_id = configure_mlflow()
    body = "model bytes 7f3a\n"
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_text(body, "model/weights.txt")
    run_id = run.info.run_id
    assert mlflow.MlflowClient().get_run(run_id).info.artifact_uri \
        == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts"
    stored = list((tmp_path / "artifacts").rglob("weights.txt"))
    assert [p.read_text() for p in stored] == [body]  # written by the server
    assert not client_folder.exists()  # the client never touched a folder
    proxied = f"{uri}/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{run_id}/artifacts/" \
              "model/weights.txt"
    by_run = f"{uri}/get-artifact?path=model/weights.txt&run_id={run_id}"
    for url in (proxied, by_run):
        assert _http_status(url)[0] == 401, url
        assert _http_status(url, (user, password + "x"))[0] == 401, url
        assert _http_status(url, (user, password)) == (200, body.encode()), url
    # and the client reads it back through the server
    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model/weights.txt",
                                                dst_path=str(tmp_path / "dl"))
    assert open(local).read() == body
