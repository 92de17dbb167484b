"""The production profile's local PostgreSQL: start, stop, roles and databases."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from clv.ops.prod.env import DATABASES, _write_private


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
    from clv.data import postgres_roles, warehouse

    postgres_roles.setup_roles(env["CLV_PG_ADMIN_URI"],
                             sorted({t.schema for t in warehouse.TABLES.values()}),
                             writer_password=env["CLV_PG_WRITER_PASSWORD"],
                             analyst_password=env["CLV_PG_ANALYST_PASSWORD"])


# --------------------------------------------------------------------------- up / down
