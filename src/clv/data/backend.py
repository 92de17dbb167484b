"""The interface both warehouse backends implement, and the choice between them.

:func:`get_backend` picks the backend once per settings from ``CLV_WAREHOUSE_URI``:
a ``postgresql://`` URI selects :class:`clv.data.postgres.PostgresBackend`, anything
else :class:`clv.data.parquet.ParquetBackend`. Callers use :mod:`clv.data.warehouse`,
which names tables by their catalogue names and delegates here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from clv.config import Settings
    from clv.data.catalog import Table


class Backend(Protocol):
    """Where tables live. Every write replaces one ``as_of_date`` partition atomically."""

    kind: str

    def location(self) -> Any:
        """What an analyst opens: the DuckDB file, or the database URI without its password."""

    def list_partitions(self, table: Table) -> list[dt.date]:
        """Published partitions, oldest first."""

    def row_count(self, table: Table, as_of_date: dt.date) -> int | None:
        """Rows of a published partition without a Spark job (None if it does not exist)."""

    def columns(self, table: Table, as_of_date: dt.date) -> list[str]:
        """Column names of a published partition, without reading its rows."""

    def write_partition(self, df: DataFrame, table: Table, as_of_date: dt.date) -> Any:
        """Replace the partition with ``df`` (no partition column) atomically."""

    def drop_partition(self, table: Table, as_of_date: dt.date) -> bool:
        """Remove the partition whole; True when it existed."""

    def read_table(self, spark: SparkSession, table: Table,
                   as_of_date: dt.date | None) -> DataFrame:
        """One partition, or every one, with the partition column."""

    def read_partition_pandas(
        self, table: Table, as_of_date: dt.date, columns: Sequence[str] | None,
        where: Mapping[str, Any] | None, order_by: Sequence[str] | None,
        keep: Callable[[int], Any] | None = None,
    ) -> pd.DataFrame:
        """One partition in pandas, without a JVM; ``keep(n)``: the positions (after
        ``order_by``) of the rows to return, given the n rows that matched."""

    def refresh_catalog(self, tables: Sequence[Table]) -> Any:
        """Make every table with data queryable by analysts."""


@lru_cache(maxsize=8)
def get_backend(settings: Settings) -> Backend:
    """The backend for these settings (one instance per settings)."""
    if settings.warehouse_backend == "postgresql":
        from clv.data.postgres import PostgresBackend

        return PostgresBackend(settings)
    from clv.data.parquet import ParquetBackend

    return ParquetBackend(settings)
