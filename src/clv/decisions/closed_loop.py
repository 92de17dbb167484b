"""The closed loop: every plan keeps a randomised holdout, later runs measure what it returned.

1. :func:`assign_holdout` turns an allocation plan into ``marts.campaign_plan`` rows:
   per action, a seeded random share of the customers the plan selected is held out
   (planned, not contacted). The draw is a hash of (seed, plan_id, customer_id), so the
   same plan and seed give the same assignment whatever the row order. The number held
   out per action is fixed (``ceil(share x selected)``: complete randomisation), so the
   propensity ``P(treated | selected)`` is known exactly.
2. Only treated customers are contacted and cost money. The allocator is therefore
   given ``budget / (1 - holdout_share)`` (:func:`allocation_budget`); with one cost
   per action and the holdout rounded up, the treated spend is at most
   ``(1 - share) x selected spend <= budget``. Where costs vary within an action,
   :func:`trim_to_budget` drops whole selected customers in a seeded random order
   (independent of the arm, so the arms stay comparable) until the treated spend fits.
3. :func:`measure_outcomes` joins the orders after each plan's send date: per plan,
   action and segment (``"all"``, plus each segment where both arms hold at least
   ``MIN_ARM_SIZE``), treated vs holdout conversion and revenue in the response window
   and activity over the horizon, with 95% Welch intervals, against the expected
   increment of the treated. Activity measured before the horizon has passed is
   ``status = 'partial'``. Per customer, the responses in the ``raw.campaign_responses``
   contract (``campaign_id = <plan_id>:<action>``) feed the next effect fit.
4. :func:`evaluate_policy` estimates a policy's value from randomised data with
   known propensities: inverse propensity scoring (IPS) and doubly robust (DR, with a
   per segment x action mean outcome model), with 95% analytic intervals.

Pure pandas / numpy: the pipeline step (``clv.pipeline.measure_outcomes``) reads and
writes the warehouse.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from clv.config import DEFAULT_HOLDOUT_SHARE, PERIOD_DAYS
from clv.data.catalog import NO_ACTION, RESPONSE_COLUMNS
from clv.data.synthetic.hashing import customer_keys, uniforms

TREATED, HOLDOUT = "treated", "holdout"
#: Segment label of a measurement over every customer of a plan's action.
ALL_SEGMENTS = "all"
#: Fewest customers per arm (treated and holdout) for a segment's own measurement;
#: with a 10% holdout a 30-customer holdout arm means ~300 selected in the segment.
MIN_ARM_SIZE = 30
#: ``marts.campaign_plan`` columns, in order.
PLAN_COLUMNS = ("plan_id", "customer_id", "segment", "action", "assignment", "propensity",
                "cost", "incr_revenue", "incr_retention", "incr_clv", "uplift_source",
                "effect_method")
#: ``marts.campaign_outcomes`` columns, in order.
OUTCOME_COLUMNS = ("plan_id", "plan_date", "sent_date", "action", "segment", "metric",
                   "status", "window_end", "n_treated", "n_holdout", "treated_mean",
                   "holdout_mean", "effect", "effect_low", "effect_high", "expected_effect",
                   "realised_to_expected", "incremental_total", "treated_cost")
_S_HOLDOUT, _S_TRIM = 50, 51
_Z95 = float(norm.ppf(0.975))


def plan_id_for(as_of_date: dt.date) -> str:
    """The plan id of a run's allocation: one plan per as-of date."""
    return f"plan-{as_of_date.isoformat()}"


def plan_date(plan_id: str) -> dt.date:
    """The as-of date of a plan id made by :func:`plan_id_for`."""
    if not plan_id.startswith("plan-"):
        raise ValueError(f"plan_id {plan_id!r} is not of the form plan-YYYY-MM-DD")
    return dt.date.fromisoformat(plan_id[len("plan-"):])


def allocation_budget(budget: float, holdout_share: float = DEFAULT_HOLDOUT_SHARE) -> float:
    """What the allocator may plan so that the treated part spends at most ``budget``."""
    if not 0 <= holdout_share < 1:
        raise ValueError(f"holdout_share must lie in [0, 1), got {holdout_share}")
    return float(budget) / (1.0 - holdout_share)


def _hash_uniform(customer_id: pd.Series, plan_id: str, seed: int, stream: int) -> np.ndarray:
    """Uniform(0, 1) per customer from (seed, plan_id, customer_id): row order never matters."""
    plan_key = int(customer_keys(np.array([plan_id]))[0])
    return uniforms(seed ^ plan_key, stream, customer_keys(customer_id))


def assign_holdout(plan: pd.DataFrame, plan_id: str,
                   holdout_share: float = DEFAULT_HOLDOUT_SHARE,
                   seed: int = 0) -> pd.DataFrame:
    """``marts.campaign_plan`` rows: the plan's selected customers, treated or held out.

    Per action, the ``ceil(holdout_share x n)`` selected customers with the smallest
    hash uniform are held out; ``propensity`` = treated / selected of that action.

    Args:
        plan: One row per customer: customer_id, segment, action ("none" = not
            selected), cost, incr_revenue, incr_retention, incr_clv, uplift_source,
            effect_method.
        plan_id: Identifies the plan (and seeds the draw with ``seed``).
        holdout_share: Share of each action's selected customers held out, in [0, 1).

    Returns:
        ``PLAN_COLUMNS``, one row per selected customer, sorted by action, customer_id.
    """
    missing = [c for c in PLAN_COLUMNS[1:] if c not in plan.columns
               and c not in ("assignment", "propensity")]
    if missing:
        raise ValueError(f"plan: missing column(s) {missing}")
    if plan["customer_id"].duplicated().any():
        raise ValueError("plan: customer_id must be unique (one action per customer)")
    allocation_budget(1.0, holdout_share)  # checks the share
    selected = plan[plan["action"] != NO_ACTION].copy()
    selected["_u"] = _hash_uniform(selected["customer_id"], plan_id, seed, _S_HOLDOUT)
    # rank within action by the hash (customer_id breaks ties): independent of row order
    selected = selected.sort_values(["action", "_u", "customer_id"], kind="mergesort")
    rank = selected.groupby("action").cumcount().to_numpy()
    size = selected.groupby("action")["customer_id"].transform("size").to_numpy()
    n_holdout = np.ceil(holdout_share * size - 1e-9)
    selected["assignment"] = np.where(rank < n_holdout, HOLDOUT, TREATED)
    selected["propensity"] = (size - n_holdout) / size
    selected["plan_id"] = plan_id
    return (selected.loc[:, list(PLAN_COLUMNS)]
            .sort_values(["action", "customer_id"], kind="mergesort").reset_index(drop=True))


def treated_spend(campaign_plan: pd.DataFrame) -> float:
    """What a campaign plan costs: only treated customers are contacted."""
    return math.fsum(campaign_plan.loc[campaign_plan["assignment"] == TREATED, "cost"])


def trim_to_budget(campaign_plan: pd.DataFrame, budget: float, seed: int = 0) -> pd.DataFrame:
    """Drop whole selected customers, in a seeded random order that ignores the arm,
    until the treated spend is at most ``budget``; propensities are recomputed.

    Dropping at random (not by value) keeps treated and holdout exchangeable.
    """
    if treated_spend(campaign_plan) <= budget + 1e-9:
        return campaign_plan
    frame = campaign_plan.copy()
    frame["_u"] = _hash_uniform(frame["customer_id"], str(frame["plan_id"].iat[0]), seed,
                                _S_TRIM)
    frame = frame.sort_values(["_u", "customer_id"], kind="mergesort")
    spend = np.where(frame["assignment"] == TREATED, frame["cost"], 0.0)
    # keep the longest suffix (in drop order) whose treated spend fits
    kept_spend = np.cumsum(spend[::-1])[::-1]
    first_kept = int(np.argmax(kept_spend <= budget + 1e-9)) if (
        kept_spend <= budget + 1e-9).any() else len(frame)
    frame = frame.iloc[first_kept:].drop(columns="_u")
    treated = (frame["assignment"] == TREATED).groupby(frame["action"]).transform("mean")
    frame["propensity"] = treated.to_numpy(float)
    return frame.sort_values(["action", "customer_id"], kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------- outcomes

@dataclass(frozen=True)
class MeasuredOutcomes:
    """What :func:`measure_outcomes` found.

    Attributes:
        outcomes: ``OUTCOME_COLUMNS`` (``marts.campaign_outcomes``).
        responses: Per customer, the ``raw.campaign_responses`` contract.
        customers: Per plan and customer: assignment, converted, revenue, active.
    """

    outcomes: pd.DataFrame
    responses: pd.DataFrame
    customers: pd.DataFrame


def send_dates(campaign_plan: pd.DataFrame, sends: pd.DataFrame | None) -> pd.DataFrame:
    """plan_id, plan_date, sent_date per plan: the operator's send date, else the plan's date.

    A send date before the plan's as-of date is refused (the plan did not exist yet).
    """
    plans = pd.DataFrame({"plan_id": pd.unique(campaign_plan["plan_id"])})
    plans["plan_date"] = [plan_date(p) for p in plans["plan_id"]]
    plans["sent_date"] = plans["plan_date"]
    if sends is not None and not sends.empty:
        given = sends.drop_duplicates("plan_id", keep="last").set_index("plan_id")["sent_date"]
        known = plans["plan_id"].isin(given.index)
        plans.loc[known, "sent_date"] = [pd.Timestamp(d).date()
                                         for d in given.loc[plans.loc[known, "plan_id"]]]
    early = plans[plans["sent_date"] < plans["plan_date"]]
    if not early.empty:
        raise ValueError(f"marts.campaign_sends: sent_date before the plan's as-of date for "
                         f"{early[['plan_id', 'sent_date']].to_dict('records')}")
    return plans


def customer_outcomes(campaign_plan: pd.DataFrame, orders: pd.DataFrame, plans: pd.DataFrame,
                      as_of_date: dt.date, horizon_days: int,
                      response_days: int = PERIOD_DAYS) -> pd.DataFrame:
    """Per plan customer: ``converted`` / ``revenue`` (orders in [sent, sent + response_days))
    and ``active`` (an order in [sent, min(sent + horizon, as_of_date))).

    Only orders strictly before ``as_of_date`` are used (point in time).
    """
    missing = [c for c in ("customer_id", "order_ts", "amount") if c not in orders.columns]
    if missing:
        raise ValueError(f"raw.orders: missing column(s) {missing}")
    cust = campaign_plan.merge(plans, on="plan_id", validate="many_to_one")
    sent = pd.to_datetime(cust["sent_date"])
    cust["_sent"] = sent
    cust["_resp_end"] = sent + pd.Timedelta(days=response_days)
    cust["_hor_end"] = (sent + pd.Timedelta(days=horizon_days)).clip(
        upper=pd.Timestamp(as_of_date))
    ts = pd.to_datetime(orders["order_ts"])
    visible = orders.loc[(ts < pd.Timestamp(as_of_date)) & (ts >= sent.min()),
                         ["customer_id", "amount"]].assign(_ts=ts)
    joined = cust[["plan_id", "customer_id", "_sent", "_resp_end", "_hor_end"]].merge(
        visible, on="customer_id")
    after = joined["_ts"] >= joined["_sent"]
    joined["_in_window"] = after & (joined["_ts"] < joined["_resp_end"])
    joined["_in_horizon"] = after & (joined["_ts"] < joined["_hor_end"])
    joined["_window_amount"] = joined["amount"].where(joined["_in_window"], 0.0)
    per = joined.groupby(["plan_id", "customer_id"]).agg(
        converted=("_in_window", "max"), revenue=("_window_amount", "sum"),
        active=("_in_horizon", "max")).reset_index().astype({"converted": "int64",
                                                            "active": "int64"})
    cust = cust.drop(columns=["_sent", "_resp_end", "_hor_end"]).merge(
        per, on=["plan_id", "customer_id"], how="left")
    for column in ("converted", "active"):
        cust[column] = cust[column].fillna(0).astype("int64")
    cust["revenue"] = cust["revenue"].fillna(0.0).astype(float)
    return cust


#: Outcome column -> (metric name, expected increment column of the plan).
_METRICS = {"converted": ("conversion", None), "revenue": ("revenue", "incr_revenue"),
            "active": ("retention", "incr_retention")}


def _arm_table(cust: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group and arm: n, means and variances (ddof=1) of the outcomes, arms side by side."""
    aggs = {"n": ("customer_id", "size"), "cost": ("cost", "sum")}
    for column, (_, expected) in _METRICS.items():
        aggs[f"{column}_mean"] = (column, "mean")
        aggs[f"{column}_var"] = (column, "var")
        if expected is not None:
            aggs[f"{expected}_mean"] = (expected, "mean")
    stats = cust.groupby(keys + ["assignment"], observed=True).agg(**aggs)
    if not {TREATED, HOLDOUT} <= set(stats.index.get_level_values("assignment")):
        return pd.DataFrame()  # nothing held out (or nobody treated): nothing to compare
    treated = stats.xs(TREATED, level="assignment")
    holdout = stats.xs(HOLDOUT, level="assignment")
    return treated.join(holdout, lsuffix="_t", rsuffix="_h", how="inner").reset_index()


def _metric_rows(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """One outcome's rows: difference treated - holdout with its 95% Welch interval."""
    metric, expected = _METRICS[column]
    diff = table[f"{column}_mean_t"] - table[f"{column}_mean_h"]
    se = np.sqrt(table[f"{column}_var_t"] / table["n_t"] + table[f"{column}_var_h"] / table["n_h"])
    out = table[["plan_id", "plan_date", "sent_date", "action", "segment"]].copy()
    out["metric"] = metric
    out["n_treated"], out["n_holdout"] = table["n_t"], table["n_h"]
    out["treated_mean"], out["holdout_mean"] = table[f"{column}_mean_t"], table[f"{column}_mean_h"]
    out["effect"], out["effect_low"], out["effect_high"] = diff, diff - _Z95 * se, diff + _Z95 * se
    out["expected_effect"] = (table[f"{expected}_mean_t"] if expected is not None
                              else np.nan)
    out["realised_to_expected"] = out["effect"] / out["expected_effect"].where(
        out["expected_effect"] != 0)
    out["incremental_total"] = diff * table["n_t"]
    out["treated_cost"] = table["cost_t"]
    return out


def measure_outcomes(campaign_plan: pd.DataFrame, orders: pd.DataFrame,
                     as_of_date: dt.date, horizon_days: int,
                     sends: pd.DataFrame | None = None, response_days: int = PERIOD_DAYS,
                     min_arm_size: int = MIN_ARM_SIZE) -> MeasuredOutcomes:
    """Treated vs holdout outcomes of every plan whose response window has passed.

    Args:
        campaign_plan: ``marts.campaign_plan`` rows of one or more plans (``PLAN_COLUMNS``).
        orders: customer_id, order_ts, amount (``raw.orders``).
        as_of_date: Orders strictly before it are known; a plan is measured when
            ``sent_date + response_days <= as_of_date``.
        horizon_days: Activity is measured over [sent, sent + horizon); before that
            has passed the retention rows are ``status = 'partial'``.
        sends: plan_id, sent_date (``marts.campaign_sends``); a plan without a row
            was sent on its as-of date.
        response_days: The response window of conversion and revenue.
        min_arm_size: Fewest customers per arm for a per-segment row.

    Returns:
        :class:`MeasuredOutcomes`; empty frames when no plan is due.
    """
    plans = send_dates(campaign_plan, sends)
    due = plans[[s + dt.timedelta(days=response_days) <= as_of_date for s in plans["sent_date"]]]
    plan = campaign_plan[campaign_plan["plan_id"].isin(due["plan_id"])]
    if plan.empty:
        return MeasuredOutcomes(pd.DataFrame(columns=list(OUTCOME_COLUMNS)),
                                pd.DataFrame(columns=list(RESPONSE_COLUMNS)),
                                pd.DataFrame())
    cust = customer_outcomes(plan, orders, due, as_of_date, horizon_days, response_days)
    keys = ["plan_id", "plan_date", "sent_date", "action"]
    overall = _arm_table(cust.assign(segment=ALL_SEGMENTS), keys + ["segment"])
    if overall.empty:
        return MeasuredOutcomes(pd.DataFrame(columns=list(OUTCOME_COLUMNS)),
                                responses_contract(cust), cust)
    per_segment = _arm_table(cust, keys + ["segment"])
    per_segment = per_segment[(per_segment["n_t"] >= min_arm_size)
                              & (per_segment["n_h"] >= min_arm_size)]
    table = pd.concat([overall, per_segment], ignore_index=True)
    rows = pd.concat([_metric_rows(table, c) for c in _METRICS], ignore_index=True)
    sent = pd.to_datetime(rows["sent_date"])
    horizon_end = sent + pd.Timedelta(days=horizon_days)
    retention = rows["metric"] == "retention"
    rows["window_end"] = horizon_end.clip(upper=pd.Timestamp(as_of_date)).where(
        retention, sent + pd.Timedelta(days=response_days)).dt.date
    rows["status"] = np.where(retention & (horizon_end > pd.Timestamp(as_of_date)),
                              "partial", "final")
    rows = rows.loc[:, list(OUTCOME_COLUMNS)].sort_values(
        ["plan_id", "action", "segment", "metric"], kind="mergesort").reset_index(drop=True)
    return MeasuredOutcomes(rows, responses_contract(cust), cust)


def responses_contract(cust: pd.DataFrame) -> pd.DataFrame:
    """Per-customer outcomes as ``raw.campaign_responses`` rows: one campaign per plan and
    action (``<plan_id>:<action>``), its holdout the control (action "none"). Revenue is
    floored at 0 (the contract's rule): returns in the window do not make it negative."""
    treated = (cust["assignment"] == TREATED).to_numpy()
    return pd.DataFrame({
        "customer_id": cust["customer_id"].astype(str).to_numpy(),
        "campaign_id": (cust["plan_id"] + ":" + cust["action"]).to_numpy(),
        "sent_date": cust["sent_date"].to_numpy(),
        "treatment": treated.astype("int64"),
        "action": np.where(treated, cust["action"].to_numpy(dtype=object), NO_ACTION),
        "converted": cust["converted"].astype("int64").to_numpy(),
        "revenue": np.maximum(cust["revenue"].to_numpy(float), 0.0),
    })


# --------------------------------------------------------------------------- policy value

#: ``marts.policy_evaluation`` columns, in order.
POLICY_COLUMNS = ("policy", "estimator", "value_per_customer", "value_low", "value_high",
                  "n_customers", "support_share", "total_value", "spend")


def logged_from_responses(responses: pd.DataFrame, segments: pd.DataFrame,
                          action_costs: Mapping[str, float]) -> pd.DataFrame:
    """Randomised responses as logged bandit data: per customer and campaign, the logged
    action (``"none"`` for the control), its propensity (the campaign's arm share: complete
    randomisation), the campaign's actions (the support), and the outcome
    ``revenue - cost(action)``. Customers without a segment are left out."""
    frame = responses.merge(segments[["customer_id", "segment"]], on="customer_id")
    frame = frame.assign(action=np.where(frame["treatment"] == 1, frame["action"], NO_ACTION))
    unknown = sorted(set(frame["action"]) - set(action_costs) - {NO_ACTION})
    if unknown:
        raise ValueError(f"raw.campaign_responses: action(s) {unknown} have no cost in "
                         "action_costs")
    arm = frame.groupby(["campaign_id", "action"])["customer_id"].transform("size")
    frame["propensity"] = arm / frame.groupby("campaign_id")["customer_id"].transform("size")
    cost = frame["action"].map({**action_costs, NO_ACTION: 0.0}).astype(float)
    frame["outcome"] = frame["revenue"].astype(float) - cost
    return frame[["customer_id", "campaign_id", "segment", "action", "propensity", "outcome"]]


def _outcome_model(logged: pd.DataFrame) -> pd.DataFrame:
    """mu(segment, action): mean logged outcome per segment x action (the DR model)."""
    return logged.groupby(["segment", "action"], as_index=False)["outcome"].mean().rename(
        columns={"outcome": "mu"})


def evaluate_policy(logged: pd.DataFrame, policy: pd.DataFrame,
                    confidence: float = 0.95) -> pd.DataFrame:
    """IPS and doubly-robust value of a policy on randomised logged data.

    For each logged customer whose campaign tested the policy's action for them
    (the support), with ``A`` the logged action, ``p`` its propensity, ``Y`` the
    outcome and ``mu`` the per segment x action mean outcome:
    ``IPS = 1{pi = A} Y / p`` and ``DR = mu(pi) + 1{pi = A} (Y - mu(A)) / p``; the
    value per customer is their mean, the interval ``mean +- z sd / sqrt(n)``.

    Args:
        logged: :func:`logged_from_responses` rows.
        policy: customer_id, action ("none" = nothing).

    Returns:
        Two rows (``ips``, ``dr``) of ``POLICY_COLUMNS`` without ``policy`` and ``spend``;
        ``support_share`` is the share of the logged customers in the policy that the
        estimate covers (1 when the campaign randomised every action).
    """
    frame = logged.merge(policy[["customer_id", "action"]].rename(columns={"action": "target"}),
                         on="customer_id")
    tested = logged.groupby("campaign_id")["action"].agg(set)
    support = np.array([t in tested[c] for c, t in zip(frame["campaign_id"], frame["target"],
                                                       strict=True)], dtype=bool)
    n_all = len(frame)
    frame = frame[support]
    mu = _outcome_model(logged).set_index(["segment", "action"])["mu"]
    mu_target = mu.reindex(pd.MultiIndex.from_arrays([frame["segment"], frame["target"]]))
    mu_logged = mu.reindex(pd.MultiIndex.from_arrays([frame["segment"], frame["action"]]))
    match = (frame["target"] == frame["action"]).to_numpy()
    w = np.where(match, 1.0 / frame["propensity"].to_numpy(float), 0.0)
    y = frame["outcome"].to_numpy(float)
    terms = {"ips": w * y,
             "dr": mu_target.to_numpy(float) + w * (y - mu_logged.to_numpy(float))}
    z = float(norm.ppf(0.5 + confidence / 2))
    rows = []
    for name, values in terms.items():
        n = len(values)
        mean = float(np.mean(values)) if n else np.nan
        half = z * float(np.std(values, ddof=1)) / math.sqrt(n) if n > 1 else np.nan
        rows.append({"estimator": name, "value_per_customer": mean, "value_low": mean - half,
                     "value_high": mean + half, "n_customers": n,
                     "support_share": n / n_all if n_all else np.nan,
                     "total_value": mean * n})
    return pd.DataFrame(rows)


def benchmark_policies(plan: pd.DataFrame, action_costs: Mapping[str, float], seed: int = 0,
                       segment_average_plan: pd.DataFrame | None = None
                       ) -> dict[str, pd.DataFrame]:
    """The plan and what it is compared with, each as customer_id, action.

    ``treat_none``; ``cheapest_action`` for everyone (whatever the budget);
    ``random_same_budget``: the plan's actions shuffled over its customers (seeded), so
    the same number of each action and, at one cost per action, the same spend;
    ``segment_average``: the plan built from segment-average effects, when given.
    """
    ids = plan["customer_id"]
    cheapest = min(action_costs, key=lambda a: (action_costs[a], a))
    order = np.argsort(uniforms(seed, _S_TRIM + 1, customer_keys(ids)), kind="mergesort")
    out = {"plan": plan[["customer_id", "action"]],
           "treat_none": pd.DataFrame({"customer_id": ids, "action": NO_ACTION}),
           "cheapest_action": pd.DataFrame({"customer_id": ids, "action": cheapest}),
           "random_same_budget": pd.DataFrame({"customer_id": ids,
                                               "action": plan["action"].to_numpy()[order]})}
    if segment_average_plan is not None:
        out["segment_average"] = segment_average_plan[["customer_id", "action"]]
    return out


def evaluate_policies(logged: pd.DataFrame, policies: Mapping[str, pd.DataFrame],
                      action_costs: Mapping[str, float]) -> pd.DataFrame:
    """:func:`evaluate_policy` of each named policy, with its spend (``POLICY_COLUMNS``)."""
    costs = {**action_costs, NO_ACTION: 0.0}
    parts = []
    for name, policy in policies.items():
        rows = evaluate_policy(logged, policy)
        rows.insert(0, "policy", name)
        rows["spend"] = math.fsum(policy["action"].map(costs).astype(float))
        parts.append(rows)
    return pd.concat(parts, ignore_index=True).loc[:, list(POLICY_COLUMNS)]
