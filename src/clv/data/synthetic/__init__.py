"""Synthetic customers and orders with known truth (BG/NBD purchases, Gamma-Gamma spend).

The generating story, per customer ``i`` (time in **weeks**, the BTYD papers' unit):

* acquisition: the first purchase at ``birth_i ~ Uniform(0, acquisition_weeks)``;
* purchase rate ``lambda_i ~ Gamma(shape r, rate alpha)``: while active, purchases
  follow a Poisson process of rate ``lambda_i``;
* dropout ``p_i ~ Beta(a, b)``: after every *repeat* purchase the customer becomes
  inactive for good with probability ``p_i`` (Fader, Hardie & Lee 2005);
* spend: each order's amount is ``Gamma(shape p, rate nu_i)`` with
  ``nu_i ~ Gamma(shape q, rate gamma)`` (Fader & Hardie 2013), rounded to cents
  (at least 0.01);
* observation ends at ``observation_weeks``: the data's as-of date is
  ``start_date + observation_weeks`` (:meth:`SyntheticSpec.as_of_date`).

So ``clv.models.btyd.fit_bgnbd`` on (x repeat purchases, t_x, T) and ``fit_gamma_gamma``
on (x, mean repeat spend) estimate exactly the parameters of :class:`SyntheticSpec`
(``tests/test_synthetic.py`` recovers them within their sampling error).

Seasonality (optional, off by default) is a deterministic time warp: the story
above runs in *operational* time ``u``, and calendar time ``t`` (days since
``start_date``) solves ``u = S(t)`` with intensity
``S'(t) = 1 + weekly_amplitude sin(2 pi t / 7) + yearly_amplitude sin(2 pi t / 365.25)``.
Purchase counts are unchanged; only when they happen moves, so with seasonality
the BG/NBD fit is exact in operational time and approximate in calendar time.

The optional randomised campaign (:class:`CampaignSpec`) is written in the
``raw.campaign_responses`` contract (see :mod:`clv.decisions.uplift`): every customer
acquired before ``sent_date`` is randomised to ``treatment`` 1 (``action``) with
probability ``treated_share``, else 0 (``action = "none"``); ``converted`` is
Bernoulli(``base_conversion + uplift_conversion * treatment``) and ``revenue`` one
Gamma-Gamma spend draw of that customer when converted (0 otherwise). The true
effects are therefore ``uplift_conversion`` on conversion and
``uplift_conversion * p * gamma / (q - 1)`` on revenue per customer. The campaign
outcomes are drawn independently of ``raw.orders`` (they do not add orders).

Determinism: every random number is a counter-based hash (splitmix64) of
``(seed, stream, customer number, purchase number)``, so the data depend on the
seed and the spec only, never on partitioning, batch sizes, the number of
executors or the cluster: the same seed gives identical rows everywhere.

Scale: :func:`orders_frame` is ``spark.range(customers).mapInPandas(...)``: orders are
generated on the executors, block by block, and written from there; nothing at
order level passes through the driver.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import special

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

DAYS_PER_WEEK = 7.0
_US_PER_DAY = 86_400_000_000

#: Columns of the generator's order frame before ids become text (internal).
_RAW_SCHEMA = "customer_num long, order_num int, order_us long, amount double, quantity int"
#: ``raw.orders`` contract columns, in order.
ORDER_COLUMNS = ("order_id", "customer_id", "order_ts", "amount", "quantity", "currency")
#: ``raw.campaign_responses`` contract columns, in order.
RESPONSE_COLUMNS = ("customer_id", "campaign_id", "sent_date", "treatment", "action",
                    "converted", "revenue")

# Random streams: one per kind of draw, so adding a draw never shifts another.
_S_BIRTH, _S_LAMBDA, _S_P, _S_NU, _S_GAP, _S_DROP, _S_AMOUNT, _S_QTY = range(1, 9)
_S_TREAT, _S_CONVERT, _S_REVENUE = range(20, 23)
_S_RETURNED, _S_RETURN_DELAY, _S_RETURN_FULL, _S_RETURN_FRACTION = range(30, 34)


@dataclass(frozen=True)
class CampaignSpec:
    """One randomised campaign (see the module docstring for the outcome model)."""

    campaign_id: str = "synthetic_email"
    sent_week: float = 80.0
    action: str = "email"
    treated_share: float = 0.5
    base_conversion: float = 0.04
    uplift_conversion: float = 0.02

    def __post_init__(self) -> None:
        if not 0 < self.treated_share < 1:
            raise ValueError("treated_share must be in (0, 1)")
        if not 0 <= self.base_conversion <= 1 or not 0 <= (
                self.base_conversion + self.uplift_conversion) <= 1:
            raise ValueError("base_conversion (+ uplift_conversion) must be a probability")


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines a synthetic data set (with ``seed``).

    Defaults: a retailer with ~3 orders per customer over two years; BG/NBD
    ``r=0.75, alpha=10`` (weeks, so a mean rate of 0.075 purchases a week),
    ``a=0.8, b=2.5``; Gamma-Gamma ``p=6, q=4, gamma=16`` (mean spend 32 per order).
    """

    n_customers: int
    seed: int = 0
    r: float = 0.75
    alpha: float = 10.0
    a: float = 0.8
    b: float = 2.5
    p: float = 6.0
    q: float = 4.0
    gamma: float = 16.0
    start_date: dt.date = dt.date(2024, 1, 1)
    acquisition_weeks: float = 52.0
    observation_weeks: float = 104.0
    weekly_amplitude: float = 0.0
    yearly_amplitude: float = 0.0
    campaign: CampaignSpec | None = field(default=None)

    def __post_init__(self) -> None:
        if self.n_customers < 1:
            raise ValueError("n_customers must be >= 1")
        if min(self.r, self.alpha, self.a, self.b, self.p, self.q, self.gamma) <= 0:
            raise ValueError("every BG/NBD and Gamma-Gamma parameter must be > 0")
        if not 0 < self.acquisition_weeks <= self.observation_weeks:
            raise ValueError("need 0 < acquisition_weeks <= observation_weeks")
        if self.observation_weeks * DAYS_PER_WEEK != int(self.observation_weeks * DAYS_PER_WEEK):
            raise ValueError("observation_weeks must be a whole number of days")
        if abs(self.weekly_amplitude) + abs(self.yearly_amplitude) >= 1:
            raise ValueError("|weekly_amplitude| + |yearly_amplitude| must be < 1")
        if self.campaign is not None and not 0 < self.campaign.sent_week < self.observation_weeks:
            raise ValueError("the campaign must be sent inside the observation window")

    @property
    def as_of_date(self) -> dt.date:
        """The day after the observation window: every order is strictly before it."""
        return self.start_date + dt.timedelta(days=int(self.observation_weeks * DAYS_PER_WEEK))

    @property
    def seasonal(self) -> bool:
        return bool(self.weekly_amplitude or self.yearly_amplitude)

    def truth(self) -> dict:
        """The generating parameters as plain JSON-able values."""
        out = dataclasses.asdict(self)
        out["start_date"] = self.start_date.isoformat()
        out["as_of_date"] = self.as_of_date.isoformat()
        out["time_unit"] = "week"
        out["mean_spend_per_order"] = self.p * self.gamma / (self.q - 1) if self.q > 1 else None
        out["expected_orders_per_customer"] = expected_orders_per_customer(self)
        return out

    def to_json(self) -> str:
        return json.dumps(self.truth(), indent=2, sort_keys=True)


# --------------------------------------------------------------------------- random numbers

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (a bijection of uint64 with good avalanche)."""
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return z ^ (z >> np.uint64(31))


def uniforms(seed: int, stream: int, customer: np.ndarray, k: np.ndarray | int = 0) -> np.ndarray:
    """Uniform(0, 1) numbers (never 0 or 1) that depend only on their arguments.

    ``customer`` and ``k`` broadcast; each (seed, stream, customer, k) gives one
    fixed number, so any subset of customers can be generated in any order.
    """
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * _GOLDEN + np.uint64(stream))
        h = _mix(h ^ (np.asarray(customer).astype(np.uint64) * _GOLDEN))
        h = _mix(h ^ (np.asarray(k).astype(np.uint64) + np.uint64(0x632BE59BD9B4E019)))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


# --------------------------------------------------------------------------- the processes

def customer_latents(spec: SyntheticSpec, customers: np.ndarray) -> pd.DataFrame:
    """Per-customer latent draws: birth (weeks, operational), lambda, p, nu."""
    customers = np.asarray(customers, dtype=np.int64)
    s = spec.seed
    return pd.DataFrame({
        "customer_num": customers,
        "birth": spec.acquisition_weeks * uniforms(s, _S_BIRTH, customers),
        "lam": special.gammaincinv(spec.r, uniforms(s, _S_LAMBDA, customers)) / spec.alpha,
        "p_drop": special.betaincinv(spec.a, spec.b, uniforms(s, _S_P, customers)),
        "nu": special.gammaincinv(spec.q, uniforms(s, _S_NU, customers)) / spec.gamma,
    })


def simulate_orders(spec: SyntheticSpec, customers: np.ndarray) -> pd.DataFrame:
    """Orders of the given customer numbers, pure numpy (what each Spark task runs).

    Returns columns ``customer_num, order_num`` (0 = first purchase),
    ``order_us`` (microseconds since the epoch, UTC), ``amount``, ``quantity``,
    sorted by customer then order number.
    """
    lat = customer_latents(spec, customers)
    ids = lat["customer_num"].to_numpy()
    lam, p_drop, nu = lat["lam"].to_numpy(), lat["p_drop"].to_numpy(), lat["nu"].to_numpy()
    t = lat["birth"].to_numpy().copy()
    end = spec.observation_weeks
    idx_parts, k_parts, t_parts = [np.arange(len(ids))], [np.zeros(len(ids), np.int32)], [t.copy()]
    active = np.arange(len(ids))
    k = 1
    with np.errstate(divide="ignore"):
        while active.size:
            gap = -np.log(uniforms(spec.seed, _S_GAP, ids[active], k)) / lam[active]
            t_new = t[active] + gap
            alive = t_new < end
            active, t_new = active[alive], t_new[alive]
            if not active.size:
                break
            t[active] = t_new
            idx_parts.append(active)
            k_parts.append(np.full(active.size, k, np.int32))
            t_parts.append(t_new)
            # after a repeat purchase the customer drops out for good with probability p
            stays = uniforms(spec.seed, _S_DROP, ids[active], k) >= p_drop[active]
            active = active[stays]
            k += 1
    idx = np.concatenate(idx_parts)
    order_num = np.concatenate(k_parts)
    weeks = np.concatenate(t_parts)
    order = np.lexsort((order_num, idx))
    idx, order_num, weeks = idx[order], order_num[order], weeks[order]
    cust = ids[idx]
    spend = special.gammaincinv(spec.p, uniforms(spec.seed, _S_AMOUNT, cust, order_num)) / nu[idx]
    amount = np.maximum(np.round(spend, 2), 0.01)
    qty_u = uniforms(spec.seed, _S_QTY, cust, order_num)
    quantity = (1 + np.floor(np.log(qty_u) / np.log(0.35))).astype(np.int32)
    days = calendar_days(spec, weeks * DAYS_PER_WEEK)
    start_us = _epoch_us(spec.start_date)
    order_us = start_us + np.floor(days * _US_PER_DAY).astype(np.int64)
    return pd.DataFrame({"customer_num": cust, "order_num": order_num, "order_us": order_us,
                         "amount": amount, "quantity": quantity})


#: Returns (:func:`with_returns`): a return comes 1..``RETURN_MAX_DELAY_DAYS`` days after
#: its order; half of them give back the whole order, the others a share of it.
RETURN_MAX_DELAY_DAYS = 30
RETURN_FULL_SHARE = 0.5
RETURN_PARTIAL_RANGE = (0.1, 0.9)


def with_returns(orders: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """The orders of :func:`simulate_orders` plus returns (negative orders), by customer then time.

    The rule: each order ``(customer_num, order_num = k)`` is returned with probability
    ``share``; its return is one more row of the same customer, ``order_num = -(k + 1)``
    (negative: a return, of order ``-order_num - 1``), ``RETURN_MAX_DELAY_DAYS`` or
    fewer whole days later (uniform on 1..30, same time of day) and
    ``amount = -max(round(f * amount, 2), 0.01)``, ``quantity = -max(1, floor(f * quantity))``
    (``-quantity`` when full), where ``f = 1`` with probability ``RETURN_FULL_SHARE``
    and ``Uniform(RETURN_PARTIAL_RANGE)`` otherwise. Every draw is a counter-based hash
    of ``(seed, stream, customer_num, order_num)``, so the returns of an order do not
    depend on which other orders are in the frame. A return may fall after the data's
    as-of date; a caller that needs an observed window drops those rows.

    Raises:
        ValueError: ``share`` is not in [0, 1] or a column is missing.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"returns: share must be in [0, 1], got {share}")
    missing = {"customer_num", "order_num", "order_us", "amount", "quantity"} - set(orders.columns)
    if missing:
        raise ValueError(f"returns: the orders frame lacks column(s) {sorted(missing)}")
    cust = orders["customer_num"].to_numpy(dtype=np.int64)
    k = orders["order_num"].to_numpy(dtype=np.int64)
    chosen = uniforms(seed, _S_RETURNED, cust, k) < share
    src = orders[chosen]
    cust, k = cust[chosen], k[chosen]
    delay = 1 + np.floor(uniforms(seed, _S_RETURN_DELAY, cust, k) * RETURN_MAX_DELAY_DAYS)
    low, high = RETURN_PARTIAL_RANGE
    full = uniforms(seed, _S_RETURN_FULL, cust, k) < RETURN_FULL_SHARE
    frac = np.where(full, 1.0, low + (high - low) * uniforms(seed, _S_RETURN_FRACTION, cust, k))
    qty = src["quantity"].to_numpy()
    returns = pd.DataFrame({
        "customer_num": cust, "order_num": (-(k + 1)).astype(src["order_num"].dtype),
        "order_us": src["order_us"].to_numpy() + delay.astype(np.int64) * _US_PER_DAY,
        "amount": -np.maximum(np.round(frac * src["amount"].to_numpy(), 2), 0.01),
        "quantity": -np.where(full, qty, np.maximum(1, np.floor(frac * qty))).astype(qty.dtype),
    })
    out = pd.concat([orders, returns], ignore_index=True)
    return out.sort_values(["customer_num", "order_us"], kind="stable", ignore_index=True)


def calendar_days(spec: SyntheticSpec, op_days: np.ndarray) -> np.ndarray:
    """Calendar days since ``start_date`` for operational days (identity without seasonality).

    Solves ``S(t) = u`` by fixed-point iteration ``t <- u - (S(t) - t)``, a
    contraction because ``|S'(t) - 1| <= |weekly| + |yearly| < 1``.
    """
    u = np.asarray(op_days, dtype=float)
    if not spec.seasonal:
        return u
    t = u.copy()
    for _ in range(500):
        t_next = u - _warp_offset(spec, t)
        if np.max(np.abs(t_next - t), initial=0.0) < 1e-9:
            return t_next
        t = t_next
    return t


def operational_days(spec: SyntheticSpec, calendar: np.ndarray) -> np.ndarray:
    """``S(t)``: operational days for calendar days since ``start_date``."""
    t = np.asarray(calendar, dtype=float)
    return t + _warp_offset(spec, t)


def _warp_offset(spec: SyntheticSpec, t: np.ndarray) -> np.ndarray:
    out = np.zeros_like(t)
    for amp, period in ((spec.weekly_amplitude, 7.0), (spec.yearly_amplitude, 365.25)):
        if amp:
            out = out + amp * period / (2 * math.pi) * (1 - np.cos(2 * math.pi * t / period))
    return out


def _epoch_us(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * _US_PER_DAY


def simulate_responses(spec: SyntheticSpec, customers: np.ndarray) -> pd.DataFrame:
    """Campaign responses of the given customer numbers (those acquired before it was sent)."""
    c = spec.campaign
    if c is None:
        raise ValueError("the spec has no campaign")
    lat = customer_latents(spec, customers)
    lat = lat[lat["birth"] < c.sent_week]
    ids, nu = lat["customer_num"].to_numpy(), lat["nu"].to_numpy()
    treated = (uniforms(spec.seed, _S_TREAT, ids) < c.treated_share).astype(np.int32)
    rate = c.base_conversion + c.uplift_conversion * treated
    converted = (uniforms(spec.seed, _S_CONVERT, ids) < rate).astype(np.int32)
    spend = special.gammaincinv(spec.p, uniforms(spec.seed, _S_REVENUE, ids)) / nu
    revenue = np.where(converted == 1, np.maximum(np.round(spend, 2), 0.01), 0.0)
    return pd.DataFrame({"customer_num": ids, "treatment": treated, "converted": converted,
                         "revenue": revenue})


# --------------------------------------------------------------------------- sizing

def expected_orders_per_customer(spec: SyntheticSpec) -> float:
    """E[orders per customer] = 1 + E[X(T)] under BG/NBD, averaged over acquisition times.

    ``E[X(t)]`` is FHL 2005 eq. 9; ``T = observation - birth`` with birth uniform
    over the acquisition window (midpoint rule on 400 points).
    """
    r, alpha, a, b = spec.r, spec.alpha, spec.a, spec.b
    births = (np.arange(400) + 0.5) / 400 * spec.acquisition_weeks
    t = spec.observation_weeks - births
    if a <= 1:  # the closed form divides by a - 1; integrate the mixture numerically instead
        return 1.0 + float(np.mean(_expected_x_numeric(spec, t)))
    z = t / (alpha + t)
    ex = (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r
                                  * special.hyp2f1(r, b, a + b - 1, z))
    return 1.0 + float(np.mean(ex))


def _expected_x_numeric(spec: SyntheticSpec, t: np.ndarray) -> np.ndarray:
    """E[X(t)] by quadrature over p ~ Beta(a, b) of E[X(t) | p] with lambda integrated out.

    Given p and lambda, E[X(t)] = (1 - exp(-lambda p t)) / p; over lambda ~ Gamma(r, alpha)
    E[exp(-lambda p t)] = (alpha / (alpha + p t))^r.
    """
    q = (np.arange(2000) + 0.5) / 2000
    ps = special.betaincinv(spec.a, spec.b, q)[:, None]
    tt = np.asarray(t, dtype=float)[None, :]
    return np.mean((1 - (spec.alpha / (spec.alpha + ps * tt)) ** spec.r) / ps, axis=0)


def customers_for_orders(n_orders: int, **spec_kwargs) -> int:
    """How many customers give about ``n_orders`` orders with these spec settings."""
    probe = SyntheticSpec(n_customers=1, **spec_kwargs)
    return max(1, round(n_orders / expected_orders_per_customer(probe)))


# --------------------------------------------------------------------------- Spark frames

def _partitions(spark: SparkSession, n_customers: int, num_partitions: int | None) -> int:
    if num_partitions:
        return num_partitions
    try:
        cores = max(int(spark.sparkContext.defaultParallelism), 1)
    except Exception:  # a Spark Connect session has no SparkContext
        cores = os.cpu_count() or 2
    # ~200k customers (~600k orders, ~25 MB of Parquet) per task, at least one task per core
    return max(cores, math.ceil(n_customers / 200_000))


def orders_frame(spark: SparkSession, spec: SyntheticSpec,
                 num_partitions: int | None = None) -> DataFrame:
    """The orders in the ``raw.orders`` contract, generated on the executors.

    ``customer_id`` is ``"c<number>"``, ``order_id`` ``"c<number>-<k>"`` (k = 0 for
    the first purchase), ``currency`` ``"USD"``, ``order_ts`` a UTC timestamp in
    microseconds. The rows do not depend on ``num_partitions``.
    """
    from pyspark.sql import functions as F

    def generate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield simulate_orders(spec, batch["id"].to_numpy())

    ids = spark.range(0, spec.n_customers, 1, _partitions(spark, spec.n_customers,
                                                          num_partitions))
    raw = ids.mapInPandas(generate, _RAW_SCHEMA)
    cid = F.concat(F.lit("c"), F.col("customer_num").cast("string"))
    return raw.select(
        F.concat(cid, F.lit("-"), F.col("order_num").cast("string")).alias("order_id"),
        cid.alias("customer_id"),
        F.timestamp_micros("order_us").alias("order_ts"),
        F.col("amount"), F.col("quantity"), F.lit("USD").alias("currency"),
    )


def responses_frame(spark: SparkSession, spec: SyntheticSpec,
                    num_partitions: int | None = None) -> DataFrame:
    """The campaign's rows in the ``raw.campaign_responses`` contract."""
    from pyspark.sql import functions as F

    c = spec.campaign
    if c is None:
        raise ValueError("the spec has no campaign")

    def generate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield simulate_responses(spec, batch["id"].to_numpy())

    sent = spec.start_date + dt.timedelta(days=math.floor(c.sent_week * DAYS_PER_WEEK))
    ids = spark.range(0, spec.n_customers, 1, _partitions(spark, spec.n_customers,
                                                          num_partitions))
    raw = ids.mapInPandas(
        generate, "customer_num long, treatment int, converted int, revenue double")
    return raw.select(
        F.concat(F.lit("c"), F.col("customer_num").cast("string")).alias("customer_id"),
        F.lit(c.campaign_id).alias("campaign_id"),
        F.lit(sent).cast("date").alias("sent_date"),
        F.col("treatment"),
        F.when(F.col("treatment") == 1, F.lit(c.action)).otherwise(F.lit("none")).alias("action"),
        F.col("converted"), F.col("revenue"),
    )


def rft_summary(orders: DataFrame, spec: SyntheticSpec) -> DataFrame:
    """Per customer: ``x`` repeat orders, ``t_x``, ``T`` (weeks), ``m`` mean repeat spend.

    The BTYD statistics of the generated orders, computed in Spark (one row per
    customer); ``T`` runs to ``spec.as_of_date``. Times are calendar time, which
    equals operational time when the spec has no seasonality.
    """
    from pyspark.sql import functions as F

    week_s = DAYS_PER_WEEK * 86_400.0
    end = F.lit(dt.datetime.combine(spec.as_of_date, dt.time())).cast("timestamp")
    secs = F.unix_micros("order_ts") / 1e6
    return orders.groupBy("customer_id").agg(
        (F.count("*") - 1).alias("x"),
        ((F.max(secs) - F.min(secs)) / week_s).alias("t_x"),
        ((F.unix_micros(end) / 1e6 - F.min(secs)) / week_s).alias("T"),
        F.sum("amount").alias("_total"),
        F.min_by("amount", "order_ts").alias("_first"),
    ).select(
        "customer_id", "x", "t_x", "T",
        F.when(F.col("x") > 0, (F.col("_total") - F.col("_first")) / F.col("x"))
        .otherwise(F.lit(0.0)).alias("m"),
    )


# --------------------------------------------------------------------------- action effects

#: Actions of the synthetic campaigns with known heterogeneous effects, and their
#: channel: the e-mail moves short-term revenue, the coupon moves retention.
EFFECT_ACTIONS = ("email", "retention_coupon")
#: Label of customers who get no action (the control arm).
NO_ACTION = "none"
_S_EFFECT_CONVERT, _S_EFFECT_BASKET, _S_EFFECT_ACTIVE, _S_EFFECT_ARM = range(30, 34)
_S_FEAT_R, _S_FEAT_T, _S_FEAT_M, _S_FEAT_W = range(40, 44)
#: Shape of the Gamma(mean 1) noise on a converted customer's basket.
_BASKET_SHAPE = 2.0


def past_year_spend(features: pd.DataFrame) -> pd.Series:
    """Spend in the 12 periods before the as-of date (``spend_p01..spend_p12``)."""
    columns = [f"spend_p{k:02d}" for k in range(1, 13)]
    missing = [c for c in columns + ["recency_days", "tenure_days"] if c not in features]
    if missing:
        raise ValueError(f"features: missing column(s) {missing}")
    return features[columns].sum(axis=1).astype(float)


def true_effects(features: pd.DataFrame) -> pd.DataFrame:
    """The true effect of each synthetic action per customer, from pre-treatment features.

    With R = ``recency_days``, T = ``tenure_days`` and M = past-year spend
    (:func:`past_year_spend`), and nothing else:

    * ``email``: ``tau_revenue = 4 exp(-R / 60) (0.3 + 0.7 min(M, 600) / 600)`` (money in
      the 30-day response window: 0 to 4, recent big spenders respond most);
      ``tau_retention = 0``.
    * ``retention_coupon``: ``tau_retention = 0.2 R / (R + 60) exp(-R / 240) min(T / 365, 1)``
      (probability of staying active over the horizon: 0 to about 0.08, largest for
      established customers who are lapsing, around R = 100 days); ``tau_revenue = 0``.

    Returns:
        customer_id, action, tau_revenue, tau_retention; one row per customer x action.
    """
    m = past_year_spend(features).to_numpy()
    r = features["recency_days"].to_numpy(float)
    t = features["tenure_days"].to_numpy(float)
    email = 4.0 * np.exp(-r / 60.0) * (0.3 + 0.7 * np.minimum(m, 600.0) / 600.0)
    coupon = 0.2 * r / (r + 60.0) * np.exp(-r / 240.0) * np.minimum(t / 365.0, 1.0)
    n = len(features)
    zeros = np.zeros(n)
    return pd.DataFrame({
        "customer_id": np.tile(features["customer_id"].to_numpy(), 2),
        "action": np.repeat(np.array(EFFECT_ACTIONS, dtype=object), n),
        "tau_revenue": np.concatenate([email, zeros]),
        "tau_retention": np.concatenate([zeros, coupon]),
    })


def _baseline(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """Untreated outcome model: 30-day conversion p0, basket size, P(active over horizon) q0."""
    m = past_year_spend(features).to_numpy()
    r = features["recency_days"].to_numpy(float)
    return {"p0": 0.02 + 0.25 * np.exp(-r / 45.0),
            "basket": 20.0 + 0.05 * np.minimum(m, 2000.0),
            "q0": 0.15 + 0.6 * np.exp(-r / 120.0)}


def expected_outcomes(features: pd.DataFrame, actions: pd.Series | np.ndarray) -> pd.DataFrame:
    """Expected outcomes per customer if given ``actions`` (aligned with ``features``; "none"
    for no action): ``p_convert`` (30 days), ``revenue`` (30 days), ``p_active`` (horizon).

    Treated = baseline + the true effect, exactly: conversion rises by
    ``tau_revenue / basket`` (a converted customer spends ``basket`` on average), so
    revenue rises by ``tau_revenue``; ``p_active = q0 + tau_retention``.
    """
    base = _baseline(features)
    actions = np.asarray(actions, dtype=object)
    unknown = sorted(set(actions) - set(EFFECT_ACTIONS) - {NO_ACTION})
    if unknown:
        raise ValueError(f"actions: unknown action(s) {unknown}; known {EFFECT_ACTIONS}")
    truth = true_effects(features)
    n = len(features)
    tau_rev, tau_ret = np.zeros(n), np.zeros(n)
    for k, action in enumerate(EFFECT_ACTIONS):
        mine = actions == action
        tau_rev[mine] = truth["tau_revenue"].to_numpy()[k * n:(k + 1) * n][mine]
        tau_ret[mine] = truth["tau_retention"].to_numpy()[k * n:(k + 1) * n][mine]
    p = base["p0"] + tau_rev / base["basket"]
    return pd.DataFrame({"customer_id": features["customer_id"].to_numpy(),
                         "p_convert": p, "revenue": p * base["basket"],
                         "p_active": base["q0"] + tau_ret, "basket": base["basket"]})


def customer_keys(customer_id: pd.Series | np.ndarray) -> np.ndarray:
    """A stable uint64 per customer id (SipHash of the text, fixed key): the counter
    for :func:`uniforms`, so draws depend on the id, never on row order."""
    ids = pd.Series(np.asarray(customer_id)).astype(str)
    return pd.util.hash_pandas_object(ids, index=False).to_numpy(np.uint64)


def simulate_campaign_outcomes(features: pd.DataFrame, assignment: pd.DataFrame,
                               seed: int) -> pd.DataFrame:
    """Randomised outcomes of an assignment: baseline + the true effect for the treated.

    Args:
        features: customer_id, recency_days, tenure_days, spend_p01..spend_p12.
        assignment: customer_id, action (the planned action), treated (1 = sent, 0 =
            held out: baseline outcomes).
        seed: Same seed and rows -> same outcomes (counter-based draws per customer id).

    Returns:
        The assignment's rows with ``converted`` (bought in the 30-day window),
        ``revenue`` (spent in it; a converted customer spends ``basket`` x Gamma(2, 1/2)),
        ``active`` (bought at least once over the horizon: converted, or otherwise with
        the probability that makes ``P(active) = q0 + tau_retention`` exactly).
    """
    missing = [c for c in ("customer_id", "action", "treated") if c not in assignment]
    if missing:
        raise ValueError(f"assignment: missing column(s) {missing}")
    feats = features.set_index("customer_id").loc[assignment["customer_id"]].reset_index()
    given = np.where(assignment["treated"].to_numpy() == 1,
                     assignment["action"].to_numpy(dtype=object), NO_ACTION)
    exp = expected_outcomes(feats, given)
    keys = customer_keys(assignment["customer_id"])
    p, q = exp["p_convert"].to_numpy(), exp["p_active"].to_numpy()
    if np.any(q < p):
        raise ValueError("the outcome model needs P(active) >= P(convert) for every customer")
    converted = uniforms(seed, _S_EFFECT_CONVERT, keys) < p
    noise = special.gammaincinv(_BASKET_SHAPE, uniforms(seed, _S_EFFECT_BASKET, keys))
    revenue = np.where(converted, np.round(exp["basket"].to_numpy() * noise / _BASKET_SHAPE,
                                           2), 0.0)
    other = 1.0 - (1.0 - q) / (1.0 - p)  # P(active | not converted)
    active = converted | (uniforms(seed, _S_EFFECT_ACTIVE, keys) < other)
    out = assignment.reset_index(drop=True).copy()
    out["converted"] = converted.astype("int64")
    out["revenue"] = revenue
    out["active"] = active.astype("int64")
    return out


def randomised_campaign_responses(features: pd.DataFrame, sent_date: dt.date, seed: int,
                                  campaign_id: str = "synthetic_effects",
                                  actions: tuple[str, ...] = EFFECT_ACTIONS) -> pd.DataFrame:
    """A campaign randomised over every customer: each gets one of ``actions`` or none,
    with equal probability (1 / (len(actions) + 1)), by a hash of (seed, customer id).

    Returns:
        The ``raw.campaign_responses`` contract (``RESPONSE_COLUMNS``; control rows have
        ``treatment`` 0 and action "none") plus ``retained`` (1 = active over the
        horizon), which the contract has no column for; ``clv.ingest.load_campaign_responses``
        writes the contract's columns.
    """
    arms = np.array([NO_ACTION, *actions], dtype=object)
    keys = customer_keys(features["customer_id"])
    arm = arms[np.minimum((uniforms(seed, _S_EFFECT_ARM, keys) * len(arms)).astype(int),
                          len(arms) - 1)]
    assignment = pd.DataFrame({"customer_id": features["customer_id"].to_numpy(),
                               "action": arm, "treated": (arm != NO_ACTION).astype("int64")})
    sim = simulate_campaign_outcomes(features, assignment, seed)
    out = pd.DataFrame({"customer_id": sim["customer_id"].astype(str),
                        "campaign_id": campaign_id, "sent_date": sent_date,
                        "treatment": sim["treated"], "action": sim["action"],
                        "converted": sim["converted"], "revenue": sim["revenue"]})
    out["retained"] = sim["active"]
    return out


def sample_customer_features(n_customers: int, seed: int) -> pd.DataFrame:
    """A features frame (``clv.features`` columns that the effects read) for pure-pandas
    tests of the closed loop: ``customer_id`` "c<k>", recency 1-365 days (skewed to
    recent), tenure >= recency, past-year spend Gamma(shape 1.5, mean 300) spread over
    ``spend_p01..spend_p12``."""
    k = np.arange(n_customers)
    recency = 1 + np.floor(364 * uniforms(seed, _S_FEAT_R, k) ** 1.5)
    tenure = recency + np.floor(730 * uniforms(seed, _S_FEAT_T, k))
    spend = special.gammaincinv(1.5, uniforms(seed, _S_FEAT_M, k)) * 200.0
    weights = uniforms(seed, _S_FEAT_W, k[:, None], np.arange(12)[None, :])
    weights = weights / weights.sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"customer_id": np.char.add("c", k.astype(str)).astype(object),
                          "recency_days": recency.astype(int),
                          "tenure_days": tenure.astype(int)})
    for j in range(12):
        frame[f"spend_p{j + 1:02d}"] = spend * weights[:, j]
    return frame
