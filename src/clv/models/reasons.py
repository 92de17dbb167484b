"""Why a customer's predicted CLV is what it is: the top three feature contributions.

Contributions are exact TreeSHAP values of an XGBoost spend model (XGBoost's
``pred_contribs``), in the model's margin: the log of spend for the Tweedie
regressor. A customer's prediction is ``exp(bias + sum of contributions)`` (times the
stored balance factor), so ``exp(contribution)`` is the factor by which that feature
moves this customer's prediction away from the average customer's: +0.69 doubles
it, -0.69 halves it. Reasons are ranked by the size of the contribution, either
sign; features contributing exactly 0 are no reason and are left out.

Which model explains (:func:`explaining_model`): the champion when it is XGBoost.
The ZILN network (TensorFlow) has no exact, cheap attribution, so a ZILN champion is
explained by the XGBoost ``challenger`` of ``clv_spend`` when there is one; the
``explanation`` column says so, and ``model_version`` is the explaining version. With
neither, no reasons are published and the step says why.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.config import CLV_MODEL_NAME, PERIOD_DAYS
from clv.features import FEATURE_COLUMNS, SOURCE_INPUTS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

TOP_K = 3
REASON_COLUMNS = ["customer_id", "rank", "feature", "description", "contribution",
                  "feature_value", "model_version", "explanation"]
_RFM_DESCRIPTIONS = {
    "recency_days": "days since last purchase",
    "tenure_days": "days since first purchase",
    "n_orders": "number of orders",
    "n_purchase_days": "number of days with a purchase",
    "frequency": "number of repeat purchase days",
    "total_spend": "total past spend",
    "avg_order_value": "average order value",
    "max_order_value": "largest order value",
    "mean_ipt_days": "average days between purchases",
    "std_ipt_days": "spread of days between purchases",
}
_PERIOD = re.compile(r"(spend|orders)_p(\d+)")
#: Rows explained per TreeSHAP call (bounds the (rows x features) float32 output).
SHAP_CHUNK_ROWS = 500_000


def describe_feature(column: str) -> str:
    """A phrase for a feature column, e.g. ``recency_days`` -> "days since last purchase",
    ``spend_p02`` -> "spend 31-60 days before the as-of date"."""
    if column in _RFM_DESCRIPTIONS:
        return _RFM_DESCRIPTIONS[column]
    if column in _SOURCE_DESCRIPTIONS:
        return _SOURCE_DESCRIPTIONS[column]
    match = _PERIOD.fullmatch(column)
    if match is None:
        raise ValueError(f"no description for feature column {column!r}")
    what = "spend" if match[1] == "spend" else "orders"
    k = int(match[2])
    return f"{what} {PERIOD_DAYS * (k - 1) + 1}-{PERIOD_DAYS * k} days before the as-of date"


#: The optional sources' inputs (clv.features.sources).
_SOURCE_DESCRIPTIONS = {
    "n_reviews": "reviews written", "mean_review_score": "mean review score",
    "share_low_scores": "share of reviews scored 1-2",
    "days_since_low_score": "days since the last review scored 1-2",
    "mean_sentiment": "mean sentiment of review texts",
    "share_sentiment_unknown": "share of review texts whose sentiment is unknown",
    "signup_tenure_days": "days since signup", "sessions_30d": "sessions in the last 30 days",
    "views_30d": "product views in the last 30 days",
    "add_to_cart_30d": "add-to-carts in the last 30 days",
    "cart_abandonment_rate": "share of carts not bought",
}
#: Every model feature's phrase (one home: the feature lists in clv.features).
FEATURE_DESCRIPTIONS: dict[str, str] = {c: describe_feature(c)
                                        for c in [*FEATURE_COLUMNS, *SOURCE_INPUTS]}


def top_reasons(contributions: Any, features: pd.DataFrame, model_version: str,
                explanation: str, k: int = TOP_K, columns: list[str] | None = None
                ) -> pd.DataFrame:
    """The ``k`` largest |contributions| per customer, as rows.

    Args:
        contributions: (n, len(FEATURE_COLUMNS)) per-feature contributions (no bias).
        features: the n customers' ``customer_id`` and feature columns, same row order.
        model_version: the explaining model's version.
        explanation: which model explains and why (e.g. "SHAP of the champion").
        k: reasons per customer at most.
        columns: the explaining model's input columns, in its order (default
            FEATURE_COLUMNS; an XGBoost version trained with an optional source has more).

    Returns:
        REASON_COLUMNS, sorted by customer_id then rank (1 = largest); customers'
        features with a 0 contribution are skipped, so some have fewer than ``k``.
    """
    import pandas as pd

    columns = FEATURE_COLUMNS if columns is None else list(columns)
    contrib = np.asarray(contributions, dtype=float)
    if contrib.shape != (len(features), len(columns)):
        raise ValueError(f"contributions have shape {contrib.shape}; expected "
                         f"({len(features)}, {len(columns)}): one per feature column")
    k = min(k, contrib.shape[1])
    # stable sort of -|c|: equal sizes keep the feature order, so ties are deterministic
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(len(features)), k)
    cols = order.reshape(-1)
    values = features.reindex(columns=columns).to_numpy(dtype=float)
    names = np.array(columns, dtype=object)
    out = pd.DataFrame({
        "customer_id": features["customer_id"].to_numpy()[rows],
        "rank": np.tile(np.arange(1, k + 1), len(features)).astype("int32"),
        "feature": names[cols],
        "description": [FEATURE_DESCRIPTIONS[c] for c in names[cols]],
        "contribution": contrib[rows, cols],
        "feature_value": values[rows, cols],
        "model_version": str(model_version),
        "explanation": explanation,
    })
    out = out[out["contribution"] != 0]
    return out.sort_values(["customer_id", "rank"], kind="mergesort").reset_index(drop=True)


def predicting_trees(model: Any) -> tuple[int, int]:
    """The ``iteration_range`` the model's own ``predict`` uses: up to its best iteration
    when it was early-stopped, else (0, 0), every tree.

    The booster keeps the rounds past the best one (40 with the early stopping of
    :mod:`clv.models.training.fit`) and its ``predict`` uses them all unless told: SHAP
    values taken from it explained a model that was not the one scoring the customers,
    and did not add up to its margin."""
    try:
        best = model.best_iteration  # AttributeError: no early stopping
    except AttributeError:
        return (0, 0)
    return (0, int(best) + 1)


def shap_contributions(model: Any, x: pd.DataFrame) -> np.ndarray:
    """Exact TreeSHAP per customer and feature of an XGBoost model, over the trees its
    ``predict`` uses (:func:`predicting_trees`; bias column dropped): XGBoost's
    ``pred_contribs``, computed once per split pattern of each tree
    (:mod:`clv.models.treeshap`, the same values ~19x sooner) where that applies."""
    import xgboost as xgb

    from clv.models import treeshap

    booster, trees = model.get_booster(), predicting_trees(model)
    splits = treeshap.tree_splits(booster, trees, list(x.columns))
    parts = []
    for s in range(0, max(len(x), 1), SHAP_CHUNK_ROWS):
        chunk = x.iloc[s:s + SHAP_CHUNK_ROWS]
        part = (None if splits is None
                else treeshap.contributions(booster, splits, chunk))
        if part is None:
            part = booster.predict(xgb.DMatrix(chunk), pred_contribs=True,
                                   iteration_range=trees)[:, :-1]
        parts.append(part)
    return np.concatenate(parts)


def explaining_model(champion: Any, settings: Any = None) -> tuple[Any | None, str]:
    """(model whose SHAP explains ``champion``, why), or (None, why not).

    ``champion`` is a :class:`clv.models.registry.ScoringModel` of ``clv_spend``.
    """
    from mlflow.exceptions import MlflowException

    import mlflow
    from clv.models import registry

    if champion.family == "xgboost":
        return champion, f"SHAP of the champion (xgboost v{champion.version})"
    registry.configure_mlflow(settings)
    client = mlflow.MlflowClient()
    try:
        challenger = client.get_model_version_by_alias(CLV_MODEL_NAME, registry.CHALLENGER)
    except MlflowException:
        challenger = None
    if challenger is not None and registry.model_family(
            client, CLV_MODEL_NAME, challenger.version) == "xgboost":
        model = registry.load_version(CLV_MODEL_NAME, str(challenger.version), settings)
        return model, (f"SHAP of the xgboost challenger v{model.version}: the champion "
                       f"v{champion.version} is {champion.family}, which has no exact "
                       "tree attribution")
    # No xgboost challenger (e.g. the rule refused it on level): the newest xgboost
    # version of the same target still says which features drive a customer's spend.
    newest = max((int(v.version) for v in client.search_model_versions(
        f"name='{CLV_MODEL_NAME}'") if (v.tags or {}).get("model_family") == "xgboost"),
        default=None)
    if newest is not None:
        model = registry.load_version(CLV_MODEL_NAME, str(newest), settings)
        return model, (f"SHAP of the newest xgboost version v{newest} (no alias): the "
                       f"champion v{champion.version} is {champion.family}, which has no "
                       "exact tree attribution")
    return None, (f"no reasons: the champion v{champion.version} is {champion.family} "
                  "(no exact tree attribution) and no xgboost version is registered")


def customers_to_explain(scores: pd.DataFrame, limit: int) -> pd.Series | None:
    """The customer_ids to explain when ``scores`` (customer_id, predicted_clv) hold more
    than ``limit`` customers: the ``limit`` highest predicted CLVs (ties by customer_id),
    in the scores' row order; None when every customer is explained (``limit`` 0 or not
    exceeded).

    Chosen around the ``limit``-th largest value (``np.partition``), not by sorting every
    customer: 0.05 s instead of 3.6 s for 2.57M at 10M orders. A missing prediction (the
    suite refuses them) ranks last."""
    if not limit or len(scores) <= limit:
        return None
    clv = scores["predicted_clv"].to_numpy(dtype=float)
    clv = np.where(np.isnan(clv), -np.inf, clv)
    cutoff = np.partition(clv, len(clv) - limit)[len(clv) - limit]  # the limit-th largest
    chosen = clv > cutoff
    tied = np.flatnonzero(clv == cutoff)  # enough of them to make up the limit
    ids = scores["customer_id"].to_numpy()[tied]
    chosen[tied[np.argsort(ids, kind="stable")[:limit - int(chosen.sum())]]] = True
    return scores["customer_id"][chosen].reset_index(drop=True)


def customer_reasons(features: pd.DataFrame, champion: Any, settings: Any = None
                     ) -> tuple[pd.DataFrame | None, str]:
    """Top reasons for every customer in ``features`` (customer_id + FEATURE_COLUMNS),
    explaining ``champion``; (None, why) when no XGBoost model can explain it."""
    model, explanation = explaining_model(champion, settings)
    if model is None:
        return None, explanation
    columns = model.input_columns() or FEATURE_COLUMNS
    x = features.reindex(columns=columns).astype("float32")  # the version's own inputs
    contrib = shap_contributions(model.model, x)
    return top_reasons(contrib, features, model.version, explanation, columns=columns), \
        explanation
