"""Where a fit or a scoring runs: on the driver (pandas) or on the Spark executors.

Decided from what a user sets, without starting a JVM on the single-node path:

* ``CLV_DISTRIBUTED=off``: the driver, always; ``on``: the executors, always;
* ``auto`` (default, :data:`clv.config.DEFAULT_DISTRIBUTED`): the executors when the
  Spark master is a cluster (``spark://``, ``yarn``, ``k8s://``; over Spark Connect the
  server's master) or the table holds ``CLV_DISTRIBUTED_MIN_ROWS`` rows
  (:data:`clv.config.DISTRIBUTED_MIN_ROWS`), else the driver. ``make run`` on
  ``local[*]`` therefore keeps the single-node path and its outputs.

XGBoost's Spark estimators need the classic ``SparkContext`` (a barrier RDD stage):
over Spark Connect (``CLV_SPARK_REMOTE``) a fit stays on the driver, with the reason
logged. Scoring is a ``mapInPandas`` and runs on the executors over Connect too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from clv.config import DEFAULT_DISTRIBUTED, DISTRIBUTED_MIN_ROWS, DISTRIBUTED_MODES, Settings
from clv.data.spark import is_local_master

log = logging.getLogger(__name__)

#: What a version trained on the driver is tagged with (tag ``trained_on``).
LOCAL = "local"
CLUSTER_PREFIXES = ("spark://", "yarn", "k8s://", "mesos://")


@dataclass(frozen=True)
class Placement:
    """Where one piece of work runs, and why (logged, and tagged on versions)."""

    distributed: bool
    master: str
    reason: str


def distributed_mode() -> str:
    """``CLV_DISTRIBUTED`` (``auto`` / ``on`` / ``off``).

    Raises:
        ValueError: another value.
    """
    mode = (os.environ.get("CLV_DISTRIBUTED") or DEFAULT_DISTRIBUTED).strip().lower()
    if mode not in DISTRIBUTED_MODES:
        raise ValueError(f"CLV_DISTRIBUTED={mode!r}: expected one of "
                         f"{', '.join(DISTRIBUTED_MODES)}")
    return mode


def min_rows() -> int:
    """``CLV_DISTRIBUTED_MIN_ROWS``, else :data:`clv.config.DISTRIBUTED_MIN_ROWS`."""
    return int(os.environ.get("CLV_DISTRIBUTED_MIN_ROWS") or DISTRIBUTED_MIN_ROWS)


def is_cluster_master(master: str) -> bool:
    """True for a master whose executors are other processes (or machines)."""
    return not is_local_master(master) and master.startswith(CLUSTER_PREFIXES)


def spark_master(settings: Settings) -> str:
    """The master the work would run on: ``CLV_SPARK_MASTER``, or over Spark Connect the
    server's own ``spark.master`` (asked over the connection: about a second)."""
    remote = os.environ.get("CLV_SPARK_REMOTE")
    if not remote:
        return settings.spark_master
    from clv.data.spark import get_spark

    try:
        return str(get_spark("clv", settings).conf.get("spark.master"))
    except Exception as exc:  # noqa: BLE001 (an older server may not expose it)
        log.warning("Spark Connect %s: could not read spark.master (%s); taken as local",
                    remote, exc)
        return "local"


def choose(work: str, settings: Settings, rows: Callable[[], int | None],
           needs_spark_context: bool = False) -> Placement:
    """Where ``work`` (a name for the log) runs.

    Args:
        rows: Rows the work covers; called only when ``auto`` must compare them with
            the threshold (a local master), so the cluster path costs no count.
        needs_spark_context: The work needs the classic SparkContext (XGBoost's Spark
            estimators): over Spark Connect it stays on the driver.
    """
    mode = distributed_mode()
    if mode == "off":
        return _logged(work, Placement(False, LOCAL, "CLV_DISTRIBUTED=off"))
    master = spark_master(settings)
    if mode == "on":
        where = Placement(True, master, "CLV_DISTRIBUTED=on")
    elif is_cluster_master(master):
        where = Placement(True, master, f"the Spark master {master} is a cluster")
    else:
        n, threshold = rows() or 0, min_rows()
        where = Placement(n >= threshold, master if n >= threshold else LOCAL,
                          f"{n} rows {'>=' if n >= threshold else '<'} "
                          f"CLV_DISTRIBUTED_MIN_ROWS={threshold} on master {master}")
    if where.distributed and needs_spark_context and os.environ.get("CLV_SPARK_REMOTE"):
        where = Placement(False, LOCAL, f"{where.reason}, but xgboost.spark needs the classic "
                          "SparkContext (barrier stage) and this session is Spark Connect "
                          f"({os.environ['CLV_SPARK_REMOTE']}): fitted on the driver")
    return _logged(work, where)


def _logged(work: str, where: Placement) -> Placement:
    log.info("%s on %s: %s", work, f"the executors of {where.master}" if where.distributed
             else "the driver", where.reason)
    return where
