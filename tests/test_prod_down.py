"""``make down PROFILE=prod`` stops services in dependency order and waits for each
(issue #20: PostgreSQL was stopped before the services that use it, and MLflow and the
triggerer were still alive 5 s after ``make down`` returned, their pid files gone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clv.ops import prod

#: A stand-in service: writes its pid file, and on SIGTERM takes ``delay`` seconds to shut
#: down (like a scheduler finishing its loop), then logs its name. ``delay`` < 0: it
#: ignores SIGTERM.
SERVICE = """
import os, signal, sys, time
name, log, pidfile, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
def term(*_):
    if delay < 0:
        return
    time.sleep(delay)
    with open(log, "a") as f:
        f.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
while True:
    time.sleep(0.05)
"""


def _start(name: str, state: Path, log: Path, delay: float) -> int:
    """Start the stand-in in its own session, not our child (as ``make up`` leaves them)."""
    pidfile = state / f"{name}.pid"
    subprocess.run(["setsid", "-f", sys.executable, "-c", SERVICE, name, str(log),
                    str(pidfile), str(delay)], check=True)
    for _ in range(200):
        if pidfile.exists():
            return int(pidfile.read_text())
        time.sleep(0.05)
    raise TimeoutError(name)


def test_down_stops_airflow_then_mlflow_then_postgres_waiting_for_each(tmp_path, monkeypatch):
    state = tmp_path / ".state" / "prod"
    state.mkdir(parents=True)
    (tmp_path / prod.ENV_FILE).write_text("CLV_PG_LOCAL=1\n")
    log = tmp_path / "stopped.log"
    services = ["mlflow", "airflow-api-server", "airflow-triggerer", "airflow-scheduler",
                "airflow-dag-processor"]
    pids = {name: _start(name, state, log, 0.3) for name in services}

    def pg_stop(root):  # PostgreSQL: only once nothing that uses it is alive
        alive = [n for n, pid in pids.items() if prod._alive(pid)]
        with open(log, "a") as f:
            f.write(f"postgres alive={','.join(alive)}\n")
        return True

    monkeypatch.setattr(prod, "pg_stop", pg_stop)
    assert prod.down(tmp_path) == 0
    assert log.read_text().splitlines() == [
        "airflow-scheduler", "airflow-triggerer", "airflow-dag-processor",
        "airflow-api-server", "mlflow", "postgres alive="]
    assert not [n for n, pid in pids.items() if prod._alive(pid)]
    assert not list(state.glob("*.pid"))


def test_a_service_that_ignores_sigterm_is_killed_and_waited_for(tmp_path):
    state = tmp_path / ".state" / "prod"
    state.mkdir(parents=True)
    pid = _start("mlflow", state, tmp_path / "log", -1)
    message = prod.stop_service(state / "mlflow.pid", timeout_s=1.0)
    assert message == "stopped mlflow (killed after 1 s)"
    assert not prod._alive(pid)
    assert not (state / "mlflow.pid").exists()
    (state / "gone.pid").write_text("999999999")
    assert prod.stop_service(state / "gone.pid") == "gone not running"


def test_dev_make_down_stops_airflow_first_and_waits_for_every_service(tmp_path):
    """The development `make down` killed the process groups and returned at once (the
    services still shutting down, their ports taken); now it waits like the prod one."""
    import shutil

    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "Makefile", tmp_path / "Makefile")
    state = tmp_path / ".state"
    state.mkdir()
    log = tmp_path / "stopped.log"
    pids = {name: _start(name, state, log, 1.0) for name in ("mlflow", "spark-connect",
                                                            "airflow")}
    try:
        out = subprocess.run(["make", "--no-print-directory", "-C", str(tmp_path), "down",
                              f"VENV={Path(sys.executable).parent.parent}"],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(repo / "src")})
        alive = [n for n, pid in pids.items() if prod._alive(pid)]
    finally:  # a failed make down leaves no stand-in behind
        for pid in pids.values():
            if prod._alive(pid):
                os.killpg(pid, signal.SIGKILL)
    assert out.returncode == 0, out.stderr
    assert alive == []  # every service had exited when make down returned
    assert log.read_text().splitlines() == ["airflow", "mlflow", "spark-connect"]
    assert not list(state.glob("*.pid"))
    assert out.stdout.splitlines() == ["stopped airflow", "stopped mlflow",
                                       "stopped spark-connect"]


def test_a_group_whose_leader_exits_first_is_waited_for_until_its_last_member(tmp_path):
    """``make up`` starts Airflow as ``bash -c '... & wait'``: on SIGTERM bash exits at once
    and may stay an unreaped zombie while the airflow processes still shut down (CI saw one
    left after ``make down``). Here the leader is our child, never reaped during the stop."""
    state = tmp_path / ".state"
    state.mkdir()
    log = tmp_path / "stopped.log"
    member_pidfile = state / "member"
    leader = subprocess.Popen(
        ["bash", "-c", f'"$0" -c "$1" member {log} {member_pidfile} 1.5 & wait',
         sys.executable, SERVICE], start_new_session=True)
    try:
        for _ in range(200):
            if member_pidfile.exists():
                break
            time.sleep(0.05)
        member = int(member_pidfile.read_text())
        (state / "airflow.pid").write_text(str(leader.pid))
        assert prod.stop_service(state / "airflow.pid", timeout_s=10) == "stopped airflow"
        assert log.read_text() == "member\n"  # it had finished its shutdown
        assert not Path(f"/proc/{member}").exists() or \
            Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        assert not prod._alive(leader.pid)
    finally:
        try:
            os.killpg(leader.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        leader.wait()
