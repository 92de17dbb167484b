"""Which GX engine evaluates each expectation: pandas for small frames, Spark otherwise.

GX's Spark engine computes a suite in a dozen or more Spark jobs and thousands of
py4j calls; on a frame of a few thousand rows that costs seconds while the data
itself would fit in a list. A frame of at most :func:`clv.config.gx_pandas_max_rows`
rows (``CLV_GX_PANDAS_MAX_ROWS``, 0 turns this off) is therefore collected once,
through Arrow, and validated with GX's pandas engine, except where pandas would not
give Spark's answer:

* ``unexpected_rows_expectation`` is Spark SQL over ``{batch}`` (GX has no pandas
  implementation of its query metrics);
* ``expect_column_values_to_be_of_type`` and ``..._in_type_list`` name Spark types
  (``"LongType"``): they read the Spark schema and cost no job;
* an expectation on a column (or row condition) that is neither a string, a boolean
  nor a number (dates, timestamps, decimals, arrays) keeps Spark's comparisons,
  except for column presence and nulls, which mean the same on both engines;
* a row condition on a column holding nulls: SQL leaves such rows out of
  ``action != 'none'``, pandas keeps them; likewise a column pair ``A > B`` where
  either column holds nulls (Spark leaves a row with one null out, pandas flags it);
* a frame whose float columns hold NaN is validated on Spark entirely: Spark treats
  NaN as a value (not null, larger than any number), pandas as missing.

Those run on the Spark batch; both results are merged, in suite order, into one GX
result, which Data Docs render. Integer columns with nulls keep Python ints (not
pandas' float64), and pandas' scalars in the details become plain Python values, so
the report reads the same whichever engine produced it (tests/test_quality_engines.py).
One difference remains, in the samples only: when more than ten rows fail
``expect_column_values_to_be_unique``, Spark lists ten in its shuffle's order and pandas
the first ten of the frame; the counts, the rule and the outcome are the same.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from clv.config import gx_pandas_max_rows

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

#: Expectations only Spark can evaluate as the suites mean them.
SPARK_ONLY = frozenset({
    "unexpected_rows_expectation",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_be_in_type_list",
})
#: Expectations about presence and nulls: the same on both engines whatever the type.
_TYPE_BLIND = frozenset({"expect_column_to_exist", "expect_column_values_to_not_be_null"})
_PAIR = "expect_column_pair_values_a_to_be_greater_than_b"
#: Spark types whose values compare the same in pandas (simple type names).
_PANDAS_SAFE_TYPES = frozenset({
    "string", "boolean", "tinyint", "smallint", "int", "bigint", "float", "double",
})


def small_frame_as_pandas(df: DataFrame, n_rows: int) -> pd.DataFrame | None:
    """``df`` as a pandas frame when it may be validated on pandas, else None.

    ``n_rows`` is the frame's row count. None when the frame is empty, larger than
    :func:`gx_pandas_max_rows`, or holds a NaN in a float column.
    """
    if not 0 < n_rows <= gx_pandas_max_rows():
        return None
    return _pandas_engine_frame(df.toArrow())  # one Spark job: the rows, columnar, through Arrow


def rows_as_pandas(rows: pd.DataFrame, schema: StructType) -> pd.DataFrame | None:
    """:func:`small_frame_as_pandas` of a Spark frame made from the pandas ``rows``
    (``createDataFrame``, or :func:`clv.data.warehouse.spark_frame`), without its two
    Spark jobs (the count and the collect).

    The rows are converted to the frame's own Arrow schema, as Spark's ``toArrow``
    hands them back: same types, NaN in a float column null in both. Only where every
    column is of :data:`_PANDAS_SAFE_TYPES` (strings, booleans, numbers); else, or if
    the conversion fails, None, and the caller asks Spark.
    """
    if not 0 < len(rows) <= gx_pandas_max_rows():
        return None
    if any(f.dataType.simpleString() not in _PANDAS_SAFE_TYPES for f in schema.fields):
        return None
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    try:
        table = pa.Table.from_pandas(rows[schema.fieldNames()], schema=to_arrow_schema(schema),
                                     preserve_index=False)
    except (pa.ArrowException, KeyError, TypeError, ValueError):
        return None
    return _pandas_engine_frame(table)


def _pandas_engine_frame(table: Any) -> pd.DataFrame | None:
    """The Arrow ``table`` as the pandas frame GX's pandas engine validates; None when a
    float column holds a NaN (Spark and pandas read it differently)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for column in table.columns:
        if pa.types.is_floating(column.type) and pc.any(pc.is_nan(column)).as_py():
            return None
    return table.to_pandas(integer_object_nulls=True, date_as_object=True)


def split_by_engine(
    expectations: list[dict[str, Any]], schema: StructType, frame: pd.DataFrame
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The expectations pandas evaluates as Spark would, and those left to Spark.

    ``frame`` is the Spark frame of ``schema`` collected (:func:`small_frame_as_pandas`).
    """
    types = {field.name: field.dataType.simpleString() for field in schema.fields}
    with_nulls = {c for c in frame.columns if frame[c].isna().any()}
    on_pandas, on_spark = [], []
    for exp in expectations:
        (on_pandas if _pandas_can_evaluate(exp, types, with_nulls) else on_spark).append(exp)
    return on_pandas, on_spark


def _pandas_can_evaluate(exp: dict[str, Any], types: dict[str, str], with_nulls: set[str]) -> bool:
    kind = exp.get("type")
    if kind in SPARK_ONLY:
        return False
    kwargs = exp.get("kwargs", {})
    columns = _checked_columns(kwargs)
    condition = _condition_column(kwargs.get("row_condition"))
    if condition is not None:
        columns.append(condition)
    if kwargs.get("row_condition") is not None and (condition is None or condition in with_nulls):
        # SQL's null != 'x' is null (the row is left out), pandas' None != 'x' is True;
        # and a condition in a parser's syntax is Spark's to read.
        return False
    if kind == _PAIR and {kwargs.get("column_A"), kwargs.get("column_B")} & with_nulls:
        return False  # Spark leaves a row with one null out of A > B, pandas flags it
    if kind in _TYPE_BLIND and condition is None:
        return True
    return all(types.get(c) in _PANDAS_SAFE_TYPES for c in columns)


def _condition_column(condition: Any) -> str | None:
    """The column a structured row condition (``{"type": "comparison", ...}``) tests."""
    if isinstance(condition, dict) and condition.get("type") == "comparison":
        column = condition.get("column") or {}
        return column.get("name") if isinstance(column, dict) else None
    return None


def open_pandas_batch(context: Any, frame: pd.DataFrame, table: str) -> Any:
    """A GX batch over the pandas ``frame`` in ``context``."""
    asset = context.data_sources.add_pandas(name="clv_pandas").add_dataframe_asset(name=table)
    return asset.add_batch_definition_whole_dataframe("whole_dataframe").get_batch(
        batch_parameters={"dataframe": frame}
    )


def merge_results(results: list[Any], order: dict[str, int]) -> Any:
    """One GX suite result from per-engine ones: entries in suite order, statistics redone."""
    merged = results[0]
    entries = [r for result in results for r in result.results]
    entries.sort(key=lambda r: order.get(r.expectation_config.id, 0))  # GX's own order varies
    if len(results) == 1:
        merged.results = entries
        return merged
    n_ok = sum(1 for r in entries if r.success)
    merged.results = entries
    merged.success = n_ok == len(entries)
    merged.statistics = {
        "evaluated_expectations": len(entries),
        "successful_expectations": n_ok,
        "unsuccessful_expectations": len(entries) - n_ok,
        "success_percent": 100.0 * n_ok / len(entries) if entries else None,
    }
    return merged


def plain_details(result: Any, ids: list[str]) -> None:
    """Make a pandas-engine result's details read as Spark's would, in place.

    numpy scalars become ``int``/``float``/``bool``; pandas' missing values (NaN, NaT,
    ``pd.NA``: on this path they can only stand for Spark's nulls) become None. Without
    id columns (``ids``) pandas lists the offending rows by their position in the frame,
    which Spark frames do not have: those lists are dropped, as Spark never makes them.
    """
    for entry in result.results:
        details = entry.result
        if not details:
            continue
        if not ids:
            details.pop("partial_unexpected_index_list", None)
            details.pop("unexpected_index_list", None)
        for key in ("observed_value", "partial_unexpected_list", "partial_unexpected_index_list",
                    "partial_unexpected_counts"):
            if key in details:
                details[key] = _plain(details[key])
        if details.get("partial_unexpected_index_list"):
            order = ids + _checked_columns(entry.expectation_config.kwargs)
            details["partial_unexpected_index_list"] = [
                _spark_key_order(row, order) for row in details["partial_unexpected_index_list"]
            ]


def _checked_columns(kwargs: dict[str, Any]) -> list[str]:
    columns = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    return columns + list(kwargs.get("column_list") or [])


def _spark_key_order(row: Any, order: list[str]) -> Any:
    """A sample row's keys as Spark lists them: the id columns, then the checked ones."""
    if not isinstance(row, dict):
        return row
    rank = {name: i for i, name in reversed(list(enumerate(order)))}
    return dict(sorted(row.items(), key=lambda kv: rank.get(kv[0], len(order))))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # a pair's values stay a tuple, as Spark gives them
        return type(value)(_plain(v) for v in value)
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    return value
