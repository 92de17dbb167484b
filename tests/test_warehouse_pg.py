"""The PostgreSQL warehouse backend against a live server started by the tests.

Round trips over Spark JDBC, idempotent re-writes, a Spark writer killed mid-write
(readers keep the previous partition, the retry leaves no duplicates), readers never
seeing a mix during a publish, and the analyst role's least privilege.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from pg_server import JDBC_JAR, pg_server  # noqa: F401  (session fixture)

# The session's SparkSession (tests/conftest.py) must start with the JDBC driver on its
# classpath: spark.py adds CLV_JDBC_JAR when it is set. Set at collection, before any JVM.
if os.path.isfile(JDBC_JAR):
    os.environ.setdefault("CLV_JDBC_JAR", JDBC_JAR)

psycopg = pytest.importorskip("psycopg")

from clv.data import postgres, warehouse  # noqa: E402

D1, D2 = dt.date(2024, 1, 1), dt.date(2024, 2, 1)
SCORES = "marts.customer_scores"


@pytest.fixture
def pg_settings(pg_server, clv_home, request):  # noqa: F811
    """Settings whose warehouse is a fresh PostgreSQL database (superuser)."""
    name = "wh_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    uri = pg_server.create_database(name)
    return dataclasses.replace(clv_home, warehouse_uri=uri)


def _sql(settings, query, params=None):
    with psycopg.connect(settings.warehouse_uri, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def _scores(spark, rows):
    return spark.createDataFrame(rows, "customer_id string, predicted_clv double")


def _staging_tables(settings):
    return [r[0] for r in _sql(settings, "select tablename from pg_tables where schemaname "
                                         "= 'clv_meta' and tablename like %s", ["stg%"])]


# --------------------------------------------------------------------------- configuration

def test_postgres_uri_selects_the_backend(clv_home, monkeypatch):
    monkeypatch.setenv("CLV_WAREHOUSE_URI", "postgresql://w:secret@127.0.0.1:5432/clv")
    monkeypatch.setenv("CLV_JDBC_JAR", "/opt/jars/pg.jar")
    from clv.config import load_settings

    s = load_settings()
    assert s.warehouse_backend == "postgresql" and str(s.jdbc_jar) == "/opt/jars/pg.jar"
    with pytest.raises(ValueError, match="PostgreSQL"):
        _ = s.warehouse_root
    assert "secret" not in str(warehouse.catalog_path(s))
    t = postgres.target(s)
    assert (t.user, t.password, t.host, t.port, t.database) == (
        "w", "secret", "127.0.0.1", 5432, "clv")
    assert t.jdbc_url == "jdbc:postgresql://127.0.0.1:5432/clv"
    assert clv_home.warehouse_backend == "parquet"


def test_missing_jdbc_jar_is_a_clear_error(clv_home, tmp_path):
    from clv.data.spark import _jdbc_jar

    s = dataclasses.replace(clv_home, warehouse_uri="postgresql://u:p@h/db",
                            jdbc_jar=tmp_path / "nope.jar")
    with pytest.raises(FileNotFoundError, match="libpostgresql-jdbc-java"):
        _jdbc_jar(s)


# --------------------------------------------------------------------------- writes and reads

def test_round_trip_of_a_partition(spark, pg_settings):
    rows = [("a", 1.5, 3, dt.date(1998, 1, 2), dt.datetime(1998, 1, 2, 13, 45, 7), True),
            ("b", None, None, None, None, None)]
    df = spark.createDataFrame(rows, "customer_id string, predicted_clv double, n int, "
                                     "first_day date, first_ts timestamp, flag boolean")
    from pyspark.sql import functions as F

    warehouse.write_partition(df.withColumn("as_of_date", F.lit(D1)), SCORES, D1, pg_settings)
    assert warehouse.list_partitions(SCORES, pg_settings) == [D1]
    got = warehouse.read_table(spark, SCORES, D1, pg_settings)
    assert got.columns == [*df.columns, "as_of_date"]
    assert dict(got.dtypes) == {**dict(df.dtypes), "as_of_date": "date"}
    assert {r.customer_id: tuple(r) for r in got.collect()} == {
        "a": (*rows[0], D1), "b": (*rows[1], D1)}
    frame = warehouse.read_partition_pandas(SCORES, D1, pg_settings).sort_values("customer_id")
    assert list(frame.columns) == [*df.columns, "as_of_date"]
    assert frame.iloc[0].tolist()[:4] == ["a", 1.5, 3, dt.date(1998, 1, 2)]
    assert str(frame["first_ts"].dtype) == "datetime64[ns, UTC]"  # as from Parquet
    assert frame.iloc[0]["first_ts"] == dt.datetime(1998, 1, 2, 13, 45, 7, tzinfo=dt.UTC)
    assert set(frame["as_of_date"]) == {D1}
    two = warehouse.read_partition_pandas(SCORES, D1, pg_settings, columns=["customer_id", "n"])
    two = two.sort_values("customer_id")
    assert two["customer_id"].tolist() == ["a", "b"] and two["n"].iat[0] == 3
    assert two["n"].isna().tolist() == [False, True]
    assert list(two.columns) == ["customer_id", "n", "as_of_date"]
    desc = warehouse.read_partition_pandas(SCORES, D1, pg_settings, columns=["customer_id"],
                                           order_by=["customer_id"])
    assert desc["customer_id"].tolist() == ["a", "b"]
    only_a = warehouse.read_partition_pandas(SCORES, D1, pg_settings, columns=["n"],
                                             where={"customer_id": "a"})
    assert only_a["n"].tolist() == [3]
    with pytest.raises(warehouse.WarehouseError, match=r"no column\(s\) \['nope'\]"):
        warehouse.read_partition_pandas(SCORES, D1, pg_settings, columns=["nope"])
    # a second partition, and a column that appears later (older rows read it as null)
    warehouse.write_partition(df.limit(1).selectExpr("*", "'x' as note"), SCORES, D2, pg_settings)
    whole = warehouse.read_table(spark, SCORES, settings=pg_settings)
    assert sorted((r.as_of_date, r.customer_id, r.note) for r in whole.collect()) == [
        (D1, "a", None), (D1, "b", None), (D2, "a", "x")]
    assert _staging_tables(pg_settings) == []
    comment = _sql(pg_settings, "select obj_description('marts.customer_scores'::regclass)")
    assert comment[0][0] == warehouse.get_table(SCORES).description


def test_raw_orders_are_read_in_parallel_ranges(spark, pg_settings):
    from pyspark.sql import functions as F

    n = 5_000
    orders = spark.range(n).select(
        F.col("id").cast("string").alias("order_id"),
        (F.col("id") % 97).cast("string").alias("customer_id"),
        F.timestamp_seconds(F.lit(883_612_800) + F.col("id") * 3_600).alias("order_ts"),
        (F.col("id") / 10).alias("amount"))
    warehouse.write_partition(orders, "raw.orders", D1, pg_settings)
    got = warehouse.read_table(spark, "raw.orders", settings=pg_settings)
    assert got.rdd.getNumPartitions() == postgres.DEFAULT_READ_PARTITIONS
    sizes = got.rdd.glom().map(len).collect()
    assert sum(sizes) == n and min(sizes) > 0  # every connection pulled a share
    assert got.select("order_id").distinct().count() == n
    one = warehouse.read_table(spark, "raw.orders", D1, pg_settings)
    assert one.rdd.getNumPartitions() == postgres.DEFAULT_READ_PARTITIONS
    assert one.count() == n


def test_rewrite_replaces_only_its_partition_without_duplicates(spark, pg_settings):
    warehouse.write_partition(_scores(spark, [("a", 1.0), ("b", 2.0)]), SCORES, D1, pg_settings)
    warehouse.write_partition(_scores(spark, [("a", 5.0)]), SCORES, D2, pg_settings)
    warehouse.write_partition(_scores(spark, [("c", 3.0)]), SCORES, D1, pg_settings)  # re-run
    warehouse.write_partition(_scores(spark, [("c", 3.0)]), SCORES, D1, pg_settings)  # again
    assert warehouse.list_partitions(SCORES, pg_settings) == [D1, D2]
    assert _sql(pg_settings, "select as_of_date, customer_id, predicted_clv "
                             "from marts.customer_scores order by 1, 2") == [
        (D1, "c", 3.0), (D2, "a", 5.0)]
    assert _sql(pg_settings, "select table_name, as_of_date, row_count from clv_meta.partitions "
                             "order by 2") == [(SCORES, D1, 1), (SCORES, D2, 1)]
    assert postgres.row_count(warehouse.get_table(SCORES), D1, pg_settings) == 1
    assert _staging_tables(pg_settings) == []
    # an empty partition is a partition too
    warehouse.write_partition(_scores(spark, []), SCORES, D2, pg_settings)
    assert warehouse.list_partitions(SCORES, pg_settings) == [D1, D2]
    assert warehouse.read_table(spark, SCORES, D2, pg_settings).count() == 0


def test_missing_partition_and_key_column_are_clear_errors(spark, pg_settings):
    with pytest.raises(warehouse.WarehouseError, match=r"as_of_date=2024-01-01 does not exist"):
        warehouse.read_table(spark, SCORES, D1, pg_settings)
    with pytest.raises(warehouse.WarehouseError, match="empty or missing"):
        warehouse.read_table(spark, SCORES, settings=pg_settings)
    with pytest.raises(warehouse.WarehouseError, match=r"as_of_date=2024-01-01 does not exist"):
        warehouse.read_partition_pandas(SCORES, D1, pg_settings)
    df = spark.createDataFrame([(1.0,)], "predicted_clv double")
    with pytest.raises(warehouse.WarehouseError, match="customer_id"):
        warehouse.write_partition(df, SCORES, D1, pg_settings)
    assert "secret" not in warehouse.refresh_catalog(dataclasses.replace(
        pg_settings, warehouse_uri=pg_settings.warehouse_uri))
    assert {"raw", "quality", "features", "marts", "clv_meta"} <= {
        r[0] for r in _sql(pg_settings, "select nspname from pg_namespace")}


def test_drop_partition_removes_one_partition_and_its_bookkeeping(spark, pg_settings):
    """What ``clv quarantine-batch`` uses to take a batch out (issue #20)."""
    warehouse.write_partition(_scores(spark, [("a", 1.0)]), SCORES, D1, pg_settings)
    warehouse.write_partition(_scores(spark, [("b", 2.0), ("c", 3.0)]), SCORES, D2, pg_settings)
    assert warehouse.drop_partition(SCORES, D2, pg_settings)
    assert warehouse.list_partitions(SCORES, pg_settings) == [D1]
    assert warehouse.row_count(SCORES, D2, pg_settings) is None
    assert _sql(pg_settings, "select customer_id from marts.customer_scores") == [("a",)]
    assert not warehouse.drop_partition(SCORES, D2, pg_settings)  # idempotent


# --------------------------------------------------------------------------- atomicity

def test_killed_spark_writer_leaves_the_published_partition_intact(spark, pg_settings):
    """SIGKILL a Spark job while it writes the staging table: readers keep the old version."""
    warehouse.write_partition(_scores(spark, [("old1", 1.0), ("old2", 2.0)]), SCORES, D1,
                              pg_settings)
    script = textwrap.dedent(f"""
        import datetime as dt, time
        from pyspark.sql import functions as F
        from clv.data import warehouse
        from clv.data.spark import get_spark
        spark = get_spark("killed-pg-writer")
        # 8 tasks of 2,000 rows; task 0 is fast (commits its rows to staging), the others
        # sleep per row (~20 min in all), so the kill lands in the middle of the write.
        slow = F.udf(lambda i: (time.sleep(0.0 if i < 2000 else 0.05), float(i))[1], "double")
        df = spark.range(0, 16_000, numPartitions=8).select(
            F.col("id").cast("string").alias("customer_id"), slow("id").alias("predicted_clv"))
        warehouse.write_partition(df, {SCORES!r}, dt.date(2024, 1, 1))
    """)
    env = {**os.environ, "CLV_HOME": str(pg_settings.home),
           "CLV_WAREHOUSE_URI": pg_settings.warehouse_uri, "CLV_SPARK_MASTER": "local[2]"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    staging = postgres.staging_name(warehouse.get_table(SCORES), D1)
    staged_rows = 0
    try:
        for _ in range(1200):  # until the staging table holds some committed rows
            if staging in _staging_tables(pg_settings):
                staged_rows = _sql(pg_settings, f"select count(*) from clv_meta.{staging}")[0][0]
                if staged_rows > 0:
                    break
            if proc.poll() is not None:
                pytest.fail(f"writer exited before it was killed: {proc.stderr.read()[-3000:]}")
            time.sleep(0.1)
        else:
            pytest.fail("writer never committed rows to the staging table")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # the half-written staging table is there (the hazard), the published table is not affected
    assert 0 < staged_rows < 16_000
    got = warehouse.read_table(spark, SCORES, D1, pg_settings).collect()
    assert sorted((r.customer_id, r.predicted_clv) for r in got) == [("old1", 1.0), ("old2", 2.0)]
    assert _sql(pg_settings, "select count(*) from marts.customer_scores")[0][0] == 2
    # the retry replaces the leftover staging table and publishes once, no duplicates
    new = spark.range(0, 3_000, numPartitions=3).selectExpr(
        "cast(id as string) as customer_id", "cast(id as double) as predicted_clv")
    warehouse.write_partition(new, SCORES, D1, pg_settings)
    assert _sql(pg_settings, "select count(*), count(distinct customer_id) "
                             "from marts.customer_scores where as_of_date = %s", [D1]) == [
        (3_000, 3_000)]
    assert _staging_tables(pg_settings) == []


def test_readers_see_the_old_or_the_new_partition_never_a_mix(pg_settings):
    """Publish 3,000 then 5,000 rows of the same date repeatedly while a reader counts."""
    table = warehouse.get_table(SCORES)
    with psycopg.connect(pg_settings.warehouse_uri, autocommit=True) as conn:
        postgres.ensure_meta(conn)
        conn.execute("create schema if not exists marts")
    sizes = (3_000, 5_000)
    staging = postgres.staging_name(table, D1)

    def publish(n):
        with psycopg.connect(pg_settings.warehouse_uri) as conn:
            conn.execute(f"create table clv_meta.{staging} as select g::text as customer_id, "
                         "g::float8 as predicted_clv, date '2024-01-01' as as_of_date "
                         "from generate_series(1, %s) g", [n])
            conn.commit()
            assert postgres.publish(conn, table, D1, staging, expected_rows=n) == n

    publish(sizes[0])
    seen: list[int] = []
    stop = threading.Event()

    def reader():
        with psycopg.connect(pg_settings.warehouse_uri, autocommit=True) as conn:
            while not stop.is_set():
                seen.append(conn.execute("select count(*) from marts.customer_scores "
                                         "where as_of_date = %s", [D1]).fetchone()[0])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(20):
            publish(sizes[(i + 1) % 2])
    finally:
        stop.set()
        thread.join()
    assert len(seen) > 20 and set(seen) <= set(sizes), sorted(set(seen))


def test_staging_that_does_not_match_spark_is_not_published(pg_settings):
    table = warehouse.get_table(SCORES)
    staging = postgres.staging_name(table, D1)
    with psycopg.connect(pg_settings.warehouse_uri) as conn:
        postgres.ensure_meta(conn)
        conn.execute("create schema if not exists marts")
        conn.execute(f"create table clv_meta.{staging} (customer_id text, as_of_date date)")
        conn.execute(f"insert into clv_meta.{staging} values ('a', '2024-01-01')")
        conn.commit()
        with pytest.raises(warehouse.WarehouseError, match="holds 1 rows, Spark wrote 2"):
            postgres.publish(conn, table, D1, staging, expected_rows=2)
    assert warehouse.list_partitions(SCORES, pg_settings) == []


# --------------------------------------------------------------------------- least privilege

def test_analyst_reads_marts_only_after_a_pipeline_rewrite(spark, pg_server, pg_settings):  # noqa: F811
    from clv.ops import cli

    admin_uri = pg_settings.warehouse_uri
    db = admin_uri.rsplit("/", 1)[1]
    env = {"CLV_PG_WRITER_PASSWORD": "w-" + "x" * 10, "CLV_PG_ANALYST_PASSWORD": "a-" + "y" * 10}
    os.environ.update(env)
    try:
        for _ in range(2):  # idempotent: a re-run changes nothing and does not fail
            assert cli.main(["warehouse-roles", "--admin-uri", admin_uri]) == 0
    finally:
        for k in env:
            os.environ.pop(k, None)
    writer = dataclasses.replace(pg_settings, warehouse_uri=pg_server.uri(
        "clv_writer", env["CLV_PG_WRITER_PASSWORD"], db))
    analyst_uri = pg_server.uri("clv_analyst", env["CLV_PG_ANALYST_PASSWORD"], db)

    # the pipeline (as the writer) publishes raw and marts, then re-runs the date, and
    # publishes a marts table that did not exist when the roles were set up
    orders = spark.createDataFrame([("o1", "a", dt.datetime(2023, 12, 1), 10.0)],
                                   "order_id string, customer_id string, order_ts timestamp, "
                                   "amount double")
    warehouse.write_partition(orders, "raw.orders", D1, writer)
    warehouse.write_partition(_scores(spark, [("a", 1.0)]), SCORES, D1, writer)
    warehouse.write_partition(_scores(spark, [("a", 2.0), ("b", 3.0)]), SCORES, D1, writer)
    seg = spark.createDataFrame([("a", "champions")], "customer_id string, segment string")
    warehouse.write_partition(seg, "marts.customer_segments", D1, writer)

    with psycopg.connect(analyst_uri, autocommit=True) as conn:
        assert conn.execute("show default_transaction_read_only").fetchone() == ("on",)
        # privileges alone must refuse (not only the read-only default, which a session may lift)
        conn.execute("set default_transaction_read_only = off")
        assert conn.execute("select customer_id, predicted_clv from marts.customer_scores "
                            "order by 1").fetchall() == [("a", 2.0), ("b", 3.0)]
        assert conn.execute("select segment from marts.customer_segments").fetchall() == [
            ("champions",)]
        refused = {
            "insert": "insert into marts.customer_scores (customer_id) values ('z')",
            "create in marts": "create table marts.mine (x int)",
            "create in public": "create table public.mine (x int)",
            "create schema": "create schema mine",
            "drop": "drop table marts.customer_scores",
            "delete": "delete from marts.customer_scores",
            "read raw": "select * from raw.orders",
            "read meta": "select * from clv_meta.partitions",
        }
        for what, statement in refused.items():
            with pytest.raises(psycopg.Error) as err:
                conn.execute(statement)
            assert err.value.sqlstate == "42501", (what, err.value)  # insufficient privilege
    # the writer is not a superuser and cannot read what it does not need either
    with psycopg.connect(writer.warehouse_uri, autocommit=True) as conn:
        assert conn.execute("select rolsuper, rolcreaterole from pg_roles "
                            "where rolname = current_user").fetchone() == (False, False)
    assert _sql(pg_settings, "select count(*) from marts.customer_scores")[0][0] == 2


def test_row_count_on_both_backends(spark, clv_home, pg_settings):
    for s in (clv_home, pg_settings):
        assert warehouse.row_count(SCORES, D1, s) is None
        warehouse.write_partition(_scores(spark, [("a", 1.0), ("b", 2.0)]), SCORES, D1, s)
        assert warehouse.row_count(SCORES, D1, s) == 2
