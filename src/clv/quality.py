"""Data validation with Great Expectations (GX Core 1.x) over Spark DataFrames.

Suites are data, reviewed like code: each lives as JSON in ``expectations/<name>.json``
at the root of the checkout and is loaded with :func:`load_suite`.
:func:`validate_dataframe` runs one against a Spark DataFrame with a throw-away
(ephemeral) GX context and boils GX's result down to a small
:class:`ValidationReport`; :func:`assert_valid` raises :class:`DataQualityError`
with a readable message when the data fails.

Conventions of the suite files, beyond GX's own format:

* an expectation whose ``meta`` holds ``"optional": true`` checks an optional column:
  it is skipped (and logged) when a column it names is absent from the frame;
* the suite's ``meta.table`` names the warehouse table it is written for.

Great Expectations is imported inside the functions, so importing this module stays
cheap (GX takes seconds to import). Its analytics are switched off before the import.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv.config import load_settings

if TYPE_CHECKING:  # pragma: no cover
    import great_expectations as gx
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

#: Offending rows kept per failed expectation (GX's ``partial_unexpected_count``).
SAMPLE_SIZE = 10
#: Offending rows shown per failed expectation in a DataQualityError message.
MESSAGE_SAMPLE_SIZE = 5
#: Kwargs that locate an expectation rather than say what it expects.
_DOMAIN_KWARGS = ("batch_id", "column", "column_A", "column_B", "column_list")


class DataQualityError(ValueError):
    """Data failed its expectation suite; ``report`` holds the details."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.describe())
        self.report = report


@dataclass(frozen=True)
class Failure:
    """One expectation that did not hold.

    ``column`` is the checked column, ``"A, B"`` for a column pair or list, and
    ``None`` for a table-level expectation. ``unexpected_count`` is ``None`` for
    expectations that do not look at rows one by one (row counts, column presence);
    those carry ``observed_value`` instead. ``sample_rows`` holds up to
    :data:`SAMPLE_SIZE` offending rows: the id columns plus the checked column(s).
    ``error`` is set when GX could not evaluate the expectation at all.
    """

    expectation_type: str
    column: str | None
    unexpected_count: int | None
    sample_rows: list[dict[str, Any]] = field(default_factory=list)
    expected: dict[str, Any] = field(default_factory=dict)
    observed_value: Any = None
    error: str | None = None

    def describe(self) -> str:
        where = f"({self.column})" if self.column else ""
        head = f"{self.expectation_type}{where}"
        if self.error:
            return f"{head}: could not be evaluated: {self.error}"
        if self.expectation_type == "expect_column_to_exist":
            return f"{head}: column missing"
        if self.unexpected_count is not None:
            rows = self.sample_rows[:MESSAGE_SAMPLE_SIZE]
            shown = ", ".join(repr(r) for r in rows)
            more = ", ..." if self.unexpected_count > len(rows) else ""
            noun = "row" if self.unexpected_count == 1 else "rows"
            text = f"{head}: {self.unexpected_count} unexpected {noun}"
            if rows:
                text += f", e.g. [{shown}{more}]"
            return text
        expected = ", ".join(f"{k}={v!r}" for k, v in self.expected.items())
        return f"{head}: observed {self.observed_value!r}, expected {expected or 'otherwise'}"


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating one DataFrame against one suite."""

    table: str
    suite: str
    success: bool
    n_expectations: int
    failures: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: what was checked and how it went."""
        n_ok = self.n_expectations - len(self.failures)
        verdict = "passed" if self.success else "FAILED"
        text = (
            f"{self.table} {verdict} suite {self.suite}: {n_ok} of {self.n_expectations} "
            f"expectations met in {self.seconds:.1f}s"
        )
        if self.skipped:
            text += f" ({len(self.skipped)} skipped: optional column absent)"
        return text

    def describe(self) -> str:
        """Multi-line account of the failures (the summary line when there are none)."""
        if self.success:
            return self.summary()
        lines = [
            f"{self.table} failed {len(self.failures)} of {self.n_expectations} expectations "
            f"in suite {self.suite}:"
        ]
        lines += [f"  - {f.describe()}" for f in self.failures]
        return "\n".join(lines)


# --------------------------------------------------------------------------- suites

def expectations_dir() -> Path:
    """Folder of the suite files: ``$CLV_HOME/expectations``, else the checkout's.

    ``CLV_HOME`` usually is the checkout. When it points elsewhere (a separate state
    folder, the test suite's temporary homes) the suites that ship with the code are used.
    """
    home_dir = load_settings().home / "expectations"
    if home_dir.is_dir():
        return home_dir
    checkout_dir = Path(__file__).resolve().parents[2] / "expectations"
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
    df: DataFrame, suite_name: str, table: str, id_columns: list[str]
) -> ValidationReport:
    """Run suite ``suite_name`` against ``df`` and summarise the outcome.

    ``id_columns`` identify offending rows in the report (e.g. ``["order_id"]``); those
    absent from ``df`` are left out. The frame is cached for the run (GX computes its
    metrics in many Spark jobs) unless it already is.
    """
    started = time.monotonic()
    data = _read_suite_dict(suite_name)
    present = set(df.columns)
    expectations, skipped = [], []
    for exp in data["expectations"]:
        if exp.get("meta", {}).get("optional") and not set(_columns_of(exp)) <= present:
            skipped.append(f"{exp.get('type')}({', '.join(_columns_of(exp))})")
        else:
            expectations.append(exp)
    if skipped:
        log.info("%s: optional column(s) absent, skipping %s", table, ", ".join(skipped))
    # Ids let results, which GX returns in its own order, be matched to the suite's entries.
    expectations = [{**exp, "id": str(uuid.uuid4())} for exp in expectations]
    order = {exp["id"]: i for i, exp in enumerate(expectations)}

    ids = [c for c in id_columns if c in present]
    if len(ids) != len(id_columns):
        log.warning("%s: id column(s) %s not in the frame", table,
                    [c for c in id_columns if c not in present])

    cached_here = not getattr(df, "is_cached", True)
    if cached_here:
        df = df.cache()
        df.count()  # materialise once: GX then runs dozens of jobs over the cached rows
    try:
        # Pass 1, pass/fail only: GX bundles the row-level checks into a few aggregations.
        # Asking for samples up front costs one or two Spark jobs per expectation (~5x
        # slower), so samples are gathered in pass 2, for the failed expectations only.
        batch = _open_batch(df, table)
        suite = _build_suite({**data, "expectations": expectations})
        result = batch.validate(suite, result_format={"result_format": "BOOLEAN_ONLY"})
        n_expectations = len(result.results)
        failed_ids = {r.expectation_config.id for r in result.results if not r.success}
        failures: list[Failure] = []
        if failed_ids:
            detail_format: dict[str, Any] = {
                "result_format": "SUMMARY",
                "partial_unexpected_count": SAMPLE_SIZE,
                # The query string GX would render per expectation is of no use here.
                "return_unexpected_index_query": False,
            }
            if ids:  # GX refuses an empty list here
                detail_format["unexpected_index_column_names"] = ids
            detail_suite = _build_suite(
                {**data, "expectations": [e for e in expectations if e["id"] in failed_ids]}
            )
            detail = batch.validate(detail_suite, result_format=detail_format)
            failed = sorted(detail.results, key=lambda r: order.get(r.expectation_config.id, 0))
            failures = [_failure(r) for r in failed]
        if not result.success and not failures:  # never report a failed run as a success
            failures = [_failure(r) for r in result.results if not r.success]
    finally:
        if cached_here:
            df.unpersist()

    report = ValidationReport(
        table=table,
        suite=suite_name,
        success=not failures,
        n_expectations=n_expectations,
        failures=failures,
        skipped=skipped,
        seconds=time.monotonic() - started,
    )
    if report.success:
        log.info(report.summary())
    else:
        log.warning(report.summary())
    return report


def assert_valid(
    df: DataFrame, suite_name: str, table: str, id_columns: list[str]
) -> ValidationReport:
    """Validate ``df``; raise :class:`DataQualityError` unless every expectation holds."""
    report = validate_dataframe(df, suite_name, table, id_columns)
    if not report.success:
        raise DataQualityError(report)
    return report


def _open_batch(df: DataFrame, table: str) -> Any:
    """A GX batch over ``df`` in a fresh ephemeral context (nothing is stored anywhere)."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
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
    samples = details.get("partial_unexpected_index_list")
    if samples is None:
        values = details.get("partial_unexpected_list") or []
        key = ", ".join(cols) or "value"
        samples = [v if isinstance(v, dict) else {key: v} for v in values]
    return Failure(
        expectation_type=config.type,
        column=", ".join(cols) or None,
        unexpected_count=None if unexpected_count is None else int(unexpected_count),
        sample_rows=[dict(s) for s in samples[:SAMPLE_SIZE]],
        expected=expected,
        observed_value=details.get("observed_value"),
        error=error,
    )


def _exception_message(info: Any) -> str | None:
    if not info:
        return None
    if "raised_exception" in info:  # one exception for the expectation
        infos = [info]
    else:  # one entry per metric that failed to resolve
        infos = [v for v in info.values() if isinstance(v, dict)]
    messages = [i.get("exception_message") for i in infos if i.get("raised_exception")]
    return "; ".join(str(m) for m in messages if m) or None


def _quiet_gx() -> None:
    """No usage statistics leave the process (must run before GX is first imported)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
