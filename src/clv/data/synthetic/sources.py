"""Synthetic reviews, customer attributes and browsing events with a known effect on churn.

The orders are exactly :func:`clv.synthetic.simulate_orders`' (BG/NBD + Gamma-Gamma,
unchanged); the new sources are drawn *from the same latent draws* of each
customer, so whether they carry information about churn is known by construction
and the orders, and so the churn labels, are identical in every variant:

``informative=True``
    * **dissatisfaction** ``z_i = (Phi^-1(u_p,i) - Phi^-1(u_lambda,i)) / sqrt(2)``, a
      standard normal that rises with the customer's dropout probability ``p_i`` and
      falls with the purchase rate ``lambda_i`` (``u`` are the uniforms that drew
      them): both raise the chance of no purchase in a horizon, so ``z`` raises churn;
    * **reviews**: each order is reviewed with probability ``review_share``, 1..14 days
      later; ``score = clip(round(4 - score_slope z + score_noise e), 1, 5)`` with
      ``e ~ N(0, 1)``; a share ``text_share`` of reviews have a text whose tone follows
      the score (negative for 1-2, neutral for 3, positive for 4-5), in Portuguese
      (English for a share ``english_share``);
    * **browsing**: while active (from the first order to the dropout, the repeat
      purchase after which the customer left), browsing-only sessions arrive as a
      Poisson process of rate ``sessions_per_purchase x lambda_i`` a week, and at
      ``after_dropout_share`` of that rate after the dropout: browsing intensity is
      purchase intensity, and it fades when the customer leaves;
    * **customers**: ``acquisition_channel`` is "paid_social" with probability
      0.1 + 0.6 Phi(z) (dissatisfied customers come from it more often), else "search"
      or "referral" (even odds); ``region`` is noise (uniform over :data:`REGIONS`).
``informative=False`` (the noise variant)
    The same mechanisms with every latent replaced by an independent draw: ``z`` is
    N(0, 1) from its own stream, browsing runs at ``sessions_per_purchase x lambda'``
    (``lambda'`` a fresh Gamma(r, alpha) draw) from the first order to the end of the
    observation (and the channel uses that independent ``z``). The sources then say nothing
    about churn that the orders do not already say.

Every session that ends in an order (one per order, in both variants) has 1-3
views, an ``add_to_cart`` and the ``purchase`` at the order's time; a browsing
session has 1+ views and ends with an ``add_to_cart`` with probability
``cart_share`` (an abandoned cart: no purchase follows in that session).

Determinism: draws are :func:`clv.synthetic.uniforms` of (seed, stream, customer,
counter), as in :mod:`clv.synthetic`; the streams here (100+) never collide with its.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from clv.data.synthetic import orders as syn

REGIONS = ("north", "northeast", "central_west", "southeast", "south")
CHANNELS = ("paid_social", "search", "referral")
REVIEW_COLUMNS = ("review_id", "order_id", "customer_id", "score", "text", "created_at")
CUSTOMER_COLUMNS = ("customer_id", "region", "acquisition_channel", "signup_date")
EVENT_COLUMNS = ("customer_id", "event_ts", "event_type", "session_id", "product_id")
(_S_Z, _S_REVIEWED, _S_REVIEW_DELAY, _S_SCORE, _S_HAS_TEXT, _S_TEXT, _S_ENGLISH,
 _S_N_SESS, _S_SESS_T, _S_VIEWS, _S_CART, _S_REGION, _S_CHANNEL, _S_SIGNUP,
 _S_NOISE_LAM, _S_PVIEWS, _S_PRODUCT) = range(100, 117)
_US_PER_WEEK = 7 * syn._US_PER_DAY
_US_PER_MIN = 60_000_000

#: Review texts by tone (negative, neutral, positive) and language.
TEXTS = {
    "pt": (("Péssimo, o produto não chegou e ninguém responde.",
            "Muito ruim, veio quebrado. Não recomendo.",
            "Horrível, atrasou demais e o atendimento é péssimo."),
           ("O produto chegou.", "Entrega dentro do prazo.", "Comprei uma capa para celular."),
           ("Adorei, produto excelente e chegou rápido!",
            "Ótimo, recomendo muito.", "Muito bom, perfeito e bem embalado.")),
    "en": (("Terrible, the item never arrived and nobody answers.",
            "Very bad, it came broken. Do not buy."),
           ("The package arrived.", "Delivered on the stated date."),
           ("Excellent product, I love it!", "Great quality, fast delivery, highly recommend.")),
}


@dataclass(frozen=True)
class SourceSpec:
    """How the sources are drawn (see the module docstring)."""

    informative: bool = True
    review_share: float = 0.6
    score_slope: float = 1.2
    score_noise: float = 0.7
    text_share: float = 0.5
    english_share: float = 0.1
    sessions_per_purchase: float = 3.0
    after_dropout_share: float = 0.1
    cart_share: float = 0.3


def dissatisfaction(spec: syn.SyntheticSpec, source: SourceSpec,
                    customers: np.ndarray) -> np.ndarray:
    """The latent ``z_i`` of each customer number (standard normal in both variants)."""
    s = spec.seed
    if not source.informative:
        return special.ndtri(syn.uniforms(s, _S_Z, customers))
    u_p = syn.uniforms(s, syn._S_P, customers)
    u_lam = syn.uniforms(s, syn._S_LAMBDA, customers)
    return (special.ndtri(u_p) - special.ndtri(u_lam)) / np.sqrt(2.0)


def _active_spans(spec: syn.SyntheticSpec, orders: pd.DataFrame) -> pd.DataFrame:
    """Per customer: first order (us), dropout time (us; the end of observation when
    still active), and lambda. A customer drops out at repeat order k with the draw
    :func:`clv.synthetic.simulate_orders` used (``u_drop(k) < p``): only the last
    order can be that one."""
    last = orders.groupby("customer_num").agg(first_us=("order_us", "min"),
                                             last_us=("order_us", "max"),
                                             k_last=("order_num", "max")).reset_index()
    ids = last["customer_num"].to_numpy()
    lat = syn.customer_latents(spec, ids)
    dropped = (last["k_last"].to_numpy() >= 1) & (
        syn.uniforms(spec.seed, syn._S_DROP, ids, last["k_last"].to_numpy())
        < lat["p_drop"].to_numpy())
    end_us = syn._epoch_us(spec.as_of_date)
    last["drop_us"] = np.where(dropped, last["last_us"], end_us)
    last["end_us"] = end_us
    last["lam"] = lat["lam"].to_numpy()
    return last


def simulate_reviews(spec: syn.SyntheticSpec, source: SourceSpec,
                     orders: pd.DataFrame) -> pd.DataFrame:
    """Reviews of :func:`clv.synthetic.simulate_orders`' orders (the raw.reviews contract)."""
    s = spec.seed
    cust, k = orders["customer_num"].to_numpy(), orders["order_num"].to_numpy()
    chosen = syn.uniforms(s, _S_REVIEWED, cust, k) < source.review_share
    cust, k, order_us = cust[chosen], k[chosen], orders["order_us"].to_numpy()[chosen]
    z = dissatisfaction(spec, source, cust)
    e = special.ndtri(syn.uniforms(s, _S_SCORE, cust, k))
    score = np.clip(np.round(4.0 - source.score_slope * z + source.score_noise * e), 1, 5)
    delay = 1 + np.floor(14 * syn.uniforms(s, _S_REVIEW_DELAY, cust, k))
    tone = np.where(score <= 2, 0, np.where(score == 3, 1, 2))
    english = syn.uniforms(s, _S_ENGLISH, cust, k) < source.english_share
    pick = syn.uniforms(s, _S_TEXT, cust, k)
    has_text = syn.uniforms(s, _S_HAS_TEXT, cust, k) < source.text_share
    texts = []
    for t, en, u, ok in zip(tone, english, pick, has_text, strict=True):
        bank = TEXTS["en" if en else "pt"][t]
        texts.append(bank[int(u * len(bank))] if ok else None)
    order_id = np.char.add(np.char.add(np.char.add("c", cust.astype(str)), "-"), k.astype(str))
    return pd.DataFrame({
        "review_id": np.char.add("r", order_id).astype(object),
        "order_id": order_id.astype(object),
        "customer_id": np.char.add("c", cust.astype(str)).astype(object),
        "score": score.astype(np.int64),
        "text": pd.Series(texts, dtype=object),
        "created_at": pd.to_datetime(order_us + delay.astype(np.int64) * syn._US_PER_DAY,
                                     unit="us"),
    })


def simulate_customers(spec: syn.SyntheticSpec, source: SourceSpec,
                       orders: pd.DataFrame) -> pd.DataFrame:
    """One row per customer with an order (the raw.customers contract)."""
    s = spec.seed
    spans = _active_spans(spec, orders)
    ids = spans["customer_num"].to_numpy()
    paid = syn.uniforms(s, _S_CHANNEL, ids, 0) < 0.1 + 0.6 * special.ndtr(
        dissatisfaction(spec, source, ids))
    other = np.where(syn.uniforms(s, _S_CHANNEL, ids, 1) < 0.5, "search", "referral")
    region = np.array(REGIONS)[(syn.uniforms(s, _S_REGION, ids) * len(REGIONS)).astype(int)]
    lead_days = np.floor(60 * syn.uniforms(s, _S_SIGNUP, ids)).astype(np.int64)
    first_day = spans["first_us"].to_numpy() // syn._US_PER_DAY - lead_days
    return pd.DataFrame({
        "customer_id": np.char.add("c", ids.astype(str)).astype(object),
        "region": region.astype(object),
        "acquisition_channel": np.where(paid, "paid_social", other).astype(object),
        "signup_date": (pd.Timestamp("1970-01-01") + pd.to_timedelta(first_day, "D")).date,
    })


def _poisson_sessions(spec: syn.SyntheticSpec, ids: np.ndarray, start: np.ndarray,
                      stop: np.ndarray, rate_per_week: np.ndarray, offset: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Session starts of a Poisson process on [start, stop) per customer.

    Returns (customer numbers, session counters starting at ``offset``, start times us)."""
    span = np.maximum(stop - start, 0)
    mu = rate_per_week * span / _US_PER_WEEK
    n = stats.poisson.ppf(syn.uniforms(spec.seed, _S_N_SESS, ids, offset), mu).astype(np.int64)
    who = np.repeat(np.arange(len(ids)), n)
    j = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + offset
    cust = ids[who]
    t = start[who] + np.floor(span[who] * syn.uniforms(spec.seed, _S_SESS_T, cust, j))
    return cust, j, t.astype(np.int64)


def _browse_events(spec: syn.SyntheticSpec, source: SourceSpec, cust: np.ndarray,
                   j: np.ndarray, t: np.ndarray) -> pd.DataFrame:
    """Browsing-only sessions: 1+ views (geometric, mean 2) two minutes apart, then an
    add_to_cart with probability ``cart_share``."""
    s = spec.seed
    n_views = 1 + np.floor(np.log(syn.uniforms(s, _S_VIEWS, cust, j)) / np.log(0.5))
    n_views = n_views.astype(np.int64)
    cart = syn.uniforms(s, _S_CART, cust, j) < source.cart_share
    per = n_views + cart
    row = np.repeat(np.arange(len(cust)), per)
    i = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    kind = np.where(i < n_views[row], "view", "add_to_cart")
    sid = np.char.add(np.char.add(np.char.add("c", cust.astype(str)), "-b"), j.astype(str))
    return pd.DataFrame({"customer_num": cust[row], "event_us": t[row] + i * 2 * _US_PER_MIN,
                         "event_type": kind, "session_id": sid[row],
                         "u_product": syn.uniforms(s, _S_PRODUCT, cust[row], j[row] * 64 + i)})


def _order_events(spec: syn.SyntheticSpec, orders: pd.DataFrame) -> pd.DataFrame:
    """One session per order: 1-3 views, an add_to_cart 2 minutes before the purchase."""
    cust, k = orders["customer_num"].to_numpy(), orders["order_num"].to_numpy()
    at = orders["order_us"].to_numpy()
    n_views = 1 + np.floor(3 * syn.uniforms(spec.seed, _S_PVIEWS, cust, k)).astype(np.int64)
    per = n_views + 2
    row = np.repeat(np.arange(len(cust)), per)
    i = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    back = per[row] - 1 - i  # steps before the purchase, 2 minutes each
    kind = np.where(back == 0, "purchase", np.where(back == 1, "add_to_cart", "view"))
    sid = np.char.add(np.char.add(np.char.add("c", cust.astype(str)), "-o"), k.astype(str))
    return pd.DataFrame({"customer_num": cust[row], "event_us": at[row] - back * 2 * _US_PER_MIN,
                         "event_type": kind, "session_id": sid[row],
                         "u_product": syn.uniforms(spec.seed, _S_PRODUCT, cust[row],
                                                   -(k[row] + 1) * 64 - i)})


def simulate_events(spec: syn.SyntheticSpec, source: SourceSpec,
                    orders: pd.DataFrame) -> pd.DataFrame:
    """Browsing events of the customers of ``orders`` (the raw.events contract), before
    the data's as-of date, sorted by customer and time."""
    spans = _active_spans(spec, orders)
    ids = spans["customer_num"].to_numpy()
    first, drop, end = (spans[c].to_numpy() for c in ("first_us", "drop_us", "end_us"))
    if source.informative:
        rate = source.sessions_per_purchase * spans["lam"].to_numpy()
        parts = [_poisson_sessions(spec, ids, first, drop, rate, 0),
                 _poisson_sessions(spec, ids, drop, end, source.after_dropout_share * rate,
                                   1_000_000)]
    else:
        lam = special.gammaincinv(spec.r, syn.uniforms(spec.seed, _S_NOISE_LAM, ids)) / spec.alpha
        parts = [_poisson_sessions(spec, ids, first, end, source.sessions_per_purchase * lam, 0)]
    frames = [_browse_events(spec, source, *p) for p in parts] + [_order_events(spec, orders)]
    ev = pd.concat(frames, ignore_index=True)
    ev = ev[ev["event_us"] < syn._epoch_us(spec.as_of_date)]
    ev = ev.sort_values(["customer_num", "event_us"], kind="stable", ignore_index=True)
    return pd.DataFrame({
        "customer_id": np.char.add("c", ev["customer_num"].to_numpy().astype(str)).astype(object),
        "event_ts": pd.to_datetime(ev["event_us"].to_numpy(), unit="us"),
        "event_type": ev["event_type"].astype(object).to_numpy(),
        "session_id": ev["session_id"].astype(object).to_numpy(),
        "product_id": np.char.add("p", (ev["u_product"].to_numpy() * 50).astype(int).astype(str)
                                  ).astype(object),
    })


@dataclass(frozen=True)
class SourceTables:
    """Orders and the three optional sources, as pandas frames in the raw contracts."""

    orders: pd.DataFrame
    reviews: pd.DataFrame
    customers: pd.DataFrame
    events: pd.DataFrame


def simulate_sources(spec: syn.SyntheticSpec, source: SourceSpec) -> SourceTables:
    """Orders (``clv.synthetic``'s, in the raw.orders contract) with reviews, customers
    and events drawn per ``source``. Pandas, for test- and bench-sized data."""
    raw = syn.simulate_orders(spec, np.arange(spec.n_customers))
    cid = np.char.add("c", raw["customer_num"].to_numpy().astype(str))
    orders = pd.DataFrame({
        "order_id": np.char.add(np.char.add(cid, "-"), raw["order_num"].to_numpy().astype(str)
                                ).astype(object),
        "customer_id": cid.astype(object),
        "order_ts": pd.to_datetime(raw["order_us"].to_numpy(), unit="us"),
        "amount": raw["amount"].to_numpy(), "quantity": raw["quantity"].to_numpy(),
        "currency": "USD",
    })
    return SourceTables(orders=orders, reviews=simulate_reviews(spec, source, raw),
                        customers=simulate_customers(spec, source, raw),
                        events=simulate_events(spec, source, raw))

