"""Synthetic order lines with known latent preferences (the ``raw.order_lines`` contract).

The generating story:

* a catalogue of ``n_products`` products in ``n_categories`` categories; product ``j``
  has latent factors ``v_j = c_{cat(j)} + category_spread * e_j`` (``c`` and ``e``
  standard normal, ``n_factors`` wide), a popularity ``b_j ~ Normal(0, popularity_sigma)``
  and a unit price ``LogNormal(price_mu, price_sigma)`` rounded to cents;
* customer ``i`` has latent factors ``u_i ~ Normal(0, I)`` and an activity weight
  ``w_i ~ LogNormal(0, activity_sigma)``;
* ``n_lines`` lines in orders of ``1 + Poisson(mean_lines_per_order - 1)`` lines; each
  order belongs to a customer drawn with probability ``w_i / sum(w)`` and happens at a
  time uniform over ``[start_date, start_date + days)``;
* every line of customer ``i`` is product ``j`` with probability
  ``softmax_j(preference_strength * u_i . v_j / sqrt(n_factors) + b_j)`` and quantity
  ``1 + Poisson(extra_quantity)``.

So the truth is :attr:`SyntheticLines.affinity` (customer x product logits): a
recommender that learns ``u . v`` beats one that knows only ``b`` (popularity), by a
margin set by ``preference_strength`` (0: popularity is the truth).

Determinism: one ``numpy.random.Generator`` seeded with ``seed``; the chunking of the
choice step depends on the spec only, so a seed and a spec give identical lines.

Scale: everything is vectorised; the choice step works through customers in chunks of
about ``CHOICE_BLOCK`` logits (one flat ``searchsorted`` per chunk), so 10,000,000 lines
over 100,000 customers and 2,000 products take seconds and about 1 GiB.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: The ``raw.order_lines`` columns, in order.
LINE_COLUMNS = ("order_id", "customer_id", "order_ts", "product_id", "category", "quantity",
                "unit_price")
#: Logits per chunk of the choice step (memory: about 3 x 8 bytes each).
CHOICE_BLOCK = 4_000_000


@dataclass(frozen=True)
class LinesSpec:
    """Parameters of the generator (see the module docstring)."""

    n_customers: int = 2_000
    n_products: int = 200
    n_categories: int = 10
    n_factors: int = 6
    n_lines: int = 60_000
    start_date: dt.date = dt.date(2024, 1, 1)
    days: int = 365
    mean_lines_per_order: float = 2.5
    preference_strength: float = 3.0
    category_spread: float = 0.5
    popularity_sigma: float = 1.0
    activity_sigma: float = 0.5
    extra_quantity: float = 0.3
    price_mu: float = 3.0
    price_sigma: float = 0.7
    seed: int = 7

    def __post_init__(self) -> None:
        for name in ("n_customers", "n_products", "n_categories", "n_factors", "n_lines", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"LinesSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.mean_lines_per_order < 1:
            raise ValueError("LinesSpec.mean_lines_per_order must be >= 1, "
                             f"got {self.mean_lines_per_order}")


@dataclass(frozen=True)
class SyntheticLines:
    """Generated lines (as numbers) and the truth behind them.

    Arrays ``line_*`` have one entry per line; ``order_seconds`` per order (seconds
    after ``spec.start_date``); the rest are indexed by customer or product number.
    :meth:`frame` (pandas) and :meth:`arrow` (compact, for millions of lines) give the
    ``raw.order_lines`` rows with ids ``O<n>``, ``C<n>``, ``P<n>`` and categories ``K<n>``.
    """

    spec: LinesSpec
    line_order: np.ndarray
    line_customer: np.ndarray
    line_product: np.ndarray
    line_quantity: np.ndarray
    order_seconds: np.ndarray
    unit_price: np.ndarray  # (n_products,)
    customer_factors: np.ndarray  # (n_customers, n_factors)
    product_factors: np.ndarray  # (n_products, n_factors)
    popularity: np.ndarray  # (n_products,)
    product_category: np.ndarray  # (n_products,) category number

    def affinity(self, customers: np.ndarray | None = None) -> np.ndarray:
        """True choice logits (customers x products): the ranking an oracle would use."""
        u = self.customer_factors if customers is None else self.customer_factors[customers]
        return _logits(u, self.product_factors, self.popularity, self.spec)

    def _timestamps_us(self) -> np.ndarray:
        start = np.datetime64(self.spec.start_date.isoformat(), "us")
        return start + self.order_seconds[self.line_order].astype("timedelta64[s]")

    def frame(self) -> pd.DataFrame:
        """The lines as a pandas frame (python strings: for up to about a million lines)."""
        return pd.DataFrame({
            "order_id": _ids("O", self.line_order),
            "customer_id": _ids("C", self.line_customer),
            "order_ts": pd.to_datetime(self._timestamps_us(), utc=True),
            "product_id": _ids("P", self.line_product),
            "category": _ids("K", self.product_category[self.line_product]),
            "quantity": self.line_quantity,
            "unit_price": self.unit_price[self.line_product],
        }, columns=list(LINE_COLUMNS))

    def arrow(self) -> Any:
        """The lines as a ``pyarrow.Table`` (Arrow strings: 10M lines in well under 1 GiB)."""
        import pyarrow as pa

        return pa.table({
            "order_id": _arrow_ids("O", self.line_order),
            "customer_id": _arrow_ids("C", self.line_customer),
            "order_ts": pa.array(self._timestamps_us(), pa.timestamp("us", tz="UTC")),
            "product_id": _arrow_ids("P", self.line_product),
            "category": _arrow_ids("K", self.product_category[self.line_product]),
            "quantity": pa.array(self.line_quantity, pa.int32()),
            "unit_price": pa.array(self.unit_price[self.line_product], pa.float64()),
        })


def customer_id(number: np.ndarray | int) -> np.ndarray | str:
    """The id of customer number ``number`` (``C<n>``)."""
    return _ids("C", number)


def product_id(number: np.ndarray | int) -> np.ndarray | str:
    """The id of product number ``number`` (``P<n>``)."""
    return _ids("P", number)


def _ids(prefix: str, number: np.ndarray | int) -> np.ndarray | str:
    if np.isscalar(number):
        return f"{prefix}{int(number)}"
    return np.char.add(prefix, np.asarray(number).astype(str)).astype(object)


def _arrow_ids(prefix: str, number: np.ndarray) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(number), pa.string()), "")


def _logits(u: np.ndarray, v: np.ndarray, b: np.ndarray, spec: LinesSpec) -> np.ndarray:
    return spec.preference_strength * (u @ v.T) / np.sqrt(spec.n_factors) + b


def generate_lines(spec: LinesSpec = LinesSpec()) -> SyntheticLines:
    """Draw a catalogue, customers and ``spec.n_lines`` order lines (see the module docstring)."""
    rng = np.random.default_rng(spec.seed)
    f = spec.n_factors
    centroids = rng.standard_normal((spec.n_categories, f))
    category = rng.integers(0, spec.n_categories, spec.n_products)
    v = centroids[category] + spec.category_spread * rng.standard_normal((spec.n_products, f))
    b = rng.normal(0.0, spec.popularity_sigma, spec.n_products)
    price = np.maximum(np.round(rng.lognormal(spec.price_mu, spec.price_sigma,
                                              spec.n_products), 2), 0.01)
    u = rng.standard_normal((spec.n_customers, f))
    activity = rng.lognormal(0.0, spec.activity_sigma, spec.n_customers)

    order_customer, line_order = _orders(rng, spec, activity)
    line_customer = order_customer[line_order]  # sorted: orders are drawn sorted by customer
    line_product = _choose_products(rng, spec, u, v, b, line_customer)
    return SyntheticLines(
        spec, line_order, line_customer, line_product,
        (1 + rng.poisson(spec.extra_quantity, len(line_order))).astype(np.int32),
        rng.integers(0, spec.days * 86_400, len(order_customer)), price, u, v, b, category)


def _orders(rng: np.random.Generator, spec: LinesSpec, activity: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """(customer number per order, sorted; order number per line), exactly ``n_lines`` lines."""
    n_orders = int(np.ceil(spec.n_lines / spec.mean_lines_per_order * 1.05)) + 1
    sizes = 1 + rng.poisson(spec.mean_lines_per_order - 1.0, n_orders)
    while sizes.sum() < spec.n_lines:  # rare: top up with one more block of orders
        sizes = np.concatenate([sizes, 1 + rng.poisson(spec.mean_lines_per_order - 1.0,
                                                       n_orders)])
    ends = np.cumsum(sizes)
    n_orders = int(np.searchsorted(ends, spec.n_lines)) + 1
    sizes = sizes[:n_orders]
    sizes[-1] -= int(ends[n_orders - 1] - spec.n_lines)  # the last order is cut to fit
    cum = np.cumsum(activity / activity.sum())
    order_customer = np.sort(np.minimum(np.searchsorted(cum, rng.random(n_orders)),
                                        spec.n_customers - 1))
    return order_customer, np.repeat(np.arange(n_orders), sizes)


def _choose_products(rng: np.random.Generator, spec: LinesSpec, u: np.ndarray, v: np.ndarray,
                     b: np.ndarray, line_customer: np.ndarray) -> np.ndarray:
    """Product number per line, drawn from the customer's softmax (lines sorted by customer)."""
    out = np.empty(len(line_customer), dtype=np.int32)
    per_chunk = max(1, CHOICE_BLOCK // spec.n_products)
    draws = rng.random(len(line_customer))
    for c0 in range(0, spec.n_customers, per_chunk):
        c1 = min(c0 + per_chunk, spec.n_customers)
        lo, hi = np.searchsorted(line_customer, [c0, c1])
        if lo == hi:
            continue
        logits = _logits(u[c0:c1], v, b, spec)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        cum = np.cumsum(p, axis=1)
        cum /= cum[:, -1:]
        cum[:, -1] = 1.0
        # Row r's cumulative probabilities shifted into (r, r + 1]: one flat, sorted array,
        # so one searchsorted draws every line of the chunk from its own customer's row.
        rows = line_customer[lo:hi] - c0
        flat = (cum + np.arange(c1 - c0)[:, None]).ravel()
        pos = np.searchsorted(flat, rows + draws[lo:hi], side="right")
        out[lo:hi] = np.minimum(pos - rows * spec.n_products, spec.n_products - 1)
    return out
