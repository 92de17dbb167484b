"""``make run``: the whole CDNOW walk-through in one process (or the user's orders).

    clv demo [--as-of-date 1998-07-01] [--horizon-days N] [--budget B] [--clv-weight W]
    clv demo --orders my_orders.csv --map order_id=OrderNo,amount=Total   # own data

Steps: Airflow metadata DB (``airflow db migrate``, the ``spark`` pool), CDNOW into
``raw.orders``, the Hillstrom experiment into ``raw.campaign_responses`` (when the
reference data is there), then one real run of the ``clv_pipeline`` DAG through
Airflow's own ``airflow dags test`` command, then the run summary.

Why one process: each of these used to be its own process, and each paid the
same fixed costs again (Spark driver JVM ~8.5 s, importing Great Expectations
~5 s, GX's first validation ~9 s, Airflow's CLI ~4 s). ``airflow dags test``
runs every task in the calling process, so the session the loads started is the
one the tasks reuse (:func:`clv.data.spark.get_spark`). The DAG's own log (Airflow,
Spark) goes to ``--log``; the console gets one line per step with its time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from clv.config import SPARK_POOL, SPARK_POOL_ARGS

DAG_ID = "clv_pipeline"
#: CDNOW ends on 1998-06-30: the as-of date of its walk-through.
CDNOW_AS_OF_DATE = "1998-07-01"


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so the JVM's too)
    to ``path`` while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _airflow(*argv: str) -> None:
    """Run one ``airflow`` CLI command in this process (what ``airflow ...`` does)."""
    from airflow.cli import cli_parser
    from airflow.configuration import write_default_airflow_configuration_if_needed

    write_default_airflow_configuration_if_needed()
    args = cli_parser.get_parser().parse_args(list(argv))
    args.func(args)


def _warm_up() -> threading.Thread:
    """Build Airflow's in-process task API, open the MLflow store and import TensorFlow
    in a thread, while the orders load.

    ``airflow dags test`` reaches its metadata through an execution API server held in
    this process (``in_process_api_server``, built once). Its first request builds
    every versioned route (Cadwyn): ~5 s of Python that opened the DAG run, while the
    load before it mostly waits for Spark's JVM. The first training task opened the
    MLflow store the same way (importing MLflow and, in a new home, creating its tables:
    ~4 s), and the ZILN task imported TensorFlow (~3-5 s). A failure here only means the
    DAG run does it itself, as it did before: it is logged, never raised.
    """
    def task_api() -> None:
        import httpx
        from airflow.sdk.execution_time.supervisor import in_process_api_server

        client = httpx.Client(transport=in_process_api_server().transport,
                              base_url="http://in-process.invalid./")
        client.get("/health").raise_for_status()

    def mlflow_store() -> None:
        from clv.models.registry import configure_mlflow

        configure_mlflow()

    def import_tensorflow() -> None:  # imported, not started: the ZILN task still picks the device
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

    def build() -> None:
        for what, step in (("building Airflow's task API", task_api),
                           ("opening the MLflow store", mlflow_store),
                           ("importing TensorFlow", import_tensorflow)):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 -- an optimisation, never a failure
                print(f"warm-up: {what} failed ({exc!r}); the DAG run does it itself",
                      file=sys.stderr, flush=True)

    thread = threading.Thread(target=build, name="warm-up", daemon=True)
    thread.start()
    return thread


class _Steps:
    def __init__(self, total: int) -> None:
        self.total, self.n, self.start = total, 0, time.perf_counter()

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.n += 1
        print(f"[{self.n}/{self.total}] {what} ...", flush=True)
        t0 = time.perf_counter()
        yield
        print(f"      done in {time.perf_counter() - t0:.1f} s", flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


@dataclass(frozen=True)
class OrdersFile:
    """A user's orders file for ``make run ORDERS=...`` (what ``clv import-orders`` takes)."""

    path: Path
    mapping: dict[str, str] = field(default_factory=dict)
    fmt: str | None = None
    timestamp_format: str | None = None


@dataclass(frozen=True)
class OlistExport:
    """An Olist-shaped export for ``make run OLIST=dir``: orders, items, products, reviews,
    customers (``clv import-olist`` takes the same folder)."""

    path: Path


def _refuse_mixing(orders: OrdersFile | OlistExport) -> None:
    """Own orders go into an empty raw.orders: appended to CDNOW they would be one shop."""
    from clv.data import warehouse
    from clv.pipeline import RAW_ORDERS

    batches = warehouse.list_partitions(RAW_ORDERS)
    if batches:
        raise RuntimeError(
            f"{RAW_ORDERS} already holds {len(batches)} load(s) (batches {batches[0]} .. "
            f"{batches[-1]}, e.g. CDNOW from an earlier make run): {orders.path} would be "
            "mixed with them into one shop. `make clean` empties the warehouse and the "
            "state (MLflow, Airflow) first; `clv import-orders` adds a file to what is there")


#: Largest input (bytes: the orders file, or every file of an export) for which the
#: walk-through starts its Spark driver for a short run over small data
#: (:data:`clv.data.spark.QUICK_JVM_OPTIONS`); CDNOW's file is 2.5 MB.
QUICK_JVM_MAX_BYTES = 64 * 2**20


def _small_input(orders: OrdersFile | OlistExport | None) -> bool:
    """True when the run's input is at most :data:`QUICK_JVM_MAX_BYTES`."""
    from clv import ingest

    path = ingest.cdnow_packaged_path() if orders is None else Path(orders.path)
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
    return sum(f.stat().st_size for f in files) <= QUICK_JVM_MAX_BYTES


def _load_olist(spark, export: OlistExport) -> tuple[dt.date, str]:
    """Load an Olist export into the order lines, orders, reviews and customers tables."""
    from clv.ingest import olist

    loaded = olist.load_olist(spark, export.path)
    lines = ", ".join(f"{t}: {c['accepted']} accepted, {c['rejected']} rejected"
                      for t, c in loaded.items() if isinstance(c, dict) and "accepted" in c)
    return dt.date.fromisoformat(loaded["as_of_date"]), lines


def _load_orders(spark, orders: OrdersFile | None):
    """Read CDNOW or the user's file; returns (frame, what to print)."""
    from clv import ingest

    if orders is None:
        return ingest.read_cdnow(spark, ingest.cdnow_packaged_path()), "CDNOW"
    df = ingest.read_orders_file(spark, orders.path, orders.mapping, orders.fmt,
                                 orders.timestamp_format)
    return df, str(orders.path)


def run(as_of_date: dt.date | None, horizon_days: int, budget: float, clv_weight: float,
        log_path: Path, hillstrom: Path | None, sent_date: str = "1998-03-01",
        orders: OrdersFile | OlistExport | None = None) -> dict:
    """The walk-through; returns the run summary. Raises ``RuntimeError`` if the DAG
    run fails (after printing the end of its log).

    ``orders``: the user's file instead of CDNOW (into an empty raw.orders), or an Olist
    export (its order lines, orders, reviews and customers); with ``as_of_date`` None the
    run's as-of date is the batch's, the day after its newest order.
    """
    import pandas as pd

    from clv import ingest, pipeline
    from clv.config import load_settings, private_dir
    from clv.data import warehouse
    from clv.data.catalog import RAW_ORDERS
    from clv.data.spark import get_spark
    from clv.decisions import uplift
    from clv.ops import report

    if orders is not None:
        _refuse_mixing(orders)
    private_dir(load_settings().state_dir)  # Airflow's home, the log: the owner's only
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    steps = _Steps(4 if hillstrom else 3)
    with steps.step(f"Airflow metadata DB (airflow db migrate, pool {SPARK_POOL!r})"), \
            _output_to(log_path):
        _airflow("db", "migrate")
        _airflow(*SPARK_POOL_ARGS)
    warming = _warm_up()  # side by side with the loads (needs the migrated DB)
    source = "CDNOW" if orders is None else str(orders.path)
    target = ("raw.order_lines, raw.orders, raw.reviews, raw.customers"
              if isinstance(orders, OlistExport) else RAW_ORDERS)
    with steps.step(f"{source} -> {target} (validated, quarantine, atomic publish)"):
        with _output_to(log_path):
            spark = get_spark("clv", quick_jvm=_small_input(orders))
            if isinstance(orders, OlistExport):
                batch, result = _load_olist(spark, orders)
            else:
                df, source = _load_orders(spark, orders)
                batch = ingest.default_batch_date(df)
                result = ingest.load_orders(spark, df, batch,
                                            f"import-{uuid.uuid4().hex[:8]}", source=source)
        print(f"      {result}", flush=True)
    if hillstrom:
        with steps.step(f"Hillstrom experiment -> raw.campaign_responses (sent {sent_date})"):
            with _output_to(log_path):
                frame = uplift.load_hillstrom(hillstrom)
                frame["customer_id"] = "hillstrom-" + frame["customer_id"]
                frame["sent_date"] = pd.Timestamp(sent_date)
                ingest.load_campaign_responses(spark, frame, f"import-{uuid.uuid4().hex[:8]}")
    as_of_date = as_of_date or batch
    conf = {"as_of_date": as_of_date.isoformat(), "horizon_days": horizon_days,
            "budget": budget, "clv_weight": clv_weight}
    with _output_to(log_path):  # what the libraries print while it ends goes to the log
        warming.join()  # before the DAG step: its time stays the DAG's own
    with steps.step(f"DAG {DAG_ID} for {as_of_date} (airflow dags test; log {log_path})"):
        try:
            with _output_to(log_path):
                # No logical date: the run's is now, so Airflow charts its real duration
                # (the as-of date as logical date made a run "10,381 days" long, #21).
                _airflow("dags", "test", DAG_ID, "-c", json.dumps(conf))
        except SystemExit as exc:  # `airflow dags test` exits when the run fails
            tail = log_path.read_text(errors="replace").splitlines()[-60:]
            print("\n".join(tail), file=sys.stderr)
            raise RuntimeError(f"DAG run failed ({exc}); full log: {log_path}") from None
    warehouse.refresh_catalog()
    summary = pipeline.run_summary(as_of_date)
    summary["report"] = str(report.report_path(as_of_date))
    print(f"finished in {steps.elapsed:.0f} s", flush=True)
    return summary
