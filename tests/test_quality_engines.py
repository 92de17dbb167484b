"""Small frames validated on GX's pandas engine report what Spark's engine reports
(clv.quality.engines).

Each suite below is run both ways on the same frame (``CLV_GX_PANDAS_MAX_ROWS=0``:
Spark; a large value: pandas, with the Spark-only expectations on the Spark batch)
and the two reports must match field by field, sample rows included (compared as
text, so ``5`` and ``5.0`` differ). The frames are built from the suites themselves:
a clean one, and corrupted ones with nulls, values out of range or out of the set,
duplicates, empty strings and swapped pairs scattered by a seeded generator.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from pathlib import Path

import pytest

from clv.quality import engines, validate_dataframe

SUITES = Path(__file__).resolve().parents[1] / "expectations"
#: Suites that together hold every expectation type (and row condition) in expectations/.
COVER = ("budget_allocation", "campaign_responses", "churn_alerts", "contact_preferences",
         "customer_segments", "raw_orders")
N_ROWS = 12
_SPARK_TYPES = {
    "StringType": "string", "LongType": "bigint", "IntegerType": "int", "DoubleType": "double",
    "TimestampType": "timestamp", "TimestampNTZType": "timestamp_ntz", "DateType": "date",
    "BooleanType": "boolean",
}


def _expectations(suite: str) -> list[dict]:
    return json.loads((SUITES / f"{suite}.json").read_text())["expectations"]


def _kind(exp: dict) -> str:
    return exp["type"] + ("+row_condition" if "row_condition" in exp["kwargs"] else "")


def _columns(exp: dict) -> list[str]:
    kw = exp["kwargs"]
    cols = [kw[k] for k in ("column", "column_A", "column_B") if k in kw]
    cols += list(kw.get("column_list", []))
    cond = kw.get("row_condition")
    return cols + ([cond["column"]["name"]] if isinstance(cond, dict) else [])


def _guess_type(exp: dict, column: str) -> str | None:
    kw, kind = exp["kwargs"], exp["type"]
    if kind in ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list"):
        return _SPARK_TYPES[kw.get("type_") or kw["type_list"][0]]
    cond = kw.get("row_condition")
    if isinstance(cond, dict) and cond["column"]["name"] == column and kw.get("column") != column:
        return "bigint" if isinstance(cond["parameter"], int) else "string"
    if kind == "expect_column_values_to_be_between":
        bounds = [b for b in (kw.get("min_value"), kw.get("max_value")) if b is not None]
        if any(isinstance(b, str) for b in bounds):
            return "timestamp" if any("T" in b for b in bounds) else "date"
        return "bigint" if all(isinstance(b, int) for b in bounds) else "double"
    if kind == "expect_column_values_to_be_in_set":
        first = kw["value_set"][0]
        return {bool: "boolean", int: "bigint", float: "double"}.get(type(first), "string")
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        return "double"
    return None


def _rules(exps: list[dict]) -> tuple[dict[str, str], dict[str, dict]]:
    """Each column's Spark type (type expectations win) and what the suite asks of it."""
    types: dict[str, str] = {}
    asks: dict[str, dict] = {}
    for exp in sorted(exps, key=lambda e: "to_be_of_type" not in e["type"]
                      and "in_type_list" not in e["type"]):
        for col in _columns(exp):
            guess = _guess_type(exp, col)
            if guess and col not in types:
                types[col] = guess
            if exp["kwargs"].get("column") == col and "row_condition" not in exp["kwargs"]:
                asks.setdefault(col, {}).update(exp["kwargs"])
    queries = " ".join(e["kwargs"].get("unexpected_rows_query", "") for e in exps)
    for exp in exps:
        for col in _columns(exp):  # a column the SQL checks does arithmetic on numbers
            types.setdefault(col, "double" if re.search(rf"\b{col}\b", queries) else "string")
    return types, asks


def _clean_value(col: str, kind: str, ask: dict, i: int):
    if "value_set" in ask:
        return ask["value_set"][i % len(ask["value_set"])]
    if kind in ("date", "timestamp", "timestamp_ntz"):
        day = dt.date(2000, 1, 1) + dt.timedelta(days=i)
        return day if kind == "date" else dt.datetime.combine(day, dt.time(i))
    if kind == "boolean":
        return i % 2 == 0
    if kind == "string":
        return f"{col}-{i}"
    lo, hi = ask.get("min_value"), ask.get("max_value")
    if lo is not None and hi is not None:
        value = lo + (hi - lo) * ((i % 5) + 1) / 6
    else:
        value = lo + i + 1 if lo is not None else (hi - i - 1 if hi is not None else i)
    return int(round(value)) if kind in ("bigint", "int") else float(value)


def _bad_value(col: str, kind: str, ask: dict, clean: list, rng: random.Random):
    """A value that breaks a rule on ``col``: null, out of range or set, a duplicate."""
    options = [None, clean[0]]
    if "value_set" in ask:
        options.append({"string": "zzz", "boolean": None}.get(kind, 9))
    if kind in ("date", "timestamp", "timestamp_ntz"):
        options.append(dt.date(1980, 1, 1) if kind == "date" else dt.datetime(2200, 1, 1))
    elif kind == "string":
        options.append("")
    elif kind != "boolean":
        lo, hi = ask.get("min_value"), ask.get("max_value")
        out = (hi + 1) if hi is not None else ((lo - 1) if lo is not None else -7)
        options.append(int(out) if kind in ("bigint", "int") else float(out))
    return rng.choice(options)


def _frame(spark, suite: str, seed: int | None):
    """A frame for ``suite``: clean when ``seed`` is None, else corrupted at random."""
    types, asks = _rules(_expectations(suite))
    cols = sorted(types)
    data = {c: [_clean_value(c, types[c], asks.get(c, {}), i) for i in range(N_ROWS)]
            for c in cols}
    if seed is not None:
        rng = random.Random(seed)
        for c in cols:
            for i in range(1, N_ROWS):
                if rng.random() < 0.3:
                    data[c][i] = _bad_value(c, types[c], asks.get(c, {}), data[c], rng)
    schema = ", ".join(f"`{c}` {types[c]}" for c in cols)
    return spark.createDataFrame([tuple(data[c][i] for c in cols) for i in range(N_ROWS)],
                                 schema)


def _content(report) -> tuple:
    failures = [
        (f.expectation_type, f.column, f.unexpected_count, repr(f.observed_value),
         repr(f.expected), f.error, f.condition, f.rule,
         sorted(repr(list(r.items())) for r in f.sample_rows))  # keys in order
        for f in report.failures
    ]
    return report.success, report.n_expectations, report.skipped, failures


def _both_ways(df, suite: str, ids: list[str], monkeypatch) -> tuple[tuple, tuple]:
    monkeypatch.setenv("CLV_GX_PANDAS_MAX_ROWS", "0")
    on_spark = validate_dataframe(df, suite, suite, ids)
    monkeypatch.setenv("CLV_GX_PANDAS_MAX_ROWS", "100000")
    on_pandas = validate_dataframe(df, suite, suite, ids)
    return _content(on_spark), _content(on_pandas)


@pytest.fixture
def no_docs(clv_home, monkeypatch):
    monkeypatch.setenv("CLV_GX_DATA_DOCS", "0")


def test_the_suites_compared_hold_every_expectation_type():
    present = {_kind(e) for p in SUITES.glob("*.json") for e in _expectations(p.stem)}
    covered = {_kind(e) for s in COVER for e in _expectations(s)}
    assert present - covered == set()


#: Each suite with the id columns its reports name (none: GX lists values, not rows).
CASES = [(s, ["order_id"] if s == "raw_orders" else ["customer_id"]) for s in COVER]
CASES.append(("segment_summary", []))


@pytest.mark.parametrize(("suite", "ids"), CASES)
def test_pandas_and_spark_engines_report_the_same(spark, no_docs, monkeypatch, suite, ids):
    failed_somewhere = set()
    for seed in (None, 1, 2):
        df = _frame(spark, suite, seed)
        on_spark, on_pandas = _both_ways(df, suite, ids, monkeypatch)
        assert on_pandas == on_spark, f"seed {seed}"
        failed_somewhere |= {f[0] for f in on_spark[3]}
    # The corrupted frames do break rules of most kinds, so the comparison means something.
    kinds = {e["type"] for e in _expectations(suite)} - {"expect_column_to_exist"}
    assert len(failed_somewhere & kinds) >= 2


def test_nan_in_a_double_column_keeps_the_frame_on_spark(spark, no_docs, monkeypatch):
    rows = [("c1", "new_at_risk", 0.5, 0.2, 10.0, 5.0, "1", "1"),
            ("c2", "new_at_risk", float("nan"), None, float("nan"), 1.0, "1", "1")]
    df = spark.createDataFrame(rows, "customer_id string, alert_type string, p_churn double, "
                               "previous_p_churn double, predicted_clv double, "
                               "value_at_risk double, clv_model_version string, "
                               "churn_model_version string")
    monkeypatch.setenv("CLV_GX_PANDAS_MAX_ROWS", "100")
    assert engines.small_frame_as_pandas(df, 2) is None
    on_spark, on_pandas = _both_ways(df, "churn_alerts", ["customer_id"], monkeypatch)
    assert on_pandas == on_spark
    # Spark: NaN is not null, and is larger than any number (so out of [0, 1]).
    by_rule = {(f[0], f[1]): f[2] for f in on_spark[3]}
    assert ("expect_column_values_to_not_be_null", "p_churn") not in by_rule
    assert by_rule[("expect_column_values_to_be_between", "p_churn")] == 1


def test_nullable_integers_are_reported_as_integers(spark, no_docs, monkeypatch):
    rows = [("a", 1, 0, 0, 5.0, "x"), ("b", None, 3, 1, 5.0, "x"), ("c", 7, 0, 1, 5.0, "x")]
    df = spark.createDataFrame(rows, "customer_id string, treatment bigint, converted bigint, "
                               "revenue_x bigint, revenue double, campaign_id string")
    monkeypatch.setenv("CLV_GX_PANDAS_MAX_ROWS", "100")
    report = validate_dataframe(df, "campaign_responses", "campaign_responses",
                                ["customer_id"])
    in_set = [f for f in report.failures if f.expectation_type.endswith("to_be_in_set")]
    assert [(f.column, f.unexpected_count, f.sample_rows) for f in in_set] == [
        ("treatment", 1, [{"customer_id": "c", "treatment": 7}]),
        ("converted", 1, [{"customer_id": "b", "converted": 3}]),
    ]
    assert repr(in_set[0].sample_rows[0]["treatment"]) == "7"


def test_small_frames_take_one_collect_and_docs_show_every_expectation(
        spark, clv_home, monkeypatch):
    sc = spark.sparkContext
    df = _frame(spark, "churn_alerts", None).cache()
    df.count()
    jobs = {}
    for max_rows in ("0", "100000"):
        monkeypatch.setenv("CLV_GX_PANDAS_MAX_ROWS", max_rows)
        sc.setJobGroup(f"engines-{max_rows}", "test")
        report = validate_dataframe(df, "churn_alerts", "churn_alerts", ["customer_id"])
        jobs[max_rows] = len(sc.statusTracker().getJobIdsForGroup(f"engines-{max_rows}"))
    sc.setJobGroup("", "")
    df.unpersist()
    assert report.success
    assert jobs["100000"] <= 3 < jobs["0"]  # a count and one collect, vs a job per metric
    page = Path(report.data_docs_page.removeprefix("file://")).read_text()
    for column in ("p_churn", "predicted_clv", "value_at_risk", "churn_model_version"):
        assert column in page
    assert report.n_expectations == len(_expectations("churn_alerts"))


@pytest.mark.parametrize(("suite", "ids"), [("budget_allocation", ["customer_id"]),
                                            ("churn_alerts", ["customer_id"]),
                                            ("segment_summary", [])])
def test_rows_known_in_pandas_are_neither_counted_nor_collected(spark, no_docs, monkeypatch,
                                                               suite, ids):
    """A frame published from pandas (createDataFrame) is validated from those rows: the
    same pandas frame Spark's collect gives, the same report, two Spark jobs fewer."""
    import pandas as pd

    monkeypatch.setenv("CLV_GX_PANDAS_MAX_ROWS", "100000")
    sc = spark.sparkContext
    for seed in (None, 1, 2):
        rows = _frame(spark, suite, seed).toArrow().to_pandas(integer_object_nulls=True)
        floats = [c for c in rows.columns if rows[c].dtype == "float64"]
        if seed == 2 and floats:
            rows.loc[3, floats[0]] = float("nan")  # pandas' missing value: null in Spark too
        df = spark.createDataFrame(rows)
        known = engines.rows_as_pandas(rows, df.schema)
        assert known is not None, "the suite's frame is strings, booleans and numbers"
        pd.testing.assert_frame_equal(known, engines.small_frame_as_pandas(df, len(rows)))
        reports, jobs = {}, {}
        for way, given in (("collected", None), ("known", rows)):
            sc.setJobGroup(f"rows-{suite}-{seed}-{way}", "test")
            reports[way] = _content(validate_dataframe(df, suite, suite, ids, rows=given))
            jobs[way] = len(sc.statusTracker().getJobIdsForGroup(f"rows-{suite}-{seed}-{way}"))
        sc.setJobGroup("", "")
        assert reports["known"] == reports["collected"], f"seed {seed}"
        assert jobs["known"] <= jobs["collected"] - 2, jobs


def test_rows_of_other_types_are_collected_by_spark(spark, monkeypatch):
    import pandas as pd

    monkeypatch.setenv("CLV_GX_PANDAS_MAX_ROWS", "100000")
    rows = pd.DataFrame({"customer_id": ["a", "b"], "day": [dt.date(2020, 1, 1), None]})
    assert engines.rows_as_pandas(rows, spark.createDataFrame(rows).schema) is None  # a date
    simple = rows[["customer_id"]]
    schema = spark.createDataFrame(simple).schema
    assert engines.rows_as_pandas(simple, schema) is not None
    assert engines.rows_as_pandas(simple.iloc[:0], schema) is None  # empty: Spark's engine
    monkeypatch.setenv("CLV_GX_PANDAS_MAX_ROWS", "1")
    assert engines.rows_as_pandas(simple, schema) is None  # larger than the pandas limit
