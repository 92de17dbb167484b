"""Returns in the synthetic orders (:func:`clv.data.synthetic.with_returns`), checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.data.synthetic import (
    RETURN_MAX_DELAY_DAYS,
    RETURN_PARTIAL_RANGE,
    SyntheticSpec,
    simulate_orders,
    with_returns,
)

US_PER_DAY = 86_400_000_000


def _orders() -> pd.DataFrame:
    """Three hand-made orders: customer 1 buys twice, customer 2 once."""
    return pd.DataFrame({"customer_num": [1, 1, 2], "order_num": [0, 1, 0],
                         "order_us": [0, 10 * US_PER_DAY, 3 * US_PER_DAY],
                         "amount": [100.0, 40.0, 7.5], "quantity": [3, 1, 2]})


def _pairs(out: pd.DataFrame) -> pd.DataFrame:
    """Each return joined to the order it returns (order_num = -(k + 1))."""
    ret = out[out["order_num"] < 0].assign(k=lambda r: -r["order_num"] - 1)
    buy = out[out["order_num"] >= 0]
    return ret.merge(buy, left_on=["customer_num", "k"], right_on=["customer_num", "order_num"],
                     suffixes=("_ret", "_buy"), how="left", validate="one_to_one")


def test_share_one_returns_every_order_once_later_same_customer_negative() -> None:
    out = with_returns(_orders(), 1.0, seed=3)
    assert len(out) == 6  # 3 orders + 3 returns
    pairs = _pairs(out)
    assert pairs["amount_buy"].notna().all()  # every return belongs to an order of its customer
    assert sorted(pairs["k"] + 10 * pairs["customer_num"]) == [10, 11, 20]
    assert (pairs["amount_ret"] < 0).all() and (pairs["quantity_ret"] < 0).all()
    assert (-pairs["amount_ret"] <= pairs["amount_buy"]).all()
    assert (-pairs["quantity_ret"] <= pairs["quantity_buy"]).all()
    delay = (pairs["order_us_ret"] - pairs["order_us_buy"]) / US_PER_DAY
    assert ((delay >= 1) & (delay <= RETURN_MAX_DELAY_DAYS) & (delay == delay.round())).all()
    # the purchases are untouched
    pd.testing.assert_frame_equal(out[out["order_num"] >= 0].reset_index(drop=True), _orders())
    # by customer, then time
    assert (out["customer_num"].diff().fillna(0) >= 0).all()
    for _, g in out.groupby("customer_num"):
        assert g["order_us"].is_monotonic_increasing


def test_share_zero_adds_nothing_and_bad_share_is_refused() -> None:
    pd.testing.assert_frame_equal(with_returns(_orders(), 0.0, seed=3), _orders())
    with pytest.raises(ValueError, match="share"):
        with_returns(_orders(), 1.5, seed=3)
    with pytest.raises(ValueError, match="quantity"):
        with_returns(_orders().drop(columns="quantity"), 0.1, seed=3)


def test_generated_returns_share_and_amounts() -> None:
    orders = simulate_orders(SyntheticSpec(n_customers=3000, seed=1), np.arange(3000))
    out = with_returns(orders, 0.08, seed=11)
    pairs = _pairs(out)
    n, k = len(orders), len(pairs)
    # Binomial(n, 0.08): within 4 standard deviations of n * 0.08
    assert abs(k - 0.08 * n) < 4 * np.sqrt(n * 0.08 * 0.92)
    assert pairs["amount_buy"].notna().all()
    frac = -pairs["amount_ret"] / pairs["amount_buy"]
    full = np.isclose(frac, 1.0)
    # half are full returns (Binomial(k, 1/2) within 4 sd); the rest in the partial range
    assert abs(full.sum() - k / 2) < 4 * np.sqrt(k / 4)
    low, high = RETURN_PARTIAL_RANGE
    cents = 0.01 / pairs["amount_buy"][~full]  # rounding to cents moves f by this much
    assert ((frac[~full] >= low - cents) & (frac[~full] <= high + cents)).all()
    assert (pairs.loc[full, "quantity_ret"] == -pairs.loc[full, "quantity_buy"]).all()
    # same seed, same returns; another seed, other ones
    pd.testing.assert_frame_equal(with_returns(orders, 0.08, seed=11), out)
    assert not with_returns(orders, 0.08, seed=12).equals(out)
