"""The pipeline's steps, one function per DAG task.

Each step takes plain values (dates, numbers, the run id), reads its inputs from
the warehouse or the registry, calls the domain functions, writes its outputs, and
returns a small JSON-serialisable summary (what goes to XCom). The DAG file only
wires them.

Submodules:

* ``tables``: the table names and declared schemas the steps read and write.
* ``publishing``: the Spark session, reading tables into pandas, validate-then-publish.
* ``params``: the DAG's params, checked (the trigger form's schema).
* ``ingest_tasks``: the as-of date and the raw orders' validation.
* ``features_tasks``: features and training examples, and their checks.
* ``train_tasks``: train a model family, evaluate the candidates.
* ``score_tasks``: scores, segments, reasons, churn alerts, score back-tests.
* ``effect_inputs``: covariates and campaign evidence for the action effects.
* ``decide_tasks``: the budget allocation step and what it publishes and logs.
* ``loop_tasks``: the closed loop: campaign plan, sends, outcomes, policy value.
* ``recommend_tasks``: top products per customer from the order lines (when present).
* ``catalog_tasks``: the analysts' catalog and the run's summary.
* ``task_process``: whether Airflow runs the task in a process of its own.
* ``head_start``: under ``airflow dags test``, a later task's Spark work begun early.
"""

from clv.pipeline.catalog_tasks import (
    publish_catalog,
    run_summary,
)
from clv.pipeline.decide_tasks import (
    AllocationParams,
    allocate,
)
from clv.pipeline.effect_inputs import (
    MAX_OWN_CAMPAIGNS,
    _measured_effects,
    _with_covariates_at,
    effects_ahead,
)
from clv.pipeline.features_tasks import (
    build_features,
    validate_features,
)
from clv.pipeline.ingest_tasks import (
    StaleDataError,
    resolve_as_of_date,
    validate_raw,
)
from clv.pipeline.loop_tasks import (
    evaluate_plan_policy,
    mark_plan_sent,
    measure_outcomes,
    publish_campaign_plan,
)
from clv.pipeline.publishing import (
    SPARK_STEPS,
    _campaign_responses,
)
from clv.pipeline.recommend_tasks import recommend
from clv.pipeline.score_tasks import (
    backtest_scores,
    begin_after_score,
    begin_clusters,
    churn_alerts,
    explain,
    score,
    segment,
)
from clv.pipeline.tables import (
    ACTION_EFFECTS,
    ALLOCATION,
    BUDGET_SUMMARY,
    CAMPAIGN_OUTCOMES,
    CAMPAIGN_PLAN,
    CAMPAIGN_RESPONSES,
    CAMPAIGN_SENDS,
    CHURN_ALERTS,
    CHURN_ALERTS_SCHEMA,
    CONTACT_POLICY,
    CONTACT_PREFERENCES,
    EXAMPLES,
    FEATURES,
    FRONTIER,
    MODEL_METRICS,
    MODEL_METRICS_SCHEMA,
    OUTPUT_TABLES,
    POLICY_EVALUATION,
    RAW_ORDERS,
    REASONS,
    SCORE_BACKTEST,
    SCORE_BACKTEST_SCHEMA,
    SCORES,
    SEGMENT_SUMMARY,
    SEGMENTS,
)
from clv.pipeline.train_tasks import (
    begin_fits,
    begin_ziln_fit,
    evaluate,
    start_ziln_process,
    train,
    ziln_fit_dropped_on_error,
)

__all__ = [
    "ACTION_EFFECTS",
    "ALLOCATION",
    "AllocationParams",
    "BUDGET_SUMMARY",
    "CAMPAIGN_OUTCOMES",
    "CAMPAIGN_PLAN",
    "CAMPAIGN_RESPONSES",
    "CAMPAIGN_SENDS",
    "CHURN_ALERTS",
    "CHURN_ALERTS_SCHEMA",
    "CONTACT_POLICY",
    "CONTACT_PREFERENCES",
    "EXAMPLES",
    "FEATURES",
    "FRONTIER",
    "MAX_OWN_CAMPAIGNS",
    "MODEL_METRICS",
    "MODEL_METRICS_SCHEMA",
    "OUTPUT_TABLES",
    "POLICY_EVALUATION",
    "RAW_ORDERS",
    "REASONS",
    "SCORES",
    "SCORE_BACKTEST",
    "SCORE_BACKTEST_SCHEMA",
    "SEGMENTS",
    "SEGMENT_SUMMARY",
    "SPARK_STEPS",
    "StaleDataError",
    "allocate",
    "backtest_scores",
    "begin_after_score",
    "begin_clusters",
    "begin_fits",
    "begin_ziln_fit",
    "recommend",
    "build_features",
    "churn_alerts",
    "effects_ahead",
    "evaluate",
    "evaluate_plan_policy",
    "explain",
    "mark_plan_sent",
    "measure_outcomes",
    "publish_campaign_plan",
    "publish_catalog",
    "resolve_as_of_date",
    "run_summary",
    "score",
    "segment",
    "start_ziln_process",
    "train",
    "validate_features",
    "validate_raw",
    "ziln_fit_dropped_on_error",
    "_campaign_responses",
    "_measured_effects",
    "_with_covariates_at",
]
