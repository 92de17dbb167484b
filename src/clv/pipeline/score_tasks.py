"""Scoring steps: scores, segments, reasons, churn alerts and the scores' back-tests."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any

from clv.config import CHURN_ALERTS_ASSET_URI
from clv.data import warehouse
from clv.pipeline.publishing import (
    _partition_or_none,
    _publish_pandas,
    _publish_typed,
    _spark,
    _stamp,
)
from clv.pipeline.tables import (
    ALLOCATION,
    CHURN_ALERTS,
    CHURN_ALERTS_SCHEMA,
    FEATURES,
    RAW_ORDERS,
    REASONS,
    SCORE_BACKTEST,
    SCORE_BACKTEST_SCHEMA,
    SCORES,
    SEGMENT_SUMMARY,
    SEGMENTS,
)

log = logging.getLogger(__name__)


def score(as_of_date: dt.date, horizon_days: int, run_id: str) -> dict[str, Any]:
    """Score every customer with the champions, validate, publish ``marts.customer_scores``."""
    from clv.models import scoring

    scores = scoring.score_customers(as_of_date, horizon_days, run_id)
    docs = _publish_pandas(scores, "customer_scores", SCORES, as_of_date, run_id)
    return {"customers": len(scores), "data_docs": docs,
            "clv_model_version": scores["clv_model_version"].iat[0],
            "churn_model_version": scores["churn_model_version"].iat[0],
            "predicted_clv_total": float(scores["predicted_clv"].sum()),
            "clv_p10_total": float(scores["clv_p10"].sum()),
            "clv_p90_total": float(scores["clv_p90"].sum())}


def begin_clusters(as_of_date: dt.date, run_id: str) -> bool:
    """Under ``airflow dags test``, begin :func:`segment`'s K-means (Spark jobs, on the
    validated features alone) in a thread beside the model fits, which hold the Python
    interpreter (:mod:`clv.pipeline.head_start`); True when begun."""
    from clv.pipeline import head_start

    return head_start.begin(_clusters_key(as_of_date, run_id),
                            functools.partial(_clusters, as_of_date),
                            lambda: warehouse.row_count(FEATURES, as_of_date) or 0)


def _clusters_key(as_of_date: dt.date, run_id: str) -> tuple:
    return ("behaviour clusters", as_of_date.isoformat(), run_id)


def _clusters(as_of_date: dt.date):
    from clv.decisions import clusters

    return clusters.behaviour_clusters(warehouse.read_table(_spark(), FEATURES, as_of_date))


def begin_after_score(as_of_date: dt.date, horizon_days: int, run_id: str,
                      params: dict[str, Any]) -> dict[str, bool]:
    """Under ``airflow dags test``, once the scores are published, begin what the
    scheduler would run side by side (:mod:`clv.pipeline.head_start`), whatever order
    the command then picks for the tasks:

    * the plan's chain, measure_outcomes -> allocate (the run's ``params``; params the
      allocate task would refuse begin no allocation: the task fails as itself), in the
      path thread;
    * :func:`explain` and :func:`segment` in the head-start thread, which yields the CPU:
      their Spark writes and XGBoost's SHAP leave the interpreter to the plan.

    Which began, by name."""
    from clv.pipeline import head_start
    from clv.pipeline.decide_tasks import AllocationParams, _allocate, allocation_key
    from clv.pipeline.loop_tasks import _measure_outcomes

    @functools.cache  # asked by each head start that may begin: counted once
    def customers() -> int:
        return warehouse.row_count(SCORES, as_of_date) or 0

    measure = head_start.task_key("measure_outcomes", as_of_date, run_id)
    begun = {"measure_outcomes": head_start.begin(
        measure, functools.partial(_measure_outcomes, as_of_date, horizon_days, run_id),
        customers, on_path=True)}
    try:
        allocation = AllocationParams.from_params(params)
    except ValueError as exc:
        log.info("no head start for allocate: %s", exc)
    else:  # only after measure_outcomes' work succeeded: no plan if its upstream failed
        begun["allocate"] = head_start.begin(
            allocation_key(as_of_date, allocation, run_id),
            functools.partial(_allocate, as_of_date, allocation, run_id), customers,
            on_path=True, after=measure)
    for name, work in (("explain", _explain), ("segment", _segment)):
        begun[name] = head_start.begin(head_start.task_key(name, as_of_date, run_id),
                                       functools.partial(work, as_of_date, run_id), customers)
    return begun


def segment(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """Value x risk segments and behavioural K-means clusters (begun by
    :func:`begin_clusters` when it could), with their summary; the work
    :func:`begin_after_score` began, when it did."""
    from clv.pipeline import head_start

    return head_start.take(head_start.task_key("segment", as_of_date, run_id),
                           functools.partial(_segment, as_of_date, run_id))


def _segment(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """The work of :func:`segment`."""
    from clv.data.frames import join_one_to_one
    from clv.decisions.segments import assign_segments, segment_summary
    from clv.pipeline import head_start

    scores = warehouse.read_partition_pandas(SCORES, as_of_date)
    found = head_start.take(_clusters_key(as_of_date, run_id),
                            functools.partial(_clusters, as_of_date))
    # scores, segments and assignments are all sorted by customer_id: column copies
    segments = join_one_to_one(assign_segments(scores), found.assignments, how="left")
    segments = join_one_to_one(
        segments, scores[["customer_id", "clv_model_version", "churn_model_version"]])
    summary = segment_summary(segments, scores)
    docs = _publish_pandas(_stamp(segments, run_id), "customer_segments", SEGMENTS,
                           as_of_date, run_id)
    _publish_pandas(_stamp(summary, run_id), "segment_summary", SEGMENT_SUMMARY, as_of_date,
                    run_id)
    return {"customers": len(segments), "data_docs": docs, "clusters": found.k,
            "segments": segments["segment"].value_counts().sort_index().to_dict(),
            "cluster_sizes": dict(zip(found.profiles["cluster"].astype(int).tolist(),
                                      found.profiles["customers"].astype(int).tolist(),
                                      strict=True))}


def explain(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """Top three SHAP reasons per customer for the spend version that scored the as-of
    date, to ``marts.score_reasons`` (none, with the reason why, when no XGBoost model
    explains it). A task of its own, so scoring, segments and the plan do not wait for
    it: exact TreeSHAP costs more than a prediction, even once per split pattern
    (:mod:`clv.models.treeshap`, ~5 s for 500,000 customers at 10M orders). Past
    :func:`clv.config.max_explain_rows` customers, only those with the highest predicted
    CLV are explained (:func:`clv.models.reasons.customers_to_explain`). The work
    :func:`begin_after_score` began, when it did."""
    from clv.pipeline import head_start

    return head_start.take(head_start.task_key("explain", as_of_date, run_id),
                           functools.partial(_explain, as_of_date, run_id))


def _explain(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """The work of :func:`explain`."""
    from clv.config import CLV_MODEL_NAME, max_explain_rows
    from clv.models import reasons, registry, scoring

    # one run writes a partition: its version and run id are read from one row
    first = warehouse.read_partition_pandas(SCORES, as_of_date,
                                            columns=["clv_model_version", "run_id"],
                                            keep=lambda n: [0])
    clv_version, scores_run = str(first["clv_model_version"].iat[0]), first["run_id"].iat[0]
    scored = warehouse.read_partition_pandas(SCORES, as_of_date,
                                             columns=["customer_id", "predicted_clv"])
    chosen = reasons.customers_to_explain(scored, max_explain_rows())
    n_customers = len(scored)
    del scored
    feats = scoring.model_features(as_of_date)
    if chosen is not None:  # the highest predicted CLVs (CLV_MAX_EXPLAIN_ROWS)
        feats = feats[feats["customer_id"].isin(chosen)].reset_index(drop=True)
        log.info("explaining the %d customers with the highest predicted CLV of %d "
                 "(CLV_MAX_EXPLAIN_ROWS)", len(feats), n_customers)
    champion = registry.load_version(CLV_MODEL_NAME, clv_version)
    frame, explanation = reasons.customer_reasons(feats, champion)
    if frame is None:
        log.warning("marts.score_reasons not published for %s: %s", as_of_date, explanation)
        return {"rows": 0, "explanation": explanation}
    # stamped with the scores' run id: churn_alerts matches reasons to the scores by it
    docs = _publish_pandas(_stamp(frame, scores_run), "score_reasons", REASONS, as_of_date,
                           run_id)
    top = frame[frame["rank"] == 1]["feature"].value_counts().head(3)
    return {"rows": len(frame), "explanation": explanation, "data_docs": docs,
            "customers_explained": len(feats), "customers_scored": n_customers,
            "top_feature_counts": {k: int(v) for k, v in top.items()}}


def churn_alerts(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """Customers newly at churn risk since the previous scores partition
    (:func:`clv.decisions.alerts.churn_alerts`), with their reasons and the plan's action, to
    ``marts.churn_alerts``; the DAG task updates the asset
    :data:`clv.config.CHURN_ALERTS_ASSET_URI`."""
    from clv.decisions import alerts

    current = warehouse.read_partition_pandas(SCORES, as_of_date, columns=[
        "customer_id", "predicted_clv", "p_churn", "clv_model_version", "churn_model_version",
        "run_id"])
    earlier = [d for d in warehouse.list_partitions(SCORES) if d < as_of_date]
    previous = (_partition_or_none(SCORES, earlier[-1], ["customer_id", "p_churn"])
                if earlier else None)
    # only the reasons written with these scores (a run that could not explain leaves none)
    reasons = _partition_or_none(REASONS, as_of_date, ["customer_id", "rank", "description",
                                                       "run_id"])
    if reasons is not None:
        reasons = reasons[reasons["run_id"] == current["run_id"].iat[0]]
    frame = alerts.churn_alerts(
        current, previous, reasons=reasons,
        plan=_partition_or_none(ALLOCATION, as_of_date, ["customer_id", "action"]),
        previous_as_of_date=earlier[-1] if earlier else None)
    docs = _publish_typed(_stamp(frame, run_id), CHURN_ALERTS_SCHEMA, "churn_alerts",
                          CHURN_ALERTS, as_of_date, run_id, compare_count=False)
    return {"alerts": len(frame), "data_docs": docs, "asset": CHURN_ALERTS_ASSET_URI,
            "previous_as_of_date": earlier[-1].isoformat() if earlier else None,
            "by_type": frame["alert_type"].value_counts().sort_index().to_dict(),
            "value_at_risk_total": round(float(frame["value_at_risk"].sum()), 2)}


def backtest_scores(as_of_date: dt.date, run_id: str) -> dict[str, Any]:
    """Back-test every earlier scores partition whose horizon has passed by the as-of
    date (at most the latest :data:`clv.models.backtest.MAX_PARTITIONS`) against the spend in
    ``raw.orders``, to ``marts.score_backtest``; a WARNING and ``alert: true`` when one
    breaks the thresholds of :mod:`clv.models.backtest`."""
    from pyspark.sql import functions as F

    from clv.features import customer_labels, orders_before
    from clv.models import backtest

    orders = orders_before(warehouse.read_table(_spark(), RAW_ORDERS)
                           .drop(warehouse.PARTITION_COLUMN), as_of_date)
    newest = orders.agg(F.max("order_ts")).first()[0]
    horizon = {d: _scored_horizon(d) for d in warehouse.list_partitions(SCORES)
               if d < as_of_date}
    due = [d for d, h in horizon.items() if backtest.is_due(
        d, h, as_of_date, None if newest is None else newest.date())][-backtest.MAX_PARTITIONS:]
    if not due:
        return {"backtested": 0, "alert": False, "alerts": []}
    import pandas as pd

    frames = []
    for d in due:
        scores = warehouse.read_partition_pandas(SCORES, d)
        realised = customer_labels(orders, d, horizon[d]) \
            .select("customer_id", "spend_next").toPandas()
        frames.append(backtest.backtest_scores(scores, realised, d))
    table = pd.concat(frames, ignore_index=True)
    flagged = table[table["alert"]]
    for r in flagged.itertuples():
        log.warning("score back-test: scores of %s (clv_spend v%s): %s", r.scored_as_of_date,
                    r.clv_model_version, r.alert_reason)
    docs = _publish_typed(_stamp(table, run_id), SCORE_BACKTEST_SCHEMA, "score_backtest",
                          SCORE_BACKTEST, as_of_date, run_id, compare_count=False)
    return {"backtested": len(table), "data_docs": docs, "alert": bool(len(flagged)),
            "alerts": [f"{r.scored_as_of_date} v{r.clv_model_version}: {r.alert_reason}"
                       for r in flagged.itertuples()],
            "aggregate_error": {str(r.scored_as_of_date): round(r.aggregate_error, 4)
                                for r in table.itertuples()}}


def _scored_horizon(scored_as_of: dt.date) -> int:
    """The horizon a scores partition predicted over (its horizon_days column)."""
    horizons = warehouse.read_partition_pandas(SCORES, scored_as_of,
                                               columns=["horizon_days"])["horizon_days"]
    return int(horizons.iat[0])
