"""ALS recommendations on synthetic order lines: seconds per phase and peak memory.

    .venv/bin/python bench/bench_recommend.py                       # 10,000,000 lines, local[2]
    .venv/bin/python bench/bench_recommend.py --lines 1000000 --lines 3000000

Data: :mod:`clv.data.synthetic.lines` (seed 7; customers = lines / 100, 2,000 products in 40
categories, 8 true factors), generated in NumPy and written once with pyarrow to
``.state/bench/data/lines-<n>-seed7.parquet``, then read by Spark. The cutoff is the
data's day 300 of 365, the evaluation window the 65 days after it.

Phases (``clv.models.recommend.fit_recommender`` with ``timings``): ``generate`` and ``write``
(NumPy + pyarrow, not Spark), ``spark_start``, ``index`` (net quantity per customer and
product before the cutoff, string ids to numbers), ``als`` (MLlib ALS, implicit, the
product's :class:`~clv.models.recommend.AlsParams`), ``baselines`` (popularity and the
item-to-item co-purchase similarity), ``score`` (top 10 per customer for the three
methods), ``evaluate`` (P@10, R@10, NDCG@10, coverage on the later window).

Memory: the largest resident set of the whole process tree (Python, the Spark driver JVM
that runs the local executors, and Spark's Python workers), sampled every 100 ms with
psutil; Spark's driver heap is ``CLV_SPARK_DRIVER_MEMORY`` (default 3g; set higher for
10M lines if the JVM runs out).

Output: one table per size on stdout and ``.state/bench/bench_recommend-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
STATE = REPO / ".state" / "bench"
SEED = 7


class PeakRss:
    """Largest RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, every_s: float = 0.1):
        import psutil

        self.proc, self.every, self.peak = psutil.Process(), every_s, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self._tree())
            time.sleep(self.every)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def spec_for(n_lines: int):
    from clv.data.synthetic.lines import LinesSpec

    return LinesSpec(n_customers=max(1_000, n_lines // 100), n_products=2_000, n_categories=40,
                     n_factors=8, n_lines=n_lines, seed=SEED)


def ensure_data(n_lines: int, timings: dict[str, float]) -> Path:
    """The lines as one Parquet file (generated once per size)."""
    import pyarrow.parquet as pq

    from clv.data.synthetic.lines import generate_lines

    path = STATE / "data" / f"lines-{n_lines}-seed{SEED}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = generate_lines(spec_for(n_lines))
    timings["generate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = data.arrow()
    del data
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=1_000_000)
    tmp.rename(path)
    timings["write"] = time.perf_counter() - t0
    return path


def run_size(spark, n_lines: int, timings: dict[str, float]) -> dict:
    from clv.models import recommend

    spec = spec_for(n_lines)
    path = ensure_data(n_lines, timings)
    lines = spark.read.parquet(str(path))
    cutoff = spec.start_date + dt.timedelta(days=300)
    t0 = time.perf_counter()
    run = recommend.fit_recommender(spark, lines, cutoff, spec.days - 300, timings=timings)
    timings["total_fit"] = time.perf_counter() - t0
    run.candidates.unpersist()
    return {"lines": n_lines, "customers": spec.n_customers, "products": spec.n_products,
            "metrics": run.metrics, "method": run.method, "decision": run.decision[1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, action="append",
                        help="lines to generate (repeat for several sizes; default 10M)")
    args = parser.parse_args(argv)
    os.environ.setdefault("CLV_SPARK_MASTER", "local[2]")
    results = []
    with PeakRss() as rss:
        t0 = time.perf_counter()
        from clv.data.spark import get_spark

        spark = get_spark("bench-recommend")
        start = time.perf_counter() - t0
        for n in args.lines or [10_000_000]:
            timings = {"spark_start": start} if not results else {}
            before = rss.peak
            row = run_size(spark, n, timings)
            row.update(seconds=timings, peak_rss_gib_so_far=rss.peak / 2**30,
                       peak_rss_gib_before=before / 2**30)
            results.append(row)
            _print(row)
        spark.stop()
    report = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "host": platform.node(), "cpus": os.cpu_count(),
              "master": os.environ["CLV_SPARK_MASTER"],
              "driver_memory": os.environ.get("CLV_SPARK_DRIVER_MEMORY", "3g"),
              "peak_rss_gib": rss.peak / 2**30, "sizes": results}
    out = STATE / f"bench_recommend-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"peak RSS of the process tree: {rss.peak / 2**30:.2f} GiB; report {out}")
    return 0


def _print(row: dict) -> None:
    print(f"\n{row['lines']:,} lines, {row['customers']:,} customers, {row['products']:,} "
          f"products; published: {row['method']}")
    for phase, s in row["seconds"].items():
        print(f"  {phase:<12} {s:8.1f} s")
    print(f"  peak RSS so far {row['peak_rss_gib_so_far']:.2f} GiB")
    for method in ("als", "popularity", "co_purchase"):
        m = row["metrics"]
        print(f"  {method:<12} P@10 {m[f'{method}.precision_at_10']:.4f}  "
              f"R@10 {m[f'{method}.recall_at_10']:.4f}  NDCG@10 {m[f'{method}.ndcg_at_10']:.4f}"
              f"  coverage {m[f'{method}.coverage']:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
