"""Warehouse writes: per partition, idempotent, atomic; the DuckDB catalog sees them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from clv.data import warehouse

D1, D2 = dt.date(2024, 1, 1), dt.date(2024, 2, 1)


def _scores(spark, rows):
    return spark.createDataFrame(rows, "customer_id string, predicted_clv double")


def _catalog_rows(settings, sql):
    warehouse.refresh_catalog(settings)
    con = duckdb.connect(str(warehouse.catalog_path(settings)), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_rewrite_replaces_only_its_partition(spark, clv_home):
    t = "marts.customer_scores"
    warehouse.write_partition(_scores(spark, [("a", 1.0), ("b", 2.0)]), t, D1, clv_home)
    warehouse.write_partition(_scores(spark, [("a", 5.0)]), t, D2, clv_home)
    warehouse.write_partition(_scores(spark, [("c", 3.0)]), t, D1, clv_home)  # re-run of D1
    assert warehouse.list_partitions(t, clv_home) == [D1, D2]
    rows = _catalog_rows(clv_home, "select as_of_date, customer_id, predicted_clv "
                                   "from marts.customer_scores order by 1, 2")
    assert rows == [(D1, "c", 3.0), (D2, "a", 5.0)]
    # nothing left behind in staging but the lock files
    staging = warehouse.table_dir(t, clv_home) / "_staging"
    assert [p.name for p in staging.iterdir() if not p.name.endswith(".lock")] == []


def test_same_write_twice_is_idempotent(spark, clv_home):
    t = "marts.customer_scores"
    df = _scores(spark, [("a", 1.0), ("b", 2.0)])
    warehouse.write_partition(df, t, D1, clv_home)
    warehouse.write_partition(df, t, D1, clv_home)
    got = warehouse.read_table(spark, t, settings=clv_home).orderBy("customer_id").collect()
    assert [(r.customer_id, r.predicted_clv, r.as_of_date) for r in got] == [
        ("a", 1.0, D1), ("b", 2.0, D1)]


def test_pandas_read_of_chosen_columns(spark, clv_home):
    t = "marts.customer_scores"
    warehouse.write_partition(_scores(spark, [("a", 1.0), ("b", 2.0)]), t, D1, clv_home)
    frame = warehouse.read_partition_pandas(t, D1, clv_home, columns=["customer_id"])
    assert list(frame.columns) == ["customer_id", "as_of_date"]
    assert sorted(frame["customer_id"]) == ["a", "b"]
    only_b = warehouse.read_partition_pandas(t, D1, clv_home, where={"customer_id": "b"})
    assert only_b["predicted_clv"].tolist() == [2.0]
    with pytest.raises(warehouse.WarehouseError,
                       match=r"marts.customer_scores: no column\(s\) \['p_churn'\]"):
        warehouse.read_partition_pandas(t, D1, clv_home, columns=["customer_id", "p_churn"])


def test_missing_key_column_is_refused(spark, clv_home):
    df = spark.createDataFrame([(1.0,)], "predicted_clv double")
    with pytest.raises(warehouse.WarehouseError, match="customer_id"):
        warehouse.write_partition(df, "marts.customer_scores", D1, clv_home)


def test_unknown_table_names_the_known_ones():
    with pytest.raises(warehouse.WarehouseError, match="marts.customer_scores"):
        warehouse.table_dir("marts.nope")


def test_reading_a_missing_partition_is_a_clear_error(spark, clv_home):
    with pytest.raises(warehouse.WarehouseError, match=r"as_of_date=2024-01-01 does not exist"):
        warehouse.read_table(spark, "marts.customer_scores", D1, clv_home)


def test_killed_writer_leaves_the_published_partition_intact(spark, clv_home, tmp_path):
    """SIGKILL a process in the middle of its Spark write: readers keep the old version."""
    t = "marts.customer_scores"
    warehouse.write_partition(_scores(spark, [("old", 1.0)]), t, D1, clv_home)
    marker = tmp_path / "writing"
    script = textwrap.dedent(f"""
        import datetime as dt, os, pathlib
        from clv.data import warehouse
        from clv.data.spark import get_spark
        import time
        from pyspark.sql import functions as F
        spark = get_spark("killed-writer")
        slow = F.udf(lambda i: (time.sleep(0.005), float(i))[1], "double")  # ~17 min in all
        df = spark.range(0, 200_000, numPartitions=4).select(
            F.col("id").cast("string").alias("customer_id"), slow("id").alias("predicted_clv"))
        pathlib.Path({str(marker)!r}).touch()
        warehouse.write_partition(df, {t!r}, dt.date(2024, 1, 1))
    """)
    env = {**os.environ, "CLV_HOME": str(clv_home.home)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    staging = warehouse.table_dir(t, clv_home) / "_staging"
    try:
        for _ in range(600):  # wait until Spark has started writing the staged folder
            if marker.exists() and any(p.is_dir() for p in staging.glob("as_of_date=*.*")):
                break
            if proc.poll() is not None:
                pytest.fail("writer exited before it was killed")
            time.sleep(0.1)
        else:
            pytest.fail("writer never started writing")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    got = warehouse.read_table(spark, t, D1, clv_home).collect()
    assert [(r.customer_id, r.predicted_clv) for r in got] == [("old", 1.0)]
    # the retry cleans the leftover and converges with no duplicates
    warehouse.write_partition(_scores(spark, [("new", 2.0), ("new2", 3.0)]), t, D1, clv_home)
    got = warehouse.read_table(spark, t, D1, clv_home).orderBy("customer_id").collect()
    assert [r.customer_id for r in got] == ["new", "new2"]
    assert [p.name for p in staging.iterdir() if not p.name.endswith(".lock")] == []


def test_large_pandas_frames_reach_spark_through_parquet_with_the_same_types(
        spark, clv_home, monkeypatch):
    import pandas as pd

    frame = pd.DataFrame({"customer_id": ["a", "b", None], "value": [1.5, float("nan"), 3.0],
                          "n": [1, 2, 3], "day": [D1, D2, D1], "flag": [True, False, True]})
    direct = spark.createDataFrame(frame)
    monkeypatch.setattr(warehouse, "LOCAL_RELATION_MAX_ROWS", 1)
    handoff = clv_home.state_dir / "spark" / "handoff"
    with warehouse.spark_frame(spark, frame, clv_home) as df:
        assert len(list(handoff.iterdir())) == 1  # through a Parquet folder
        assert df.dtypes == direct.dtypes
        rows = sorted((tuple(r) for r in df.collect()), key=str)
        assert rows == sorted((tuple(r) for r in direct.collect()), key=str)
    assert list(handoff.iterdir()) == []  # removed with the block
    assert dict((r[0], r[1]) for r in rows)["b"] is None  # NaN -> null, as createDataFrame


def test_an_all_null_column_handed_over_through_parquet_still_casts_to_its_type(
        spark, clv_home, monkeypatch):
    """churn_alerts of a first run (no previous scores) at 1M orders: previous_as_of_date
    is None throughout, and the cast to date failed ("cannot cast INT to DATE")."""
    import pandas as pd
    from pyspark.sql import functions as F

    frame = pd.DataFrame({"customer_id": ["a", "b"], "previous": [None, None]})
    monkeypatch.setattr(warehouse, "LOCAL_RELATION_MAX_ROWS", 1)
    with warehouse.spark_frame(spark, frame, clv_home) as df:
        typed = df.select("customer_id", F.col("previous").cast("date").alias("previous"))
        assert typed.dtypes == [("customer_id", "string"), ("previous", "date")]
        assert [r.previous for r in typed.collect()] == [None, None]
