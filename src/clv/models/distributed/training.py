"""XGBoost fitted on the Spark executors (``xgboost.spark``), into the driver's estimator.

The learning split is read as a Spark DataFrame (never pandas on the driver); early
stopping watches the same seeded customers as on the driver (the caller's split rule
over the customers sorted by id, joined as a boolean ``validation_indicator_col``);
``num_workers`` is the executors' task slots. The fitted booster is loaded into the
caller's ``xgb.XGBRegressor`` / ``XGBClassifier`` (same params), so registration,
balancing and scoring see the same object type as a driver fit, and one MLflow
xgboost version comes out either way.

A lost executor: Spark aborts a barrier stage whose task failed ("Could not recover
from a failed barrier ResultStage"), and one that has not started yet cannot run on
fewer slots than ``num_workers`` (Spark would wait for slots forever: a watchdog
cancels the fit's job group when the slots drop). Either way the fit is retried on the
executors still alive (logged), up to :data:`MAX_FIT_ATTEMPTS` times. Both were seen
in ``tests/test_cluster_models.py``: a worker killed in the barrier stage, and one
killed in the shuffle that feeds it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.config import Settings
from clv.data import warehouse
from clv.data.catalog import EXAMPLES
from clv.features import FEATURE_COLUMNS, SOURCE_INPUTS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

#: Spark job group of a fit (tests and operators find the barrier job by it).
FIT_JOB_GROUP = "clv-xgboost-fit"
MAX_FIT_ATTEMPTS = 3
#: How long a new session waits for its executors to register, and for how long their
#: slot count must hold still to count as "all there".
EXECUTOR_WAIT_S, EXECUTOR_SETTLE_S = 60.0, 3.0
VALIDATION_COLUMN = "is_validation"
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class SparkFit:
    """A fit done on the executors: where (tag ``trained_on``) and the learning totals
    that :func:`clv.models.training.fit.balance_tweedie` needs."""

    trained_on: str
    num_workers: int
    attempts: int
    label_total: float
    prediction_total: float


def fit_xgboost(model: Any, label: str, as_of_date: dt.date, settings: Settings | None,
                stopping_split: Callable[[int], tuple[np.ndarray, np.ndarray]],
                clip_negative: bool = False) -> SparkFit:
    """Fit ``model``'s params on the executors and load the booster into ``model``.

    Args:
        model: An unfitted ``xgb.XGBRegressor`` / ``XGBClassifier`` (its params are used).
        label: The label column of the training examples (``spend_next``, ``churned``).
        stopping_split: ``n -> (fit_rows, stop_rows)`` over the customers sorted by id.
        clip_negative: Clip the label at 0 (Tweedie needs a non-negative target).
    """
    from clv.data.spark import get_spark

    spark = get_spark("clv-train", settings)
    learn = _learning_frame(spark, as_of_date, label, settings, clip_negative)
    features = [c for c in learn.columns if c not in ("customer_id", LABEL_COLUMN)]
    stopping = _stopping_rows(learn, stopping_split)
    with warehouse.spark_frame(spark, stopping, settings) as indicator:  # alive while fitting
        learn = learn.join(indicator, "customer_id").cache()
        booster, workers, attempts = _fit_surviving_lost_executors(spark, model, learn,
                                                                   features)
        booster.feature_names = features  # as a fit on the driver's frame names them
        model.load_model(bytearray(booster.save_raw("json")))
        label_total, prediction_total = _learning_totals(learn, model, features)
        learn.unpersist()
    trained_on = f"spark:{spark.sparkContext.master} x{workers}"
    log.info("%s fitted on %s (%d attempt(s)), best iteration %s", type(model).__name__,
             trained_on, attempts, getattr(model, "best_iteration", None))
    return SparkFit(trained_on, workers, attempts, label_total, prediction_total)


def _learning_frame(spark: SparkSession, as_of_date: dt.date, label: str,
                    settings: Settings | None, clip_negative: bool) -> DataFrame:
    """The train split: customer_id, the model inputs as float (the driver fits float32)
    and the label."""
    from pyspark.sql import functions as F

    frame = warehouse.read_table(spark, EXAMPLES, as_of_date, settings) \
        .where(F.col("split") == "train")
    inputs = FEATURE_COLUMNS + [c for c in SOURCE_INPUTS if c in frame.columns]
    target = F.col(label).cast("double")
    if clip_negative:  # returns make a window's spend negative at times
        target = F.greatest(target, F.lit(0.0))
    return frame.select("customer_id", *[F.col(c).cast("float").alias(c) for c in inputs],
                        target.alias(LABEL_COLUMN))


def _stopping_rows(learn: DataFrame, stopping_split: Callable) -> pd.DataFrame:
    """customer_id -> is_validation: the rule applied to the ids sorted as the driver's
    split is (by code point, as Python sorts): only one column comes to the driver."""
    import pandas as pd

    ids = sorted(learn.select("customer_id").toPandas()["customer_id"].tolist())
    if not ids:
        raise ValueError(f"{EXAMPLES}: no train rows to fit on")
    _, stop_rows = stopping_split(len(ids))
    return pd.DataFrame({"customer_id": ids, VALIDATION_COLUMN: stop_rows.astype(bool)})


def executor_slots(spark: SparkSession) -> int:
    """Tasks the live executors can run at once (xgboost.spark's own count)."""
    from xgboost.spark.utils import _get_max_num_concurrent_tasks

    return int(_get_max_num_concurrent_tasks(spark.sparkContext))


def _settled_slots(spark: SparkSession) -> int:
    """Executor slots once they stop changing (a new session's executors register over
    a few seconds); at least 1."""
    deadline, last, since = time.monotonic() + EXECUTOR_WAIT_S, -1, time.monotonic()
    while time.monotonic() < deadline:
        now = executor_slots(spark)
        if now != last:
            last, since = now, time.monotonic()
        elif now > 0 and time.monotonic() - since >= EXECUTOR_SETTLE_S:
            return now
        time.sleep(0.5)
    if last < 1:
        raise RuntimeError(f"no executor registered with {spark.sparkContext.master} in "
                           f"{EXECUTOR_WAIT_S:.0f} s")
    return last


def _fit_surviving_lost_executors(spark: SparkSession, model: Any, learn: DataFrame,
                                  features: list[str]) -> tuple[Any, int, int]:
    """(booster, num_workers, attempts): each attempt on the slots alive at its start."""
    for attempt in range(1, MAX_FIT_ATTEMPTS + 1):
        workers = _settled_slots(spark)
        try:
            return _fit_once(spark, model, learn, features, workers), workers, attempt
        except Exception as exc:  # noqa: BLE001 (a lost executor surfaces as any Py4J error)
            left = executor_slots(spark)
            if attempt == MAX_FIT_ATTEMPTS or left >= workers:  # not a lost executor
                raise
            log.warning("xgboost fit on %d workers failed (attempt %d of %d, %d slot(s) "
                        "left: %s); retrying on the executors still alive", workers, attempt,
                        MAX_FIT_ATTEMPTS, left, str(exc).splitlines()[0][:300])
    raise AssertionError("unreachable")  # pragma: no cover


def _fit_once(spark: SparkSession, model: Any, learn: DataFrame, features: list[str],
              workers: int) -> Any:
    """One barrier fit on ``workers`` slots, cancelled if the slots drop under it."""
    estimator = _spark_estimator(model, features, workers)
    sc = spark.sparkContext
    group = FIT_JOB_GROUP  # one fit at a time per driver (an Airflow task is one process)
    done, lost = threading.Event(), []

    def watch() -> None:
        while not done.wait(1.0):
            slots = executor_slots(spark)
            if slots < workers:
                if not lost:
                    log.warning("executors lost during the xgboost fit: %d slot(s) left of "
                                "%d; cancelling the barrier stage", slots, workers)
                lost.append(slots)
                # At every poll until the fit returns: a cancel that lands between two of
                # its jobs finds none ("Cannot find active jobs"), and the next barrier
                # stage would wait for slots that never come back (a clean-clone make test
                # hung there for 420 s).
                sc.cancelJobGroup(group)

    log.info("xgboost fit starting on %d workers (job group %s)", workers, group)
    sc.setJobGroup(group, f"{FIT_JOB_GROUP}: xgboost on {workers} workers",
                   interruptOnCancel=True)
    watchdog = threading.Thread(target=watch, daemon=True, name=group)
    watchdog.start()
    try:
        fitted = estimator.fit(learn)
    finally:
        done.set()
        watchdog.join()
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
    if lost:  # cancelled, yet collect() returned: do not trust a partial booster
        raise RuntimeError(f"executors lost during the fit ({lost[0]} slots left)")
    return fitted.get_booster()


def _spark_estimator(model: Any, features: list[str], workers: int) -> Any:
    """``SparkXGBRegressor`` / ``SparkXGBClassifier`` with ``model``'s params."""
    from xgboost import XGBClassifier
    from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

    params = {k: v for k, v in model.get_params().items() if v is not None
              and k not in ("n_jobs", "nthread", "enable_categorical", "missing")}
    cls = SparkXGBRegressor
    if isinstance(model, XGBClassifier):  # its objective is the estimator's own
        cls, params = SparkXGBClassifier, {k: v for k, v in params.items() if k != "objective"}
    return cls(features_col=features, label_col=LABEL_COLUMN,
               validation_indicator_col=VALIDATION_COLUMN, num_workers=workers,
               verbose=False, **params)


def _learning_totals(learn: DataFrame, model: Any, features: list[str]) -> tuple[float, float]:
    """(sum of the label, sum of the model's predictions) over the learning rows, on the
    executors (the model travels pickled in the task)."""
    out = learn.select(*features, LABEL_COLUMN).mapInPandas(
        _partition_totals(model, features), schema="label double, prediction double")
    row = out.groupBy().sum().collect()[0]
    return float(row[0] or 0.0), float(row[1] or 0.0)


def _partition_totals(model: Any, features: list[str]) -> Callable:
    def totals(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        for batch in batches:
            x = batch[features].astype("float32")
            yield pd.DataFrame({"label": [float(batch[LABEL_COLUMN].sum())],
                                "prediction": [float(np.sum(model.predict(x),
                                                            dtype="float64"))]})
    return totals
