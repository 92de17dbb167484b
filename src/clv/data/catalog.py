"""The table catalogue: every warehouse table's name, key, partitioning and purpose.

Every module, job and DAG names a table through the constants below; nothing else
spells a table name (``tests/test_catalog.py`` checks the code for stray names).
Both warehouse backends (:mod:`clv.data.parquet`, :mod:`clv.data.postgres`) store a
table as one partition per ``as_of_date`` (:data:`PARTITION_COLUMN`); its ``key`` is
unique within a partition and is checked on every write.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Every table is partitioned by this date column; a write replaces one partition.
PARTITION_COLUMN = "as_of_date"

# --------------------------------------------------------------------------- names
# raw: inputs (partitions are load batches); quality: what was refused; features and
# marts: what the pipeline computed as of a date.
RAW_ORDERS = "raw.orders"
REJECTED_ORDERS = "quality.rejected_orders"
FAILED_LOAD_REJECTS = "quality.failed_load_rejects"
QUARANTINED_ORDERS = "quality.quarantined_orders"
FEATURES = "features.customer_features"
EXAMPLES = "features.training_examples"
SCORES = "marts.customer_scores"
SEGMENTS = "marts.customer_segments"
ALLOCATION = "marts.budget_allocation"
MODEL_METRICS = "marts.model_metrics"
CAMPAIGN_RESPONSES = "raw.campaign_responses"
SEGMENT_SUMMARY = "marts.segment_summary"
BUDGET_SUMMARY = "marts.budget_summary"
FRONTIER = "marts.allocation_frontier"
ACTION_EFFECTS = "marts.action_effects"
CAMPAIGN_PLAN = "marts.campaign_plan"
CAMPAIGN_SENDS = "marts.campaign_sends"
CAMPAIGN_OUTCOMES = "marts.campaign_outcomes"
POLICY_EVALUATION = "marts.policy_evaluation"
CONTACT_PREFERENCES = "raw.contact_preferences"
REJECTED_CONTACT_PREFERENCES = "quality.rejected_contact_preferences"
CONTACT_POLICY = "marts.contact_policy"
REASONS = "marts.score_reasons"
CHURN_ALERTS = "marts.churn_alerts"
SCORE_BACKTEST = "marts.score_backtest"
# optional sources (#18): each adds its features and its suite when present
ORDER_LINES = "raw.order_lines"
REJECTED_ORDER_LINES = "quality.rejected_order_lines"
REVIEWS = "raw.reviews"
REJECTED_REVIEWS = "quality.rejected_reviews"
CUSTOMERS = "raw.customers"
REJECTED_CUSTOMERS = "quality.rejected_customers"
EVENTS = "raw.events"
REJECTED_EVENTS = "quality.rejected_events"
RECOMMENDATIONS = "marts.recommendations"


# --------------------------------------------------------------------------- schemas
# Explicit Spark schemas of the tables whose frames may be empty or hold all-null columns.
#: marts.model_metrics (model_alias is null for most rows; sources: the data a version's
#: inputs came from, e.g. "orders,reviews").
MODEL_METRICS_SCHEMA = (
    "model_name string, model_version string, model_alias string, model_family string, "
    "target string, metric string, value double, cutoff_date date, horizon_days int, "
    "n_customers int, run_id string, sources string"
)
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


# --------------------------------------------------------------------------- contracts
# Columns of the input tables, in order: what an import must deliver (clv.ingest) and
# what the synthetic generator writes (clv.data.synthetic).
#: ``raw.orders``; quantity and currency are optional in an import.
ORDER_COLUMNS = ("order_id", "customer_id", "order_ts", "amount", "quantity", "currency")
#: ``raw.campaign_responses``.
RESPONSE_COLUMNS = (
    "customer_id", "campaign_id", "sent_date", "treatment", "action", "converted", "revenue",
)
#: ``raw.contact_preferences``.
PREFERENCE_COLUMNS = ("customer_id", "channel", "opted_out", "updated_at")
#: The ``action`` of a customer who is not contacted: the control arm of a campaign, a
#: plan's unselected customers, an allocation's "do nothing".
NO_ACTION = "none"


class WarehouseError(RuntimeError):
    """A table is missing, unknown or cannot be written."""


@dataclass(frozen=True)
class Table:
    """A warehouse table: its qualified name, primary key within a partition, and purpose."""

    qualified_name: str
    key: tuple[str, ...]
    description: str

    @property
    def schema(self) -> str:
        return self.qualified_name.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.qualified_name.split(".", 1)[1]

    @property
    def partition_column(self) -> str:
        return PARTITION_COLUMN


TABLE_LIST: list[Table] = [
    Table(RAW_ORDERS, ("order_id",),
          "Order history. Partitions are load batches; their union is the history."),
    Table(REJECTED_ORDERS, ("order_id", "rule"),
          "Input rows that were not accepted, with the rule that rejected them."),
    Table(FAILED_LOAD_REJECTS, ("run_id", "order_id", "rule"),
          "Rejected rows of a refused import (too many rejects): nothing of it was "
          "published, and the published batch's quarantine stays in rejected_orders."),
    Table(QUARANTINED_ORDERS, ("order_id",),
          "Rows of a published raw.orders batch taken out of the history by "
          "`clv quarantine-batch` (partition = the batch), with the reason."),
    Table(FEATURES, ("customer_id",),
          "Customer features at the as-of date, from orders strictly before it."),
    Table(EXAMPLES, ("cutoff_date", "customer_id"),
          "Features at earlier cutoffs joined with the labels that followed each cutoff."),
    Table(SCORES, ("customer_id",),
          "Predicted spend and churn probability per customer over the horizon."),
    Table(SEGMENTS, ("customer_id",),
          "Value tier x churn risk segment per customer."),
    Table(ALLOCATION, ("customer_id",),
          "The marketing action chosen per customer (or none) under the budget."),
    Table(MODEL_METRICS, ("model_name", "model_version", "metric", "cutoff_date"),
          "Holdout metrics per model version and baseline, metric and cutoff."),
    Table(CAMPAIGN_RESPONSES, ("campaign_id", "customer_id"),
          "Randomised campaign outcomes (treatment / control). Partitions are load batches."),
    Table(SEGMENT_SUMMARY, ("grouping", "segment"),
          "Per value x risk segment and per behavioural cluster: size, value, churn risk."),
    Table(BUDGET_SUMMARY, ("segment", "action"),
          "The allocation per segment and action: customers, spend, expected increments."),
    Table(FRONTIER, ("clv_weight",),
          "Best plan's short-term revenue vs lifetime value for each weight on CLV."),
    Table(ACTION_EFFECTS, ("action", "cell"),
          "Per action and cell: the expected absolute effects and the evidence behind them."),
    Table(CAMPAIGN_PLAN, ("plan_id", "customer_id"),
          "The plan's selected customers, each treated or held out at random (per action)."),
    Table(CAMPAIGN_SENDS, ("plan_id",),
          "When an operator sent a plan (partition = the plan's as-of date)."),
    Table(CAMPAIGN_OUTCOMES, ("plan_id", "action", "segment", "metric"),
          "Treated vs holdout outcomes of earlier plans, with 95% intervals, vs expected."),
    Table(POLICY_EVALUATION, ("policy", "estimator"),
          "Off-policy (IPS, doubly robust) value of the plan and benchmark policies."),
    Table(CONTACT_PREFERENCES, ("customer_id", "channel", "updated_at"),
          "Opt-outs and opt-ins per customer and channel ('all' = every channel). "
          "Partitions are load batches; the latest row per customer and channel wins."),
    Table(REJECTED_CONTACT_PREFERENCES, ("source", "row"),
          "Contact preference rows that were not accepted, with the rule they broke."),
    Table(CONTACT_POLICY, ("plan_id",),
          "The plan with and without the contact policy: value, spend, and who each rule "
          "(opt-out, frequency cap, min net value) excluded."),
    Table(REASONS, ("customer_id", "rank"),
          "Top three feature contributions (SHAP) to each customer's predicted CLV."),
    Table(CHURN_ALERTS, ("customer_id",),
          "Customers newly at churn risk since the previous scores, by value at risk."),
    Table(SCORE_BACKTEST, ("scored_as_of_date", "clv_model_version"),
          "Earlier scores whose horizon has passed vs the spend realised in it."),
    Table(ORDER_LINES, ("order_id", "line_id"),
          "Order lines (product, category, quantity, unit price); a return or cancellation "
          "is a negative quantity on the order it reverses. Partitions are load batches."),
    Table(REJECTED_ORDER_LINES, ("source", "row"),
          "Order line rows that were not accepted, with the rule they broke and their row."),
    Table(REVIEWS, ("review_id", "order_id"),
          "Reviews: score 1-5, free text, when written. Partitions are load batches."),
    Table(REJECTED_REVIEWS, ("source", "row"),
          "Review rows that were not accepted, with the rule they broke and their row."),
    Table(CUSTOMERS, ("customer_id",),
          "Customer attributes (region, acquisition channel, signup date). Partitions are "
          "load batches; a customer's row in the newest batch wins."),
    Table(REJECTED_CUSTOMERS, ("source", "row"),
          "Customer rows that were not accepted, with the rule they broke and their row."),
    Table(EVENTS, ("customer_id", "event_ts", "event_type", "session_id", "product_id"),
          "Browsing events: view, add_to_cart, purchase. Partitions are load batches."),
    Table(REJECTED_EVENTS, ("source", "row"),
          "Event rows that were not accepted, with the rule they broke and their row."),
    Table(RECOMMENDATIONS, ("customer_id", "rank"),
          "Top 10 products per customer (customer_id, product_id, score, rank, method: als, "
          "or the better baseline when ALS did not beat both on NDCG@10), trained on lines "
          "before the as-of date, recent purchases excluded when the shop asks for it."),
]
#: Qualified name -> table.
TABLES: dict[str, Table] = {t.qualified_name: t for t in TABLE_LIST}


def get_table(name: str) -> Table:
    """Look a table up by its qualified name (``schema.table``)."""
    try:
        return TABLES[name]
    except KeyError:
        raise WarehouseError(
            f"unknown table {name!r}; known tables: {', '.join(sorted(TABLES))}"
        ) from None
