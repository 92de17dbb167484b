"""Product recommendations: implicit-feedback ALS against two baselines, out of time.

What :func:`fit_recommender` does with ``raw.order_lines`` rows and a cutoff:

* **training window**: lines with ``order_ts < cutoff``. The implicit feedback of a
  (customer, product) pair is its *net* quantity (returns and cancellations are negative
  lines, netted here like everywhere else); pairs with a net quantity <= 0 are no signal.
* **models**, each scoring every training customer against the training catalogue:
  ``als`` (Spark MLlib ALS, ``implicitPrefs=True``: confidence ``1 + alpha * quantity``);
  ``popularity`` (net quantity sold in the training window, the same list for everyone);
  ``co_purchase`` (item-to-item: the sum, over the distinct products a customer bought,
  of their cosine co-purchase similarity to the candidate, each product keeping its
  :attr:`AlsParams.neighbours` nearest; a product is its own nearest, so repeat
  purchases count as they do for ALS; ties broken by popularity).
* **exclusion** (optional, ``exclude_recent_days=N``): products the customer bought in
  the N days before the cutoff are never recommended, by any method.
* **evaluation window**: ``cutoff <= order_ts < cutoff + horizon_days``; a product is
  relevant to a customer when its net quantity there is > 0. Customers scored are the
  training customers with at least one relevant product; per customer
  ``precision@k = hits / k``, ``recall@k = hits / relevant``, ``NDCG@k = DCG / IDCG``
  with gain ``1 / log2(rank + 1)`` and IDCG over ``min(relevant, k)`` hits, averaged over
  customers; ``coverage`` = distinct products recommended to anyone / products in the
  training catalogue.
* **champion rule** (:func:`decide_champion`): ALS becomes ``champion`` of
  :data:`RECOMMEND_MODEL_NAME` only if its NDCG@k beats *both* baselines' by more than
  :data:`clv.models.registry.PROMOTION_MARGIN` on this window; otherwise the champion stays
  and the published list is the better baseline's (the ``method`` column says which),
  so the shop never gets recommendations that lost to a baseline.

Nothing here writes to the warehouse; :func:`register_recommender` logs the run and
registers the ALS factors in MLflow.
"""


from clv.models.recommend.evaluation import (
    champion_rule,
    decide_champion,
    evaluate_top_k,
    ideal_dcg,
)
from clv.models.recommend.fit import (
    _ts,
    co_purchase_similarity,
    fit_recommender,
    net_pairs,
    recommend,
)
from clv.models.recommend.register import (
    register_recommender,
)
from clv.models.recommend.spec import (
    BASELINES,
    METHODS,
    MODEL_FAMILY,
    PRIMARY_METRIC,
    RECOMMEND_MODEL_NAME,
    RECOMMENDATION_SCHEMA,
    SCORE_BLOCK,
    AlsFactors,
    AlsParams,
    RecommenderRun,
)

__all__ = [
    "AlsFactors",
    "AlsParams",
    "BASELINES",
    "METHODS",
    "MODEL_FAMILY",
    "PRIMARY_METRIC",
    "RECOMMENDATION_SCHEMA",
    "RECOMMEND_MODEL_NAME",
    "RecommenderRun",
    "SCORE_BLOCK",
    "_ts",
    "champion_rule",
    "co_purchase_similarity",
    "decide_champion",
    "evaluate_top_k",
    "fit_recommender",
    "ideal_dcg",
    "net_pairs",
    "recommend",
    "register_recommender",
]
