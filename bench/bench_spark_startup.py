"""Fixed cost of a Spark task in a DAG run: a JVM per task vs a long-running Connect server.

    .venv/bin/python bench/bench_spark_startup.py [--repeats 3] [--orders-path PATH]

Each Airflow task runs in its own process; today every Spark task starts its own
driver JVM (``clv.data.spark.get_spark``, ``local[2]``). This measures, in a fresh
Python process each time (what a task is):

* ``local``: interpreter + ``get_spark()`` + a trivial job (``spark.range(1000).count()``);
* ``connect``: the same with ``CLV_SPARK_REMOTE=sc://127.0.0.1:<port>`` against a
  Spark Connect server started once (``clv.data.spark.connect_server_command``); the
  server's own start-up is reported separately (paid once, e.g. by ``make up``);
* with ``--orders-path`` (a Parquet folder of orders, e.g. the bench's 1M data):
  the product's feature job on it (``noop`` sink), both ways.

Prints a table and writes ``.state/bench/spark_startup-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".state" / "bench"

TASK = r"""
import sys, time
t0 = time.perf_counter()
from clv.data.spark import get_spark
spark = get_spark("clv-task")
t1 = time.perf_counter()
if len(sys.argv) > 1:
    import datetime as dt
    from clv import features
    orders = spark.read.parquet(sys.argv[1])
    features.customer_features(orders, dt.date.fromisoformat(sys.argv[2])).write.format(
        "noop").mode("overwrite").save()
else:
    assert spark.range(1000).count() == 1000
print(f"{t1 - t0:.3f} {time.perf_counter() - t1:.3f}")
"""


def task(env: dict, *args: str) -> dict:
    """One fresh process: (wall seconds, session seconds, job seconds)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", TASK, *args], env=env, capture_output=True,
                         text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    session, job = (float(v) for v in out.stdout.split()[-2:])
    return {"wall_s": wall, "session_s": session, "job_s": job}


def start_server(port: int, log: Path) -> tuple[subprocess.Popen, float]:
    from clv.data.spark import start_connect_server

    t0 = time.perf_counter()
    proc = start_connect_server(port, open(log, "w"))  # noqa: SIM115 (the server's log)
    return proc, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--orders-path", help="Parquet orders to run the feature job on")
    parser.add_argument("--cutoff", default="2025-12-29")
    args = parser.parse_args()
    STATE.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k != "CLV_SPARK_REMOTE"}
    base["CLV_SPARK_LOG_LEVEL"] = "ERROR"
    rows = []
    from clv.data.spark import free_port

    port = free_port()
    server, server_s = start_server(port, STATE / "connect-server.log")
    try:
        remote = {**base, "CLV_SPARK_REMOTE": f"sc://127.0.0.1:{port}"}
        work = [("trivial", ())]
        if args.orders_path:
            work.append(("features", (args.orders_path, args.cutoff)))
        for name, extra in work:
            for mode, env in (("local", base), ("connect", remote)):
                for i in range(args.repeats):
                    r = task(env, *extra)
                    rows.append({"work": name, "mode": mode, "run": i + 1, **r})
                    print(f"{name:<9}{mode:<8} run {i + 1}: wall {r['wall_s']:6.2f} s "
                          f"(session {r['session_s']:5.2f} s, job {r['job_s']:5.2f} s)",
                          flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(f"Spark Connect server start (once): {server_s:.1f} s")
    out = STATE / f"spark_startup-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"server_start_s": server_s, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
