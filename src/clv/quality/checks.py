"""Row-count checks: a batch's row count against the previous partition's.

:func:`check_row_count` / :func:`assert_row_count_sane` apply the rule on their own;
``previous_count=`` in :func:`clv.quality.suites.validate_dataframe` adds the same rule
to a suite run (:func:`_row_count_expectation`), so it shows in Data Docs.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from clv.config import Settings
from clv.data import warehouse
from clv.quality.results import DataQualityError, Failure, ValidationReport

#: Default bound on the change in row count between a batch and the previous partition.
MAX_ROW_RATIO = 10.0


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
