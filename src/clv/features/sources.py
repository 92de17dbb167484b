"""Point-in-time customer features from the optional sources: reviews, customers, events.

Same time rule as :mod:`clv.features`: at a ``cutoff`` date (midnight UTC) only
rows strictly before it are read (``created_at`` / ``event_ts`` < cutoff,
``signup_date`` < cutoff); tested on hand-made rows on both sides of it.
Missing values follow :mod:`clv.features`: a count is 0 when the customer has no
row in the source, a mean / rate / elapsed time is null (XGBoost's missing).

reviews (``created_at < cutoff``)
    n_reviews, mean_review_score, share_low_scores (score <= 2),
    days_since_low_score (cutoff - date of the last low score; null with none),
    mean_sentiment (mean of :mod:`clv.features.sentiment`'s scored reviews; null with none),
    share_sentiment_unknown (share of reviews with no sentiment: no text, an
    unsupported or undetermined language).
customers (rows with ``signup_date < cutoff``)
    region, acquisition_channel (kept as text in the feature table; the model
    one-hot encodes them with :func:`encode_attributes`), signup_tenure_days
    (cutoff - signup_date; named apart from the orders' ``tenure_days``).
events (``cutoff - 30 days <= event_ts < cutoff`` unless said otherwise)
    sessions_30d (distinct sessions with an event in the window: ``session_id``,
    or, where it is null, a new session after 30 minutes without an event),
    views_30d, add_to_cart_30d, cart_abandonment_rate: of the add_to_cart events
    in the window at least 24 h before the cutoff (later ones cannot be judged
    yet), the share with no ``purchase`` event of the same customer in the same
    session or within 24 h after it (any product: carts are judged as baskets);
    null with no cart to judge.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

from clv.features.columns import (
    CATEGORICAL,
    EVENT_FEATURES,
    SOURCE_FEATURES,
)
from clv.features.columns import CUSTOMER_FEATURES as CUSTOMER_FEATURES  # the lists live there
from clv.features.columns import REVIEW_FEATURES as REVIEW_FEATURES
from clv.features.orders import _ts

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

#: Columns each source's features start from (and zero-fill for absent customers).
_ZERO_FILLED = {"n_reviews": 0, "sessions_30d": 0, "views_30d": 0, "add_to_cart_30d": 0}
LOW_SCORE = 2
EVENT_WINDOW_DAYS = 30
SESSION_GAP_MINUTES = 30
CART_WINDOW_HOURS = 24


def review_features(reviews: DataFrame, cutoff: dt.date,
                    sentiment: DataFrame | None = None) -> DataFrame:
    """:data:`REVIEW_FEATURES` per customer with a review before ``cutoff``.

    Args:
        reviews: raw.reviews (review_id, order_id, customer_id, score, text, created_at).
        sentiment: :func:`clv.features.sentiment.review_sentiment` of these reviews when already
            computed (it is per review, so it can be kept and reused); scored here if None.
    """
    from pyspark.sql import functions as F

    from clv.features.sentiment import review_sentiment

    past = reviews.where(F.col("created_at") < _ts(cutoff))
    if sentiment is None:
        sentiment = review_sentiment(past)
    past = past.join(sentiment.select("review_id", "sentiment"), "review_id", "left")
    low = F.col("score") <= LOW_SCORE
    return past.groupBy("customer_id").agg(
        F.count("*").cast("int").alias("n_reviews"),
        F.avg("score").alias("mean_review_score"),
        F.avg(low.cast("double")).alias("share_low_scores"),
        F.datediff(F.lit(cutoff).cast("date"),
                   F.max(F.when(low, F.to_date("created_at")))).alias("days_since_low_score"),
        F.avg("sentiment").alias("mean_sentiment"),
        F.avg(F.col("sentiment").isNull().cast("double")).alias("share_sentiment_unknown"),
    )


def customer_attribute_features(customers: DataFrame, cutoff: dt.date) -> DataFrame:
    """:data:`CUSTOMER_FEATURES` of the customers who signed up before ``cutoff``."""
    from pyspark.sql import functions as F

    cut = F.lit(cutoff).cast("date")
    return customers.where(F.col("signup_date") < cut).select(
        "customer_id", "region", "acquisition_channel",
        F.datediff(cut, "signup_date").alias("signup_tenure_days"))


def _sessions(window: DataFrame) -> DataFrame:
    """``window`` with ``session_key``: ``session_id``, or for rows without one a session
    per customer that a gap of more than :data:`SESSION_GAP_MINUTES` closes."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    no_id = F.col("session_id").isNull()
    by_time = Window.partitionBy("customer_id", no_id).orderBy("event_ts")
    us = F.unix_micros("event_ts")
    opens = (F.lag(us).over(by_time).isNull()
             | (us - F.lag(us).over(by_time) > SESSION_GAP_MINUTES * 60_000_000)).cast("int")
    seq = F.sum("_opens").over(by_time.rowsBetween(Window.unboundedPreceding, 0))
    return window.withColumn("_opens", opens).withColumn(
        "session_key", F.when(no_id, F.concat(F.lit("~gap"), seq.cast("string")))
        .otherwise(F.col("session_id"))).drop("_opens")


def event_features(events: DataFrame, cutoff: dt.date) -> DataFrame:
    """:data:`EVENT_FEATURES` per customer with an event in the 30 days before ``cutoff``."""
    from pyspark.sql import functions as F

    start = _ts(cutoff - dt.timedelta(days=EVENT_WINDOW_DAYS))
    window = _sessions(events.where((F.col("event_ts") >= start)
                                    & (F.col("event_ts") < _ts(cutoff))))
    counts = window.groupBy("customer_id").agg(
        F.countDistinct("session_key").cast("int").alias("sessions_30d"),
        F.sum((F.col("event_type") == "view").cast("int")).alias("views_30d"),
        F.sum((F.col("event_type") == "add_to_cart").cast("int")).alias("add_to_cart_30d"))
    judged = F.col("event_ts") < _ts(cutoff) - F.expr(f"INTERVAL {CART_WINDOW_HOURS} HOURS")
    carts = window.where((F.col("event_type") == "add_to_cart") & judged).select(
        F.monotonically_increasing_id().alias("cart"), "customer_id",
        F.col("event_ts").alias("cart_ts"), F.col("session_key").alias("cart_session"))
    buys = window.where(F.col("event_type") == "purchase").select(
        "customer_id", F.col("event_ts").alias("buy_ts"), F.col("session_key").alias("buy_session"))
    follows = (F.col("buy_ts") >= F.col("cart_ts")) & (
        (F.col("buy_session") == F.col("cart_session"))
        | (F.col("buy_ts") <= F.col("cart_ts") + F.expr(f"INTERVAL {CART_WINDOW_HOURS} HOURS")))
    judged_carts = carts.join(buys, (carts.customer_id == buys.customer_id) & follows, "left") \
        .groupBy("cart", carts.customer_id).agg(F.count("buy_ts").alias("_buys"))
    abandonment = judged_carts.groupBy("customer_id").agg(
        F.avg((F.col("_buys") == 0).cast("double")).alias("cart_abandonment_rate"))
    return counts.join(abandonment, "customer_id", "left").select("customer_id", *EVENT_FEATURES)


def add_source_features(
    features: DataFrame,
    cutoff: dt.date,
    reviews: DataFrame | None = None,
    customers: DataFrame | None = None,
    events: DataFrame | None = None,
    sentiment: DataFrame | None = None,
) -> tuple[DataFrame, list[str]]:
    """``features`` (one row per customer, e.g. :func:`clv.features.customer_features`)
    with the columns of every source given, left-joined by ``customer_id``.

    Returns:
        The joined frame (same rows as ``features``; counts 0 and the rest null for a
        customer the source does not mention) and the names of the sources used, in
        :data:`SOURCE_FEATURES` order.
    """
    built = {
        "reviews": None if reviews is None else review_features(reviews, cutoff, sentiment),
        "customers": None if customers is None else customer_attribute_features(customers,
                                                                                 cutoff),
        "events": None if events is None else event_features(events, cutoff),
    }
    out, used = features, []
    for name, frame in built.items():
        if frame is None:
            continue
        out = out.join(frame, "customer_id", "left")
        used.append(name)
    fill = {c: v for c, v in _ZERO_FILLED.items() if c in out.columns}
    return (out.fillna(fill) if fill else out), used


def source_columns(sources: list[str]) -> list[str]:
    """The feature-table columns the given sources add, in order."""
    unknown = sorted(set(sources) - set(SOURCE_FEATURES))
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; known {list(SOURCE_FEATURES)}")
    return [c for name in SOURCE_FEATURES if name in sources for c in SOURCE_FEATURES[name]]


#: One-hot vocabulary limits: a level needs this share of the learning rows, at most
#: this many levels per attribute; the rest share "<attribute>=other".
MIN_LEVEL_SHARE = 0.01
MAX_LEVELS = 30


def attribute_vocabulary(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Levels of each of :data:`CATEGORICAL` worth a column, from the learning rows
    (kept with the model so the scoring rows are encoded the same way)."""
    vocab = {}
    for col in CATEGORICAL:
        share = frame[col].value_counts(normalize=True, dropna=True)
        vocab[col] = sorted(share[share >= MIN_LEVEL_SHARE].index[:MAX_LEVELS].astype(str))
    return vocab


def encode_attributes(frame: pd.DataFrame, vocabulary: dict[str, list[str]]) -> pd.DataFrame:
    """One-hot columns ``<attribute>=<level>`` (and ``=other``); a null is all zeros."""
    cols = {}
    for col, levels in vocabulary.items():
        values = frame[col].astype(object)
        for level in levels:
            cols[f"{col}={level}"] = (values == level).astype("float64").to_numpy()
        cols[f"{col}=other"] = (values.notna() & ~values.isin(levels)).astype("float64").to_numpy()
    return pd.DataFrame(cols, index=frame.index)


def model_matrix(frame: pd.DataFrame, sources: list[str],
                 vocabulary: dict[str, list[str]] | None = None
                 ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The churn/CLV model input with the sources' features: :data:`clv.features.FEATURE_COLUMNS`,
    the sources' numeric columns, and the attributes one-hot encoded.

    Returns:
        (float64 matrix, NaN = missing; the vocabulary used, fitted on ``frame`` when None).
    """
    from clv.features.columns import FEATURE_COLUMNS

    numeric = [c for c in source_columns(sources) if c not in CATEGORICAL]
    parts = [frame[FEATURE_COLUMNS + numeric].astype("float64")]
    if "customers" in sources:
        vocabulary = vocabulary if vocabulary is not None else attribute_vocabulary(frame)
        parts.append(encode_attributes(frame, vocabulary))
    return pd.concat(parts, axis=1), (vocabulary or {})
