"""Feature drift: the population stability index (PSI) of numeric columns between two
partitions, computed by Spark (only per-bin counts reach the driver)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import Column, DataFrame

log = logging.getLogger("clv.quality")  # the package's logger, as before the split

#: PSI above which a column is flagged "watch", and above which "drift".
PSI_WATCH = 0.1
PSI_DRIFT = 0.25
#: Share that stands in for an empty bin in the PSI (ln(0) is undefined).
PSI_EPSILON = 1e-4
#: ``percentile_approx`` accuracy for PSI bin edges (rank error below 1 up to this many rows).
_QUANTILE_ACCURACY = 100_000


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
