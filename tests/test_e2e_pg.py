"""End to end on the PostgreSQL warehouse: the same DAG, only CLV_WAREHOUSE_URI differs.

The 2,000-customer CDNOW slice of tests/test_e2e.py is loaded into a fresh database of
the test's own PostgreSQL server and the real DAG runs twice with ``airflow dags test``;
both runs leave one row per customer, the same content and no duplicate keys.
"""

from __future__ import annotations

import json
import os

import pytest
from pg_server import JDBC_JAR, pg_server  # noqa: F401  (session fixture)

if os.path.isfile(JDBC_JAR):  # the session's SparkSession needs the driver (see spark.py)
    os.environ.setdefault("CLV_JDBC_JAR", JDBC_JAR)

psycopg = pytest.importorskip("psycopg")

from test_e2e import (  # noqa: E402
    AS_OF,
    BUDGET,
    CAMPAIGN_SENT,
    CLV_WEIGHT,
    CONTENT_TABLES,
    N_CUSTOMERS,
    REPO,
    _airflow,
    _slice_cdnow,
)

from clv import ingest  # noqa: E402
from clv.ops import cli  # noqa: E402

pytestmark = pytest.mark.e2e

PER_CUSTOMER = ("features.customer_features", "marts.customer_scores",
                "marts.customer_segments", "marts.budget_allocation")


def _rows(uri: str, sql: str):
    with psycopg.connect(uri, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def _checksum(uri: str, table: str) -> str:
    """md5 of a table's rows in text order, without the run id (which differs by design)."""
    schema, name = table.split(".")
    cols = [r[0] for r in _rows(uri, f"select column_name from information_schema.columns "
                                     f"where table_schema = '{schema}' and table_name = '{name}' "
                                     "and column_name <> 'run_id' order by ordinal_position")]
    select = ", ".join(f'"{c}"' for c in cols)
    return _rows(uri, f"select md5(string_agg(t::text, '|' order by t::text)) "
                      f"from (select {select} from {table}) t")[0][0]


@pytest.fixture(scope="module")
def pg_pipeline_runs(tmp_path_factory, cdnow_path, shared_data, spark, pg_server):  # noqa: F811
    home = tmp_path_factory.mktemp("e2e_pg_home")
    uri = pg_server.create_database("clv_e2e")
    env = {**os.environ, "CLV_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "CLV_DEVICE": "cpu",
           "CLV_WAREHOUSE_URI": uri}
    for k in ("MLFLOW_TRACKING_URI", "CLV_MLFLOW_ARTIFACTS"):
        env.pop(k, None)
    sliced = home / "cdnow_slice.txt.gz"
    n_orders = _slice_cdnow(cdnow_path, sliced, N_CUSTOMERS)
    saved = {k: os.environ.get(k) for k in ("CLV_HOME", "CLV_WAREHOUSE_URI")}
    os.environ.update(CLV_HOME=str(home), CLV_WAREHOUSE_URI=uri)
    try:
        load = ingest.load_orders(spark, ingest.read_cdnow(spark, sliced), AS_OF, "e2e-load")
        assert cli.main(["import-campaign", "--hillstrom", str(shared_data / "hillstrom" /
                         "hillstrom.csv.gz"), "--sent-date", CAMPAIGN_SENT]) == 0
        _airflow(["db", "migrate"], env)
        _airflow(["pools", "set", "spark", "2", "Spark tasks"], env)
        conf = json.dumps({"as_of_date": AS_OF.isoformat(), "horizon_days": 180,
                           "budget": BUDGET, "clv_weight": CLV_WEIGHT})
        counts, checksums = [], []
        for _ in range(2):
            _airflow(["dags", "test", "clv_pipeline", AS_OF.isoformat(), "-c", conf], env)
            counts.append({t: _rows(uri, f"select count(*) from {t}")[0][0]
                           for t in ("raw.orders", *PER_CUSTOMER)})
            checksums.append({t: _checksum(uri, t) for t in CONTENT_TABLES})
        yield {"uri": uri, "counts": counts, "checksums": checksums, "n_orders": n_orders,
               "load": load}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_pg_every_output_table_has_one_row_per_customer(pg_pipeline_runs):
    counts = pg_pipeline_runs["counts"][-1]
    assert counts["raw.orders"] == pg_pipeline_runs["n_orders"] == \
        pg_pipeline_runs["load"].rows_in
    for table in PER_CUSTOMER:
        assert counts[table] == N_CUSTOMERS, table


def test_pg_second_run_same_content_no_duplicates(pg_pipeline_runs):
    first, second = pg_pipeline_runs["counts"]
    assert first == second
    assert pg_pipeline_runs["checksums"][0] == pg_pipeline_runs["checksums"][1]
    uri = pg_pipeline_runs["uri"]
    for table in PER_CUSTOMER:
        assert _rows(uri, f"select customer_id, as_of_date from {table} "
                          "group by 1, 2 having count(*) > 1") == [], table
    # nothing half-published is left behind, and the bookkeeping matches the tables
    assert _rows(uri, "select count(*) from pg_tables where schemaname = 'clv_meta' "
                      "and tablename like 'stg%'") == [(0,)]
    assert dict(_rows(uri, "select table_name, row_count from clv_meta.partitions "
                           f"where as_of_date = '{AS_OF}' and table_name in "
                           f"({', '.join(repr(t) for t in PER_CUSTOMER)})")) == {
        t: N_CUSTOMERS for t in PER_CUSTOMER}
