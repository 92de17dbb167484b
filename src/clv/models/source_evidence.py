"""Does a source help the churn model? Out-of-time churn ROC AUC with and without it.

The churn model is :mod:`clv.training`'s (an XGBoost classifier with its
``XGB_PARAMS`` and seeded early-stopping split), trained at the ``train`` cutoff of
:func:`clv.features.backtest_cutoffs` and judged at the later ``eval`` cutoff;
churn = no purchase in the horizon after the cutoff. Every variant is trained on
the same customers and labels: only the feature columns differ.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

from clv.features import backtest_cutoffs, training_examples
from clv.features.sources import add_source_features, model_matrix
from clv.models import metrics

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from clv.data.synthetic.sources import SourceTables

#: The feature sets compared: none (orders only), each source alone, all together.
VARIANTS = {"orders": [], "reviews": ["reviews"], "customers": ["customers"],
            "events": ["events"], "all": ["reviews", "customers", "events"]}


def examples_with_sources(orders: DataFrame, cutoff: dt.date, horizon_days: int,
                          split: str, sources: dict[str, DataFrame]) -> pd.DataFrame:
    """:func:`clv.features.training_examples` with every source's features, as pandas."""
    base = training_examples(orders, cutoff, horizon_days, split)
    joined, _ = add_source_features(base, cutoff, **sources)
    return joined.toPandas().sort_values("customer_id", ignore_index=True)


def churn_auc(learn: pd.DataFrame, evaluate: pd.DataFrame, sources: list[str]) -> float:
    """ROC AUC at the eval cutoff of a churn classifier fitted on ``learn`` with ``sources``."""
    import xgboost as xgb

    from clv.models.training.fit import XGB_PARAMS, _fit

    x_learn, vocab = model_matrix(learn, sources)
    x_eval, _ = model_matrix(evaluate, sources, vocab)
    model = xgb.XGBClassifier(objective="binary:logistic", eval_metric="logloss",
                              n_jobs=2, **XGB_PARAMS)
    _fit(model, x_learn, learn["churned"].to_numpy())
    prob = model.predict_proba(x_eval)[:, 1]
    return metrics.roc_auc(evaluate["churned"].to_numpy(), prob)


def source_frames(spark: SparkSession, tables: SourceTables) -> dict[str, DataFrame]:
    """The tables as Spark frames: orders plus the three sources (review sentiment
    scored once and cached, since both cutoffs read it)."""
    from clv.features.sentiment import review_sentiment

    frames = {name: spark.createDataFrame(getattr(tables, name))
              for name in ("orders", "reviews", "customers", "events")}
    frames["sentiment"] = review_sentiment(frames["reviews"]).cache()
    return frames


def churn_auc_by_variant(spark: SparkSession, tables: SourceTables, as_of_date: dt.date,
                         horizon_days: int, variants: dict[str, list[str]] | None = None
                         ) -> dict[str, float]:
    """Churn ROC AUC of each feature set in ``variants`` (default :data:`VARIANTS`)."""
    variants = variants or VARIANTS
    frames = source_frames(spark, tables)
    sources = {k: frames[k] for k in ("reviews", "customers", "events", "sentiment")}
    cut = backtest_cutoffs(as_of_date, horizon_days)
    learn = examples_with_sources(frames["orders"], cut["train"], horizon_days, "train", sources)
    evaluate = examples_with_sources(frames["orders"], cut["eval"], horizon_days, "eval", sources)
    frames["sentiment"].unpersist()
    return {name: churn_auc(learn, evaluate, used) for name, used in variants.items()}


def summarise(results: list[dict[str, float]]) -> pd.DataFrame:
    """Per variant over seeds: mean AUC, mean and std of the gain over orders only."""
    table = pd.DataFrame(results)
    gains = table.sub(table["orders"], axis=0)
    return pd.DataFrame({"auc_mean": table.mean(), "gain_mean": gains.mean(),
                         "gain_std": gains.std(ddof=1), "gain_min": gains.min(),
                         "gain_max": gains.max()}).round(4)


__all__ = ["VARIANTS", "churn_auc", "churn_auc_by_variant", "examples_with_sources",
           "source_frames", "summarise"]
