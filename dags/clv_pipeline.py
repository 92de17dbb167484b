"""
### CLV pipeline

Scores every customer's lifetime value and churn risk at an **as-of date**, then
segments customers and spends a marketing budget on them.

`validate_params` (trigger params; a bad one fails the run, not retried) ->
`validate_raw` -> `build_features` (Spark) -> `validate_features` ->
`train_clv` + `train_churn` (XGBoost) + `train_ziln` (TensorFlow ZILN) + `train_btyd`
(BTYD models), all registered in MLflow -> `evaluate` (every model and the BTYD / naive
baselines on the holdout; the champion rule, rank and level, moves the aliases -> MLflow,
`marts.model_metrics`, with the 80 % interval's coverage) -> `score` (registry
`@champion`: CLV with P10/P50/P90, p_churn, BG/NBD p_alive) -> `segment` ->
`measure_outcomes` (earlier plans' treated vs holdout -> `marts.campaign_outcomes`, own
responses -> `raw.campaign_responses`) -> `allocate` (per-customer effects and their
evidence -> `marts.action_effects`; plan with a randomised holdout ->
`marts.campaign_plan`; its value before spending -> `marts.policy_evaluation`), and beside
them `explain` (top three SHAP reasons per customer) -> `churn_alerts` (newly at-risk
customers; updates the asset `clv://marts/churn_alerts`) -> `publish_catalog` -> `summary`
(and the run report: `.state/reports/clv-report-<date>.html`, in MLflow too).
Beside them, `backtest_scores` (after `validate_raw`) compares earlier scores whose horizon
has passed with the spend realised since, and flags drift.

**Params** (trigger form): `as_of_date` (empty = the newest load of `raw.orders` for a
manual run, the logical date for a backfill; features use orders strictly before it),
`horizon_days` (prediction horizon), `budget` (marketing budget), `clv_weight`
(lambda: weight on lifetime value vs 30-day revenue), `action_costs`,
`segment_share_bounds`, `action_capacity`; the contact policy: `contact_min_days`,
`contact_max_per_window`, `contact_window_days`, `min_net_value`, `action_channels`
(opt-outs loaded with `clv import-contact-preferences` always apply).

**Outputs** (DuckDB `warehouse/warehouse.duckdb`, one partition per as-of date):
`features.customer_features`, `marts.model_metrics`, `marts.customer_scores`,
`marts.customer_segments`,
`marts.segment_summary`, `marts.budget_allocation`, `marts.budget_summary`,
`marts.action_effects`, `marts.allocation_frontier`, `marts.campaign_plan`,
`marts.campaign_outcomes`, `marts.policy_evaluation`, `marts.contact_policy`,
`marts.score_reasons`,
`marts.churn_alerts`, `marts.score_backtest`; rejected input rows in
`quality.rejected_orders`. `clv mark-plan-sent --plan-id plan-YYYY-MM-DD --sent-date ...`
records when a plan went out (`marts.campaign_sends`); without it, a plan counts as sent on
its as-of date.

Weekly schedule (`CLV_SCHEDULE` in the scheduler's environment sets another, `none` turns
it off; backfills need one). A scheduled run whose date is past the orders (CDNOW ends in
1998) skips, saying why, instead of failing three times. Bad params and bad or stale data
in a run someone asked for fail their task once, naming the param or the table, without
retries.

Re-running a date replaces its partitions atomically; backfills are safe.
Logic lives in the `clv` package (`src/clv/pipeline/`); this file only wires it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator

from airflow.sdk import Asset, Param, dag, get_current_context, task

# Plain constants only (clv.config imports nothing heavy): DAG parsing stays fast.
from clv.config import (
    CHURN_ALERTS_ASSET_URI,
    DEFAULT_ACTION_COSTS,
    DEFAULT_BUDGET,
    DEFAULT_CLV_WEIGHT,
    DEFAULT_CONTACT_MIN_DAYS,
    DEFAULT_HORIZON_DAYS,
    SPARK_POOL,
)
from clv.data.catalog import CHURN_ALERTS as CHURN_ALERTS_TABLE
from clv.data.catalog import RAW_ORDERS
from clv.pipeline.params import HORIZON_DAYS_RANGE

#: Updated by every churn_alerts run: schedule a CRM DAG on it (``schedule=[CHURN_ALERTS]``).
CHURN_ALERTS = Asset(CHURN_ALERTS_TABLE, uri=CHURN_ALERTS_ASSET_URI)

DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=1),
    "execution_timeout": dt.timedelta(minutes=30),
}
SHORT = dt.timedelta(minutes=10)


def _as_of_date() -> dt.date:
    """The run's as-of date, as ``validate_params`` resolved it once for the whole run
    (an empty param means a date read from the data or the run, see its docstring)."""
    resolved = get_current_context()["ti"].xcom_pull(task_ids="validate_params")
    return dt.date.fromisoformat(resolved["as_of_date"])


@contextlib.contextmanager
def _data_errors_fail_fast() -> Iterator[None]:
    """Data checks raise ValueError (clv.quality.DataQualityError, stale data): fail the
    task on its only try, since a retry reads the same data."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except ValueError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def _scheduled_runs_past_the_data_skip() -> Iterator[None]:
    """A scheduled run for a date the orders do not reach skips with the reason; a run
    someone asked for (manual, backfill) fails on it (see _data_errors_fail_fast)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from clv.pipeline import StaleDataError

    try:
        yield
    except StaleDataError as exc:
        if _run_type() != "scheduled":
            raise
        raise AirflowSkipException(f"scheduled run skipped: {exc}. Trigger the DAG with an "
                                   "as_of_date inside the data, or load newer orders") from exc


def _run_type() -> str:
    """``manual``, ``scheduled``, ``backfill``, ...: the task SDK's enum prints as
    ``DagRunType.SCHEDULED``, so its value."""
    run_type = get_current_context()["dag_run"].run_type
    return getattr(run_type, "value", str(run_type))


def _schedule() -> str | None:
    """``CLV_SCHEDULE`` (default ``@weekly``); ``none`` or ``off``: no schedule."""
    value = os.environ.get("CLV_SCHEDULE", "@weekly").strip()
    return None if value.lower() in ("", "none", "off") else value


def _run_id() -> str:
    return get_current_context()["run_id"]


def _horizon() -> int:
    return int(get_current_context()["params"]["horizon_days"])


def _beside_the_path() -> None:
    """A side task runs beside a longer one the run waits for (the challenger fits beside
    ZILN, explain and segment beside measure_outcomes -> allocate): it yields the CPU,
    clv.ops.priority."""
    from clv.ops.priority import yield_to_the_path

    yield_to_the_path(get_current_context()["ti"].task_id)


@dag(
    dag_id="clv_pipeline",
    doc_md=__doc__,
    # A schedule lets data engineers backfill; its runs past the data skip (issue #21).
    schedule=_schedule(),
    start_date=dt.datetime(1997, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["clv", "churn", "marketing"],
    params={
        # Optional (null allowed) so the form submits with its defaults; format "date"
        # makes the form and the API refuse 1998-13-45. Numbers carry no schema bounds:
        # the form silently clamps to them; validate_params refuses, naming the param.
        "as_of_date": Param(None, type=["null", "string"], format="date",
                            description=f"YYYY-MM-DD; empty = the newest load of {RAW_ORDERS} "
                                        "(a backfill: the run's logical date)"),
        "horizon_days": Param(DEFAULT_HORIZON_DAYS, type="integer",
                              description="prediction horizon in days, "
                                          "%d to %d" % HORIZON_DAYS_RANGE),
        "budget": Param(DEFAULT_BUDGET, type="number",
                        description="marketing budget for the allocation, >= 0"),
        "clv_weight": Param(DEFAULT_CLV_WEIGHT, type="number",
                            title="lambda: weight on lifetime value",
                            description="0 to 1: the allocation maximises lambda x incremental "
                                        "CLV + (1 - lambda) x incremental 30-day revenue - cost"),
        "action_costs": Param(dict(DEFAULT_ACTION_COSTS), type="object",
                              description="actions on offer and their cost per customer"),
        "segment_share_bounds": Param({}, type="object",
                                      description='per segment [min_share, max_share] of the '
                                                  'amount spent, e.g. {"lost": [null, 0.1]}'),
        "action_capacity": Param({}, type="object",
                                 description='most customers per action, e.g. '
                                             '{"retention_coupon": 500}'),
        # contact policy (clv.decisions.contact_policy): opt-outs always apply; these cap frequency.
        "contact_min_days": Param(DEFAULT_CONTACT_MIN_DAYS, type="integer",
                                  description="days (>= 0) between two contacts of a customer "
                                              "through one channel (0 = no gap rule)"),
        "contact_max_per_window": Param(None, type=["null", "integer"],
                                        description="most contacts (>= 1) of a customer per "
                                                    "channel in contact_window_days (empty = "
                                                    "no limit)"),
        "contact_window_days": Param(None, type=["null", "integer"],
                                     description="window of contact_max_per_window, >= 1 "
                                                 "(empty = horizon_days)"),
        "min_net_value": Param(None, type=["null", "number"],
                               description="take an action only when its expected net value "
                                           "per customer (at lambda, after cost) reaches this "
                                           "(empty = any positive value)"),
        "action_channels": Param({}, type="object",
                                 description='channel per action where the catalogue has none '
                                             'or to override it, e.g. {"sms_offer": "sms"}'),
    },
)
def clv_pipeline():
    @task(execution_timeout=SHORT)
    def validate_params() -> dict:
        """Check the trigger params before anything reads or writes data and resolve an
        empty as_of_date once for every task; a bad param fails the run at once, without
        retries (retrying cannot fix it). Under `airflow dags test`, the process the ZILN
        fit will have starts here (clv.pipeline.head_start)."""
        from airflow.sdk.exceptions import AirflowFailException

        from clv import pipeline
        from clv.pipeline.params import ParamError
        from clv.pipeline.params import validate_params as check

        context = get_current_context()
        try:
            params = check(context["params"])
            params["as_of_date"] = pipeline.resolve_as_of_date(
                params["as_of_date"], _run_type(),
                context.get("logical_date")).isoformat()
        except ParamError as exc:
            raise AirflowFailException(str(exc)) from exc
        pipeline.start_ziln_process()  # airflow dags test: TensorFlow loads while Spark works
        return params

    @task(pool=SPARK_POOL, execution_timeout=SHORT)
    def validate_raw() -> dict:
        """Great Expectations suite raw_orders over the orders before the as-of date; bad or
        stale data fails once (retrying reads the same data)."""
        from clv import pipeline

        with _data_errors_fail_fast(), _scheduled_runs_past_the_data_skip():
            return pipeline.validate_raw(_as_of_date(), _horizon())

    @task(pool=SPARK_POOL)
    def build_features() -> dict:
        """Spark: out-of-time training examples and customer features at the as-of date;
        under `airflow dags test` the ZILN fit begins on the examples (clv.pipeline.head_start)."""
        from clv import pipeline

        return pipeline.build_features(_as_of_date(), _horizon(), _run_id())

    @task(pool=SPARK_POOL, execution_timeout=SHORT)
    def validate_features() -> dict:
        """Great Expectations suite customer_features over the new partition; under
        `airflow dags test`, the trainings and segment's K-means then begin (the ZILN fit,
        begun by build_features in a process of its own, is dropped if it fails:
        clv.pipeline.head_start)."""
        from clv import pipeline

        with _data_errors_fail_fast(), pipeline.ziln_fit_dropped_on_error(_as_of_date(),
                                                                          _run_id()):
            checked = pipeline.validate_features(_as_of_date())
        return {**checked,
                "begun": pipeline.begin_fits(_as_of_date(), _horizon(), _run_id())}

    @task
    def train_clv() -> dict:
        """XGBoost spend model: train out of time, log and register in MLflow."""
        _beside_the_path()
        from clv import pipeline

        return pipeline.train("clv", _as_of_date(), _horizon(), _run_id())

    @task
    def train_churn() -> dict:
        """XGBoost churn model: train out of time, log and register in MLflow."""
        _beside_the_path()
        from clv import pipeline

        return pipeline.train("churn", _as_of_date(), _horizon(), _run_id())

    @task
    def train_ziln() -> dict:
        """TensorFlow ZILN network (spend + churn heads): train, log, register in MLflow."""
        from clv import pipeline

        return pipeline.train("ziln", _as_of_date(), _horizon(), _run_id())

    @task
    def train_btyd() -> dict:
        """BTYD models (BG/NBD + Gamma-Gamma, ...) fitted on history: log, register in MLflow."""
        _beside_the_path()
        from clv import pipeline

        return pipeline.train("btyd", _as_of_date(), _horizon(), _run_id())

    @task(pool=SPARK_POOL, execution_timeout=SHORT)
    def evaluate() -> dict:
        """Models and baselines on the holdout; champion rule -> aliases; MLflow + metrics."""
        from clv import pipeline

        return pipeline.evaluate(_as_of_date(), _horizon(), _run_id())

    @task(pool=SPARK_POOL)
    def score() -> dict:
        """Score every customer with the registry's champions; under `airflow dags test`,
        measure_outcomes -> allocate then begin, explain and segment beside them
        (clv.pipeline.head_start)."""
        from clv import pipeline

        return {**pipeline.score(_as_of_date(), _horizon(), _run_id()),
                "begun": pipeline.begin_after_score(_as_of_date(), _horizon(), _run_id(),
                                                    get_current_context()["params"])}

    @task(pool=SPARK_POOL, execution_timeout=SHORT)
    def segment() -> dict:
        """Value tier x churn risk segments, Spark MLlib K-means behaviour clusters."""
        _beside_the_path()
        from clv import pipeline

        return pipeline.segment(_as_of_date(), _run_id())

    @task(pool=SPARK_POOL, execution_timeout=SHORT)
    def measure_outcomes() -> dict:
        """Treated vs holdout outcomes of earlier plans whose response window has passed;
        their per-customer responses feed the next effect fit."""
        from clv import pipeline

        return pipeline.measure_outcomes(_as_of_date(), _horizon(), _run_id())

    @task(pool=SPARK_POOL, execution_timeout=SHORT)
    def allocate() -> dict:
        """One action or none per customer under the budget, CLV vs revenue weighted by
        lambda; the frontier over lambda; summary per segment and action."""
        from clv import pipeline

        params = pipeline.AllocationParams.from_params(get_current_context()["params"])
        return pipeline.allocate(_as_of_date(), params, _run_id())

    @task(pool=SPARK_POOL)
    def explain() -> dict:
        """Top three SHAP reasons per customer for the spend champion -> marts.score_reasons."""
        _beside_the_path()
        from clv import pipeline

        return pipeline.explain(_as_of_date(), _run_id())

    @task(pool=SPARK_POOL, execution_timeout=SHORT, outlets=[CHURN_ALERTS])
    def churn_alerts() -> dict:
        """Customers newly at churn risk since the previous scores, by value at risk, with
        reasons and the plan's action -> marts.churn_alerts (updates the asset)."""
        from clv import pipeline

        return pipeline.churn_alerts(_as_of_date(), _run_id())

    @task(pool=SPARK_POOL, execution_timeout=SHORT)
    def backtest_scores() -> dict:
        """Earlier scores whose horizon has passed vs realised spend -> marts.score_backtest;
        warns (and returns alert=true) past the error / Gini thresholds."""
        _beside_the_path()
        from clv import pipeline

        return pipeline.backtest_scores(_as_of_date(), _run_id())

    @task(pool=SPARK_POOL)
    def recommend() -> dict:
        """ALS top 10 products per customer, judged out of time against popularity and
        co-purchase -> marts.recommendations (skipped when the shop has no order lines)."""
        _beside_the_path()
        from clv import pipeline

        return pipeline.recommend(_as_of_date(), _horizon(), _run_id())

    @task(execution_timeout=SHORT)
    def publish_catalog() -> dict:
        """Refresh the analysts' DuckDB views and the Data Docs index."""
        from clv import pipeline

        return pipeline.publish_catalog()

    @task(execution_timeout=SHORT)
    def summary() -> dict:
        """Rows per output table and the champions' metrics; the run report (one offline
        HTML page, logged to MLflow, linked from the run by the clv_links plugin)."""
        from clv import pipeline
        from clv.ops import report

        out = pipeline.run_summary(_as_of_date())
        return {**out, **report.publish(_as_of_date(), _run_id())}

    raw = validate_params() >> validate_raw()
    features = raw >> build_features() >> validate_features()
    scored = score()
    features >> [train_clv(), train_churn(), train_ziln(), train_btyd()] >> evaluate() >> scored
    catalog = publish_catalog()
    alerts = churn_alerts()
    # The plan needs the value x risk segments only, a function of the scores: it does not
    # wait for the segment task's K-means and its 2.57M-row validation at 10M orders.
    scored >> measure_outcomes() >> allocate() >> alerts >> catalog >> summary()
    scored >> segment() >> catalog
    scored >> explain() >> alerts
    raw >> backtest_scores() >> catalog
    features >> recommend() >> catalog


clv_pipeline()
