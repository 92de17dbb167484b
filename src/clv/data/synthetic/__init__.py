"""Synthetic customers, orders and campaigns with known truth.

* ``orders``: BG/NBD purchases and Gamma-Gamma spend per customer (optionally seasonal,
  with returns), a randomised campaign in the responses contract, and Spark frames of
  any size generated on the executors;
* ``effects``: campaigns whose per-customer effects on revenue and retention are known;
* ``hashing``: the counter-based random numbers both use, so the same seed gives
  identical rows whatever the partitioning.
"""

from clv.data.catalog import NO_ACTION, ORDER_COLUMNS, RESPONSE_COLUMNS
from clv.data.synthetic.effects import (
    EFFECT_ACTIONS,
    expected_outcomes,
    past_year_spend,
    randomised_campaign_responses,
    sample_customer_features,
    simulate_campaign_outcomes,
    true_effects,
)
from clv.data.synthetic.hashing import (
    customer_keys,
    uniforms,
)
from clv.data.synthetic.orders import (
    DAYS_PER_WEEK,
    RETURN_FULL_SHARE,
    RETURN_MAX_DELAY_DAYS,
    RETURN_PARTIAL_RANGE,
    CampaignSpec,
    SyntheticSpec,
    _epoch_us,
    calendar_days,
    customer_latents,
    customers_for_orders,
    expected_orders_per_customer,
    operational_days,
    orders_frame,
    responses_frame,
    rft_summary,
    simulate_orders,
    simulate_responses,
    with_returns,
)

__all__ = [
    "CampaignSpec",
    "DAYS_PER_WEEK",
    "EFFECT_ACTIONS",
    "NO_ACTION",
    "ORDER_COLUMNS",
    "RESPONSE_COLUMNS",
    "RETURN_FULL_SHARE",
    "RETURN_MAX_DELAY_DAYS",
    "RETURN_PARTIAL_RANGE",
    "SyntheticSpec",
    "_epoch_us",
    "calendar_days",
    "customer_keys",
    "customer_latents",
    "customers_for_orders",
    "expected_orders_per_customer",
    "expected_outcomes",
    "operational_days",
    "orders_frame",
    "past_year_spend",
    "randomised_campaign_responses",
    "responses_frame",
    "rft_summary",
    "sample_customer_features",
    "simulate_campaign_outcomes",
    "simulate_orders",
    "simulate_responses",
    "true_effects",
    "uniforms",
    "with_returns",
]
