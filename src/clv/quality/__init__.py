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
* the suite's ``meta.table`` names the warehouse table it is written for;
* an expectation's ``description`` states its rule in words; failure messages quote it.

Every validation, passed or failed, is rendered to Great Expectations Data Docs under
``$CLV_HOME/.state/gx/data_docs`` (see :func:`data_docs_dir`; ``CLV_GX_DATA_DOCS=0``
turns this off); the report carries the paths of the index and of the run's page.

Batch-level monitoring: :func:`check_row_count` / :func:`assert_row_count_sane` compare
a batch's row count with the previous partition's (``previous_count=`` adds the same rule
to a suite run, so it shows in Data Docs), and :func:`feature_drift` measures the
population stability index of numeric columns between two partitions.

Great Expectations is imported inside the functions, so importing this module stays
cheap (GX takes seconds to import). Its analytics are switched off before the import.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from clv.data import warehouse
from clv.config import CHECKOUT_ROOT, Settings, load_settings, private_dir

if TYPE_CHECKING:  # pragma: no cover
    import great_expectations as gx
    import pandas as pd
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)

#: Offending rows kept per failed expectation (GX's ``partial_unexpected_count``).
SAMPLE_SIZE = 10
#: Offending rows shown per failed expectation in a DataQualityError message.
MESSAGE_SAMPLE_SIZE = 5
#: Kwargs that locate an expectation rather than say what it expects.
_DOMAIN_KWARGS = (
    "batch_id", "column", "column_A", "column_B", "column_list", "row_condition",
    "condition_parser",
)

#: Environment switch for Data Docs: ``0`` (or false/no/off) turns them off; on by default.
DATA_DOCS_ENV = "CLV_GX_DATA_DOCS"
#: Name of the local Data Docs site.
DATA_DOCS_SITE = "clv"
#: Validation results kept under ``.state/gx`` (and shown in Data Docs); older ones are pruned.
DATA_DOCS_KEEP = 200

#: Default bound on the change in row count between a batch and the previous partition.
MAX_ROW_RATIO = 10.0

#: PSI above which a column is flagged "watch", and above which "drift".
PSI_WATCH = 0.1
PSI_DRIFT = 0.25
#: Share that stands in for an empty bin in the PSI (ln(0) is undefined).
PSI_EPSILON = 1e-4
#: ``percentile_approx`` accuracy for PSI bin edges (rank error below 1 up to this many rows).
_QUANTILE_ACCURACY = 100_000


class DataQualityError(ValueError):
    """Data failed its expectation suite; ``report`` holds the details."""

    def __init__(self, report: ValidationReport, hint: str | None = None) -> None:
        message = report.describe()
        if report.data_docs_page:
            message += f"\n  Data Docs: {report.data_docs_page}"
        if hint:
            message += f"\n  {hint}"
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Failure:
    """One expectation that did not hold.

    ``column`` is the checked column, ``"A, B"`` for a column pair or list, and
    ``None`` for a table-level expectation. ``unexpected_count`` is ``None`` for
    expectations that do not look at rows one by one (row counts, column presence);
    those carry ``observed_value`` instead. ``sample_rows`` holds up to
    :data:`SAMPLE_SIZE` offending rows: the id columns plus the checked column(s).
    ``error`` is set when GX could not evaluate the expectation at all. ``condition`` is
    the row condition the expectation is restricted to (``"action != 'none'"``), ``rule``
    the rule in words: the expectation's ``description``, or the row-count rule.
    """

    expectation_type: str
    column: str | None
    unexpected_count: int | None
    sample_rows: list[dict[str, Any]] = field(default_factory=list)
    expected: dict[str, Any] = field(default_factory=dict)
    observed_value: Any = None
    error: str | None = None
    condition: str | None = None
    rule: str | None = None

    def describe(self) -> str:
        where = f"({self.column})" if self.column else ""
        head = f"{self.expectation_type}{where}"
        if self.condition:
            head += f" where {self.condition}"
        rule = f"; rule: {self.rule}" if self.rule else ""
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
            return text + rule
        expected = ", ".join(f"{k}={v!r}" for k, v in self.expected.items())
        return (
            f"{head}: observed {self.observed_value!r}, expected {expected or 'otherwise'}{rule}"
        )


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
    #: Data Docs: the site's index.html and this run's page (None when not built).
    data_docs: str | None = None
    data_docs_page: str | None = None

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
) -> ValidationReport:
    """Run suite ``suite_name`` against ``df`` and summarise the outcome.

    ``id_columns`` identify offending rows in the report (e.g. ``["order_id"]``); those
    absent from ``df`` are left out. The frame is cached for the run (GX computes its
    metrics in many Spark jobs) unless it already is. ``previous_count`` (the row count
    of the table's previous partition, see :func:`previous_row_count`) adds the rule of
    :func:`check_row_count` as an ``expect_table_row_count_to_be_between``. The run is
    rendered to Data Docs, labelled ``run_name`` (default: Airflow's run id, else "adhoc").
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

    cached_here = not getattr(df, "is_cached", True)
    if cached_here:
        df = df.cache()
        df.count()  # materialise once: GX then runs dozens of jobs over the cached rows
    try:
        result, failures = _run_suite(df, table, {**data, "expectations": expectations}, ids)
    finally:
        if cached_here:
            df.unpersist()
    docs = _publish_data_docs(result, suite_name, table, run_name)
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
) -> ValidationReport:
    """Validate ``df``; raise :class:`DataQualityError` unless every expectation holds."""
    report = validate_dataframe(
        df, suite_name, table, id_columns,
        previous_count=previous_count, max_ratio=max_ratio, run_name=run_name,
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
    df: DataFrame, table: str, data: dict[str, Any], ids: list[str]
) -> tuple[Any, list[Failure]]:
    """Validate in two passes; return GX's result (for Data Docs) and the failures.

    Pass 1, pass/fail only: GX bundles the row-level checks into a few aggregations.
    Asking for samples up front costs one or two Spark jobs per expectation (~5x
    slower), so samples are gathered in pass 2, for the failed expectations only; their
    detailed results replace the pass/fail ones in the returned result.
    """
    order = {exp["id"]: i for i, exp in enumerate(data["expectations"])}
    batch = _open_batch(df, table)
    result = batch.validate(_build_suite(data), result_format={"result_format": "BOOLEAN_ONLY"})
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
        failed = [e for e in data["expectations"] if e["id"] in failed_ids]
        detail = batch.validate(_build_suite({**data, "expectations": failed}),
                                result_format=detail_format)
        by_id = {r.expectation_config.id: r for r in detail.results}
        result.results = [by_id.get(r.expectation_config.id, r) for r in result.results]
        ordered = sorted(detail.results, key=lambda r: order.get(r.expectation_config.id, 0))
        failures = [_failure(r) for r in ordered]
    if not result.success and not failures:  # never report a failed run as a success
        failures = [_failure(r) for r in result.results if not r.success]
    return result, failures


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


def _quiet_gx() -> None:
    """No usage statistics leave the process (must run before GX is first imported)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"


# --------------------------------------------------------------------------- data docs

def data_docs_enabled() -> bool:
    """Whether validations are rendered to Data Docs (``CLV_GX_DATA_DOCS``, default on)."""
    value = os.environ.get(DATA_DOCS_ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def data_docs_dir(settings: Settings | None = None) -> Path:
    """Folder of the Data Docs site: ``$CLV_HOME/.state/gx/data_docs`` (git-ignored)."""
    return _gx_dir(settings) / "data_docs"


def _gx_dir(settings: Settings | None = None) -> Path:
    """GX's state: stored validation results and the Data Docs site."""
    return (settings or load_settings()).state_dir / "gx"


def _publish_data_docs(
    result: Any, suite_name: str, table: str, run_name: str | None
) -> tuple[str, str] | None:
    """Store ``result`` and render it: (index.html, the run's page), or None.

    Data Docs are a view of the outcome: failing to build them is logged, never raised.
    """
    if not data_docs_enabled():
        return None
    try:
        index, page = _write_data_docs(result, suite_name, table, run_name)
    except Exception as exc:
        log.warning("%s: Data Docs not built: %s: %s", table, type(exc).__name__, exc)
        return None
    log.info("%s: Data Docs %s (index: %s)", table, page, index)
    return index, page


def _write_data_docs(
    result: Any, suite_name: str, table: str, run_name: str | None
) -> tuple[str, str]:
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    root = _gx_dir()
    private_dir(root.parent)
    root.mkdir(parents=True, exist_ok=True)
    name = (run_name or os.environ.get("AIRFLOW_CTX_DAG_RUN_ID") or "adhoc").replace("/", "_")
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
        run_id=RunIdentifier(run_name=name, run_time=dt.datetime.now(dt.timezone.utc)),
        batch_identifier=table,
    )
    # What the page's header shows (GX's checkpoints set these; batch.validate does not).
    result.meta["run_id"] = key.run_id
    result.meta["batch_kwargs"] = {"data_asset_name": table}
    with warehouse.exclusive_lock(root / ".lock"):  # concurrent runs would interleave index.html
        context = _docs_context(root)
        context.validation_results_store.set(key, result)
        _prune(root / "validations", DATA_DOCS_KEEP)
        # The index re-reads every stored result (0.7 s at 105 of them, ~11 validations
        # per DAG run): rebuilt here only when a check failed or there is none yet,
        # else once at the end of the run (rebuild_data_docs_index).
        index = root / "data_docs" / "index.html"
        build_index = not result.success or not index.exists()
        context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=[key],
                                build_index=build_index)
        if build_index:
            write_offline_index(root)
        [page] = context.get_docs_sites_urls(resource_identifier=key, site_name=DATA_DOCS_SITE)
    return str(index), _url_path(page["site_url"])


def rebuild_data_docs_index(settings: Settings | None = None) -> str | None:
    """Re-render the Data Docs index over every stored validation; returns its path.

    Validations that pass add only their own page (see :func:`_write_data_docs`); the
    DAG calls this once at its end so the index lists the whole run. Never raises:
    Data Docs are a view, a failure to build them is logged.
    """
    if not data_docs_enabled():
        return None
    root = _gx_dir(settings)
    if not (root / "validations").is_dir():
        return None
    try:
        with warehouse.exclusive_lock(root / ".lock"):
            built = _docs_context(root).build_data_docs(site_names=[DATA_DOCS_SITE])
            write_offline_index(root)
    except Exception as exc:
        log.warning("Data Docs index not built: %s: %s", type(exc).__name__, exc)
        return None
    return _url_path(built[DATA_DOCS_SITE])


#: The Data Docs index that reads without the internet (GX's own index.html builds its
#: table with scripts from CDNs, so offline it is blank).
OFFLINE_INDEX = "offline_index.html"


def write_offline_index(root: Path) -> Path:
    """``data_docs/offline_index.html``: every stored validation, newest first, as a plain
    HTML table (suite, table, run, time, passed, expectations failed / evaluated) linking
    to its page. No script, no stylesheet from anywhere: it reads offline, and the pages
    it links hold their results as server-rendered tables (unstyled offline)."""
    import html
    import json
    from urllib.parse import quote

    docs = root / "data_docs"
    rows = []
    for stored in (root / "validations").rglob("*.json"):
        result = json.loads(stored.read_text())
        relative = stored.relative_to(root / "validations").with_suffix(".html")
        stats = result.get("statistics", {})
        meta = result.get("meta", {})
        run = meta.get("run_id") or {}
        rows.append((str(run.get("run_time", "")), relative.parts[0],
                     (meta.get("batch_kwargs") or {}).get("data_asset_name", relative.stem),
                     str(run.get("run_name", "")), bool(result.get("success")),
                     stats.get("unsuccessful_expectations", ""),
                     stats.get("evaluated_expectations", ""),
                     quote(f"validations/{relative.as_posix()}")))
    rows.sort(reverse=True)
    cells = "".join(
        f"<tr><td>{html.escape(t)}</td><td>{html.escape(suite)}</td>"
        f"<td><a href='{link}'>{html.escape(table)}</a></td><td>{html.escape(run)}</td>"
        f"<td>{'passed' if ok else 'FAILED'}</td><td>{failed} / {evaluated}</td></tr>"
        for t, suite, table, run, ok, failed, evaluated, link in rows)
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Data Docs (offline index)</title></head><body>"
            "<h1>Data quality validations</h1>"
            f"<p>{len(rows)} stored validations, newest first. Great Expectations' own "
            "<a href='index.html'>index</a> needs the internet for its scripts and styles; "
            "each page below reads without them.</p>"
            "<table id='validations' border='1'><tr><th>run time</th><th>suite</th>"
            "<th>table</th><th>run</th><th>result</th><th>failed / evaluated</th></tr>"
            f"{cells}</table></body></html>\n")
    docs.mkdir(parents=True, exist_ok=True)
    out = docs / OFFLINE_INDEX
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def _docs_context(root: Path) -> Any:
    """Ephemeral GX context whose validation results and Data Docs live under ``root``."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults()
    stores = defaults.stores
    stores[defaults.validation_results_store_name]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend", "base_directory": str(root / "validations"),
    }
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(root / "data_docs")},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    config = DataContextConfig(
        store_backend_defaults=defaults, stores=stores, data_docs_sites={DATA_DOCS_SITE: site},
        progress_bars=ProgressBarsConfig(globally=False), analytics_enabled=False,
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest stored results; the index build drops their pages."""
    files = sorted(folder.rglob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)
        for parent in old.parents:
            if parent == folder or any(parent.iterdir()):
                break
            parent.rmdir()


def _url_path(url: str) -> str:
    """``file:///a/b%20c.html`` -> ``/a/b c.html``."""
    return unquote(urlparse(url).path)


# --------------------------------------------------------------------------- row counts

def check_row_count(
    table: str, current_count: int, previous_count: int | None, max_ratio: float = MAX_ROW_RATIO
) -> list[str]:
    """Problems with a batch's row count; empty when it is sane.

    An empty batch is always a problem. When the previous partition has rows, a batch
    with more than ``previous_count * max_ratio`` or fewer than ``previous_count /
    max_ratio`` rows is flagged too. Each message names the table, both counts and the rule.
    """
    if current_count < 0 or (previous_count or 0) < 0:
        raise ValueError(f"{table}: row counts cannot be negative "
                         f"({current_count}, {previous_count})")
    low, high = _row_count_bounds(previous_count, max_ratio)
    if current_count == 0:
        return [f"{table}: empty batch (0 rows); rule: a batch must not be empty"]
    if high is None:
        return []
    rule = f"rule: {_row_count_rule(previous_count, max_ratio)}, i.e. {low}..{high} rows"
    if current_count > high:
        return [f"{table}: {current_count} rows vs {previous_count} in the previous partition, "
                f"more than {max_ratio:g}x as many; {rule}"]
    if current_count < low:
        return [f"{table}: {current_count} rows vs {previous_count} in the previous partition, "
                f"fewer than 1/{max_ratio:g} as many; {rule}"]
    return []


def assert_row_count_sane(
    table: str, current_count: int, previous_count: int | None, max_ratio: float = MAX_ROW_RATIO
) -> None:
    """Raise :class:`DataQualityError` when :func:`check_row_count` finds a problem."""
    problems = check_row_count(table, current_count, previous_count, max_ratio)
    if not problems:
        return
    low, high = _row_count_bounds(previous_count, max_ratio)
    failure = Failure(
        expectation_type="expect_table_row_count_to_be_between",
        column=None,
        unexpected_count=None,
        expected={"min_value": low, **({"max_value": high} if high is not None else {})},
        observed_value=current_count,
        rule=_row_count_rule(previous_count, max_ratio),
    )
    raise DataQualityError(ValidationReport(
        table=table, suite="row_count", success=False, n_expectations=1, failures=[failure]
    ))


def previous_partition(
    table: str, as_of_date: dt.date, settings: Settings | None = None
) -> dt.date | None:
    """The table's newest published partition strictly before ``as_of_date``, if any."""
    earlier = [d for d in warehouse.list_partitions(table, settings) if d < as_of_date]
    return earlier[-1] if earlier else None


def previous_row_count(
    table: str, as_of_date: dt.date, settings: Settings | None = None
) -> int | None:
    """Rows in :func:`previous_partition` (no Spark job, either backend), if any."""
    previous = previous_partition(table, as_of_date, settings)
    if previous is None:
        return None
    return warehouse.row_count(table, previous, settings)


def _row_count_bounds(previous: int | None, max_ratio: float) -> tuple[int, int | None]:
    """Allowed (min, max) row count: at least 1; within ``max_ratio`` of a non-empty previous."""
    if not (math.isfinite(max_ratio) and max_ratio >= 1):
        raise ValueError(f"max_ratio must be a finite number >= 1, got {max_ratio}")
    if not previous:
        return 1, None
    return max(1, math.ceil(previous / max_ratio)), math.floor(previous * max_ratio)


def _row_count_rule(previous: int | None, max_ratio: float) -> str:
    if not previous:
        return "a batch must not be empty"
    return (f"not empty and within {max_ratio:g}x of the previous partition's {previous} rows "
            f"(previous/{max_ratio:g} <= rows <= previous*{max_ratio:g})")


def _row_count_expectation(previous: int, max_ratio: float) -> dict[str, Any]:
    """The row-count rule as a GX expectation (so it is rendered in Data Docs)."""
    low, high = _row_count_bounds(previous, max_ratio)
    return {
        "type": "expect_table_row_count_to_be_between",
        "kwargs": {"min_value": low, "max_value": high},
        "meta": {"previous_count": previous, "max_ratio": max_ratio},
        "description": _row_count_rule(previous, max_ratio),
    }


# --------------------------------------------------------------------------- drift

def numeric_columns(df: DataFrame, exclude: tuple[str, ...] = ()) -> list[str]:
    """Names of ``df``'s numeric columns (int, long, float, double, decimal), in order."""
    from pyspark.sql.types import NumericType

    return [f.name for f in df.schema.fields
            if isinstance(f.dataType, NumericType) and f.name not in exclude]


def feature_drift(
    current: DataFrame, previous: DataFrame, columns: list[str], bins: int = 10
) -> pd.DataFrame:
    """Population stability index (PSI) of each numeric column, current vs previous partition.

    Bins come from the previous partition: its quantiles at 1/bins .. (bins-1)/bins cut
    the values into intervals x <= q1 < x <= q2 ... < x (repeated quantiles of a discrete
    column merge, so fewer bins), and missing values (null, NaN) get a bin of their own.
    With e_i and a_i the previous and current shares of rows in bin i, each floored at
    :data:`PSI_EPSILON` so that an empty bin weighs a finite amount::

        PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

    It is 0 for identical distributions; ``flag`` is "drift" above :data:`PSI_DRIFT`
    (0.25), "watch" above :data:`PSI_WATCH` (0.1), else "ok". Spark computes the quantiles
    and the per-bin counts; only those counts reach the driver.

    Returns one row per column: column, psi, flag, bins (value bins used), n_current,
    n_previous.
    """
    import pandas as pd

    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    _check_drift_columns(current, previous, columns)
    edges = _bin_edges(previous, columns, bins)
    n_prev, prev_counts = _bin_counts(previous, edges)
    n_cur, cur_counts = _bin_counts(current, edges)
    for which, n in (("previous", n_prev), ("current", n_cur)):
        if n == 0:
            raise ValueError(f"feature_drift: the {which} partition has no rows")
    rows = []
    for col in columns:
        psi = _psi(cur_counts[col], n_cur, prev_counts[col], n_prev)
        rows.append({"column": col, "psi": psi, "flag": _psi_flag(psi),
                     "bins": len(edges[col]) + 1, "n_current": n_cur, "n_previous": n_prev})
    frame = pd.DataFrame(rows, columns=["column", "psi", "flag", "bins", "n_current", "n_previous"])
    flagged = frame[frame["flag"] != "ok"]
    if not flagged.empty:
        log.warning("feature drift (PSI): %s", ", ".join(
            f"{r.column}={r.psi:.3f} ({r.flag})" for r in flagged.itertuples()))
    return frame


def _check_drift_columns(current: DataFrame, previous: DataFrame, columns: list[str]) -> None:
    if not columns:
        raise ValueError("feature_drift: no columns given")
    for name, frame in (("current", current), ("previous", previous)):
        numeric = set(numeric_columns(frame))
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"feature_drift: column(s) {missing} not in the {name} partition")
        other = [c for c in columns if c not in numeric]
        if other:
            raise ValueError(f"feature_drift: column(s) {other} are not numeric")


def _value(column: str) -> Column:
    """The column as a double, NaN turned into null (both count as missing)."""
    from pyspark.sql import functions as F

    x = F.col(column).cast("double")
    return F.when(~F.isnan(x), x)


def _bin_edges(previous: DataFrame, columns: list[str], bins: int) -> dict[str, list[float]]:
    """Distinct interior quantiles of each column in ``previous`` (one Spark job)."""
    from pyspark.sql import functions as F

    probs = [i / bins for i in range(1, bins)]
    row = previous.agg(*[
        F.percentile_approx(_value(c), probs, _QUANTILE_ACCURACY).alias(f"q{i}")
        for i, c in enumerate(columns)
    ]).first()
    return {c: sorted(set(row[f"q{i}"] or [])) for i, c in enumerate(columns)}


def _bin_counts(
    frame: DataFrame, edges: dict[str, list[float]]
) -> tuple[int, dict[str, list[int]]]:
    """Row count and, per column, [missing, bin 0, ..., bin k] counts (one Spark job).

    Each row becomes one (column, bin) pair per column, counted by a group-by: far
    cheaper than one conditional count per column and bin.
    """
    from pyspark.sql import functions as F

    values = frame.select(*[_value(col).alias(f"v{i}") for i, col in enumerate(edges)])
    pairs = F.array(*[
        F.struct(F.lit(i).alias("c"), _bin_index(F.col(f"v{i}"), cuts).alias("b"))
        for i, cuts in enumerate(edges.values())
    ])
    found = {
        (r["c"], r["b"]): r["count"]
        for r in values.select(F.explode(pairs).alias("p")).groupBy("p.c", "p.b").count().collect()
    }
    counts = {
        col: [found.get((i, b), 0) for b in range(len(cuts) + 2)]
        for i, (col, cuts) in enumerate(edges.items())
    }
    n_rows = sum(next(iter(counts.values()))) if counts else 0
    return n_rows, counts


def _bin_index(x: Column, cuts: list[float]) -> Column:
    """0 for a missing value, else 1 + the number of cuts below it (x <= cut 1 is bin 1)."""
    from pyspark.sql import functions as F

    index = F.when(x.isNull(), 0)
    for k, cut in enumerate(cuts, start=1):
        index = index.when(x <= F.lit(cut), k)
    return index.otherwise(len(cuts) + 1)


def _psi(actual: list[int], n_actual: int, expected: list[int], n_expected: int) -> float:
    """sum (a - e) ln(a / e) over bins, shares floored at PSI_EPSILON."""
    total = 0.0
    for a_count, e_count in zip(actual, expected, strict=True):
        a = max(a_count / n_actual, PSI_EPSILON)
        e = max(e_count / n_expected, PSI_EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def _psi_flag(psi: float) -> str:
    if psi > PSI_DRIFT:
        return "drift"
    if psi > PSI_WATCH:
        return "watch"
    return "ok"


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
