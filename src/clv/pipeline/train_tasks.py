"""Model steps: train one model family, evaluate every candidate against the champions."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from clv.pipeline.publishing import _spark, _validate_and_publish
from clv.pipeline.tables import MODEL_METRICS, MODEL_METRICS_SCHEMA

log = logging.getLogger(__name__)


def train(model: str, as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Train, log and register one model: ``clv``, ``churn`` (XGBoost), ``ziln``
    (TensorFlow) or ``btyd`` (every BTYD model); the aliases are decided by :func:`evaluate`."""
    from clv.models import training

    if model == "btyd":  # several models, each a spend and a churn version
        results = training.train_btyd_models(as_of_date, horizon_days, run_id)
        return {f"{r.name} v{r.version}": _train_summary(r) for r in results}
    if model == "ziln":  # one TensorFlow network, registered as a spend and a churn version
        return {r.name: _train_summary(r)
                for r in training.train_ziln_model(as_of_date, horizon_days, run_id)}
    fn = {"clv": training.train_clv_model, "churn": training.train_churn_model}[model]
    return _train_summary(fn(as_of_date, horizon_days, run_id))


def _train_summary(result) -> dict[str, Any]:
    return {"name": result.name, "version": result.version, "alias": result.alias,
            "family": result.family, "device": result.device, "reason": result.reason,
            "metrics": result.metrics}


def evaluate(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Every aliased or newly trained version and the baselines (BTYD, naive) on the
    holdout: the champion rule moves the aliases (``clv.models.registry``), metrics and charts
    go to MLflow, rows to ``marts.model_metrics``."""
    from clv.models import training

    # read once: the versions are judged on it, then their intervals (3.6 s at 10M orders)
    holdout = training.holdout(as_of_date)
    table = training.evaluate_models(as_of_date, horizon_days, run_id, holdout=holdout)
    table = _with_interval_coverage(table, as_of_date, holdout)
    del holdout
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


def _with_interval_coverage(table, as_of_date: dt.date, holdout):
    """``table`` (model_metrics rows) plus the 80 % interval's coverage, nominal and PIT
    coverage on the holdout for every evaluated ``clv_spend`` version, also logged as
    metrics of the version's MLflow run (step = the as-of date as YYYYMMDD). ``holdout``:
    the customers the versions were judged on."""
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
        model = registry.load_version(CLV_MODEL_NAME, r.model_version)
        measured = intervals.holdout_coverage(model, holdout)
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
