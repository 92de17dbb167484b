"""Wall time per task of the latest ``clv_pipeline`` run, from Airflow's metadata DB.

    make run && .venv/bin/python bench/task_durations.py [--json out.json]

Reads ``$AIRFLOW_HOME/airflow.db`` (the embedded SQLite metadata database the
Makefile uses) and prints one line per task plus the run's total.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from pathlib import Path


def latest_run_durations(db: Path, dag_id: str = "clv_pipeline") -> tuple[str, list[tuple]]:
    """(run_id, [(task_id, seconds, state), ...]) of the newest run of ``dag_id``."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("select run_id from dag_run where dag_id = ? order by id desc limit 1",
                          [dag_id]).fetchone()
        if row is None:
            raise SystemExit(f"no run of {dag_id} in {db}: run `make run` first")
        tasks = con.execute(
            "select task_id, duration, state from task_instance where dag_id = ? and run_id = ? "
            "order by start_date", [dag_id, row[0]]).fetchall()
    finally:
        con.close()
    return row[0], tasks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    home = Path(os.environ.get("AIRFLOW_HOME", Path(__file__).resolve().parents[1]
                               / ".state" / "airflow"))
    run_id, tasks = latest_run_durations(home / "airflow.db")
    print(f"clv_pipeline run {run_id}")
    print(f"{'task':<20}{'seconds':>10}  state")
    for task_id, seconds, state in tasks:
        print(f"{task_id:<20}{(seconds or 0):>10.1f}  {state}")
    total = sum(s or 0 for _, s, _ in tasks)
    print(f"{'total':<20}{total:>10.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"run_id": run_id, "tasks": {t: s for t, s, _ in tasks}, "total_s": total}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
