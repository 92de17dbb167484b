"""Pipeline steps that guard the run: raw data validation and staleness."""

from __future__ import annotations

import datetime as dt

import pytest

from clv import pipeline, warehouse


def _load(spark, rows, batch):
    df = spark.createDataFrame(
        [(o, c, dt.datetime.fromisoformat(t), a, 1, "USD") for o, c, t, a in rows],
        "order_id string, customer_id string, order_ts timestamp, amount double, "
        "quantity int, currency string")
    warehouse.write_partition(df, "raw.orders", batch)


def test_validate_raw_counts_only_orders_before_the_as_of_date(spark, clv_home):
    _load(spark, [("1", "a", "2020-01-10 00:00:00", 5.0), ("2", "b", "2020-01-15 00:00:00", 7.0),
                  ("3", "a", "2020-03-01 00:00:00", 9.0)], dt.date(2020, 4, 1))
    out = pipeline.validate_raw(dt.date(2020, 3, 1), 90)
    assert out["rows"] == 2  # the order at exactly 2020-03-01 00:00 is not before it
    assert out["last_order"] == "2020-01-15T00:00:00"


def test_validate_raw_refuses_stale_data(spark, clv_home):
    _load(spark, [("1", "a", "2020-01-10 00:00:00", 5.0), ("2", "b", "2020-01-15 00:00:00", 7.0)],
          dt.date(2020, 2, 1))
    with pytest.raises(ValueError, match=r"newest order before as_of_date=2021-01-01 is from "
                                         r"2020-01-15, more than horizon_days=90 earlier"):
        pipeline.validate_raw(dt.date(2021, 1, 1), 90)


def test_validate_raw_names_the_failed_expectation(spark, clv_home):
    from clv.quality import DataQualityError

    _load(spark, [("1", "a", "2020-01-10 00:00:00", 5.0), ("2", "b", "2020-01-15 00:00:00",
                                                          1e9)], dt.date(2020, 2, 1))
    expected = r"(?s)raw.orders failed 1 of .*be_between\(amount\).*'order_id': '2'"
    with pytest.raises(DataQualityError, match=expected):
        pipeline.validate_raw(dt.date(2020, 2, 1), 90)


def test_backfill_equals_individual_runs(spark, tmp_path, monkeypatch):
    """Features for D2 are the same whether D1 ran before (a backfill) or not."""
    import duckdb

    from clv.config import load_settings

    rows = [("1", "a", "2020-01-10 00:00:00", 5.0), ("2", "b", "2020-02-15 00:00:00", 7.0),
            ("3", "a", "2020-03-20 00:00:00", 9.0), ("4", "c", "2020-04-02 00:00:00", 4.0)]
    d1, d2 = dt.date(2020, 3, 1), dt.date(2020, 4, 1)
    digests = []
    for name, dates in (("single", [d2]), ("backfill", [d1, d2])):
        monkeypatch.setenv("CLV_HOME", str(tmp_path / name))
        _load(spark, rows, dt.date(2020, 5, 1))
        for d in dates:
            pipeline.build_features(d, 30, f"run-{d}")
        settings = load_settings()
        warehouse.refresh_catalog(settings)
        con = duckdb.connect(str(warehouse.catalog_path(settings)), read_only=True)
        digests.append([con.execute(
            f"select md5(string_agg(t::varchar, '|' order by t::varchar)) from "
            f"(select * exclude (run_id) from {t} where as_of_date = ?) t", [d2]).fetchall()
            for t in ("features.customer_features", "features.training_examples")])
        con.close()
    assert digests[0] == digests[1]
    assert digests[0][0][0][0] is not None  # the partition is not empty
