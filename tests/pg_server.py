"""A throw-away PostgreSQL server for tests: initdb + pg_ctl on a temporary folder.

``pg_server`` (session fixture) starts one server on a free port of 127.0.0.1 with
password (scram) authentication for TCP connections and stops and deletes it at the
end of the session, also when tests fail. The server binaries run as the ``postgres``
user when the tests run as root (initdb refuses root). Import the fixture into a test
module with ``from pg_server import pg_server  # noqa: F401``.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

JDBC_JAR = os.environ.get("CLV_JDBC_JAR", "/usr/share/java/postgresql.jar")


def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian layout), or PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    host: str
    port: int
    superuser: str
    password: str
    datadir: Path

    def uri(self, user: str | None = None, password: str | None = None,
            database: str = "postgres") -> str:
        return (f"postgresql://{user or self.superuser}:{password or self.password}"
                f"@{self.host}:{self.port}/{database}")

    def create_database(self, name: str) -> str:
        """A fresh database (dropped first if it exists); returns its superuser URI."""
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
            conn.execute(f'create database "{name}"')
        return self.uri(database=name)


class _Runner:
    """Runs server binaries as an unprivileged user when we are root."""

    def __init__(self) -> None:
        self.as_postgres = os.geteuid() == 0
        self.uid = self.gid = None
        if self.as_postgres:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root and there is no 'postgres' user to run "
                            "the server as: install postgresql (make pg)")
            self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def chown(self, path: Path) -> None:
        if self.as_postgres:
            os.chown(path, self.uid, self.gid)

    def run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self.as_postgres else args
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def start_server() -> tuple[PgServer, _Runner, Path]:
    bindir = pg_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries not found (initdb): run `make pg` "
                    "(apt-get install postgresql libpostgresql-jdbc-java)")
    runner = _Runner()
    root = Path(tempfile.mkdtemp(prefix="clv-pg-"))
    root.chmod(0o755)
    datadir, pwfile = root / "data", root / "pw"
    password = secrets.token_urlsafe(12)
    pwfile.write_text(password + "\n")
    runner.chown(root)
    runner.chown(pwfile)
    runner.run([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                "--auth-host=scram-sha-256", "--auth-local=trust", f"--pwfile={pwfile}",
                "-E", "UTF8", "--no-locale"])
    port = _free_port()
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=60")
    runner.run([str(bindir / "pg_ctl"), "-D", str(datadir), "-o", opts, "-w", "-t", "60",
                "-l", str(root / "server.log"), "start"])
    return PgServer("127.0.0.1", port, "postgres", password, datadir), runner, bindir


def stop_server(server: PgServer, runner: _Runner, bindir: Path) -> None:
    try:
        runner.run([str(bindir / "pg_ctl"), "-D", str(server.datadir), "-m", "immediate",
                    "-w", "stop"])
    except subprocess.CalledProcessError:
        pass
    finally:
        shutil.rmtree(server.datadir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    """A live PostgreSQL server for the session; stopped and deleted afterwards."""
    server, runner, bindir = start_server()
    try:
        yield server
    finally:
        stop_server(server, runner, bindir)
