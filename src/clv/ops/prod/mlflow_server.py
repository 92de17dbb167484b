"""The production MLflow server: basic-auth config, its command line, the pipeline's user."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from clv.ops.prod.env import (
    MLFLOW_ADMIN,
    MLFLOW_LEGACY_DEFAULT_PASSWORD,
    MLFLOW_PIPELINE_USER,
    PROXIED_ARTIFACT_ROOT,
    _write_private,
)


def write_mlflow_auth_config(env: dict[str, str], path: Path) -> Path:
    """The ini ``MLFLOW_AUTH_CONFIG_PATH`` points at: users in PostgreSQL, the generated admin."""
    password = env["MLFLOW_TRACKING_PASSWORD"]
    if not password or password == MLFLOW_LEGACY_DEFAULT_PASSWORD:
        raise ValueError("MLFLOW_TRACKING_PASSWORD must be set and not MLflow's old default")
    return _write_private(path, (
        "[mlflow]\n"
        f"default_permission = {env.get('CLV_MLFLOW_DEFAULT_PERMISSION', 'READ')}\n"
        f"database_uri = {env['CLV_MLFLOW_AUTH_DB_URI']}\n"
        f"admin_username = {env.get('MLFLOW_TRACKING_USERNAME', MLFLOW_ADMIN)}\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"))


def mlflow_server_command(env: dict[str, str], host: str, port: int, artifact_root: Path,
                          auth_ini: Path, workers: int = 1) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment for the basic-auth MLflow server.

    Artifacts go through the server only (proxied artifact access): runs get
    ``mlflow-artifacts:/`` locations, clients upload and download over HTTP with their
    MLflow credentials, and the server alone reads and writes ``artifact_root`` (0700,
    its own). Basic auth then covers models as it covers runs; no task opens the folder.

    The backend URI holds the PostgreSQL password: it travels in the environment
    (``MLFLOW_BACKEND_STORE_URI``, which ``mlflow server`` reads and hands its workers the
    same way), readable by the process's owner only, never on the command line, which
    every local user sees in the process list.
    """
    argv = [str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", "basic-auth",
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--serve-artifacts", "--artifacts-destination", artifact_root.resolve().as_uri(),
            "--default-artifact-root", PROXIED_ARTIFACT_ROOT]
    extra = {"MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
             "MLFLOW_BACKEND_STORE_URI": env["CLV_MLFLOW_BACKEND_URI"],
             "MLFLOW_FLASK_SERVER_SECRET_KEY": env["MLFLOW_FLASK_SERVER_SECRET_KEY"]}
    return argv, extra


def ensure_mlflow_pipeline_user(env: dict[str, str], tracking_uri: str) -> None:
    """As the MLflow admin (setup only): create the pipeline's user, or reset its password
    to the env file's, and let it manage the experiment and models that exist already
    (what it creates itself, MLflow lets it manage). It is no admin: it cannot create
    users, grant rights, or touch other experiments and models beyond reading them."""
    from mlflow.exceptions import MlflowException

    import mlflow
    from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME, EXPERIMENT_NAME
    from mlflow.server import get_app_client

    user, password = env.get("CLV_MLFLOW_PIPELINE_USER", MLFLOW_PIPELINE_USER), \
        env["CLV_MLFLOW_PIPELINE_PASSWORD"]
    admin = {"MLFLOW_TRACKING_USERNAME": env.get("MLFLOW_TRACKING_USERNAME", MLFLOW_ADMIN),
             "MLFLOW_TRACKING_PASSWORD": env["MLFLOW_TRACKING_PASSWORD"]}
    saved = {k: os.environ.get(k) for k in admin}
    os.environ.update(admin)  # the clients read their credentials from the environment
    try:
        auth = get_app_client("basic-auth", tracking_uri=tracking_uri)
        try:
            auth.create_user(user, password)
        except MlflowException:  # exists: the env file's password is the one that counts
            auth.update_user_password(user, password)
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
        if experiment is not None:
            _grant_manage(auth, user, "experiment", experiment.experiment_id)
        for model in client.search_registered_models(max_results=1000):
            if model.name in (CLV_MODEL_NAME, CHURN_MODEL_NAME) \
                    or model.name.startswith("uplift_"):
                _grant_manage(auth, user, "registered_model", model.name)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _grant_manage(auth, user: str, resource_type: str, resource_id: str) -> None:
    """MANAGE on one resource; a grant that exists (maybe lower) is replaced."""
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(user, resource_type, resource_id, "MANAGE")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(user, resource_type, resource_id)
        auth.grant_user_permission(user, resource_type, resource_id, "MANAGE")
