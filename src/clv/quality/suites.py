"""The suite runner: validate a Spark DataFrame against an expectation suite (GX Core 1.x).

Suites are data, reviewed like code: each lives as JSON in ``expectations/<name>.json``
at the root of the checkout and is loaded with :func:`load_suite`.
:func:`validate_dataframe` runs one against a Spark DataFrame with a throw-away
(ephemeral) GX context and boils GX's result down to a small
:class:`~clv.quality.results.ValidationReport`; :func:`assert_valid` raises
:class:`~clv.quality.results.DataQualityError` with a readable message (table, column,
rule, sample rows) when the data fails. Every run is rendered to Data Docs
(:mod:`clv.quality.data_docs`).

Conventions of the suite files, beyond GX's own format:

* an expectation whose ``meta`` holds ``"optional": true`` checks an optional column:
  it is skipped (and logged) when a column it names is absent from the frame;
* the suite's ``meta.table`` names the warehouse table it is written for;
* an expectation's ``description`` states its rule in words; failure messages quote it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv.config import CHECKOUT_ROOT, gx_pandas_max_rows, load_settings
from clv.quality import engines
from clv.quality.checks import MAX_ROW_RATIO, _row_count_expectation, _row_count_rule
from clv.quality.data_docs import GX_LOCK, _publish_data_docs, _quiet_gx
from clv.quality.results import SAMPLE_SIZE, DataQualityError, Failure, ValidationReport

if TYPE_CHECKING:  # pragma: no cover
    import great_expectations as gx
    import pandas as pd
    from pyspark.sql import DataFrame

log = logging.getLogger("clv.quality")  # the package's logger, as before the split

#: Kwargs that locate an expectation rather than say what it expects.
_DOMAIN_KWARGS = (
    "batch_id", "column", "column_A", "column_B", "column_list", "row_condition",
    "condition_parser",
)


def expectations_dir() -> Path:
    """Folder of the suite files: ``$CLV_HOME/expectations``, else the checkout's.

    ``CLV_HOME`` usually is the checkout. When it points elsewhere (a separate state
    folder, the test suite's temporary homes) the suites that ship with the code are used.
    """
    home_dir = load_settings().home / "expectations"
    if home_dir.is_dir():
        return home_dir
    checkout_dir = CHECKOUT_ROOT / "expectations"
    if checkout_dir.is_dir():
        return checkout_dir
    raise FileNotFoundError(f"no expectations folder: looked in {home_dir} and {checkout_dir}")


def _suite_path(name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"invalid suite name {name!r}")
    path = expectations_dir() / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json"))
        raise FileNotFoundError(f"no suite {name!r} at {path}; known suites: {known}")
    return path


def _read_suite_dict(name: str) -> dict[str, Any]:
    path = _suite_path(name)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"suite file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise ValueError(f"suite file {path}: expected an object with an 'expectations' list")
    if data.get("name", name) != name:
        raise ValueError(f"suite file {path} is named {data['name']!r}, not {name!r}")
    data["name"] = name
    return data


def _build_suite(data: dict[str, Any]) -> gx.ExpectationSuite:
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    # GX raises on some invalid configurations but only logs and *drops* others (an
    # unknown type, say): a typo in a reviewed suite must not silently weaken it.
    for i, exp in enumerate(data["expectations"]):
        try:
            ExpectationConfiguration(**exp).to_domain_obj()
        except Exception as exc:
            raise ValueError(
                f"suite {data['name']}: expectation #{i} ({exp.get('type')!r}) is not a valid "
                f"GX configuration: {exc}"
            ) from exc
    suite = gx.ExpectationSuite(**data)
    if len(suite.expectations) != len(data["expectations"]):  # pragma: no cover - backstop
        raise ValueError(f"suite {data['name']}: GX dropped some of its expectations")
    return suite


def load_suite(name: str) -> gx.ExpectationSuite:
    """Load the suite stored in ``expectations/<name>.json`` as a GX ExpectationSuite."""
    return _build_suite(_read_suite_dict(name))


def _columns_of(expectation: dict[str, Any]) -> list[str]:
    kwargs = expectation.get("kwargs", {})
    cols = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    return cols + list(kwargs.get("column_list", []))


# --------------------------------------------------------------------------- validation

def validate_dataframe(
    df: DataFrame,
    suite_name: str,
    table: str,
    id_columns: list[str],
    *,
    previous_count: int | None = None,
    max_ratio: float = MAX_ROW_RATIO,
    run_name: str | None = None,
    rows: pd.DataFrame | None = None,
) -> ValidationReport:
    """Run suite ``suite_name`` against ``df`` and summarise the outcome.

    ``id_columns`` identify offending rows in the report (e.g. ``["order_id"]``); those
    absent from ``df`` are left out. The frame is cached for the run (GX computes its
    metrics in many Spark jobs) unless it already is; a small one is collected once and
    validated on GX's pandas engine where that gives Spark's answer
    (:mod:`clv.quality.engines`). ``previous_count`` (the row count
    of the table's previous partition, see :func:`previous_row_count`) adds the rule of
    :func:`check_row_count` as an ``expect_table_row_count_to_be_between``. The run is
    rendered to Data Docs, labelled ``run_name`` (default: Airflow's run id, else "adhoc").
    ``rows``: the pandas frame ``df`` was made from, when it was (its rows need no Spark
    job to be counted and collected for the pandas engine).
    """
    started = time.monotonic()
    data = _read_suite_dict(suite_name)
    expectations, skipped = _applicable(data["expectations"], set(df.columns))
    if skipped:
        log.info("%s: optional column(s) absent, skipping %s", table, ", ".join(skipped))
    if previous_count:
        expectations.append(_row_count_expectation(previous_count, max_ratio))
    # Ids let results, which GX returns in its own order, be matched to the suite's entries.
    expectations = [{**exp, "id": str(uuid.uuid4())} for exp in expectations]

    ids = [c for c in id_columns if c in df.columns]
    if len(ids) != len(id_columns):
        log.warning("%s: id column(s) %s not in the frame", table,
                    [c for c in id_columns if c not in df.columns])

    # rows known in pandas: no Spark job to count and collect them (engines.rows_as_pandas)
    local = None if rows is None else engines.rows_as_pandas(rows, df.schema)
    cached_here = local is None and not getattr(df, "is_cached", True)
    if cached_here:
        df = df.cache()
    if local is None and (cached_here or gx_pandas_max_rows() > 0):
        # materialise once: GX then runs dozens of jobs (or one collect) over the cached rows
        local = engines.small_frame_as_pandas(df, df.count())
    try:
        with GX_LOCK:
            result, failures = _run_suite(
                df, table, {**data, "expectations": expectations}, ids, local
            )
            docs = _publish_data_docs(result, suite_name, table, run_name)
    finally:
        if cached_here:
            df.unpersist()
    report = ValidationReport(
        table=table,
        suite=suite_name,
        success=not failures,
        n_expectations=len(result.results),
        failures=failures,
        skipped=skipped,
        seconds=time.monotonic() - started,
        data_docs=docs[0] if docs else None,
        data_docs_page=docs[1] if docs else None,
    )
    if report.success:
        log.info(report.summary())
    else:
        log.warning(report.summary())
    return report


def assert_valid(
    df: DataFrame,
    suite_name: str,
    table: str,
    id_columns: list[str],
    *,
    previous_count: int | None = None,
    max_ratio: float = MAX_ROW_RATIO,
    run_name: str | None = None,
    rows: pd.DataFrame | None = None,
) -> ValidationReport:
    """Validate ``df``; raise :class:`DataQualityError` unless every expectation holds."""
    report = validate_dataframe(
        df, suite_name, table, id_columns,
        previous_count=previous_count, max_ratio=max_ratio, run_name=run_name, rows=rows,
    )
    if not report.success:
        raise DataQualityError(report)
    return report


def _applicable(
    expectations: list[dict[str, Any]], present: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The expectations to run, and those skipped because an optional column is absent."""
    kept, skipped = [], []
    for exp in expectations:
        if exp.get("meta", {}).get("optional") and not set(_columns_of(exp)) <= present:
            skipped.append(f"{exp.get('type')}({', '.join(_columns_of(exp))})")
        else:
            kept.append(exp)
    return kept, skipped


def _run_suite(
    df: DataFrame, table: str, data: dict[str, Any], ids: list[str],
    local: pd.DataFrame | None,
) -> tuple[Any, list[Failure]]:
    """Validate on the engine(s) :mod:`clv.quality.engines` picks (``local``: the rows
    collected for GX's pandas engine, or None: Spark's alone); return GX's result (for
    Data Docs, one result in suite order) and the failures."""
    order = {exp["id"]: i for i, exp in enumerate(data["expectations"])}
    context = _gx_context()
    if local is None:
        parts = [(_open_batch(context, df, table), data["expectations"])]
    else:
        on_pandas, on_spark = engines.split_by_engine(
            data["expectations"], df.schema, local
        )
        parts = [(engines.open_pandas_batch(context, local, table), on_pandas)]
        if on_spark:
            parts.append((_open_batch(context, df, table), on_spark))
    results, failed_ids = [], set()
    for batch, exps in parts:
        if exps or len(parts) == 1:
            result, failed = _validate_batch(batch, {**data, "expectations": exps}, ids)
            if local is not None:
                engines.plain_details(result, ids)
            results.append(result)
            failed_ids |= failed
    result = engines.merge_results(results, order)
    failures = [_failure(r) for r in result.results if r.expectation_config.id in failed_ids]
    if not result.success and not failures:  # never report a failed run as a success
        failures = [_failure(r) for r in result.results if not r.success]
    return result, failures


def _validate_batch(batch: Any, data: dict[str, Any], ids: list[str]) -> tuple[Any, set[str]]:
    """Validate in two passes; return GX's result and the ids of the failed expectations.

    Pass 1, pass/fail only: GX bundles the row-level checks into a few aggregations.
    Asking for samples up front costs one or two Spark jobs per expectation (~5x
    slower), so samples are gathered in pass 2, for the failed expectations only; their
    detailed results replace the pass/fail ones in the returned result.
    """
    result = batch.validate(_build_suite(data), result_format={"result_format": "BOOLEAN_ONLY"})
    failed_ids = {r.expectation_config.id for r in result.results if not r.success}
    if failed_ids:
        detail_format: dict[str, Any] = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": SAMPLE_SIZE,
            # The query string GX would render per expectation is of no use here.
            "return_unexpected_index_query": False,
        }
        if ids:  # GX refuses an empty list here
            detail_format["unexpected_index_column_names"] = ids
        failed = [e for e in data["expectations"] if e["id"] in failed_ids]
        detail = batch.validate(_build_suite({**data, "expectations": failed}),
                                result_format=detail_format)
        by_id = {r.expectation_config.id: r for r in detail.results}
        result.results = [by_id.get(r.expectation_config.id, r) for r in result.results]
    return result, failed_ids


def _gx_context() -> Any:
    """A fresh ephemeral GX context (nothing is stored anywhere), progress bars off."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _open_batch(context: Any, df: DataFrame, table: str) -> Any:
    """A GX Spark batch over ``df`` in ``context``."""
    # persist=False: GX would cache the frame and never release it; caching is done
    # (and undone) by validate_dataframe instead.
    datasource = context.data_sources.add_spark(name="clv", persist=False)
    asset = datasource.add_dataframe_asset(name=table)
    return asset.add_batch_definition_whole_dataframe("whole_dataframe").get_batch(
        batch_parameters={"dataframe": df}
    )


def _failure(result: Any) -> Failure:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    cols = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    cols += list(kwargs.get("column_list") or [])
    details = result.result or {}
    expected = {k: v for k, v in kwargs.items() if k not in _DOMAIN_KWARGS and v is not None}

    error = _exception_message(result.exception_info)
    unexpected_count = details.get("unexpected_count")
    if config.type == "unexpected_rows_expectation":  # observed: rows the query returned
        unexpected_count = details.get("observed_value")
    samples = details.get("partial_unexpected_index_list")
    if samples is None:
        values = details.get("partial_unexpected_list") or []
        key = ", ".join(cols) or "value"
        samples = [v if isinstance(v, dict) else {key: v} for v in values]
    meta = config.meta or {}
    rule = config.description
    if "previous_count" in meta:
        rule = _row_count_rule(meta["previous_count"], meta["max_ratio"])
    return Failure(
        expectation_type=config.type,
        column=", ".join(cols) or None,
        unexpected_count=None if unexpected_count is None else int(unexpected_count),
        sample_rows=[dict(s) for s in samples[:SAMPLE_SIZE]],
        expected=expected,
        observed_value=details.get("observed_value"),
        error=error,
        condition=_condition_text(kwargs.get("row_condition")),
        rule=rule,
    )


def _condition_text(condition: Any) -> str | None:
    """A row condition as text: ``action != 'none'``."""
    if condition is None:
        return None
    if isinstance(condition, str):
        return condition
    data = condition.dict() if hasattr(condition, "dict") else dict(condition)
    column = (data.get("column") or {}).get("name")
    if column is None or "operator" not in data:
        return str(condition)
    return f"{column} {data['operator']} {data.get('parameter')!r}"


def _exception_message(info: Any) -> str | None:
    if not info:
        return None
    if "raised_exception" in info:  # one exception for the expectation
        infos = [info]
    else:  # one entry per metric that failed to resolve
        infos = [v for v in info.values() if isinstance(v, dict)]
    messages = [i.get("exception_message") for i in infos if i.get("raised_exception")]
    return "; ".join(str(m) for m in messages if m) or None


def suite_bounds(suite: str, column: str) -> tuple[Any, Any]:
    """``(min_value, max_value)`` of the suite's ``expect_column_values_to_be_between``
    on ``column``: lets a loader enforce, row by row, the limits the suite checks.

    Raises:
        ValueError: the suite has no such expectation for the column.
    """
    for exp in _read_suite_dict(suite)["expectations"]:
        kwargs = exp.get("kwargs", {})
        if exp.get("type") == "expect_column_values_to_be_between" and \
                kwargs.get("column") == column:
            return kwargs.get("min_value"), kwargs.get("max_value")
    raise ValueError(f"suite {suite}: no expect_column_values_to_be_between on {column!r}")
