"""What comes back from the field: campaign responses (``raw.campaign_responses``) and
the CRM's contact preferences (``raw.contact_preferences``), each checked before it is
published. The contracts live here: :data:`RESPONSE_COLUMNS`, :data:`COVARIATE_COLUMNS`
(re-exported by :mod:`clv.decisions.uplift`) and the preference rules of
:func:`split_preferences` (re-exported by :mod:`clv.decisions.contact_policy`).

numpy and pandas are imported inside the functions, so importing ``clv.ingest`` stays cheap.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from clv.data import warehouse
from clv.data.catalog import (
    CAMPAIGN_RESPONSES,
    CONTACT_PREFERENCES,
    PREFERENCE_COLUMNS,
    REJECTED_CONTACT_PREFERENCES,
    RESPONSE_COLUMNS,
)
from clv.ingest.files import IngestError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import SparkSession


# --------------------------------------------------------------------------- campaigns

#: Optional pre-treatment covariates of a campaign's customers (see clv.decisions.effects): kept
#: when a campaign file has them (an external experiment must: the shop's features do
#: not describe its customers).
COVARIATE_COLUMNS = ("recency_months", "history", "newbie")


def load_campaign_responses(
    spark: SparkSession, responses, run_id: str, as_of_date: dt.date | None = None
) -> dict[str, object]:
    """Validate a campaign's responses (suite ``campaign_responses``) and publish them.

    The batch lands in the ``raw.campaign_responses`` partition ``as_of_date``
    (default: the day after the newest ``sent_date``). A batch that breaks the
    suite is refused whole, with a message naming each failed rule, its column and
    sample rows; nothing is published.

    Args:
        spark: The Spark session.
        responses: pandas frame in the contract (:data:`RESPONSE_COLUMNS`).
        run_id: Stamped on every row.
        as_of_date: The batch's partition.

    Returns:
        as_of_date, rows, campaigns, and rows per (campaign, arm).
    """
    import pandas as pd

    from clv import quality

    missing = [c for c in RESPONSE_COLUMNS if c not in responses.columns]
    if missing:
        raise IngestError(f"{CAMPAIGN_RESPONSES}: required column(s) {missing} not found; "
                          f"the input has {list(responses.columns)}")
    # The optional pre-treatment covariates travel with the rows (clv.decisions.effects learns from
    # them); a file without them gets them as nulls so every batch has one schema.
    frame = responses.loc[:, list(RESPONSE_COLUMNS)].copy()
    for column in COVARIATE_COLUMNS:
        frame[column] = (pd.to_numeric(responses[column], errors="raise").astype(float)
                         if column in responses.columns else float("nan"))
    # Spark 4 refuses Parquet nanosecond timestamps: dates are dates.
    frame["sent_date"] = pd.to_datetime(frame["sent_date"]).dt.date
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["run_id"] = run_id
    if as_of_date is None:
        as_of_date = max(frame["sent_date"]) + dt.timedelta(days=1)
    df = spark.createDataFrame(frame)
    quality.assert_valid(df, "campaign_responses", CAMPAIGN_RESPONSES,
                         ["campaign_id", "customer_id"], run_name=run_id)
    warehouse.write_partition(df, CAMPAIGN_RESPONSES, as_of_date)
    arms = frame.groupby(["campaign_id", "action", "treatment"]).size()
    return {"table": CAMPAIGN_RESPONSES, "as_of_date": as_of_date.isoformat(),
            "rows": len(frame), "campaigns": sorted(frame["campaign_id"].unique().tolist()),
            "arms": {f"{c}/{a}/{'treated' if t else 'control'}": int(n)
                     for (c, a, t), n in arms.items()}}


# --------------------------------------------------------------------------- contact preferences

_PREFERENCE_SCHEMA = ("customer_id string, channel string, opted_out boolean, "
                      "updated_at timestamp, source string, run_id string")
_REJECTED_PREFERENCE_SCHEMA = ("row long, customer_id string, channel string, opted_out string, "
                               "updated_at string, rule string, source string, run_id string")

#: ``raw.contact_preferences``: one row per (customer_id, channel, updated_at).
#: Spellings of opted_out accepted by the import (case-insensitive).
_TRUE = frozenset({"1", "true", "t", "yes", "y", "opted_out", "opt_out", "unsubscribed"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "opted_in", "opt_in", "subscribed"})


def _opted_out(value) -> bool | None:
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower() if value is not None else ""
    return True if text in _TRUE else False if text in _FALSE else None


def split_preferences(frame: pd.DataFrame, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Valid preference rows and the rejected ones (with the rule each broke).

    Rules: ``customer_id`` present; ``channel`` present (lower-cased, trimmed);
    ``opted_out`` one of true/false, 1/0, yes/no, opted_out/opted_in (any case);
    ``updated_at`` a date or timestamp.

    Args:
        frame: The file's rows, with :data:`PREFERENCE_COLUMNS`.
        source: The file's name, for messages.

    Returns:
        (valid: customer_id str, channel str, opted_out bool, updated_at datetime64[us];
        rejected: the raw values as text plus ``row`` (1-based data row of the file),
        ``rule`` and ``source``).

    Raises:
        ValueError: a required column is missing (naming the file and the columns).
    """
    import numpy as np
    import pandas as pd

    missing = [c for c in PREFERENCE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: raw.contact_preferences needs column(s) {missing}; "
                         f"the file has {list(frame.columns)}")
    raw = frame.loc[:, list(PREFERENCE_COLUMNS)].reset_index(drop=True)
    customer = raw["customer_id"].astype("string").str.strip()
    channel = raw["channel"].astype("string").str.strip().str.lower()
    opted = raw["opted_out"].map(_opted_out)
    updated = pd.to_datetime(raw["updated_at"], errors="coerce", format="mixed")
    rule = pd.Series("", index=raw.index, dtype=object)
    checks = (("customer_id_missing", customer.isna() | (customer == "")),
              ("channel_missing", channel.isna() | (channel == "")),
              ("opted_out_not_boolean", opted.isna()),
              ("updated_at_not_a_date", updated.isna()))
    for name, broken in reversed(checks):  # the first rule broken is the one reported
        rule[broken.fillna(True).to_numpy(bool)] = name
    ok = (rule == "").to_numpy()
    valid = pd.DataFrame({"customer_id": customer[ok].astype(str).to_numpy(),
                          "channel": channel[ok].astype(str).to_numpy(),
                          "opted_out": opted[ok].astype(bool).to_numpy(),
                          "updated_at": updated[ok].astype("datetime64[us]").to_numpy()})
    rejected = raw[~ok].astype("string").astype(object).where(raw[~ok].notna(), None)
    rejected = rejected.assign(row=np.flatnonzero(~ok) + 1, rule=rule[~ok].to_numpy(),
                               source=source).reset_index(drop=True)
    return valid, rejected


def load_contact_preferences(
    spark: SparkSession, frame, source: str, run_id: str, as_of_date: dt.date | None = None
) -> dict[str, object]:
    """Import a CRM's suppression list / preference export into ``raw.contact_preferences``.

    Rows that break a rule (:func:`split_preferences`: customer or channel missing,
    ``opted_out`` not a yes/no, ``updated_at`` not a date) go to
    ``quality.rejected_contact_preferences`` with the rule, the file and the row number;
    the rest is checked by the ``contact_preferences`` suite and published. Both land in
    the partition ``as_of_date`` (default: the newest ``updated_at``'s date), replacing
    an earlier load of the same batch. Rejected rows are counted by rule in the result
    (the CLI prints them): an opt-out that could not be read must be fixed and reloaded,
    never silently lost.

    Args:
        spark: The Spark session.
        frame: pandas frame with ``customer_id, channel, opted_out, updated_at``.
        source: The file's name (in messages and on every row).
        run_id: Stamped on every row.
        as_of_date: The batch's partition.

    Returns:
        table, as_of_date, rows, accepted, rejected, rejected per rule, opted_out rows.
    """
    import pandas as pd

    from clv import quality

    try:
        valid, rejected = split_preferences(frame, source)
    except ValueError as exc:
        raise IngestError(str(exc)) from None
    if valid.empty:
        raise IngestError(f"{source}: no valid row for {CONTACT_PREFERENCES} "
                          f"({len(rejected)} rejected: "
                          f"{rejected['rule'].value_counts().to_dict()})")
    if as_of_date is None:
        as_of_date = valid["updated_at"].max().date()
    valid = valid.assign(source=source, run_id=run_id)
    df = spark.createDataFrame(valid, schema=_PREFERENCE_SCHEMA)
    quality.assert_valid(df, "contact_preferences", CONTACT_PREFERENCES,
                         ["customer_id", "channel", "updated_at"], run_name=run_id)
    # Quarantine first, then the batch: a failed publish leaves the old batch's record whole.
    rejected_out = rejected.assign(run_id=run_id)[
        ["row", "customer_id", "channel", "opted_out", "updated_at", "rule", "source",
         "run_id"]].astype({"row": "int64"})
    warehouse.write_partition(spark.createDataFrame(
        rejected_out if len(rejected_out) else pd.DataFrame(columns=rejected_out.columns),
        schema=_REJECTED_PREFERENCE_SCHEMA), REJECTED_CONTACT_PREFERENCES, as_of_date)
    warehouse.write_partition(df, CONTACT_PREFERENCES, as_of_date)
    return {"table": CONTACT_PREFERENCES, "source": source,
            "as_of_date": as_of_date.isoformat(), "rows": len(frame), "accepted": len(valid),
            "rejected": len(rejected), "opted_out": int(valid["opted_out"].sum()),
            "rejected_by_rule": rejected["rule"].value_counts().sort_index().to_dict()}
