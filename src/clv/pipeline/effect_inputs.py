"""What the decide step reads for the action effects: the shop's covariates and the
randomised campaigns that measured each action (the shop's own pooled, else an external one)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from clv.data import warehouse
from clv.pipeline.publishing import _campaign_responses, _spark
from clv.pipeline.tables import FEATURES, RAW_ORDERS

log = logging.getLogger(__name__)


def _shop_covariates(as_of_date: dt.date, customers) -> Any:
    """The effect covariates (:func:`clv.decisions.effects.effect_covariates`) of the scored
    customers, from the as-of date's features."""
    from clv.decisions import effects
    from clv.features import period_columns

    feats = warehouse.read_partition_pandas(
        FEATURES, as_of_date, columns=["customer_id", "recency_days", "tenure_days",
                                       *[c for c in period_columns() if c.startswith("spend_")]])
    covariates = effects.effect_covariates(feats)
    missing = set(customers) - set(covariates["customer_id"])
    if missing:
        raise ValueError(f"{FEATURES} as_of_date={as_of_date}: {len(missing)} scored customers "
                         f"have no features (e.g. {sorted(missing)[:3]})")
    return covariates


#: The shop's own campaigns of one action pooled for its effect fit (newest first): the
#: evidence grows with every measured plan, the feature jobs at their send dates do not
#: grow without bound.
MAX_OWN_CAMPAIGNS = 6


def _measured_effects(as_of_date: dt.date, actions: list[str], shop_customers: set,
                      ahead: tuple[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Per action, its effect fitted on the randomised campaigns sent before the as-of date
    that tested it: the shop's own campaigns pooled (each with its customers' covariates
    at its send date), else the latest external one; none: the action keeps its prior.

    ``ahead``: :func:`effects_ahead` of the same as-of date and customers, fitted before
    (a head start): taken when the campaign responses are still those it was fitted on."""
    responses = _campaign_responses()
    if responses is None:
        return {}
    if ahead is not None and ahead[0] == _responses_digest(responses):
        log.info("action effects fitted ahead on the same campaign responses: %s",
                 sorted(a for a in actions if a in ahead[1]))
        return {a: ahead[1][a] for a in actions if a in ahead[1]}
    return _fit_effects(responses, as_of_date, actions, shop_customers)


def _fit_effects(responses, as_of_date: dt.date, actions: list[str], shop_customers: set
                 ) -> dict[str, Any]:
    import pandas as pd

    from clv.decisions import effects

    known = responses[pd.to_datetime(responses["sent_date"]) < pd.Timestamp(as_of_date)]
    measured = {}
    for action in actions:
        evidence = _campaign_evidence(known, action, shop_customers)
        if evidence is None:
            continue
        rows, label, source = evidence
        measured[action] = effects.fit_action_effect(rows, action, label, source)
        log.info("effect of %s from %s (%s): %s, held-out Qini %s", action, label, source,
                 measured[action].method,
                 {k: round(v, 4) for k, v in measured[action].qini.items()})
    return measured


def effects_ahead(as_of_date: dt.date) -> tuple[str, dict[str, Any]] | None:
    """:func:`_measured_effects` of every action a campaign tested, for the as-of date's
    customers (the features'), with the digest of the responses they were fitted on;
    None when no campaign was loaded. Under ``airflow dags test`` the allocate task takes
    it from the head-start thread (:func:`clv.pipeline.train_tasks.begin_fits`); when
    measure_outcomes has appended responses since, allocate fits them again."""
    responses = _campaign_responses()
    if responses is None:
        return None
    customers = set(_shop_covariates(as_of_date, [])["customer_id"])
    actions = sorted(responses.loc[responses["treatment"] == 1, "action"].dropna().unique())
    return (_responses_digest(responses),
            _fit_effects(responses, as_of_date, actions, customers))


def effects_key(as_of_date: dt.date, run_id: str) -> tuple:
    """The head-start key of :func:`effects_ahead` for one run."""
    return ("action effects", as_of_date.isoformat(), run_id)


def _responses_digest(responses) -> str:
    import hashlib

    import pandas as pd

    values = pd.util.hash_pandas_object(responses, index=False).to_numpy()
    return hashlib.blake2b(values.tobytes(), digest_size=16).hexdigest()


def _campaign_evidence(known, action: str, shop_customers: set):
    """(rows with covariates, campaign label, source) for one action, or None."""
    import pandas as pd

    from clv.decisions import effects
    from clv.decisions.uplift import COVARIATE_COLUMNS

    tested = known[(known["action"] == action) & (known["treatment"] == 1)]
    if tested.empty:
        return None
    campaigns = (tested.groupby("campaign_id")["sent_date"].max().reset_index()
                 .sort_values(["sent_date", "campaign_id"], ascending=False))
    own, external = [], []
    for campaign in campaigns.itertuples(index=False):
        rows = known[(known["campaign_id"] == campaign.campaign_id)
                     & ((known["action"] == action) | (known["treatment"] == 0))]
        share = rows["customer_id"].isin(shop_customers).mean()
        (own if share >= effects.OWN_CAMPAIGN_MIN_SHARE else external).append(
            (campaign, rows))
    if own:
        own = own[:MAX_OWN_CAMPAIGNS]
        rows = pd.concat([_with_covariates_at(r, c.sent_date) for c, r in own],
                         ignore_index=True)
        label = str(own[0][0].campaign_id) + (f" (+{len(own) - 1} earlier)"
                                              if len(own) > 1 else "")
        return rows, label, effects.OWN
    campaign, rows = external[0]
    if not set(COVARIATE_COLUMNS) <= set(rows.columns) or \
            rows[list(COVARIATE_COLUMNS)].isna().any().any():
        log.warning("campaign %s tested %s on another population without the covariates "
                    "%s: the action keeps its prior", campaign.campaign_id, action,
                    list(COVARIATE_COLUMNS))
        return None
    return rows, str(campaign.campaign_id), effects.EXTERNAL


def _with_covariates_at(rows, sent_date) -> Any:
    """A campaign over the shop's customers, with their covariates as of the send date
    (point in time: from the orders before it, like the CLV features)."""
    import pandas as pd

    from clv import features
    from clv.decisions import effects
    from clv.decisions.uplift import COVARIATE_COLUMNS

    spark = _spark()
    orders = warehouse.read_table(spark, RAW_ORDERS).drop(warehouse.PARTITION_COLUMN)
    day = pd.Timestamp(sent_date).date()
    feats = features.customer_features(orders, day).select(
        "customer_id", "recency_days", "tenure_days",
        *[c for c in features.period_columns() if c.startswith("spend_")])
    with warehouse.spark_frame(spark, rows[["customer_id"]].drop_duplicates()) as ids:
        local = feats.join(ids, "customer_id").toPandas()
    covariates = effects.effect_covariates(local)
    rows = rows.drop(columns=[c for c in COVARIATE_COLUMNS if c in rows.columns])
    # A customer with no order before the send date has no history: recency unknown
    # (the oldest Hillstrom value), no spend, new.
    out = rows.merge(covariates, on="customer_id", how="left")
    return out.fillna({"recency_months": 12.0, "history": 0.0, "newbie": 1.0})
