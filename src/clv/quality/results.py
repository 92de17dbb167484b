"""What a validation found: :class:`ValidationReport`, its :class:`Failure` entries, and
:class:`DataQualityError`, raised with a readable message when data fails its checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Offending rows kept per failed expectation (GX's ``partial_unexpected_count``).
SAMPLE_SIZE = 10
#: Offending rows shown per failed expectation in a DataQualityError message.
MESSAGE_SAMPLE_SIZE = 5


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
