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

This module starts and stops the services; the parts live beside it: ``env`` (the env file
and what each process may see of it), ``postgres`` (the local database), ``mlflow_server``
and ``airflow_setup`` (their configuration and command lines).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from clv.config import SPARK_POOL_ARGS, apply_runtime_umask, private_dir
from clv.ops.prod.airflow_setup import airflow_env, write_airflow_passwords
from clv.ops.prod.env import (
    ENV_FILE,
    MLFLOW_LEGACY_DEFAULT_PASSWORD,
    MLFLOW_PIPELINE_USER,
    SETUP_ONLY,
    _without_secrets,
    complete_env_file,
    generate_env,
    read_env,
    task_env,
    write_env,
)
from clv.ops.prod.env import (
    _free_port as _free_port,
)
from clv.ops.prod.mlflow_server import (
    ensure_mlflow_pipeline_user,
    mlflow_server_command,
    write_mlflow_auth_config,
)
from clv.ops.prod.postgres import pg_setup, pg_start, pg_stop

__all__ = [
    "ENV_FILE", "MLFLOW_LEGACY_DEFAULT_PASSWORD", "MLFLOW_PIPELINE_USER", "SETUP_ONLY",
    "airflow_env", "complete_env_file", "down", "ensure_mlflow_pipeline_user",
    "generate_env", "main", "mlflow_server_command", "pg_setup", "pg_start", "pg_stop",
    "read_env", "stop", "stop_service", "task_env", "up", "write_airflow_passwords",
    "write_env", "write_mlflow_auth_config",
]


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


def _group_state(pid: int) -> list[str]:
    """The states (``R``, ``S``, ``Z`` ...) of the processes in process group ``pid``,
    read from ``/proc``: the group outlives its leader while any member runs."""
    states = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # after the command's ")": state, ppid, pgrp, ...
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if len(fields) > 2 and fields[2] == str(pid):
            states.append(fields[0])
    return states


def _alive(pid: int) -> bool:
    """True while the process group ``pid`` has a member that is not a zombie.

    The leader (``bash -c '... wait'`` for Airflow) may exit first and stay a zombie
    nobody reaps while its children still shut down: the whole group counts."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():  # no /proc to look into: a signalable group is alive
        return True
    return any(state != "Z" for state in _group_state(pid))


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
