"""The whole DAG end to end at a given size: wall time and peak memory per task.

    .venv/bin/python bench/bench_dag.py --cdnow                       # CDNOW, as make run
    .venv/bin/python bench/bench_dag.py \\
        --orders .state/bench/data/orders-10000000-seed7/orders \\
        --as-of-date 2025-12-29 --horizon-days 90                    # 10M synthetic orders

It runs in its own ``--home`` (default ``.state/bench/dag-<name>``: warehouse, MLflow,
Airflow DB), so your ``make run`` state is untouched. One process, as ``make run``:
Airflow metadata DB, the orders into ``raw.orders`` (quarantine rules, atomic
publish), then ``airflow dags test`` (every task in this process, one Spark JVM).
A thread samples the resident memory of the process tree (Python + the Spark
driver JVM, whose executors run inside it in ``local[2]``) every 0.25 s; each
task's peak is the largest sample between its start and end in Airflow's metadata.

Prints a table and writes ``.state/bench/bench_dag-<name>-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".state" / "bench"


def _environment(home: Path) -> None:
    """What the Makefile exports, pointed at ``home`` (before Airflow is imported)."""
    os.environ.update({
        "CLV_HOME": str(home),
        "AIRFLOW_HOME": str(home / ".state" / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    })
    os.environ.pop("CLV_SPARK_REMOTE", None)


class MemorySampler(threading.Thread):
    """(UTC time, RSS bytes of this process and its children) every ``every`` s."""

    def __init__(self, every: float = 0.25) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.every, self.samples, self.stop = every, [], threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.samples.append((dt.datetime.now(dt.UTC), total))
            self.stop.wait(self.every)


def _task_times(db: Path) -> tuple[str, list[tuple[str, float, str, dt.datetime, dt.datetime]]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        run_id = con.execute("select run_id from dag_run where dag_id = 'clv_pipeline' "
                             "order by id desc limit 1").fetchone()[0]
        rows = con.execute("select task_id, duration, state, start_date, end_date from "
                           "task_instance where dag_id = 'clv_pipeline' and run_id = ? "
                           "order by start_date", [run_id]).fetchall()
    finally:
        con.close()

    def ts(v: str) -> dt.datetime:
        t = dt.datetime.fromisoformat(v)
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return run_id, [(t, d or 0.0, s, ts(a), ts(b)) for t, d, s, a, b in rows if a and b]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--cdnow", action="store_true", help="CDNOW (69,659 orders)")
    src.add_argument("--orders", type=Path, help="a Parquet folder of orders in the contract")
    parser.add_argument("--as-of-date", default="1998-07-01")
    parser.add_argument("--horizon-days", type=int, default=180)
    parser.add_argument("--budget", type=float, default=5000.0)
    parser.add_argument("--home", type=Path)
    args = parser.parse_args(argv)
    name = "cdnow" if args.cdnow else args.orders.parent.name
    home = (args.home or STATE / f"dag-{name}").resolve()
    home.mkdir(parents=True, exist_ok=True)
    _environment(home)

    from clv import demo, ingest
    from clv.spark import get_spark

    log_path = home / "dag.log"
    log_path.write_text("")
    sampler = MemorySampler()
    sampler.start()
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    with demo._output_to(log_path):
        demo._airflow("db", "migrate")
        demo._airflow("pools", "set", "spark", "2", "Spark tasks")
    steps["airflow_db_s"] = time.perf_counter() - t0
    print(f"airflow DB: {steps['airflow_db_s']:.1f} s", flush=True)
    t0 = time.perf_counter()
    with demo._output_to(log_path):
        spark = get_spark("clv-bench-dag")
        if args.cdnow:
            df = ingest.read_cdnow(spark, ingest.cdnow_packaged_path())
        else:
            df = ingest.read_orders_file(spark, args.orders, fmt="parquet")
        as_of = dt.date.fromisoformat(args.as_of_date)
        loaded = ingest.load_orders(spark, df, as_of, "bench-dag")
    steps["load_orders_s"] = time.perf_counter() - t0
    print(f"load orders: {steps['load_orders_s']:.1f} s: {loaded}", flush=True)
    conf = {"as_of_date": as_of.isoformat(), "horizon_days": args.horizon_days,
            "budget": args.budget}
    t0 = time.perf_counter()
    failed = None
    try:
        with demo._output_to(log_path):
            demo._airflow("dags", "test", "clv_pipeline", as_of.isoformat(), "-c",
                          json.dumps(conf))
    except SystemExit as exc:
        failed = str(exc)
    steps["dag_s"] = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    run_id, tasks = _task_times(home / ".state" / "airflow" / "airflow.db")
    rows = []
    for task, seconds, state, start, end in tasks:
        peak = max((rss for t, rss in sampler.samples if start <= t <= end), default=0)
        rows.append({"task": task, "seconds": seconds, "state": state,
                     "peak_rss_gib": peak / 2**30})
    overall = max(rss for _, rss in sampler.samples) / 2**30
    print(f"\nclv_pipeline on {name} ({loaded.rows_accepted:,} orders), as of {as_of}, "
          f"horizon {args.horizon_days} d; run {run_id}")
    print(f"{'task':<20}{'seconds':>9}{'peak GiB':>10}  state")
    for r in rows:
        print(f"{r['task']:<20}{r['seconds']:>9.1f}{r['peak_rss_gib']:>10.2f}  {r['state']}")
    print(f"{'DAG (wall)':<20}{steps['dag_s']:>9.1f}{overall:>10.2f}")
    if failed:
        print(f"DAG run FAILED ({failed}); log: {log_path}")
    machine = f"{os.cpu_count()} cores, load average {os.getloadavg()[1]:.1f} (5 min) at the end"
    out = STATE / f"bench_dag-{name}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"data": name, "orders": loaded.rows_accepted,
                               "as_of_date": as_of.isoformat(), "machine": machine,
                               "steps": steps, "tasks": rows, "peak_rss_gib": overall,
                               "failed": failed}, indent=2))
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
