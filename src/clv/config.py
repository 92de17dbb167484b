"""Run-time settings, read from the environment once, with embedded defaults.

Every path the product writes to is derived here from one root (``CLV_HOME``),
so a checkout is self-contained: the warehouse, the MLflow store, Airflow's
home and Spark's scratch space all live in git-ignored folders inside it.

| variable              | default                                         |
|-----------------------|-------------------------------------------------|
| CLV_HOME              | the checkout (two levels above this package)    |
| CLV_WAREHOUSE_URI     | ``$CLV_HOME/warehouse`` (Parquet + DuckDB)       |
| MLFLOW_TRACKING_URI   | ``sqlite:///$CLV_HOME/.state/mlflow/mlflow.db``  |
| CLV_MLFLOW_ARTIFACTS  | ``$CLV_HOME/.state/mlflow/artifacts``            |
| CLV_SPARK_MASTER      | ``local[2]``                                     |
| CLV_SPARK_DRIVER_MEMORY | ``3g``                                         |
| CLV_JDBC_JAR          | ``/usr/share/java/postgresql.jar`` (Debian's     |
|                       | libpostgresql-jdbc-java; PostgreSQL warehouse)   |
| CLV_UMASK             | ``077``: run-time folders 0700, files 0600       |
| CLV_DISTRIBUTED       | ``auto``: XGBoost fits and scoring run on the    |
|                       | Spark executors when the master is a cluster     |
|                       | (``on`` / ``off`` force it; clv.models.distributed) |
| CLV_DISTRIBUTED_MIN_ROWS | ``10000000``: under ``auto``, also this many  |
|                       | rows go to the executors on a ``local`` master    |
| CLV_GX_PANDAS_MAX_ROWS | ``300000``: frames up to this size are validated|
|                       | on GX's pandas engine (``0``: always Spark)      |
| CLV_MAX_TRAIN_ROWS    | ``500000``: XGBoost and BTYD learn from a seeded |
|                       | sample of this many customers (``0``: all)       |
| CLV_MAX_EVAL_ROWS     | ``500000``: models are judged on a seeded sample |
|                       | of this many holdout customers (``0``: all)      |
| CLV_MAX_EXPLAIN_ROWS  | ``500000``: SHAP reasons for this many customers,|
|                       | highest predicted CLV first (``0``: all)         |
| CLV_MAX_CLUSTER_ROWS  | ``200000``: K-means centroids are fitted on a    |
|                       | hashed sample of this many customers, then every |
|                       | customer is assigned (``0``: fit on all)         |
| CLV_SIDE_TASK_NICE    | ``10``: nice value of a side task's process under |
|                       | the scheduler (clv.ops.priority; ``0``: none),   |
|                       | and of the head-start thread (dags test)         |

``CLV_WAREHOUSE_URI`` is a local folder (the embedded Parquet + DuckDB backend) or
``postgresql://user:password@host:port/database`` (PostgreSQL over Spark JDBC,
:mod:`clv.data.postgres`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Default prediction horizon in days (what ``clv_180d`` and ``p_churn_180d`` mean).
DEFAULT_HORIZON_DAYS = 180
#: Length of one period of the per-period spend history, in days.
PERIOD_DAYS = 30
#: Number of periods of history kept as features (most recent first).
N_PERIODS = 12
#: Registered model names in the MLflow registry.
CLV_MODEL_NAME = "clv_spend"
CHURN_MODEL_NAME = "clv_churn"
EXPERIMENT_NAME = "clv"
#: Marketing actions on offer and their cost per customer (the DAG's default
#: ``action_costs`` param). The catalogue's three plus the two e-mails of the
#: Hillstrom experiment, whose uplift is measured when raw.campaign_responses holds it.
DEFAULT_ACTION_COSTS: dict[str, float] = {
    "winback_email": 0.50,
    "retention_coupon": 5.00,
    "loyalty_perk": 8.00,
    "mens_email": 0.25,
    "womens_email": 0.25,
}
#: Cost of the recommendation e-mail: offered only when the run has product lists
#: (marts.recommendations), so it is not in the default offer above.
RECOMMENDATION_EMAIL_COST = 0.25
#: JDBC driver jar for a PostgreSQL warehouse (Debian: libpostgresql-jdbc-java).
DEFAULT_JDBC_JAR = "/usr/share/java/postgresql.jar"
PG_URI_PREFIXES = ("postgresql://", "postgres://")
#: Weight on lifetime value (vs short-term revenue) in the allocation objective.
DEFAULT_CLV_WEIGHT = 0.5
#: Marketing budget of one plan (the DAG's, the CLI's and ``make run``'s default).
DEFAULT_BUDGET = 5000.0
#: Share of each action's selected customers held out at random in every plan
#: (planned, not contacted), so later runs can measure what the plan returned.
DEFAULT_HOLDOUT_SHARE = 0.10
#: The contact policy's default gap: at most one contact per customer per channel in
#: 14 days (``contact_min_days``; clv.decisions.contact_policy).
DEFAULT_CONTACT_MIN_DAYS = 14
#: URI of the Airflow asset the pipeline's churn_alerts task updates: a CRM DAG
#: scheduled on it runs after each new partition of the churn alerts table (the
#: asset's name is the table's catalogue name).
CHURN_ALERTS_ASSET_URI = "clv://marts/churn_alerts"
#: Airflow pool shared by every task that starts or uses Spark, so a backfill cannot
#: start more JVMs than the machine holds; ``airflow`` + these arguments creates it
#: (``make airflow-init``, ``make run``, ``make up``).
SPARK_POOL = "spark"
SPARK_POOL_ARGS = ("pools", "set", SPARK_POOL, "2", "Spark tasks: one local JVM each")
#: XGBoost learns from a seeded sample of at most this many learning customers
#: (``CLV_MAX_TRAIN_ROWS``; 0 = all). A depth-4 boosted model's holdout metrics stop
#: moving long before this (docs/benchmarks.md, issue #22), while its fit time grows
#: with every row: 2.57M customers at 10M orders took 203 s per model on 2 cores.
MAX_TRAIN_ROWS = 500_000
#: Every model is judged on a seeded sample of at most this many holdout customers
#: (``CLV_MAX_EVAL_ROWS``; 0 = all): the standard error of a Gini or an AUC on 500,000
#: customers is about 0.001, while predicting 2.57M holdout customers once per version
#: (ZILN's network, BTYD's per-customer likelihoods) made the evaluate step minutes long.
MAX_EVAL_ROWS = 500_000


#: The explain task's exact TreeSHAP reasons cover at most this many customers, those with
#: the highest predicted CLV (``CLV_MAX_EXPLAIN_ROWS``; 0 = every customer). XGBoost's
#: own TreeSHAP took 239 s for 257,000 customers of the 1M-order DAG on 2 busy cores;
#: computed once per split pattern (:mod:`clv.models.treeshap`) 500,000 take ~5 s, so
#: the cap now bounds the reasons table (3 rows a customer) and its validation and write.
MAX_EXPLAIN_ROWS = 500_000


#: The behavioural K-means (:mod:`clv.decisions.clusters`) fits its centroids on a sample of
#: about this many customers, chosen by a hash of customer_id, and then assigns every
#: customer to the nearest (``CLV_MAX_CLUSTER_ROWS``; 0 = fit on all). 5 centroids in 5
#: dimensions are pinned down long before 200,000 rows; each of the fit's passes over
#: 2.57M customers is what cost (docs/benchmarks.md, "profiled and cut").
MAX_CLUSTER_ROWS = 200_000


def _row_cap(variable: str, default: int) -> int:
    text = (os.environ.get(variable) or "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise ValueError(f"{variable} must be a whole number >= 0, got {text!r}")
    return int(text)


def max_train_rows() -> int:
    """:data:`MAX_TRAIN_ROWS`, or ``CLV_MAX_TRAIN_ROWS`` when set (0 = no cap)."""
    return _row_cap("CLV_MAX_TRAIN_ROWS", MAX_TRAIN_ROWS)


def max_explain_rows() -> int:
    """:data:`MAX_EXPLAIN_ROWS`, or ``CLV_MAX_EXPLAIN_ROWS`` when set (0 = no cap)."""
    return _row_cap("CLV_MAX_EXPLAIN_ROWS", MAX_EXPLAIN_ROWS)


def max_cluster_rows() -> int:
    """:data:`MAX_CLUSTER_ROWS`, or ``CLV_MAX_CLUSTER_ROWS`` when set (0 = no cap)."""
    return _row_cap("CLV_MAX_CLUSTER_ROWS", MAX_CLUSTER_ROWS)


def max_eval_rows() -> int:
    """:data:`MAX_EVAL_ROWS`, or ``CLV_MAX_EVAL_ROWS`` when set (0 = no cap)."""
    return _row_cap("CLV_MAX_EVAL_ROWS", MAX_EVAL_ROWS)


#: Largest customer table for which ``airflow dags test`` begins a later task's Spark
#: work early, in a thread beside the tasks that run meanwhile (:mod:`clv.pipeline.head_start`):
#: past it, the work waits for its task, as under the scheduler.
MAX_HEAD_START_CUSTOMERS = 500_000


def max_head_start_customers() -> int:
    """:data:`MAX_HEAD_START_CUSTOMERS`, or ``CLV_HEAD_START_MAX_CUSTOMERS`` when set
    (0 = no head starts)."""
    return _row_cap("CLV_HEAD_START_MAX_CUSTOMERS", MAX_HEAD_START_CUSTOMERS)


#: Nice value a side task's process takes under the scheduler, and the thread of
#: :mod:`clv.pipeline.head_start` under ``airflow dags test`` (0-19; 0 = as the path).
DEFAULT_SIDE_TASK_NICE = 10


def side_task_nice() -> int:
    """``CLV_SIDE_TASK_NICE`` as a nice value in 0..19; a clear error otherwise
    (:mod:`clv.ops.priority`)."""
    raw = os.environ.get("CLV_SIDE_TASK_NICE", str(DEFAULT_SIDE_TASK_NICE)).strip()
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 19:
        raise ValueError(f"CLV_SIDE_TASK_NICE={raw!r}: expected a whole number from 0 "
                         "(no change) to 19 (yield the most)")
    return value


#: Where the XGBoost fits and the scoring run (``CLV_DISTRIBUTED``,
#: :mod:`clv.models.distributed`): ``auto`` puts them on the Spark executors when the
#: master is a cluster (``spark://``, ``yarn``, ``k8s://``) or the table holds
#: :data:`DISTRIBUTED_MIN_ROWS` rows; ``on`` always, ``off`` never (the driver, pandas).
DEFAULT_DISTRIBUTED = "auto"
DISTRIBUTED_MODES = ("auto", "on", "off")
#: ``auto`` on a ``local`` master: rows (training examples / customers to score) from which
#: the work goes to the executors anyway (``CLV_DISTRIBUTED_MIN_ROWS``). Far above the
#: 10M-order bench (2.57M customers per split), so ``make run`` stays on the driver.
DISTRIBUTED_MIN_ROWS = 10_000_000


#: Frames of at most this many rows are validated on GX's pandas engine (one collect)
#: rather than one Spark job per metric (clv.quality.engines); ``CLV_GX_PANDAS_MAX_ROWS``
#: overrides it, ``0`` validates every frame on Spark. Where the engines cross
#: (``bench/bench_quality.py`` style, best of 2, warm): pandas took 0.39 / 0.84 / 1.94 s
#: against Spark's 0.86 / 1.64 / 2.24 s for the reasons of 70,710 rows and the scores and
#: plan of 257,001 customers, but 2.46 s against 1.39 s for 771,003 reason rows.
DEFAULT_GX_PANDAS_MAX_ROWS = 300_000


#: Run-time state (warehouse, MLflow store and model artifacts, Airflow home, Spark
#: scratch) is the owner's only by default: other local users must not read customer
#: data or pickled models, nor write what the pipeline later loads and runs.
DEFAULT_UMASK = "077"


def runtime_umask() -> int:
    """The umask run-time files are created with (``CLV_UMASK``, octal; default 077).

    Raises:
        ValueError: ``CLV_UMASK`` is not an octal number in 000..777.
    """
    text = (os.environ.get("CLV_UMASK") or DEFAULT_UMASK).strip()
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        raise ValueError(f"CLV_UMASK={text!r}: expected an octal umask such as 077 or 027")
    return value


def gx_pandas_max_rows() -> int:
    """Largest frame validated on GX's pandas engine (``CLV_GX_PANDAS_MAX_ROWS``).

    Raises:
        ValueError: the variable is not a whole number >= 0.
    """
    text = (os.environ.get("CLV_GX_PANDAS_MAX_ROWS") or str(DEFAULT_GX_PANDAS_MAX_ROWS)).strip()
    if not text.isdigit():
        raise ValueError(f"CLV_GX_PANDAS_MAX_ROWS={text!r}: expected a row count >= 0")
    return int(text)


def apply_runtime_umask() -> int:
    """Set this process's umask to :func:`runtime_umask` (children, the Spark JVM
    included, inherit it); returns the previous one."""
    return os.umask(runtime_umask())


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as a run-time folder: mode 0777 less the
    run-time umask (0700 by default), also when it already existed with wider rights."""
    mode = 0o777 & ~runtime_umask()
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    if path.stat().st_uid == os.geteuid():  # a folder someone gave us stays theirs
        path.chmod(mode)
    return path


#: The checkout this package runs from: src/clv/config.py -> root (an editable install
#: keeps files in place). Suites, DAGs and docs that ship with the code live under it.
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]


def _default_home() -> Path:
    return CHECKOUT_ROOT


@dataclass(frozen=True)
class Settings:
    """Where things live and which engines to talk to."""

    home: Path
    warehouse_uri: str
    mlflow_tracking_uri: str
    mlflow_artifact_root: Path
    spark_master: str
    spark_driver_memory: str
    jdbc_jar: Path = Path(DEFAULT_JDBC_JAR)

    @property
    def warehouse_backend(self) -> str:
        """``"postgresql"`` for a ``postgresql://`` warehouse URI, else ``"parquet"``."""
        return "postgresql" if self.warehouse_uri.startswith(PG_URI_PREFIXES) else "parquet"

    @property
    def warehouse_root(self) -> Path:
        """Local folder of the embedded Parquet warehouse."""
        uri = self.warehouse_uri
        if self.warehouse_backend == "postgresql":
            raise ValueError("the warehouse is PostgreSQL (CLV_WAREHOUSE_URI=postgresql://...): "
                             "it has no local folder")
        if uri.startswith("file://"):
            uri = uri[len("file://"):]
        if "://" in uri:
            raise ValueError(
                f"CLV_WAREHOUSE_URI={self.warehouse_uri!r}: only a local folder (or file://) "
                "is supported by this build's warehouse backend"
            )
        return Path(uri)

    @property
    def state_dir(self) -> Path:
        """Git-ignored folder for run-time state (MLflow, Airflow, Spark scratch)."""
        return self.home / ".state"


def load_settings() -> Settings:
    """Read settings from the environment, filling in the embedded defaults.

    Every code path that writes run-time state reads its settings here first, so this
    is where the process's umask becomes the run-time one (:func:`apply_runtime_umask`).
    """
    apply_runtime_umask()
    home = Path(os.environ.get("CLV_HOME") or _default_home()).resolve()
    state = home / ".state"
    return Settings(
        home=home,
        warehouse_uri=os.environ.get("CLV_WAREHOUSE_URI") or str(home / "warehouse"),
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{state / 'mlflow' / 'mlflow.db'}",
        mlflow_artifact_root=Path(
            os.environ.get("CLV_MLFLOW_ARTIFACTS") or state / "mlflow" / "artifacts"
        ),
        spark_master=os.environ.get("CLV_SPARK_MASTER") or "local[2]",
        spark_driver_memory=os.environ.get("CLV_SPARK_DRIVER_MEMORY") or "3g",
        jdbc_jar=Path(os.environ.get("CLV_JDBC_JAR") or DEFAULT_JDBC_JAR),
    )
