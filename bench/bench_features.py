"""The Spark feature job versus DuckDB SQL and pandas on the same synthetic Parquet orders.

    make bench                                   # 1M and 10M orders (BENCH_LARGE=1 adds 100M)
    .venv/bin/python bench/bench_features.py [--sizes 1000000,10000000] [--repeats 2]
                                             [--workloads features,agg7] [--no-scoring]

Data: :mod:`clv.data.synthetic` orders (seed 7), generated once by Spark into
``.state/bench/data/orders-<n>/`` and reused. Features at the data's as-of date.

Workloads (each engine computes the same result; the bench checks they agree):

* ``features``: what ``features.customer_features`` produces (34 columns per
  customer: recency, tenure, orders, purchase days, spend, max, average, mean/std
  of the gaps between purchase days, 12 x 30-day spend and order counts). Spark
  runs the product's own function; DuckDB and pandas re-implement it.
* ``agg7``: 7 plain aggregates per customer (orders, purchase days, spend, max,
  average, first and last order time): the issue's reference workload.

Each (engine, workload, size) runs in its own Python process, so "cold" is the
time from that process's start to its first result (imports, JVM start and
SparkSession included), and "warm" the best of ``--repeats`` further runs in the
same process (Spark session, DuckDB connection and OS file cache warm). Spark's
result is computed with the ``noop`` sink (everything but the write), DuckDB's is
materialised into a temporary table, pandas' is a DataFrame in memory. Peak
memory is the largest resident set of the whole process tree sampled every 50 ms
(Python + the Spark driver JVM + Python workers; Spark local mode runs the
executors inside the driver JVM, so this is the driver's peak).

Agreement: each run also returns its row count and a few sums (orders, purchase
days, spend, recency, mean gap, spend in period 1, orders in period 12); the
bench fails if the engines differ (relative 1e-9 on sums of doubles).

Scoring throughput: XGBoost with the product's hyperparameters
(``clv.models.training.XGB_PARAMS``, all 600 trees, no early stop), trained on 50,000
customers of the features of the largest size up to 10M orders, then predicting
every customer of it
(regressor + classifier, as ``clv.models.scoring`` does).

Output: a table on stdout and ``bench/results/bench_features-<UTC time>.json`` (:mod:`recording`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import recording

START = time.perf_counter()  # cold timings start here (plus the interpreter's own start)

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".state" / "bench"
SEED = 7
ENGINES = ("spark", "duckdb", "pandas")
CHECKS = ("rows", "n_orders", "n_purchase_days", "total_spend", "recency_days",
          "mean_ipt_days", "spend_p01", "orders_p12")
CHECKS_AGG7 = ("rows", "n_orders", "n_purchase_days", "total_spend", "max_order_value",
               "first_us", "last_us")


# --------------------------------------------------------------------------- data

def ensure_data(n_orders: int) -> tuple[Path, dt.date, int]:
    """Synthetic orders for ``n_orders`` (generated once): (folder, as_of_date, rows)."""
    folder = STATE / "data" / f"orders-{n_orders}-seed{SEED}"
    meta = folder / "meta.json"
    if not meta.exists():
        print(f"generating ~{n_orders:,} synthetic orders into {folder} ...", flush=True)
        out = subprocess.run(
            [sys.executable, str(REPO / "jobs" / "generate_synthetic.py"), "--orders",
             str(n_orders), "--seed", str(SEED), "--out", str(folder)],
            check=True, capture_output=True, text=True)
        report = json.loads(out.stdout[out.stdout.index("{"):])
        meta.write_text(json.dumps(report))
    report = json.loads(meta.read_text())
    return folder / "orders", dt.date.fromisoformat(report["as_of_date"]), report["orders"]


# --------------------------------------------------------------------------- engines

def _period_sql(cut_day: int) -> str:
    cols = []
    period = f"(({cut_day} - d - 1) // 30 + 1)"
    for k in range(1, 13):
        cols.append(f"sum(CASE WHEN {period} = {k} THEN amount ELSE 0 END) AS spend_p{k:02d}")
    for k in range(1, 13):
        cols.append(f"CAST(sum(CASE WHEN {period} = {k} THEN 1 ELSE 0 END) AS INTEGER) "
                    f"AS orders_p{k:02d}")
    return ",\n".join(cols)


def duckdb_sql(path: Path, cutoff: dt.date, workload: str) -> str:
    """Days as integers since the epoch (``epoch_us // 86.4e9``): UTC by definition, and
    no per-row time-zone conversion (casting a TIMESTAMPTZ to DATE goes through ICU and
    was 3-10x slower on this data)."""
    cut_day = (cutoff - dt.date(1970, 1, 1)).days
    cut_us = cut_day * 86_400_000_000
    src = (f"(SELECT customer_id, amount, epoch_us(order_ts) AS us FROM "
           f"read_parquet('{path}/*.parquet'))")
    if workload == "agg7":
        return f"""
        SELECT customer_id, count(*) AS n_orders, count(DISTINCT us // 86400000000)
               AS n_purchase_days, sum(amount) AS total_spend, max(amount) AS max_order_value,
               avg(amount) AS avg_order_value, min(us) AS first_us, max(us) AS last_us
        FROM {src} WHERE us < {cut_us} GROUP BY customer_id"""
    return f"""
    WITH past AS (
        SELECT customer_id, amount, us // 86400000000 AS d FROM {src} WHERE us < {cut_us}),
    base AS (
        SELECT customer_id, CAST({cut_day} - max(d) AS INTEGER) AS recency_days,
               CAST({cut_day} - min(d) AS INTEGER) AS tenure_days,
               CAST(count(*) AS INTEGER) AS n_orders,
               CAST(count(DISTINCT d) AS INTEGER) AS n_purchase_days,
               sum(amount) AS total_spend, max(amount) AS max_order_value,
               {_period_sql(cut_day)}
        FROM past GROUP BY customer_id),
    gaps AS (
        SELECT customer_id, avg(gap) AS mean_ipt_days, stddev_samp(gap) AS std_ipt_days
        FROM (SELECT customer_id, d - lag(d) OVER (PARTITION BY customer_id ORDER BY d) AS gap
              FROM (SELECT DISTINCT customer_id, d FROM past))
        GROUP BY customer_id)
    SELECT b.*, b.n_purchase_days - 1 AS frequency, b.total_spend / b.n_orders
           AS avg_order_value, g.mean_ipt_days, g.std_ipt_days
    FROM base b LEFT JOIN gaps g USING (customer_id)"""


def run_duckdb(path: Path, cutoff: dt.date, workload: str):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    sql = duckdb_sql(path, cutoff, workload)

    def once():
        con.execute(f"CREATE OR REPLACE TEMP TABLE result AS {sql}")
        return con

    def checks(_):
        cols = CHECKS if workload == "features" else CHECKS_AGG7
        exprs = ", ".join("count(*)" if c == "rows" else f"sum({c})::DOUBLE"
                          if c != "mean_ipt_days" else "avg(mean_ipt_days)" for c in cols)
        return dict(zip(cols, (float(v) for v in con.execute(
            f"SELECT {exprs} FROM result").fetchone()), strict=True))
    return once, checks


def run_pandas(path: Path, cutoff: dt.date, workload: str):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    cut_us = (cutoff - dt.date(1970, 1, 1)).days * 86_400_000_000
    cut_day = cut_us // 86_400_000_000

    def once():
        table = pq.read_table(str(path), columns=["customer_id", "order_ts", "amount"])
        ts = table["order_ts"].cast(pa.int64()).to_numpy()  # microseconds, UTC
        keep = ts < cut_us
        customers = table["customer_id"].to_pandas(strings_to_categorical=True)
        past = pd.DataFrame({"customer_id": customers[keep].to_numpy(),
                             "us": ts[keep], "amount": table["amount"].to_numpy()[keep]})
        del table, customers
        past["d"] = past["us"] // 86_400_000_000
        g = past.groupby("customer_id", observed=True, sort=False)
        if workload == "agg7":
            out = g.agg(n_orders=("amount", "size"), n_purchase_days=("d", "nunique"),
                        total_spend=("amount", "sum"), max_order_value=("amount", "max"),
                        avg_order_value=("amount", "mean"), first_us=("us", "min"),
                        last_us=("us", "max"))
            return out
        base = g.agg(last=("d", "max"), first=("d", "min"), n_orders=("amount", "size"),
                     total_spend=("amount", "sum"), max_order_value=("amount", "max"))
        days = past[["customer_id", "d"]].drop_duplicates()
        days = days.sort_values(["customer_id", "d"], kind="stable")
        new_customer = days["customer_id"].ne(days["customer_id"].shift())
        gap = days["d"].diff().mask(new_customer)
        gaps = gap.groupby(days["customer_id"], observed=True, sort=False).agg(
            ["size", "mean", "std"])
        period = (cut_day - past["d"] - 1) // 30 + 1
        recent = past[period <= 12].assign(period=period[period <= 12])
        hist = recent.groupby(["customer_id", "period"], observed=True, sort=False)["amount"].agg(
            ["sum", "size"]).unstack("period", fill_value=0)
        out = pd.DataFrame(index=base.index)
        out["recency_days"] = cut_day - base["last"]
        out["tenure_days"] = cut_day - base["first"]
        out["n_orders"] = base["n_orders"]
        out["n_purchase_days"] = gaps["size"].reindex(base.index)
        out["frequency"] = out["n_purchase_days"] - 1
        out["total_spend"] = base["total_spend"]
        out["avg_order_value"] = base["total_spend"] / base["n_orders"]
        out["max_order_value"] = base["max_order_value"]
        out["mean_ipt_days"] = gaps["mean"].reindex(base.index)
        out["std_ipt_days"] = gaps["std"].reindex(base.index)
        hist = hist.reindex(base.index, fill_value=0)
        for k in range(1, 13):
            spend = hist["sum"][k] if k in hist["sum"].columns else 0.0
            out[f"spend_p{k:02d}"] = spend
        for k in range(1, 13):
            n = hist["size"][k] if k in hist["size"].columns else 0
            out[f"orders_p{k:02d}"] = n
        return out

    def checks(out):
        cols = CHECKS if workload == "features" else CHECKS_AGG7
        res = {}
        for c in cols:
            if c == "rows":
                res[c] = float(len(out))
            elif c == "mean_ipt_days":
                res[c] = float(out[c].mean())
            else:
                res[c] = float(out[c].astype("float64").sum())
        return res
    return once, checks


def run_spark(path: Path, cutoff: dt.date, workload: str):
    from pyspark.sql import functions as F

    from clv import features
    from clv.data.spark import get_spark

    spark = get_spark("clv-bench")

    def frame():
        orders = spark.read.parquet(str(path))
        if workload == "features":
            return features.customer_features(orders, cutoff)
        past = features.orders_before(orders, cutoff)
        return past.groupBy("customer_id").agg(
            F.count("*").alias("n_orders"),
            F.countDistinct(F.to_date("order_ts")).alias("n_purchase_days"),
            F.sum("amount").alias("total_spend"), F.max("amount").alias("max_order_value"),
            F.avg("amount").alias("avg_order_value"),
            F.unix_micros(F.min("order_ts")).alias("first_us"),
            F.unix_micros(F.max("order_ts")).alias("last_us"))

    def once():
        out = frame()
        out.write.format("noop").mode("overwrite").save()
        return out

    def checks(out):
        cols = CHECKS if workload == "features" else CHECKS_AGG7
        exprs = [F.count("*") if c == "rows" else F.avg(c) if c == "mean_ipt_days"
                 else F.sum(F.col(c).cast("double")) for c in cols]
        return dict(zip(cols, (float(v) for v in out.agg(*exprs).first()), strict=True))
    return once, checks


def worker(engine: str, path: Path, cutoff: dt.date, workload: str, repeats: int) -> dict:
    """One engine in this process: cold first run, then warm repeats."""
    runner = {"spark": run_spark, "duckdb": run_duckdb, "pandas": run_pandas}[engine]
    once, checks = runner(path, cutoff, workload)
    t0 = time.perf_counter()
    result = once()
    first = time.perf_counter() - t0
    cold = time.perf_counter() - START
    warm = []
    for _ in range(repeats):
        del result
        t0 = time.perf_counter()
        result = once()
        warm.append(time.perf_counter() - t0)
    return {"cold_s": cold, "first_run_s": first, "warm_s": min(warm) if warm else first,
            "warm_runs_s": warm, "checks": checks(result)}


# --------------------------------------------------------------------------- orchestration

def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def measure(engine: str, path: Path, cutoff: dt.date, workload: str, repeats: int) -> dict:
    """Run one engine in a child process, sampling its process tree's memory."""
    import psutil

    cmd = [sys.executable, __file__, "--worker", engine, "--data", str(path),
           "--cutoff", cutoff.isoformat(), "--workloads", workload, "--repeats", str(repeats)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc))
            time.sleep(0.05)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = child.communicate()
    done.set()
    thread.join()
    if child.returncode != 0:
        raise RuntimeError(f"{engine}/{workload} failed (rc {child.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_gib"] = peak[0] / 2**30
    return result


def agree(rows: list[dict]) -> None:
    """Every engine's checks equal the others' (counts exactly, doubles to 1e-9)."""
    by_key: dict[tuple, list[dict]] = {}
    for row in rows:
        by_key.setdefault((row["orders"], row["workload"]), []).append(row)
    for key, group in by_key.items():
        ref = group[0]
        for other in group[1:]:
            for name, value in ref["checks"].items():
                got = other["checks"][name]
                if abs(got - value) > 1e-9 * max(1.0, abs(value)):
                    raise SystemExit(f"engines disagree at {key} on {name}: "
                                     f"{ref['engine']}={value!r} {other['engine']}={got!r}")


def scoring_throughput(path: Path, cutoff: dt.date) -> dict:
    """XGBoost (product hyperparameters) fit on 50k customers, predict on all of them."""
    import numpy as np
    import xgboost as xgb

    from clv import features
    from clv.data.spark import get_spark
    from clv.models.training import XGB_PARAMS, feature_matrix

    spark = get_spark("clv-bench-scoring")
    folder = STATE / "scoring-features"
    features.customer_features(spark.read.parquet(str(path)), cutoff).write.mode(
        "overwrite").parquet(str(folder))
    import pyarrow.parquet as pq

    feats = pq.read_table(str(folder)).to_pandas()
    x = feature_matrix(feats)
    rng = np.random.default_rng(0)
    sample = rng.choice(len(x), size=min(50_000, len(x)), replace=False)
    params = {k: v for k, v in XGB_PARAMS.items() if k != "early_stopping_rounds"}
    # labels: spend in the latest period and whether there was none (a stand-in target)
    y_spend = feats["spend_p01"].to_numpy()[sample]
    y_churn = (feats["orders_p01"].to_numpy()[sample] == 0).astype(int)
    x_fit = x.iloc[sample].drop(columns=["spend_p01", "orders_p01"], errors="ignore")
    x_all = x.drop(columns=["spend_p01", "orders_p01"], errors="ignore")
    out = {"customers": len(x), "train_rows": len(sample)}
    for name, model, y in (
            ("clv_spend", xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5,
                                           **params), y_spend),
            ("clv_churn", xgb.XGBClassifier(objective="binary:logistic", **params), y_churn)):
        t0 = time.perf_counter()
        model.fit(x_fit, y)
        out[f"train_{name}_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.predict(x_all)
        out[f"predict_{name}_s"] = time.perf_counter() - t0
    seconds = out["predict_clv_spend_s"] + out["predict_clv_churn_s"]
    out["customers_per_minute"] = len(x) / seconds * 60
    return out


def print_table(rows: list[dict]) -> None:
    head = (f"{'orders':>12} {'workload':<9}{'engine':<8}{'cold s':>8}{'warm s':>8}"
            f"{'warm/duckdb':>12}{'warm/pandas':>12}{'scale':>7}{'peak GiB':>9}{'customers':>11}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['orders']:>12,} {r['workload']:<9}{r['engine']:<8}{r['cold_s']:>8.2f}"
              f"{r['warm_s']:>8.2f}{r.get('vs_duckdb', float('nan')):>12.1f}"
              f"{r.get('vs_pandas', float('nan')):>12.2f}{r.get('scale', float('nan')):>7.1f}"
              f"{r['peak_rss_gib']:>9.2f}{int(r['checks']['rows']):>11,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="orders per data set, comma-separated")
    parser.add_argument("--workloads", default="features,agg7")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-scoring", action="store_true")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cutoff", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        os.environ.setdefault("CLV_SPARK_LOG_LEVEL", "ERROR")
        print(json.dumps(worker(args.worker, args.data, args.cutoff, args.workloads,
                                args.repeats)))
        return 0

    sizes = [int(s) for s in (args.sizes or "1000000,10000000").split(",")]
    if not args.sizes and os.environ.get("BENCH_LARGE") == "1":
        sizes.append(100_000_000)
    engines = args.engines.split(",")
    load_start = os.getloadavg()
    rows = []
    for n in sizes:
        path, cutoff, n_rows = ensure_data(n)
        for workload in args.workloads.split(","):
            for engine in engines:
                if engine == "pandas" and n_rows > 30_000_000:
                    print(f"skip pandas at {n_rows:,} orders (would not fit in memory)")
                    continue
                print(f"{engine:<7} {workload:<9} {n_rows:>12,} orders ...", flush=True)
                res = measure(engine, path, cutoff, workload, args.repeats)
                rows.append({"orders": n_rows, "workload": workload, "engine": engine, **res})
                print(f"        cold {res['cold_s']:.2f} s, warm {res['warm_s']:.2f} s "
                      f"(runs {[round(x, 2) for x in res['warm_runs_s']]}), "
                      f"peak {res['peak_rss_gib']:.2f} GiB", flush=True)
    agree(rows)
    for r in rows:
        peers = {(p["engine"]): p for p in rows
                 if p["orders"] == r["orders"] and p["workload"] == r["workload"]}
        if "duckdb" in peers:
            r["vs_duckdb"] = r["warm_s"] / peers["duckdb"]["warm_s"]
        if "pandas" in peers:
            r["vs_pandas"] = r["warm_s"] / peers["pandas"]["warm_s"]
        smallest = min((p for p in rows if p["engine"] == r["engine"]
                        and p["workload"] == r["workload"]), key=lambda p: p["orders"])
        r["scale"] = r["warm_s"] / smallest["warm_s"]
    machine = (f"{os.cpu_count()} cores, {_mem_gib():.0f} GiB, {platform.machine()}, "
               f"python {platform.python_version()}, load average at the end "
               f"{os.getloadavg()[1]:.1f} (5 min)")
    print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {machine}")
    print_table(rows)
    print("warm/duckdb, warm/pandas: warm time over that engine's warm time on the same data; "
          "scale: warm time over the same engine's at the smallest size")
    scoring = None
    if not args.no_scoring:
        # at the largest size up to 10M orders (2.6M customers): the scale
        path, cutoff, n_rows = ensure_data(max(n for n in sizes if n <= 10_000_000)
                                           if min(sizes) <= 10_000_000 else min(sizes))
        scoring = scoring_throughput(path, cutoff)
        print(f"scoring: {scoring['customers']:,} customers, "
              f"{scoring['customers_per_minute'] / 1e6:.2f}M customers/minute "
              f"(predict {scoring['predict_clv_spend_s']:.2f} s + "
              f"{scoring['predict_clv_churn_s']:.2f} s); training on {scoring['train_rows']:,} "
              f"rows: clv_spend {scoring['train_clv_spend_s']:.1f} s, "
              f"clv_churn {scoring['train_clv_churn_s']:.1f} s")
    out = recording.write("bench_features", {"rows": rows, "scoring": scoring}, load_start)
    print(f"wrote {out}")
    return 0


def _mem_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


if __name__ == "__main__":
    raise SystemExit(main())
