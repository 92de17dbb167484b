"""make run ORDERS=... (#21): a user's orders file instead of CDNOW, then the same DAG run
with the same step-by-step output (the DAG run itself is replaced by a recorder here; the
real one is tests/test_e2e.py's)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from clv import pipeline
from clv.data import warehouse
from clv.ops import cli, demo

CSV = """OrderNo,Cust,When,Total
A-1,c1,2024-03-01 10:00:00,20.5
A-2,c1,2024-04-11 09:30:00,31.0
A-3,c2,2024-05-30 18:45:00,12.0
"""
MAP = "order_id=OrderNo,customer_id=Cust,order_ts=When,amount=Total"


@pytest.fixture
def recorded_dag(monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "_airflow", lambda *argv: calls.append(argv))
    monkeypatch.setattr(pipeline, "run_summary", lambda as_of, settings=None: {
        "as_of_date": as_of.isoformat()})
    return calls


def test_own_orders_are_loaded_and_the_dag_runs_on_them(spark, clv_home, tmp_path,
                                                         recorded_dag, capsys):
    orders = tmp_path / "orders.csv"
    orders.write_text(CSV)
    assert cli.main(["demo", "--orders", str(orders), "--map", MAP,
                     "--log", str(tmp_path / "run.log")]) == 0
    out = capsys.readouterr().out
    assert f"[2/3] {orders} -> raw.orders" in out  # no Hillstrom step for own data
    assert "DAG clv_pipeline for 2024-05-31" in out
    # the batch and the run's as-of date: the day after the newest order
    assert warehouse.list_partitions("raw.orders") == [dt.date(2024, 5, 31)]
    assert warehouse.row_count("raw.orders", dt.date(2024, 5, 31)) == 3
    assert warehouse.list_partitions("raw.campaign_responses") == []
    [dag_test] = [c for c in recorded_dag if c[:2] == ("dags", "test")]
    conf = json.loads(dag_test[dag_test.index("-c") + 1])
    assert conf["as_of_date"] == "2024-05-31" and conf["horizon_days"] == 180
    assert dag_test[2] == "clv_pipeline" and dag_test[3] == "-c"  # logical date: now

    # a second file would be mixed into the same shop: refused, nothing loaded
    assert cli.main(["demo", "--orders", str(orders), "--map", MAP,
                     "--log", str(tmp_path / "run.log")]) == 2
    assert "raw.orders already holds 1 load(s)" in capsys.readouterr().err
    assert warehouse.list_partitions("raw.orders") == [dt.date(2024, 5, 31)]


def test_make_run_passes_the_file_and_no_cdnow_date():
    root = Path(__file__).resolve().parents[1]
    dry = subprocess.run(["make", "-n", "-C", str(root), "run", "ORDERS=my.csv",
                          f"MAP={MAP}"], capture_output=True, text=True, check=True).stdout
    line = next(x for x in dry.splitlines() if "clv demo" in x)
    assert f"--orders '{root / 'my.csv'}'" in line and f"--map '{MAP}'" in line
    assert "--as-of-date" not in line
    dry = subprocess.run(["make", "-n", "-C", str(root), "run"], capture_output=True,
                         text=True, check=True).stdout
    assert "--as-of-date 1998-07-01" in next(x for x in dry.splitlines() if "clv demo" in x)
