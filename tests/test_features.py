"""Features and labels on hand-made orders, with the expected values worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from clv import features

CUTOFF = dt.date(2020, 3, 1)


def _orders(spark, rows):
    return spark.createDataFrame(
        [(oid, cid, dt.datetime.fromisoformat(ts), amt) for oid, cid, ts, amt in rows],
        "order_id string, customer_id string, order_ts timestamp, amount double",
    )


# Customer a: 3 purchase days (Jan 1, Jan 11 twice, Feb 20), customer b: one order.
HISTORY = [
    ("o1", "a", "2020-01-01 10:00:00", 10.0),
    ("o2", "a", "2020-01-11 09:00:00", 20.0),
    ("o3", "a", "2020-01-11 18:00:00", 5.0),
    ("o4", "a", "2020-02-20 12:00:00", 30.0),
    ("o5", "b", "2020-02-29 23:59:59", 7.0),
]


@pytest.fixture(scope="module")
def feats(spark):
    rows = features.customer_features(_orders(spark, HISTORY), CUTOFF).collect()
    return {r["customer_id"]: r.asDict() for r in rows}


def test_rfm_values_match_hand_computation(feats):
    a = feats["a"]
    # last purchase 2020-02-20 -> 2020-03-01 is 10 days; first 2020-01-01 -> 60 days (leap year)
    assert a["recency_days"] == 10
    assert a["tenure_days"] == 60
    assert a["n_orders"] == 4
    assert a["n_purchase_days"] == 3
    assert a["frequency"] == 2
    assert a["total_spend"] == pytest.approx(65.0)
    assert a["avg_order_value"] == pytest.approx(65.0 / 4)
    assert a["max_order_value"] == pytest.approx(30.0)
    # gaps between purchase days: Jan1->Jan11 = 10, Jan11->Feb20 = 40
    assert a["mean_ipt_days"] == pytest.approx(25.0)
    # sample std of (10, 40): sqrt(((10-25)^2 + (40-25)^2) / 1) = sqrt(450)
    assert a["std_ipt_days"] == pytest.approx(450 ** 0.5)


def test_single_order_customer(feats):
    b = feats["b"]
    # 2020-02-29 23:59:59 is the day before the cutoff
    assert (b["recency_days"], b["tenure_days"], b["frequency"]) == (1, 1, 0)
    assert b["mean_ipt_days"] is None and b["std_ipt_days"] is None


def test_period_history(feats):
    a = feats["a"]
    # period 1 = [Jan 31, Mar 1): Feb 20 (30.0); period 2 = [Jan 1, Jan 31): Jan 1, Jan 11 x2
    assert a["spend_p01"] == pytest.approx(30.0) and a["orders_p01"] == 1
    assert a["spend_p02"] == pytest.approx(35.0) and a["orders_p02"] == 3
    assert a["spend_p03"] == 0.0 and a["orders_p03"] == 0
    assert feats["b"]["spend_p01"] == pytest.approx(7.0)


def test_no_event_at_or_after_cutoff_reaches_a_feature(spark, feats):
    """Point-in-time: adding orders at and after the cutoff changes no feature."""
    future = HISTORY + [
        ("f1", "a", "2020-03-01 00:00:00", 1000.0),  # exactly at the cutoff
        ("f2", "a", "2020-06-01 00:00:00", 500.0),
        ("f3", "c", "2020-03-02 00:00:00", 9.0),  # a customer who only appears later
    ]
    later = features.customer_features(_orders(spark, future), CUTOFF).collect()
    assert {r["customer_id"]: r.asDict() for r in later} == feats


def test_labels_cover_the_half_open_horizon(spark):
    rows = HISTORY + [
        ("l1", "a", "2020-03-01 00:00:00", 11.0),  # at the cutoff: first instant of the horizon
        ("l2", "a", "2020-03-30 23:00:00", 4.0),   # last day of a 30-day horizon
        ("l3", "a", "2020-03-31 00:00:00", 99.0),  # cutoff + 30 days: outside
    ]
    ex = features.training_examples(_orders(spark, rows), CUTOFF, 30, "train").collect()
    by_id = {r["customer_id"]: r for r in ex}
    assert set(by_id) == {"a", "b"}
    assert by_id["a"]["spend_next"] == pytest.approx(15.0)
    assert (by_id["a"]["orders_next"], by_id["a"]["churned"]) == (2, 0)
    assert (by_id["b"]["spend_next"], by_id["b"]["churned"]) == (0.0, 1)
    assert by_id["a"]["cutoff_date"] == CUTOFF


def test_backtest_cutoffs_are_out_of_time():
    cut = features.backtest_cutoffs(dt.date(1998, 7, 1), 180)
    assert cut == {"train": dt.date(1997, 7, 6), "eval": dt.date(1998, 1, 2)}
    # the training labels end where the evaluation features begin
    assert cut["train"] + dt.timedelta(days=180) == cut["eval"]


def _pandas_features(orders, cutoff: dt.date, period_days: int = 30, n_periods: int = 12):
    """The 34 features written independently with pandas groupby (the reference)."""
    import pandas as pd

    past = orders[orders["order_ts"] < pd.Timestamp(cutoff)].copy()
    past["day"] = past["order_ts"].dt.normalize()
    cut = pd.Timestamp(cutoff)
    out = {}
    for cid, g in past.groupby("customer_id"):
        days = sorted(g["day"].unique())
        gaps = pd.Series([(b - a).days for a, b in zip(days, days[1:], strict=False)],
                         dtype="float64")
        ago = (cut - g["day"]).dt.days
        period = (ago - 1) // period_days + 1
        row = {
            "recency_days": (cut - days[-1]).days, "tenure_days": (cut - days[0]).days,
            "n_orders": len(g), "n_purchase_days": len(days), "frequency": len(days) - 1,
            "total_spend": g["amount"].sum(), "avg_order_value": g["amount"].mean(),
            "max_order_value": g["amount"].max(),
            "mean_ipt_days": gaps.mean() if len(gaps) >= 1 else None,
            "std_ipt_days": gaps.std(ddof=1) if len(gaps) >= 2 else None,
        }
        for k in range(1, n_periods + 1):
            row[f"spend_p{k:02d}"] = g.loc[period == k, "amount"].sum()
        for k in range(1, n_periods + 1):
            row[f"orders_p{k:02d}"] = int((period == k).sum())
        out[cid] = row
    return out


def test_matches_an_independent_pandas_reference_on_random_orders(spark):
    """200 customers, 3,000 random orders over two years (many on the same day, some at
    or after the cutoff): every one of the 34 columns equals a pandas groupby version."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    n = 3000
    start = pd.Timestamp("2018-06-01")
    # Seconds within ~640 days: the cutoff (2020-03-01) falls inside, so some orders are after it.
    seconds = rng.integers(0, 640 * 86400, size=n)
    orders = pd.DataFrame({
        "order_id": [f"o{i}" for i in range(n)],
        "customer_id": [f"c{c:03d}" for c in rng.integers(0, 200, size=n)],
        "order_ts": (start + pd.to_timedelta(seconds, unit="s")).astype("datetime64[us]"),
        "amount": np.round(rng.gamma(2.0, 20.0, size=n), 2),
    })
    # Bunch orders: a third of them repeat another order's timestamp day (same purchase day).
    dup = rng.random(n) < 0.33
    orders.loc[dup, "order_ts"] = orders["order_ts"].iloc[0].normalize() + pd.Timedelta(hours=3)
    expected = _pandas_features(orders, CUTOFF)
    got = {r["customer_id"]: r.asDict() for r in features.customer_features(
        spark.createDataFrame(orders), CUTOFF).collect()}
    assert set(got) == set(expected) and len(got) > 150
    for cid, want in expected.items():
        for col, value in want.items():
            if value is None:
                assert got[cid][col] is None, (cid, col)
            else:
                assert got[cid][col] == pytest.approx(value, rel=1e-12, abs=1e-9), (cid, col)
