"""The whole DAG at 1M and 10M synthetic orders, as ``make up`` runs it, and their ratio.

    make bench                                          # this, then bench_features.py
    .venv/bin/python bench/bench_scale.py [--sizes 1000000,10000000] [--isolated [--sequential]]

For each size: the orders (generated once, :func:`bench_features.ensure_data`), then
``bench_dag.py --scheduler`` in a fresh home: Airflow's own scheduler (LocalExecutor),
DAG processor, triggerer and API server run the DAG on one Spark Connect server, as
``make up`` does. ``--isolated`` runs ``bench_dag.py --isolated`` instead (each task
started by ``airflow tasks test``, ~6 s more a task), ``--sequential`` with it one task
at a time. Prints each run's wall time and
peak memory and time(largest) / time(smallest); writes
``bench/results/bench_scale-<UTC time>.json`` next to each run's own file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import recording
from bench_features import STATE, ensure_data

REPO = Path(__file__).resolve().parents[1]


def run_dag(n_orders: int, mode: list[str]) -> dict:
    path, as_of, rows = ensure_data(n_orders)
    home = STATE / f"dag-scale-{n_orders}"
    shutil.rmtree(home, ignore_errors=True)  # a fresh warehouse, registry and Airflow DB
    pattern = f"bench_dag-{'isolated' if '--isolated' in mode else 'scheduled'}-*.json"
    before = set(recording.RESULTS.glob(pattern))
    argv = [sys.executable, str(REPO / "bench" / "bench_dag.py"), "--orders", str(path),
            "--as-of-date", as_of.isoformat(), "--horizon-days", "90", *mode,
            "--home", str(home)]
    print(f"== {rows:,} orders: {' '.join(argv[1:])}", flush=True)
    rc = subprocess.run(argv).returncode
    new = sorted(set(recording.RESULTS.glob(pattern)) - before)
    if not new:
        raise SystemExit(f"bench_dag.py at {n_orders:,} orders wrote no result (exit {rc})")
    result = json.loads(new[-1].read_text())
    return {"orders": rows, "result_file": new[-1].name, "exit": rc,
            "dag_wall_s": result["dag_wall_s"], "tasks_sum_s": result["tasks_sum_s"],
            "load_orders_s": result["steps"].get("load_orders_s"),
            "max_task_process_gib": result["max_task_process_gib"],
            "max_spark_driver_gib": result["max_spark_driver_gib"], "failed": result["failed"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--isolated", action="store_true",
                        help="bench_dag.py --isolated (airflow tasks test per task) instead "
                             "of Airflow's scheduler")
    parser.add_argument("--sequential", action="store_true",
                        help="with --isolated: one task at a time (per-task figures without "
                             "overlap)")
    args = parser.parse_args(argv)
    if args.sequential and not args.isolated:
        parser.error("--sequential needs --isolated")
    mode = (["--isolated", *(["--sequential"] if args.sequential else [])] if args.isolated
            else ["--scheduler"])
    load_start = os.getloadavg()
    runs = [run_dag(int(n), mode) for n in args.sizes.split(",")]
    ratio = (runs[-1]["dag_wall_s"] / runs[0]["dag_wall_s"]
             if len(runs) > 1 and runs[0]["dag_wall_s"] else None)
    print(f"\n{'orders':>12}{'DAG wall s':>12}{'tasks sum s':>13}{'task GiB':>10}"
          f"{'driver GiB':>12}  failed")
    for r in runs:
        print(f"{r['orders']:>12,}{r['dag_wall_s']:>12.1f}{r['tasks_sum_s']:>13.1f}"
              f"{r['max_task_process_gib']:>10.2f}{r['max_spark_driver_gib']:>12.2f}  "
              f"{r['failed'] or '-'}")
    if ratio is not None:
        print(f"time({runs[-1]['orders']:,}) / time({runs[0]['orders']:,}) = {ratio:.2f}")
    out = recording.write("bench_scale", {"runs": runs, "ratio_largest_to_smallest": ratio,
                                          "mode": " ".join(mode)}, load_start)
    print(f"wrote {out}")
    return 1 if any(r["failed"] for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
