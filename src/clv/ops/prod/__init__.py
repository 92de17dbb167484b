"""The production profile (``make prod-env``, ``make up PROFILE=prod``, ``make down PROFILE=prod``).

* ``env``: writes ``.env.prod`` once (mode 0600, git-ignored; an existing file is never
  touched) with generated secrets: PostgreSQL passwords and URIs for Airflow's metadata,
  MLflow's backend and auth stores and the warehouse writer/analyst, the MLflow and Airflow
  admin passwords, Airflow's API/JWT secrets and Fernet key, MLflow's Flask secret key.
* ``up``: a local PostgreSQL under ``.state/postgres`` on 127.0.0.1 (unless
  ``CLV_PG_LOCAL=0``: then the URIs in the file are used as they are), its roles and
  databases, ``airflow db migrate`` on PostgreSQL with LocalExecutor, the Airflow
  api-server/scheduler/dag-processor/triggerer with the simple auth manager's own users
  (admin and a viewer, passwords from the env file; not "everyone is admin"), and
  ``mlflow server --app-name basic-auth`` on PostgreSQL, serving artifacts itself (proxied:
  ``mlflow-artifacts:/``; the folder under ``.state/mlflow`` is the server's alone) and an
  auth ini under ``.state/prod`` whose admin password is the generated one.
* ``down``: stops what ``up`` started.
* ``stop NAME...``: stops services by their pid files under ``--state`` (default
  ``.state``) in the given order, each waited for: the development ``make down``.

Every listener binds to ``HOST`` (default 127.0.0.1). Processes started here inherit the
env file, so the pipeline's MLflow client authenticates with ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` (read by MLflow itself) and writes to the PostgreSQL warehouse
as ``clv_writer``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from clv.config import SPARK_POOL_ARGS, apply_runtime_umask, private_dir

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
    from mlflow.server import get_app_client

    import mlflow
    from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME, EXPERIMENT_NAME

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


def write_airflow_passwords(env: dict[str, str], path: Path) -> Path:
    """The simple auth manager's password file, from the env file (0600, under .state)."""
    import json

    users = [u.split(":")[0] for u in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")]
    pws = {u: env.get(f"CLV_AIRFLOW_{u.upper()}_PASSWORD") or _secret(15) for u in users}
    return _write_private(path, json.dumps(pws) + "\n")


def airflow_env(env: dict[str, str], state: Path, host: str, port: int) -> dict[str, str]:
    """Airflow settings derived from the env file and where things run."""
    client_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(state / "airflow_passwords.json"),
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{client_host}:{port}/execution/",
    }


# --------------------------------------------------------------------------- local PostgreSQL

def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if not initdb:
        raise SystemExit("no PostgreSQL server binaries (initdb): run `make pg`")
    return Path(initdb).parent


def _as_postgres(args: list[str], **kw) -> subprocess.CompletedProcess:
    """Server binaries refuse root: run them as the postgres user when we are root."""
    cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def _chown_pg(path: Path) -> None:
    if os.geteuid() == 0:
        e = pwd.getpwnam("postgres")
        os.chown(path, e.pw_uid, e.pw_gid)


def pg_start(env: dict[str, str], root: Path) -> None:
    """initdb (first time) and start PostgreSQL on CLV_PG_HOST:CLV_PG_PORT, data in ``root``."""
    bindir, datadir = _pg_bindir(), root / "data"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    _chown_pg(root)
    if not (datadir / "PG_VERSION").exists():
        pwfile = root / "pw"
        _write_private(pwfile, env["CLV_PG_ADMIN_URI"].split("://", 1)[1].split("@")[0]
                       .split(":", 1)[1] + "\n")
        _chown_pg(pwfile)
        try:
            _as_postgres([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                          "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                          f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale"])
        finally:
            pwfile.unlink(missing_ok=True)
    status = subprocess.run(["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
                            + [str(bindir / "pg_ctl"), "-D", str(datadir), "status"],
                            capture_output=True)
    if status.returncode == 0:
        return
    opts = (f"-c listen_addresses={env['CLV_PG_HOST']} -c port={env['CLV_PG_PORT']} "
            f"-c unix_socket_directories={root}")
    _as_postgres([str(bindir / "pg_ctl"), "-D", str(datadir), "-o", opts, "-w", "-t", "60",
                  "-l", str(root / "server.log"), "start"])


def pg_stop(root: Path) -> bool:
    datadir = root / "data"
    if not (datadir / "postmaster.pid").exists():
        return False
    _as_postgres([str(_pg_bindir() / "pg_ctl"), "-D", str(datadir), "-m", "fast", "-w", "stop"])
    return True


def _userinfo(uri: str) -> tuple[str, str]:
    user, password = uri.split("://", 1)[1].split("@")[0].split(":", 1)
    return user, password


def pg_setup(env: dict[str, str]) -> None:
    """Roles and databases (idempotent): airflow, mlflow (+ mlflow_auth), the clv warehouse."""
    import psycopg
    from psycopg import sql

    admin = env["CLV_PG_ADMIN_URI"].rsplit("/", 1)[0] + "/postgres"
    owners = {"airflow": _userinfo(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]),
              "mlflow": _userinfo(env["CLV_MLFLOW_BACKEND_URI"])}
    with psycopg.connect(admin, autocommit=True) as conn:
        for role, password in owners.values():
            if not conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone():
                conn.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
            conn.execute(sql.SQL("alter role {} login password {}").format(
                sql.Identifier(role), sql.Literal(password)))
        for db, owner in DATABASES.items():
            if not conn.execute("select 1 from pg_database where datname = %s", [db]).fetchone():
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(db)))
            if owner:
                conn.execute(sql.SQL("alter database {} owner to {}").format(
                    sql.Identifier(db), sql.Identifier(owners[owner][0])))
                conn.execute(sql.SQL("revoke all on database {} from public").format(
                    sql.Identifier(db)))
    from clv.data import postgres, warehouse

    postgres.setup_roles(env["CLV_PG_ADMIN_URI"],
                             sorted({t.schema for t in warehouse.TABLES.values()}),
                             writer_password=env["CLV_PG_WRITER_PASSWORD"],
                             analyst_password=env["CLV_PG_ANALYST_PASSWORD"])


# --------------------------------------------------------------------------- up / down

def _start(name: str, argv: list[str], env: dict[str, str], state: Path) -> None:
    pidfile = state / f"{name}.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), 0)
            print(f"{name} already running")
            return
        except (ProcessLookupError, ValueError):
            pass
    with open(state / f"{name}.log", "ab") as log:
        p = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    pidfile.write_text(str(p.pid))


def _wait(url: str, timeout: float = 180) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(2)
    return False


def up(home: Path, host: str, airflow_port: int, mlflow_port: int) -> int:
    env_path = home / ENV_FILE
    if not env_path.exists():
        raise SystemExit(f"no {env_path}: run `make prod-env` first")
    added = complete_env_file(env_path)
    if added:
        print(f"added {', '.join(added)} to {env_path}")
    env = read_env(env_path)
    private_dir(home / ".state")
    state = private_dir(home / ".state" / "prod")
    client_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if env.get("CLV_PG_LOCAL", "1") == "1":
        pg_start(env, home / ".state" / "postgres")
    pg_setup(env)
    tracking = f"http://{client_host}:{mlflow_port}"
    # Setup (this process) holds every secret; Airflow's components, whose tasks inherit
    # their environment, get only what a task needs (task_env); MLflow only its own.
    setup = {**os.environ, **env, **airflow_env(env, state, host, airflow_port),
             "MLFLOW_TRACKING_URI": tracking}
    child = {**task_env(env), **airflow_env(env, state, host, airflow_port),
             "MLFLOW_TRACKING_URI": tracking}
    write_airflow_passwords(env, state / "airflow_passwords.json")
    airflow = str(Path(sys.executable).parent / "airflow")
    Path(child.get("AIRFLOW_HOME", home / ".state" / "airflow")).mkdir(parents=True, exist_ok=True)
    subprocess.run([airflow, "db", "migrate"], env=setup, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([airflow, *SPARK_POOL_ARGS],
                   env=setup, check=True, stdout=subprocess.DEVNULL)
    auth_ini = write_mlflow_auth_config(env, state / "mlflow_auth.ini")
    artifacts = private_dir(home / ".state" / "mlflow" / "artifacts")
    argv, extra = mlflow_server_command(env, host, mlflow_port, artifacts, auth_ini)
    _start("mlflow", argv, {**_without_secrets(dict(os.environ), env), **extra}, state)
    ok_m = _wait(f"{tracking}/health")
    if ok_m:  # before any task runs: the tasks log as this user
        ensure_mlflow_pipeline_user(env, tracking)
    # Airflow's task-log server binds every interface (no host setting): not started; with
    # LocalExecutor the api-server reads the task logs from the shared local log folder.
    for svc, opts in (("api-server", []), ("scheduler", ["--skip-serve-logs"]),
                      ("dag-processor", []), ("triggerer", ["--skip-serve-logs"])):
        _start(f"airflow-{svc}", [airflow, svc, *opts], child, state)
    ok_a = _wait(f"http://{client_host}:{airflow_port}/api/v2/monitor/health")
    print(f"Airflow UI: http://{host}:{airflow_port}  {'up' if ok_a else 'NOT up'} "
          f"(logs: {state}/airflow-*.log); users: admin, viewer (passwords: "
          "CLV_AIRFLOW_*_PASSWORD in .env.prod)")
    print(f"MLflow UI:  http://{host}:{mlflow_port}  {'up' if ok_m else 'NOT up'} "
          f"(log: {state}/mlflow.log); user: admin (password: MLFLOW_TRACKING_PASSWORD); "
          f"the DAG's tasks log as {env.get('CLV_MLFLOW_PIPELINE_USER', MLFLOW_PIPELINE_USER)}")
    return 0 if ok_a and ok_m else 1


#: The order ``down`` stops services in: a service stops before those it uses. The
#: scheduler first (no new task starts), the triggerer and dag-processor, then the
#: api-server (running tasks report to it), MLflow (tasks log to it), PostgreSQL last.
STOP_ORDER = ("airflow-scheduler", "airflow-triggerer", "airflow-dag-processor",
              "airflow-api-server", "mlflow")
#: Seconds a service gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 30.0


def _alive(pid: int) -> bool:
    """True while the process group ``pid`` has a member that is not a zombie."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a leader that exited but was not reaped yet counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True  # the leader is gone, other members of its group are not


def stop_service(pidfile: Path, timeout_s: float = STOP_TIMEOUT_S) -> str:
    """SIGTERM the service's process group and wait until it has exited (SIGKILL after
    ``timeout_s``); then remove its pid file. Returns what happened, in words."""
    name = pidfile.stem
    try:
        pid = int(pidfile.read_text())
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, ValueError):
        pidfile.unlink(missing_ok=True)
        return f"{name} not running"
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = _alive(pid)
    if killed:
        os.killpg(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    return f"stopped {name}" + (f" (killed after {timeout_s:.0f} s)" if killed else "")


def down(home: Path, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """Stop what ``up`` started in :data:`STOP_ORDER`, each one waited for, PostgreSQL
    last, so no service loses its database while it still runs."""
    state = home / ".state" / "prod"
    pidfiles = {p.stem: p for p in state.glob("*.pid")}
    rank = {name: i for i, name in enumerate(STOP_ORDER)}
    # services not in the list (none today) stop first: they may use any of them
    for name in sorted(pidfiles, key=lambda n: (rank.get(n, -1), n)):
        print(stop_service(pidfiles[name], timeout_s), flush=True)
    env_path = home / ENV_FILE
    if env_path.exists() and read_env(env_path).get("CLV_PG_LOCAL", "1") == "1":
        print("stopped postgres" if pg_stop(home / ".state" / "postgres")
              else "postgres not running")
    return 0


def stop(state: Path, names: list[str], timeout_s: float = STOP_TIMEOUT_S) -> int:
    """Stop the services ``names`` (pid files ``state/<name>.pid``) in that order, each
    waited for (:func:`stop_service`): the development ``make down``."""
    for name in names:
        pidfile = state / f"{name}.pid"
        print(stop_service(pidfile, timeout_s) if pidfile.exists() else f"{name} not running",
              flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m clv.ops.prod", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["env", "up", "down", "stop"])
    p.add_argument("services", nargs="*", help="stop: the pid files' names, in order")
    p.add_argument("--state", default=None, help="stop: the pid files' folder")
    p.add_argument("--home", default=os.environ.get("CLV_HOME") or Path.cwd())
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p.add_argument("--airflow-port", type=int, default=int(os.environ.get("AIRFLOW_PORT", 8080)))
    p.add_argument("--mlflow-port", type=int, default=int(os.environ.get("MLFLOW_PORT", 5000)))
    p.add_argument("--pg-port", type=int, default=None)
    a = p.parse_intermixed_args(argv)
    home = Path(a.home).resolve()
    apply_runtime_umask()  # the services it starts inherit it: their files are private
    if a.command == "env":
        client = "127.0.0.1" if a.host in ("0.0.0.0", "::") else a.host
        path = home / ENV_FILE
        if write_env(path, generate_env(a.pg_port, mlflow_url=f"http://{client}:{a.mlflow_port}")):
            print(f"wrote {path} (mode 0600, git-ignored): secrets for the production profile")
        else:
            print(f"{path} exists: left as it is (delete it to generate new secrets)")
        return 0
    if a.command == "up":
        return up(home, a.host, a.airflow_port, a.mlflow_port)
    if a.command == "stop":
        return stop(Path(a.state) if a.state else home / ".state", a.services)
    return down(home)


if __name__ == "__main__":
    sys.exit(main())
