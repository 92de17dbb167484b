"""One place that builds the SparkSession, from :mod:`clv.config` settings.

The master URL comes from ``CLV_SPARK_MASTER`` (``local[2]`` by default); point it
at ``spark://host:7077`` (or YARN / k8s) to run the same jobs on a cluster.

Spark's own authentication and encryption (:func:`security_conf`) are on under the
production profile (``CLV_PROFILE=prod``) and on a cluster given a shared secret
(``CLV_SPARK_AUTH_SECRET`` or ``CLV_SPARK_AUTH_SECRET_FILE``). The secret reaches the
driver JVM through a 0600 properties file, never through a command line.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from clv.config import Settings, load_settings, private_dir, runtime_umask

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


#: Driver JVM options for a short run over small data (``clv demo`` on CDNOW-sized
#: input): HotSpot's quick compiler only (C1) and the serial collector. Spark's many
#: small jobs then spend far less CPU compiling and collecting (the CDNOW walk-through:
#: 50 -> 29 JVM CPU-seconds in the DAG, docs/benchmarks.md); long jobs over large data
#: want the optimising compiler, so nothing else asks for these. Java's arithmetic is
#: the same under either compiler: results do not change. A 512 MiB young generation
#: (the heap starts at 1/64 of the machine's memory, so young was ~128 MiB): fewer
#: collections, ~2 JVM CPU-seconds less in the CDNOW DAG. (A driver heap under 512 MiB
#: takes all but a sliver of it as young, with a warning from the JVM.)
QUICK_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmn512m"


def get_spark(app_name: str = "clv", settings: Settings | None = None,
              quick_jvm: bool = False) -> SparkSession:
    """Return the process's SparkSession, creating it on first use.

    Reusing one session per process means tasks that run in the same process
    (``airflow dags test``, the test suite) pay the JVM start once. ``quick_jvm``: a new
    local driver JVM starts with :data:`QUICK_JVM_OPTIONS` (a short run over small data);
    it does not change a JVM already running, a Spark Connect server or a cluster's
    executors.
    """
    from pyspark.sql import SparkSession

    remote = os.environ.get("CLV_SPARK_REMOTE")
    if remote:  # a long-running Spark Connect server holds the JVM (make up starts one)
        return _timed(lambda: _remote_session(remote), f"Spark Connect {remote}")
    s = settings or load_settings()
    private_dir(s.state_dir)
    scratch = private_dir(s.state_dir / "spark")
    os.environ.setdefault("PYSPARK_PYTHON", _python())
    if is_local_master(s.spark_master):  # the UI binds to $SPARK_LOCAL_IP, else every interface
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(s.spark_master)
        .config("spark.driver.memory", s.spark_driver_memory)
        .config("spark.local.dir", str(scratch))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", os.environ.get("CLV_SPARK_SHUFFLE_PARTITIONS", "8"))
        # Spark 4 refuses nanosecond Parquet timestamps; write microseconds everywhere.
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", os.environ.get("CLV_SPARK_UI", "false"))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(scratch / "spark-warehouse"))
    )
    java_options = [f"-Dderby.system.home={scratch}"]
    if quick_jvm:
        java_options.append(QUICK_JVM_OPTIONS)
    security = security_conf(s.spark_master, s)
    for key, value in {**file_mode_conf(), **network_conf(s.spark_master), **security}.items():
        builder = builder.config(key, value)
    secret_props = _secret_properties(s.spark_master, s)
    if secret_props is not None:  # read by spark-submit when it starts this process's JVM
        os.environ["PYSPARK_SUBMIT_ARGS"] = f"--properties-file {secret_props} pyspark-shell"
    jdbc = _jdbc_jar(s)
    if jdbc:  # PostgreSQL warehouse: the driver on the classpath; JDBC timestamps as UTC
        java_options.append("-Duser.timezone=UTC")
        builder = builder.config("spark.jars", jdbc).config(
            "spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
    builder = builder.config("spark.driver.extraJavaOptions", " ".join(java_options))
    # py4j logs every connection close at INFO, including at interpreter exit.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:  # this process's JVM: no cost
        return builder.getOrCreate()
    spark = _timed(builder.getOrCreate, f"new local Spark driver JVM ({s.spark_master})")
    spark.sparkContext.setLogLevel(os.environ.get("CLV_SPARK_LOG_LEVEL", "WARN"))
    return spark


_SESSION_LOGGED: set[str] = set()
LOOPBACK = "127.0.0.1"


def file_mode_conf() -> dict[str, str]:
    """Hadoop's own umask for what Spark writes (warehouse Parquet, its ``.crc`` files,
    scratch): Hadoop applies ``fs.permissions.umask-mode`` (default 022, i.e. 0644 files)
    whatever the process's umask, so it gets the run-time umask (:mod:`clv.config`)."""
    return {"spark.hadoop.fs.permissions.umask-mode": f"{runtime_umask():03o}"}


AUTH_SECRET_VARS = ("CLV_SPARK_AUTH_SECRET", "CLV_SPARK_AUTH_SECRET_FILE")


def _auth_secret() -> str | None:
    """The shared Spark secret from ``CLV_SPARK_AUTH_SECRET`` or the file named by
    ``CLV_SPARK_AUTH_SECRET_FILE``; None when neither is set."""
    if os.environ.get("CLV_SPARK_AUTH_SECRET"):
        return os.environ["CLV_SPARK_AUTH_SECRET"].strip()
    path = os.environ.get("CLV_SPARK_AUTH_SECRET_FILE")
    if path:
        from pathlib import Path

        secret = Path(path).read_text().strip()
        if not secret:
            raise ValueError(f"CLV_SPARK_AUTH_SECRET_FILE={path}: the file is empty")
        return secret
    return None


def security_conf(master: str, settings: Settings | None = None) -> dict[str, str]:
    """Spark's RPC authentication, RPC encryption (AES) and local-disk (shuffle, spill)
    encryption, where they are due.

    On under the production profile (``CLV_PROFILE=prod``), and on a cluster master
    whenever a shared secret is configured. A ``local`` master generates its own
    secret (driver and executors share one JVM); YARN and Kubernetes hand theirs out;
    a standalone ``spark://`` master needs the secret its master and workers were
    started with, which travels in :func:`_secret_properties`' file. A cluster without
    a secret outside the production profile stays open, with a warning.

    Raises:
        ValueError: production profile, standalone master, and no secret configured.
    """
    prod = os.environ.get("CLV_PROFILE") == "prod"
    secret = _auth_secret()
    own_secret = is_local_master(master) or master.startswith(("yarn", "k8s://"))
    if not prod and (secret is None or is_local_master(master)):
        if secret is None and not is_local_master(master):
            log.warning("Spark master %s: no CLV_SPARK_AUTH_SECRET(_FILE): the driver and "
                        "executors accept unauthenticated, unencrypted connections", master)
        return {}
    if secret is None and not own_secret:
        raise ValueError(f"production profile: Spark master {master} needs the cluster's "
                         f"shared secret in {' or '.join(AUTH_SECRET_VARS)} "
                         "(spark.authenticate)")
    return {"spark.authenticate": "true", "spark.network.crypto.enabled": "true",
            "spark.io.encryption.enabled": "true"}


def _secret_properties(master: str, settings: Settings | None = None) -> str | None:
    """A 0600 properties file holding ``spark.authenticate.secret`` for a master that
    needs it (standalone), so no command line shows the secret; None otherwise."""
    secret = _auth_secret()
    if secret is None or not security_conf(master, settings) or is_local_master(master) \
            or master.startswith(("yarn", "k8s://")):
        return None
    s = settings or load_settings()
    path = private_dir(private_dir(s.state_dir) / "spark") / "auth-secret.properties"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"spark.authenticate.secret {secret}\n")
    path.chmod(0o600)
    return str(path)


def is_local_master(master: str) -> bool:
    """True for ``local`` / ``local[N]`` / ``local[*]``: driver and executors in one JVM."""
    return master == "local" or master.startswith("local[")


def network_conf(master: str) -> dict[str, str]:
    """Where the driver listens: 127.0.0.1 for a ``local`` master, whose executors share
    the driver's JVM, so no other machine needs to reach its RPC and block-manager ports
    (Spark has no authentication on by default). A cluster master's executors must reach
    the driver, so its address stays Spark's choice or the user's
    (``CLV_SPARK_DRIVER_HOST``, ``CLV_SPARK_DRIVER_BIND_ADDRESS``)."""
    if is_local_master(master):
        return {"spark.driver.bindAddress": LOOPBACK, "spark.driver.host": LOOPBACK}
    conf = {}
    for key, var in (("spark.driver.host", "CLV_SPARK_DRIVER_HOST"),
                     ("spark.driver.bindAddress", "CLV_SPARK_DRIVER_BIND_ADDRESS")):
        if os.environ.get(var):
            conf[key] = os.environ[var]
    return conf


def _timed(make, what: str):
    """``make()``, logging once per process how long the session took: the fixed cost
    of Spark in a task (a new JVM ~9 s; attaching to a Connect server ~1 s)."""
    started = time.perf_counter()
    spark = make()
    if what not in _SESSION_LOGGED:
        _SESSION_LOGGED.add(what)
        log.info("Spark session: %s in %.2f s", what, time.perf_counter() - started)
    return spark


def _jdbc_jar(s: Settings) -> str | None:
    """The JDBC driver jar when the warehouse is PostgreSQL (or ``CLV_JDBC_JAR`` is set)."""
    if s.warehouse_backend != "postgresql" and not os.environ.get("CLV_JDBC_JAR"):
        return None
    if not s.jdbc_jar.is_file():
        raise FileNotFoundError(
            f"PostgreSQL JDBC driver not found at {s.jdbc_jar}: install it "
            "(make pg, or apt-get install libpostgresql-jdbc-java) or set CLV_JDBC_JAR"
        )
    return str(s.jdbc_jar)


#: Session settings a Spark Connect client sets on its (server-side) session.
_SQL_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def _remote_session(url: str) -> SparkSession:
    """A Spark Connect session on ``url`` (``CLV_SPARK_REMOTE=sc://127.0.0.1:15002``).

    Opt-in: the JVM lives in a long-running server (:func:`connect_server_command`),
    so a task in a new process pays a gRPC connection instead of a JVM start. Code
    that needs ``sparkContext`` (RDDs, ``setLogLevel``) does not work over Connect.
    """
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(url).getOrCreate()
    conf = {**_SQL_CONF, "spark.sql.shuffle.partitions":
            os.environ.get("CLV_SPARK_SHUFFLE_PARTITIONS", "8")}
    for key, value in conf.items():
        spark.conf.set(key, value)
    return spark


def connect_server_command(port: int = 15002, settings: Settings | None = None) -> list[str]:
    """argv of a Spark Connect server with the same master, memory and scratch as
    :func:`get_spark` (the pip pyspark ships no ``sbin/start-connect-server.sh``)::

        PYSPARK_PYTHON=.venv/bin/python \
          $(.venv/bin/python -c \
            'from clv.data.spark import connect_server_command as c; print(*c())') &
        export CLV_SPARK_REMOTE=sc://127.0.0.1:15002

    ``PYSPARK_PYTHON`` in the server's environment is what makes its Python workers
    (``mapInPandas``, UDFs) import ``clv``; the ``spark.pyspark.python`` setting alone
    did not (measured: ``ModuleNotFoundError: No module named 'clv'``).
    """
    import pyspark

    s = settings or load_settings()
    scratch = s.state_dir / "spark"
    submit = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")
    conf = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.memory": s.spark_driver_memory,
        "spark.local.dir": str(scratch),
        "spark.sql.warehouse.dir": str(scratch / "spark-warehouse"),
        "spark.ui.enabled": os.environ.get("CLV_SPARK_UI", "false"),
        # Python UDFs / mapInPandas run on the server's workers: this venv's Python
        "spark.pyspark.python": _python(),
        **_SQL_CONF,
        **file_mode_conf(),
        **network_conf(s.spark_master),
        **security_conf(s.spark_master, s),
    }
    jdbc = _jdbc_jar(s)
    if jdbc:  # PostgreSQL warehouse: the server reads and writes it over JDBC
        conf["spark.jars"] = jdbc
        conf["spark.driver.extraJavaOptions"] = "-Duser.timezone=UTC"
        conf["spark.executor.extraJavaOptions"] = "-Duser.timezone=UTC"
    argv = [submit, "--master", s.spark_master, "--name", "clv-spark-connect",
            "--class", "org.apache.spark.sql.connect.service.SparkConnectServer"]
    secret_props = _secret_properties(s.spark_master, s)
    if secret_props is not None:  # the secret in a 0600 file, not in this argv
        argv += ["--properties-file", secret_props]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return argv + ["spark-internal"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_connect_server(port: int, log, timeout_s: float = 180.0):
    """Start :func:`connect_server_command` in its own process group and wait until it
    listens on ``port``; returns the ``subprocess.Popen``. Stop it with
    ``os.killpg(proc.pid, signal.SIGTERM)``.

    Args:
        port: Port on 127.0.0.1 (:func:`free_port`).
        log: Open file the server's stdout and stderr go to.
        timeout_s: How long to wait for the port.

    Raises:
        RuntimeError: The server exited, or did not listen within ``timeout_s``.
    """
    import socket
    import subprocess
    import sys

    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}  # its Python workers import clv
    if is_local_master(load_settings().spark_master):
        env.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    proc = subprocess.Popen(connect_server_command(port), stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the Spark Connect server exited ({proc.returncode}); "
                               f"see its log {getattr(log, 'name', '')}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the Spark Connect server did not listen on {port} in {timeout_s:.0f} s")


def _python() -> str:
    import sys

    return sys.executable
