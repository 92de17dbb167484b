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

from clv.data.catalog import NO_ACTION
from clv.data.catalog import ORDER_COLUMNS as ORDER_COLUMNS  # the contract it writes
from clv.data.catalog import RESPONSE_COLUMNS as RESPONSE_COLUMNS
from clv.data.synthetic.hashing import uniforms

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

DAYS_PER_WEEK = 7.0
_US_PER_DAY = 86_400_000_000

#: Columns of the generator's order frame before ids become text (internal).
_RAW_SCHEMA = "customer_num long, order_num int, order_us long, amount double, quantity int"

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
        F.when(F.col("treatment") == 1, F.lit(c.action)).otherwise(F.lit(NO_ACTION))
        .alias("action"),
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
