"""The warehouse tables the pipeline reads and writes, and the schemas it declares.

One place for the names until the table catalogue takes them over.
"""

from __future__ import annotations

RAW_ORDERS = "raw.orders"
FEATURES = "features.customer_features"
EXAMPLES = "features.training_examples"
SCORES = "marts.customer_scores"
SEGMENTS = "marts.customer_segments"
ALLOCATION = "marts.budget_allocation"
MODEL_METRICS = "marts.model_metrics"
#: Explicit schema of marts.model_metrics (model_alias is null for most rows).
MODEL_METRICS_SCHEMA = (
    "model_name string, model_version string, model_alias string, model_family string, "
    "target string, metric string, value double, cutoff_date date, horizon_days int, "
    "n_customers int, run_id string"
)
SEGMENT_SUMMARY = "marts.segment_summary"
BUDGET_SUMMARY = "marts.budget_summary"
FRONTIER = "marts.allocation_frontier"
CAMPAIGN_RESPONSES = "raw.campaign_responses"
ACTION_EFFECTS = "marts.action_effects"
# The closed loop (#16): plans with their holdout, sends, measured outcomes, policy value.
CAMPAIGN_PLAN = "marts.campaign_plan"
CAMPAIGN_SENDS = "marts.campaign_sends"
CAMPAIGN_OUTCOMES = "marts.campaign_outcomes"
POLICY_EVALUATION = "marts.policy_evaluation"
# The contact policy (#19): opt-outs in, what the policy excluded and cost out.
CONTACT_PREFERENCES = "raw.contact_preferences"
CONTACT_POLICY = "marts.contact_policy"
REASONS = "marts.score_reasons"
CHURN_ALERTS = "marts.churn_alerts"
SCORE_BACKTEST = "marts.score_backtest"
OUTPUT_TABLES = [RAW_ORDERS, FEATURES, MODEL_METRICS, SCORES, SEGMENTS, SEGMENT_SUMMARY,
                 ACTION_EFFECTS, ALLOCATION, BUDGET_SUMMARY, FRONTIER, CAMPAIGN_PLAN,
                 CAMPAIGN_OUTCOMES, POLICY_EVALUATION, CONTACT_POLICY, REASONS, CHURN_ALERTS,
                 SCORE_BACKTEST]

#: Explicit Spark schemas of the tables whose frames may be empty or hold all-null columns.
CHURN_ALERTS_SCHEMA = (
    "customer_id string, alert_type string, p_churn double, previous_p_churn double, "
    "predicted_clv double, value_at_risk double, reason_1 string, reason_2 string, "
    "reason_3 string, suggested_action string, previous_as_of_date date, "
    "clv_model_version string, churn_model_version string, run_id string"
)
SCORE_BACKTEST_SCHEMA = (
    "scored_as_of_date date, clv_model_version string, horizon_days int, window_end date, "
    "n_customers int, n_buyers int, normalized_gini double, aggregate_error double, "
    "decile_mape double, interval_coverage_80 double, predicted_total double, "
    "realised_total double, alert boolean, alert_reason string, run_id string"
)
