"""Where the benchmarks write their figures: ``bench/results/<name>-<UTC time>.json``.

Every file carries what the figures depend on (:func:`machine`): cores, memory, CPU
model, the load average when the run started and ended, the versions of the engines
and the commit measured. ``make bench`` runs the benchmarks that write here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PACKAGES = ("pyspark", "xgboost", "tensorflow", "keras", "great_expectations", "mlflow",
            "apache-airflow", "pandas", "pyarrow", "duckdb")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src",
                                "dags", "jobs"], capture_output=True, text=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine(load_at_start: tuple[float, float, float] | None = None) -> dict:
    """The machine and software the figures were measured on."""
    return {"cores": os.cpu_count(), "cpu": _cpu_model(), "memory_gib": _memory_gib(),
            "load_average_start": list(load_at_start) if load_at_start else None,
            "load_average_end": list(os.getloadavg()), "versions": _versions(),
            "commit": _commit()}


def write(name: str, payload: dict, load_at_start: tuple[float, float, float] | None = None
          ) -> Path:
    """``payload`` plus :func:`machine` to ``bench/results/<name>-<UTC time>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    when = dt.datetime.now(dt.UTC)
    out = RESULTS / f"{name}-{when:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"benchmark": name, "finished_utc": when.isoformat(),
                               "machine": machine(load_at_start), **payload}, indent=2,
                              default=str) + "\n")
    return out


def show(row: dict) -> None:
    """One result row on stdout, floats to 4 decimals (as it is measured)."""
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)


def write_judged_rows(name: str, as_of_date, holdout_rows: int, rows: list[dict],
                      load_at_start: tuple[float, float, float] | None = None) -> Path:
    """:func:`write` for a bench whose settings were each judged on one holdout sample:
    the as-of date, the holdout's size and a row per setting; prints where it went."""
    out = write(name, {"as_of_date": as_of_date.isoformat(), "holdout_rows": holdout_rows,
                       "rows": rows}, load_at_start)
    print(f"wrote {out}")
    return out
