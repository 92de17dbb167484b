"""Contact policy: who may be contacted, through which channel, and how often.

Every plan honours three rules before the allocator sees a candidate (customer,
action), in this order (the first that applies is the one reported):

1. ``opted_out``: the customer's latest ``raw.contact_preferences`` row for the
   action's channel, or for the channel ``all``, on or before the as-of date says
   ``opted_out``, or an opt-out was recorded after it (a backfilled plan can still be
   sent today: the suppression list always wins). A suppressed customer is never
   treated and, since a holdout is drawn only among selected customers, never held
   out either.
2. ``frequency_cap``: the customer was *treated* through the action's channel less
   than ``min_days_between`` days before the as-of date, or already
   ``max_per_window`` times in the ``window_days`` before it. The contact history is
   ``marts.campaign_plan``'s treated rows of plans made *before* the as-of date (a
   backfill sees only the plans before it), each dated by its send
   (``marts.campaign_sends``) or, unsent, by its plan date. Held-out customers were
   not contacted and do not count.
3. ``min_net_value``: the candidate's expected net value at the run's lambda
   (``lambda x incr_clv + (1 - lambda) x incr_revenue - cost``) is below the
   threshold. It depends on lambda, so :mod:`clv.decisions.allocation` applies it per solve.

The policy's cost is reported, not hidden: the pipeline solves the same run with and
without the policy and publishes both (``marts.contact_policy``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clv.config import DEFAULT_CONTACT_MIN_DAYS
from clv.data.frames import repeated

# The preference rules belong to the import (clv.ingest.feedback); re-exported here.
from clv.ingest import PREFERENCE_COLUMNS, split_preferences

__all__ = [
    "ALL_CHANNELS",
    "PREFERENCE_COLUMNS",
    "RULES",
    "ContactPolicy",
    "channel_of",
    "contact_history",
    "excluded_by",
    "split_preferences",
    "suppressed",
]

#: A preference for this channel applies to every channel.
ALL_CHANNELS = "all"
#: The channel of an action that neither the catalogue nor ``action_channels`` names:
#: e-mail, the channel most opt-outs are about (the conservative choice).
DEFAULT_CHANNEL = "email"
#: The rules, in the order they are checked ("" = eligible).
RULES = ("opted_out", "frequency_cap", "min_net_value")


@dataclass(frozen=True)
class ContactPolicy:
    """Frequency caps and the net-value threshold (the trigger form's params).

    Attributes:
        min_days_between: At least this many days between two treatments of a customer
            through one channel (``contact_min_days``; 0 = no gap rule).
        max_per_window: At most this many treatments of a customer through one channel
            in ``window_days`` (``contact_max_per_window``; None = no count rule).
        window_days: The window of ``max_per_window`` (the run's horizon by default).
        min_net_value: An action is taken only when its expected net value per customer
            reaches this (None = any positive value; see :mod:`clv.decisions.allocation`).
    """

    min_days_between: int = DEFAULT_CONTACT_MIN_DAYS
    max_per_window: int | None = None
    window_days: int = 180
    min_net_value: float | None = None

    def __post_init__(self) -> None:
        if self.min_days_between < 0:
            raise ValueError(f"contact_min_days must be >= 0, got {self.min_days_between}")
        if self.max_per_window is not None and self.max_per_window < 1:
            raise ValueError(f"contact_max_per_window must be >= 1 (or null for no limit), "
                             f"got {self.max_per_window}")
        if self.window_days < 1:
            raise ValueError(f"the contact window must be >= 1 day, got {self.window_days}")
        if self.min_net_value is not None and not np.isfinite(self.min_net_value):
            raise ValueError(f"min_net_value must be finite, got {self.min_net_value}")


def channel_of(action: str, overrides: Mapping[str, str] | None = None) -> str:
    """The channel an action contacts a customer through: ``overrides`` (the
    ``action_channels`` param), else the catalogue's, else :data:`DEFAULT_CHANNEL`."""
    from clv.decisions.segments import DEFAULT_ACTIONS

    if overrides and action in overrides:
        return str(overrides[action])
    known = {a.name: a.channel for a in DEFAULT_ACTIONS}
    return known.get(action, DEFAULT_CHANNEL)


# --------------------------------------------------------------------------- preferences


def suppressed(preferences: pd.DataFrame | None, as_of_date: dt.date) -> pd.DataFrame:
    """customer_id, channel of every opt-out that applies to a plan for ``as_of_date``.

    The latest row per (customer, channel) with ``updated_at`` on or before the as-of
    date decides (an opt-in after an opt-out lifts it; a tie resolves to opted out).
    An opt-out recorded *after* the as-of date applies as well: a backfilled plan can
    still be sent today, and the suppression list always wins (an opt-in after the
    as-of date does not lift an opt-out in force on it). A channel ``all`` row is
    returned as it is: :func:`excluded_by` applies it to every channel.
    """
    if preferences is None or preferences.empty:
        return pd.DataFrame({"customer_id": pd.Series(dtype=str),
                             "channel": pd.Series(dtype=str)})
    end = pd.Timestamp(as_of_date) + pd.Timedelta(days=1)
    preferences = preferences.assign(updated_at=_naive(preferences["updated_at"]))
    later = preferences["updated_at"] >= end
    known = preferences[~later]
    latest = (known.sort_values(["customer_id", "channel", "updated_at", "opted_out"],
                                kind="mergesort")
              .drop_duplicates(["customer_id", "channel"], keep="last"))
    out = pd.concat([latest.loc[latest["opted_out"].astype(bool)],
                     preferences[later & preferences["opted_out"].astype(bool)]])
    out = out[["customer_id", "channel"]].astype({"customer_id": str, "channel": str})
    return out.drop_duplicates().sort_values(["customer_id", "channel"]).reset_index(drop=True)


def _naive(values: pd.Series) -> pd.Series:
    """Timestamps without a time zone (the warehouse hands them back in UTC)."""
    out = pd.to_datetime(values, format="mixed")
    return out.dt.tz_convert("UTC").dt.tz_localize(None) if out.dt.tz is not None else out


# --------------------------------------------------------------------------- history


def contact_history(campaign_plan: pd.DataFrame | None, sends: pd.DataFrame | None,
                    as_of_date: dt.date,
                    channels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """customer_id, channel, contact_date of every treatment before ``as_of_date``.

    Args:
        campaign_plan: ``marts.campaign_plan`` rows of any plans (``plan_id``,
            ``customer_id``, ``action``, ``assignment``, and the partition column
            ``as_of_date``); plans made on or after ``as_of_date`` are ignored.
        sends: ``marts.campaign_sends`` (plan_id, sent_date), or None.
        as_of_date: The run's as-of date.
        channels: ``action_channels`` overrides for :func:`channel_of`.
    """
    from clv.decisions.closed_loop import TREATED, plan_date

    empty = pd.DataFrame({"customer_id": pd.Series(dtype=str),
                          "channel": pd.Series(dtype=str),
                          "contact_date": pd.Series(dtype="datetime64[us]")})
    if campaign_plan is None or campaign_plan.empty:
        return empty
    plans = campaign_plan[campaign_plan["assignment"] == TREATED]
    dates = {p: plan_date(p) for p in pd.unique(plans["plan_id"])}
    earlier = [p for p, d in dates.items() if d < as_of_date]
    plans = plans[plans["plan_id"].isin(earlier)]
    if plans.empty:
        return empty
    sent = {} if sends is None or sends.empty else dict(
        zip(sends["plan_id"], pd.to_datetime(sends["sent_date"]).dt.date, strict=True))
    when = {p: sent.get(p, dates[p]) for p in earlier}
    actions = pd.unique(plans["action"])
    channel = {a: channel_of(a, channels) for a in actions}
    return pd.DataFrame({
        "customer_id": plans["customer_id"].astype(str).to_numpy(),
        "channel": plans["action"].map(channel).to_numpy(),
        "contact_date": pd.to_datetime(plans["plan_id"].map(when)).astype(
            "datetime64[us]").to_numpy(),
    })


# --------------------------------------------------------------------------- rules


def excluded_by(candidates: pd.DataFrame, as_of_date: dt.date, policy: ContactPolicy,
                opt_outs: pd.DataFrame, history: pd.DataFrame,
                channels: Mapping[str, str] | None = None) -> np.ndarray:
    """Per candidate row: the contact rule that excludes it, or "" when eligible.

    Only ``opted_out`` and ``frequency_cap`` are decided here; ``min_net_value`` depends
    on lambda and is applied by the allocator.

    Args:
        candidates: customer_id, action (any order; the result follows it).
        as_of_date: The run's as-of date (the new contact's date).
        policy: The caps.
        opt_outs: :func:`suppressed`'s frame.
        history: :func:`contact_history`'s frame.
        channels: ``action_channels`` overrides.
    """
    ids = candidates["customer_id"].astype(str).to_numpy()
    actions = candidates["action"].to_numpy()
    action_names = pd.unique(actions)
    channel_of_action = {a: channel_of(a, channels) for a in action_names}
    # (customer, channel) as one integer over the candidates' customers and channels:
    # hashing 3M strings per lookup (a MultiIndex isin) took 34 s at 300,000 candidates.
    code, uniques = pd.factorize(ids)
    code, customers = code.astype(np.int64), pd.Index(uniques)
    names = pd.Index(sorted(set(channel_of_action.values())))
    action_channel = names.get_indexer([channel_of_action[a] for a in action_names])
    chan = action_channel[pd.Index(action_names).get_indexer(actions)].astype(np.int64)
    keys = code * len(names) + chan

    def keys_of(frame: pd.DataFrame) -> np.ndarray:
        """The keys of (customer_id, channel) rows; -1 where either is not a candidate's."""
        c = customers.get_indexer(frame["customer_id"].astype(str).to_numpy())
        k = names.get_indexer(frame["channel"].astype(str).to_numpy())
        return np.where((c >= 0) & (k >= 0), c.astype(np.int64) * len(names) + k, -1)

    rule = repeated("", len(candidates))  # one shared "", not one string per candidate
    if len(history):
        day = pd.Timestamp(as_of_date)
        # An earlier plan sent after this date (its send recorded later) is as close a
        # contact as one sent before it: the distance counts, not its sign.
        hist = pd.DataFrame({
            "key": keys_of(history),
            "age": (day - _naive(history["contact_date"])).dt.days.abs().to_numpy()})
        hist = hist[hist["key"] >= 0]
        capped = pd.Series(False, index=pd.unique(hist["key"]))
        if policy.min_days_between > 0:
            last = hist.groupby("key")["age"].min().reindex(capped.index)
            capped |= last < policy.min_days_between
        if policy.max_per_window is not None:
            count = hist[hist["age"] <= policy.window_days].groupby("key").size()
            capped |= count.reindex(capped.index, fill_value=0) >= policy.max_per_window
        rule[np.isin(keys, capped.index[capped.to_numpy()].to_numpy())] = "frequency_cap"

    if len(opt_outs):
        everywhere = opt_outs.loc[opt_outs["channel"] == ALL_CHANNELS, "customer_id"]
        gone = customers.get_indexer(everywhere.astype(str).to_numpy())
        out = np.isin(keys, keys_of(opt_outs)) | np.isin(code, gone[gone >= 0])
        rule[out] = "opted_out"  # checked first: it wins over a cap
    return rule
