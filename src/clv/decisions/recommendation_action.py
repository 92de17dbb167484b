"""The recommendation e-mail: an action offered only to customers who have a product list.

When the run has ``marts.recommendations`` (the shop sends order lines), the budget
allocation also offers ``recommendation_email`` (catalogue cost and prior:
:data:`clv.decisions.segments.DEFAULT_ACTIONS`) to every customer with a list, and the
published plan names the products the e-mail carries (the top of the customer's list).
Without lists nothing changes: the action is neither offered nor reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clv.decisions.segments import DEFAULT_ACTIONS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

RECOMMENDATION_ACTION = "recommendation_email"
#: Products named in one e-mail: the first ones of the customer's list.
PRODUCTS_PER_EMAIL = 3
#: The plan's column with those products (comma-separated, rank order).
PRODUCTS_COLUMN = "recommended_products"


def offered(action_costs: dict[str, float], has_lists: bool) -> dict[str, float]:
    """The actions on offer: with lists, the recommendation e-mail joins at its catalogue
    cost, unless the run's ``action_costs`` name it already (then at theirs)."""
    if not has_lists or RECOMMENDATION_ACTION in action_costs:
        return dict(action_costs)
    cost = {a.name: a.cost for a in DEFAULT_ACTIONS}[RECOMMENDATION_ACTION]
    return {**action_costs, RECOMMENDATION_ACTION: cost}


def only_customers_with_a_list(candidates: pd.DataFrame, recommendations: pd.DataFrame
                               ) -> pd.DataFrame:
    """``candidates`` less the recommendation e-mail of customers without a list (an
    e-mail with no product to show is not an option, in any solve)."""
    listed = candidates["customer_id"].isin(set(recommendations["customer_id"]))
    drop = (candidates["action"] == RECOMMENDATION_ACTION) & ~listed
    return candidates[~drop].reset_index(drop=True)


def products_for(plan: pd.DataFrame, recommendations: pd.DataFrame,
                 n: int = PRODUCTS_PER_EMAIL) -> pd.Series:
    """Per plan row: the customer's top ``n`` products, comma-separated in rank order,
    where the plan sends the recommendation e-mail; null on every other row."""
    top = (recommendations[recommendations["rank"] <= n]
           .sort_values(["customer_id", "rank"], kind="mergesort")
           .groupby("customer_id", sort=False)["product_id"].agg(",".join))
    products = plan["customer_id"].map(top)
    return products.where(plan["action"] == RECOMMENDATION_ACTION)
