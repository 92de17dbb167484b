"""The recommendation e-mail is offered only with product lists and carries their top."""

from __future__ import annotations

import pandas as pd

from clv.decisions import recommendation_action as ra

RECS = pd.DataFrame({"customer_id": ["a", "a", "a", "a", "b"],
                     "product_id": ["p2", "p1", "p9", "p4", "p7"],
                     "rank": [2, 1, 4, 3, 1]})


def test_offered_only_with_lists_and_at_the_runs_cost_when_it_names_it():
    base = {"winback_email": 0.5}
    assert ra.offered(base, has_lists=False) == base
    assert ra.offered(base, has_lists=True) == {"winback_email": 0.5,
                                                "recommendation_email": 0.25}
    assert ra.offered({**base, "recommendation_email": 0.4}, True)["recommendation_email"] == 0.4


def test_customers_without_a_list_lose_only_the_recommendation_email():
    cands = pd.DataFrame({"customer_id": ["a", "a", "c", "c"],
                          "action": ["recommendation_email", "winback_email"] * 2})
    kept = ra.only_customers_with_a_list(cands, RECS)
    assert kept.to_dict("records") == [
        {"customer_id": "a", "action": "recommendation_email"},
        {"customer_id": "a", "action": "winback_email"},
        {"customer_id": "c", "action": "winback_email"}]


def test_the_email_carries_the_top_three_in_rank_order_and_nothing_else_does():
    plan = pd.DataFrame({"customer_id": ["a", "b", "c", "a"],
                         "action": ["recommendation_email", "recommendation_email",
                                    "recommendation_email", "none"]})
    products = ra.products_for(plan, RECS).tolist()
    assert products[:2] == ["p1,p2,p4", "p7"]
    assert pd.isna(products[2]) and pd.isna(products[3])  # no list; not this action
