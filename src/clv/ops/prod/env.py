"""The production env file: generated secrets, what each process may see of them."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import socket
from pathlib import Path

ENV_FILE = ".env.prod"
#: What MLflow's basic-auth app shipped as the admin password before 3.x; never ours.
MLFLOW_LEGACY_DEFAULT_PASSWORD = "password1234"
MLFLOW_ADMIN = "admin"
#: The MLflow user the DAG's tasks log and register as: no admin rights (it manages the
#: experiment and the models it creates; the admin grants it the ones that exist).
MLFLOW_PIPELINE_USER = "clv_pipeline"
#: Where runs of the production server keep their artifacts: the server's proxy, never a
#: folder the clients open themselves.
PROXIED_ARTIFACT_ROOT = "mlflow-artifacts:/"
AIRFLOW_USERS = (("admin", "admin"), ("viewer", "viewer"))  # (user, simple-auth role)
DATABASES = {"airflow": "airflow", "mlflow": "mlflow", "mlflow_auth": "mlflow", "clv": None}


def _secret(n: int = 24) -> str:
    # URL- and shell-safe: [A-Za-z0-9_-], so it can sit unquoted in URIs and the env file
    return secrets.token_urlsafe(n)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def generate_env(pg_port: int | None = None, pg_host: str = "127.0.0.1",
                 mlflow_url: str = "http://127.0.0.1:5000") -> dict[str, str]:
    """Fresh secrets and the URIs built from them (nothing is written)."""
    port = pg_port or (5432 if _port_free(5432) else _free_port())
    pw = {k: _secret() for k in ("super", "airflow", "mlflow", "writer", "analyst")}
    base = f"{pg_host}:{port}"
    fernet = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return {
        "CLV_PROFILE": "prod",
        # 1: make up starts PostgreSQL under .state/postgres; 0: use the URIs below as they are
        "CLV_PG_LOCAL": "1",
        "CLV_PG_HOST": pg_host,
        "CLV_PG_PORT": str(port),
        "CLV_PG_ADMIN_URI": f"postgresql://postgres:{pw['super']}@{base}/clv",
        "CLV_PG_WRITER_PASSWORD": pw["writer"],
        "CLV_PG_ANALYST_PASSWORD": pw["analyst"],
        "CLV_WAREHOUSE_URI": f"postgresql://clv_writer:{pw['writer']}@{base}/clv",
        # Airflow: metadata on PostgreSQL (psycopg 3), a real executor, real users
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
            f"postgresql+psycopg://airflow:{pw['airflow']}@{base}/airflow",
        # psycopg 3 is async too (Airflow's default async driver, asyncpg, is not installed)
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC":
            f"postgresql+psycopg://airflow:{pw['airflow']}@{base}/airflow",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in AIRFLOW_USERS),
        "CLV_AIRFLOW_ADMIN_PASSWORD": _secret(15),
        "CLV_AIRFLOW_VIEWER_PASSWORD": _secret(15),
        "AIRFLOW__API__SECRET_KEY": _secret(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(32),
        "AIRFLOW__CORE__FERNET_KEY": fernet,
        # connections come from the environment (AIRFLOW_CONN_*), never from the repository
        "AIRFLOW_CONN_CLV_WAREHOUSE": f"postgres://clv_writer:{pw['writer']}@{base}/clv",
        # MLflow: tracking server on PostgreSQL with basic auth
        "CLV_MLFLOW_BACKEND_URI": f"postgresql+psycopg://mlflow:{pw['mlflow']}@{base}/mlflow",
        "CLV_MLFLOW_AUTH_DB_URI": f"postgresql+psycopg://mlflow:{pw['mlflow']}@{base}/mlflow_auth",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret(32),
        "MLFLOW_TRACKING_URI": mlflow_url,
        "MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN,
        "MLFLOW_TRACKING_PASSWORD": _secret(18),
        **_added_secrets(),
    }


def _added_secrets() -> dict[str, str]:
    """Secrets introduced after the first env files were written: ``up`` appends the
    missing ones to an existing file (:func:`complete_env_file`)."""
    return {
        "CLV_MLFLOW_PIPELINE_USER": MLFLOW_PIPELINE_USER,
        "CLV_MLFLOW_PIPELINE_PASSWORD": _secret(18),
        # Spark's RPC secret for a standalone cluster (a local master makes its own)
        "CLV_SPARK_AUTH_SECRET": _secret(32),
        # signs model artifact digests (clv.models.registry); the tasks register and score
        "CLV_MODEL_SIGNING_KEY": _secret(32),
    }


def complete_env_file(path: Path) -> list[str]:
    """Append the secrets of :func:`_added_secrets` that ``path`` lacks; their names."""
    have = read_env(path)
    missing = {k: v for k, v in _added_secrets().items() if k not in have}
    if missing:
        with open(path, "a") as fh:
            fh.write("".join(f"{k}={v}\n" for k, v in missing.items()))
        os.chmod(path, 0o600)
    return sorted(missing)


#: What only the setup step (``up``: roles, databases, users) may hold: the PostgreSQL
#: superuser, the service databases' owners, the MLflow admin, the Airflow users'
#: passwords. No long-running service or task gets them.
SETUP_ONLY = ("CLV_PG_ADMIN_URI", "CLV_PG_WRITER_PASSWORD", "CLV_PG_ANALYST_PASSWORD",
              "CLV_AIRFLOW_ADMIN_PASSWORD", "CLV_AIRFLOW_VIEWER_PASSWORD",
              "CLV_MLFLOW_BACKEND_URI", "CLV_MLFLOW_AUTH_DB_URI",
              "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_TRACKING_USERNAME",
              "MLFLOW_TRACKING_PASSWORD", "CLV_MLFLOW_PIPELINE_PASSWORD")


def _without_secrets(environ: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """``environ`` less every variable the env file defines (an operator who sourced
    ``.env.prod`` into the shell running ``make up`` must not pass it all on)."""
    return {k: v for k, v in environ.items() if k not in env and k not in SETUP_ONLY}


def task_env(env: dict[str, str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of Airflow's components, which their tasks inherit: Airflow's own
    settings and keys, the warehouse writer (``clv_writer``), the non-admin MLflow
    pipeline user, Spark's and the model signing secrets; nothing of :data:`SETUP_ONLY`.
    """
    base = _without_secrets(dict(os.environ if environ is None else environ), env)
    own = {k: v for k, v in env.items() if k not in SETUP_ONLY}
    return {**base, **own,
            "MLFLOW_TRACKING_USERNAME": env.get("CLV_MLFLOW_PIPELINE_USER", MLFLOW_PIPELINE_USER),
            "MLFLOW_TRACKING_PASSWORD": env["CLV_MLFLOW_PIPELINE_PASSWORD"]}


def write_env(path: Path, values: dict[str, str] | None = None) -> bool:
    """Write ``path`` (0600) unless it exists; True when written."""
    values = values or generate_env()
    body = (f"# CLV production profile, generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC "
            "by `make prod-env`.\n# Secrets: never commit this file (it is git-ignored).\n"
            + "".join(f"{k}={v}\n" for k, v in values.items()))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(body)
    return True


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip().strip('"').strip("'")
    return out


def _write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path
