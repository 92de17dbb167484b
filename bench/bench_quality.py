"""GX validation of a run's tables: Spark's engine versus the small-frame pandas path.

    CLV_HOME=<a checkout after make run> .venv/bin/python bench/bench_quality.py [--repeats 3]
    CLV_WAREHOUSE_URI=<its warehouse> CLV_HOME=<scratch> ...   # leave the checkout as it is

Reads the latest partition of each table the pipeline validates from the warehouse
under ``$CLV_HOME`` (``make run`` on CDNOW fills it: 23,570 customers, 8 to ~70,000
rows a table) and validates it with its suite twice per repeat: with
``CLV_GX_PANDAS_MAX_ROWS=0`` (every metric a Spark job, as before issue #22) and with
the default threshold (clv.quality.engines). Data Docs are off, so the figures are the
validation alone. Prints, per table: rows, expectations, the best time and the Spark
jobs of each way, and whether the two reports are identical (success, counts, each
failure's type, column, unexpected count, observed value, rule and sample rows).
"""

from __future__ import annotations

import argparse
import os
import time

from clv.config import DEFAULT_GX_PANDAS_MAX_ROWS
from clv.data import catalog, warehouse
from clv.data.spark import get_spark
from clv.quality import validate_dataframe

#: The tables of a ``make run`` and the DAG tasks that validate them.
TABLES = (
    catalog.RAW_ORDERS, catalog.FEATURES, catalog.SCORES, catalog.SEGMENTS,
    catalog.SEGMENT_SUMMARY, catalog.ALLOCATION, catalog.BUDGET_SUMMARY, catalog.FRONTIER,
    catalog.ACTION_EFFECTS, catalog.CAMPAIGN_PLAN, catalog.CONTACT_POLICY,
    catalog.CHURN_ALERTS, catalog.MODEL_METRICS, catalog.REASONS,
)


def _content(report) -> tuple:
    return (report.success, report.n_expectations, [
        (f.expectation_type, f.column, f.unexpected_count, repr(f.observed_value), f.rule,
         sorted(repr(list(r.items())) for r in f.sample_rows))
        for f in report.failures
    ])


def _timed(spark, df, suite, table, ids, max_rows, repeats):
    os.environ["CLV_GX_PANDAS_MAX_ROWS"] = str(max_rows)
    sc = spark.sparkContext
    best, jobs, report = float("inf"), 0, None
    for i in range(repeats):
        group = f"bench-quality-{table}-{max_rows}-{i}"
        sc.setJobGroup(group, group)
        started = time.perf_counter()
        report = validate_dataframe(df, suite, table, ids)
        best = min(best, time.perf_counter() - started)
        jobs = len(sc.statusTracker().getJobIdsForGroup(group))
    return best, jobs, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["CLV_GX_DATA_DOCS"] = "0"
    spark = get_spark("bench-quality")
    print(f"{'table':34s} {'rows':>7s} {'exp':>4s} {'spark s':>8s} {'jobs':>5s} "
          f"{'pandas s':>9s} {'jobs':>5s}  same")
    totals = [0.0, 0.0]
    for table in TABLES:
        partitions = warehouse.list_partitions(table)
        if not partitions:
            continue
        df = warehouse.read_table(spark, table, partitions[-1])
        df = df.drop(catalog.PARTITION_COLUMN).cache()
        n_rows = df.count()
        suite = "raw_orders" if table == catalog.RAW_ORDERS else table.split(".")[-1]
        ids = list(warehouse.get_table(table).key)
        # One untimed run each way: GX's first use of an expectation type imports code.
        for max_rows in (0, DEFAULT_GX_PANDAS_MAX_ROWS):
            _timed(spark, df, suite, table, ids, max_rows, 1)
        s_secs, s_jobs, s_rep = _timed(spark, df, suite, table, ids, 0, args.repeats)
        p_secs, p_jobs, p_rep = _timed(spark, df, suite, table, ids,
                                       DEFAULT_GX_PANDAS_MAX_ROWS, args.repeats)
        df.unpersist()
        totals[0] += s_secs
        totals[1] += p_secs
        same = "yes" if _content(s_rep) == _content(p_rep) else "NO"
        print(f"{table:34s} {n_rows:7d} {s_rep.n_expectations:4d} {s_secs:8.2f} {s_jobs:5d} "
              f"{p_secs:9.2f} {p_jobs:5d}  {same}", flush=True)
    print(f"{'total (best of each)':34s} {'':7s} {'':4s} {totals[0]:8.2f} {'':5s} "
          f"{totals[1]:9.2f}")


if __name__ == "__main__":
    main()
