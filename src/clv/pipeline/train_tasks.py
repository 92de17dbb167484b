"""Model steps: train one model family, evaluate every candidate against the champions."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import shutil
import tempfile
from typing import Any

from clv.data import warehouse
from clv.pipeline.effect_inputs import effects_ahead, effects_key
from clv.pipeline.publishing import _spark, _validate_and_publish
from clv.pipeline.tables import EXAMPLES, FEATURES, MODEL_METRICS, MODEL_METRICS_SCHEMA

log = logging.getLogger(__name__)


#: The fits that :func:`begin_fits` begins in the head-start thread (ZILN has a process).
THREAD_FITS = ("clv", "churn", "btyd")


def train(model: str, as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Train, log and register one model: ``clv``, ``churn`` (XGBoost), ``ziln``
    (TensorFlow) or ``btyd`` (every BTYD model); the aliases are decided by :func:`evaluate`.
    What :func:`begin_fits` began is taken (:mod:`clv.pipeline.head_start`)."""
    from clv.pipeline import head_start

    if model != "ziln":
        return head_start.take(_fit_key(model, as_of_date, run_id),
                               functools.partial(_train, model, as_of_date, horizon_days,
                                                 run_id))
    # one TensorFlow network, registered as a spend and a churn version
    from clv.models import training
    from clv.pipeline.score_tasks import begin_clusters

    fitted = head_start.take(_fit_key(model, as_of_date, run_id),
                             functools.partial(training.fit_ziln, as_of_date))
    # segment's K-means: Spark jobs that took a core from the fit's process beside it
    # run beside evaluate and score instead, which leave a core idle (begin_fits)
    begin_clusters(as_of_date, run_id)
    return {r.name: _train_summary(r)
            for r in training.train_ziln_model(as_of_date, horizon_days, run_id,
                                               fitted=fitted)}


def _train(model: str, as_of_date: dt.date, horizon_days: int, run_id: str
           ) -> dict[str, Any]:
    """The work of a training task other than ZILN's (the head-start thread's, or its own)."""
    from clv.models import training

    if model == "btyd":  # several models, each a spend and a churn version
        results = training.train_btyd_models(as_of_date, horizon_days, run_id)
        return {f"{r.name} v{r.version}": _train_summary(r) for r in results}
    fn = {"clv": training.train_clv_model, "churn": training.train_churn_model}[model]
    return _train_summary(fn(as_of_date, horizon_days, run_id))


def begin_fits(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, bool]:
    """Under ``airflow dags test``, once the features are validated, begin every
    training task's work (:mod:`clv.pipeline.head_start`), so that the run no longer
    depends on the order the command picks for them (a set's, new each run):

    * the ZILN fit in a process of its own (TensorFlow driven from Python gains nothing
      from a thread), begun by ``build_features`` already (:func:`begin_ziln_fit`), else
      here, first: it is the longest;
    * the XGBoost and BTYD trainings in the head-start thread, one after another, then
      evaluate's holdout and every version registered by then scored on it (only
      ZILN's two are left to the evaluate task), then allocate's effect fits on the
      campaigns (:func:`clv.pipeline.effect_inputs.effects_ahead`);
    * segment's K-means (Spark jobs) in that thread once the ZILN task has the fit:
      beside the fit it took a core from it, beside evaluate and score a core is idle.
      Here when the fit did not begin.

    Which began (or had), by name."""
    from clv.pipeline import head_start
    from clv.pipeline.score_tasks import begin_clusters

    @functools.cache  # asked by each head start that may begin: counted once
    def customers() -> int:
        return warehouse.row_count(FEATURES, as_of_date) or 0

    begun = {"ziln": begin_ziln_fit(as_of_date, run_id)}
    for model in THREAD_FITS:
        begun[model] = head_start.begin(
            _fit_key(model, as_of_date, run_id),
            functools.partial(_train, model, as_of_date, horizon_days, run_id), customers)
    # then evaluate's holdout, and the versions registered by then scored on it; then
    # allocate's effect fits
    begun["evaluation inputs"] = head_start.begin(
        _evaluation_key(as_of_date, run_id),
        functools.partial(_evaluation_inputs, as_of_date, horizon_days, run_id), customers)
    begun["action effects"] = head_start.begin(
        effects_key(as_of_date, run_id), functools.partial(effects_ahead, as_of_date),
        customers)
    if not begun["ziln"]:  # else the ZILN task begins it once the fit is in
        begun["clusters"] = begin_clusters(as_of_date, run_id)
    return begun


def begin_ziln_fit(as_of_date: dt.date, run_id: str) -> bool:
    """Under ``airflow dags test``, begin the ZILN fit in its process (:func:`start_ziln_process`)
    as soon as the training examples are published: it learns from them alone, and it
    only fits (the ZILN task logs and registers the network). The features' checks still
    come before its task; one that fails drops it (:func:`ziln_fit_dropped_on_error`).
    True when it is begun (or already was). The size gate counts the examples (learning
    and holdout rows): the customers' features may not be published yet."""
    from clv.pipeline import head_start

    key = _fit_key("ziln", as_of_date, run_id)
    if key in head_start.pending():
        return True
    return head_start.begin_in_process(
        key, functools.partial(_ziln_fit_job, as_of_date),
        lambda: warehouse.row_count(EXAMPLES, as_of_date) or 0)


def ziln_fit_dropped_on_error(as_of_date: dt.date, run_id: str):
    """A context in which an error drops the ZILN fit :func:`begin_ziln_fit` began (its
    process killed): the checks before the ZILN task (the features' publication and
    validation) run in it."""
    from clv.pipeline import head_start

    return head_start.dropped_on_error(_fit_key("ziln", as_of_date, run_id))


def start_ziln_process() -> bool:
    """Under ``airflow dags test``, start the process :func:`begin_fits` will fit ZILN in and
    import TensorFlow in it while the tasks before the fit run; True when started."""
    from clv.models import ziln
    from clv.pipeline import head_start

    return head_start.start_process(ziln.fit_process_setup)


def _fit_key(model: str, as_of_date: dt.date, run_id: str) -> tuple:
    return ("fit", model, as_of_date.isoformat(), run_id)


def _ziln_fit_job(as_of_date: dt.date):
    """(fit, its arguments, what loads its result) for :func:`begin_fits`."""
    from clv.models import training, ziln

    config, sample, spend, n_learn = training.ziln_fit_inputs(as_of_date)
    folder = tempfile.mkdtemp(prefix="clv-ziln-fit-")
    return ziln.fit_saved, (folder, sample, spend, config, n_learn), _load_and_remove


def _load_and_remove(folder: str):
    from clv.models import ziln

    try:
        return ziln.ZilnModel.load(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _train_summary(result) -> dict[str, Any]:
    return {"name": result.name, "version": result.version, "alias": result.alias,
            "family": result.family, "device": result.device, "reason": result.reason,
            "metrics": result.metrics}


def evaluate(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Every aliased or newly trained version and the baselines (BTYD, naive) on the
    holdout: the champion rule moves the aliases (``clv.models.registry``), metrics and charts
    go to MLflow, rows to ``marts.model_metrics``."""
    from clv.models import training
    from clv.pipeline import head_start

    # read once: the versions are judged on it, then their intervals (3.6 s at 10M orders);
    # under airflow dags test, read and the versions known then scored during ZILN's fit
    holdout, scored = head_start.take(_evaluation_key(as_of_date, run_id),
                                      lambda: (training.holdout(as_of_date), {}))
    table = training.evaluate_models(as_of_date, horizon_days, run_id, holdout=holdout,
                                     scored=scored)
    table = _with_interval_coverage(table, as_of_date, holdout, scored)
    del holdout, scored
    spark = _spark()
    frame = spark.createDataFrame(table[training.METRIC_COLUMNS].astype(
        {"horizon_days": "int32", "n_customers": "int32"}), schema=MODEL_METRICS_SCHEMA)
    docs = _validate_and_publish(frame, "model_metrics", MODEL_METRICS, as_of_date, run_id)
    primary = table[table["metric"].isin(["normalized_gini", "roc_auc"])]
    return {"rows": len(table), "data_docs": docs,
            "primary": {(r.model_name if r.model_version == "baseline"
                         else f"{r.model_name} v{r.model_version}")
                        + (f" @{r.model_alias}" if r.model_alias else "")
                        + f" {r.metric}": round(r.value, 4)
                        for r in primary.itertuples()}}


def _evaluation_key(as_of_date: dt.date, run_id: str) -> tuple:
    return ("evaluation inputs", as_of_date.isoformat(), run_id)


def _evaluation_inputs(as_of_date: dt.date, horizon_days: int, run_id: str):
    """The holdout, and every version known now scored on it (the work :func:`begin_fits`
    begins after the thread's fits, while ZILN's network fits)."""
    from clv.models import training

    holdout = training.holdout(as_of_date)
    return holdout, training.score_versions(holdout, horizon_days, run_id)


def _with_interval_coverage(table, as_of_date: dt.date, holdout, scored=None):
    """``table`` (model_metrics rows) plus the 80 % interval's coverage, nominal and PIT
    coverage on the holdout for every evaluated ``clv_spend`` version, also logged as
    metrics of the version's MLflow run (step = the as-of date as YYYYMMDD). ``holdout``:
    the customers the versions were judged on; ``scored``: what
    :func:`clv.models.training.score_versions` measured on it already, by (name, version)."""
    import pandas as pd

    import mlflow
    from clv.config import CLV_MODEL_NAME
    from clv.models import intervals, registry

    spend = table[(table["model_name"] == CLV_MODEL_NAME)
                  & (table["model_version"] != "baseline")].drop_duplicates("model_version")
    if spend.empty:
        return table
    registry.configure_mlflow()
    client = mlflow.MlflowClient()
    rows = []
    for r in spend.itertuples():
        known = (scored or {}).get((CLV_MODEL_NAME, r.model_version))
        measured = known.coverage if known is not None else intervals.holdout_coverage(
            registry.load_version(CLV_MODEL_NAME, r.model_version), holdout)
        run = client.get_model_version(CLV_MODEL_NAME, r.model_version).run_id
        for metric in (intervals.COVERAGE_METRIC, intervals.NOMINAL_METRIC,
                       intervals.PIT_METRIC):
            client.log_metric(run, metric, measured[metric],
                              step=int(as_of_date.strftime("%Y%m%d")))
            rows.append({**r._asdict(), "metric": metric, "value": measured[metric],
                         "n_customers": measured["n_customers"]})
        log.info("%s v%s interval (%s): %s", CLV_MODEL_NAME, r.model_version,
                 measured["method"], measured)
    extra = pd.DataFrame(rows).drop(columns="Index")
    return pd.concat([table, extra[table.columns]], ignore_index=True)
