"""Optional input sources beside ``raw.orders``: order lines, reviews, customers, events.

Each source has a contract (:data:`SOURCES`), named row rules checked in order (the
first rule a row breaks is the one reported), a Great Expectations suite in
``expectations/`` and a quarantine table. One load::

    file or frame --mapping--> contract columns (text)
        --row rules--> accepted (typed)  +  rejected (raw text, rule, row, source, run_id)
        --suite--> quality.rejected_<table>, then raw.<table>   (one as_of_date partition each)

Rows in = rows accepted + rows rejected, always; a load whose rejected share passes
``max_rejected_share`` publishes nothing and says which rules rejected how many rows.
``row`` is the 1-based data row of the input file (the header is not counted), so a
data engineer finds the line. The rules run in pandas (exact row numbers, frames up to
a few million rows); the suite and the publish run in Spark like every other table.

Partitions are load batches, as for ``raw.orders``: their union is the history. A key
already published by another batch is quarantined (``*_published``), so re-sending a
file under a new date cannot double the history; reloading the same date replaces it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from clv.data import catalog
from clv.ingest.files import IngestError

if TYPE_CHECKING:  # pragma: no cover
    pass

log = logging.getLogger(__name__)

ROW_COLUMN, SOURCE_COLUMN = "row", "source"
#: The event types ``raw.events`` accepts (lower-cased, trimmed on import).
EVENT_TYPES = ("view", "add_to_cart", "purchase")


@dataclass(frozen=True)
class SourceSpec:
    """One optional source: where it lands, its contract and its suite."""

    table: str
    rejected_table: str
    suite: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    key: tuple[str, ...]
    time_column: str
    schema: str  # Spark DDL of the published table, in contract order

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


ORDER_LINES = SourceSpec(
    catalog.ORDER_LINES, catalog.REJECTED_ORDER_LINES, "raw_order_lines",
    ("order_id", "line_id", "customer_id", "order_ts", "product_id", "quantity", "unit_price"),
    ("category", "currency"), ("order_id", "line_id"), "order_ts",
    "order_id string, line_id string, customer_id string, order_ts timestamp, "
    "product_id string, quantity int, unit_price double, category string, currency string")
REVIEWS = SourceSpec(
    catalog.REVIEWS, catalog.REJECTED_REVIEWS, "raw_reviews",
    ("review_id", "order_id", "customer_id", "score", "created_at"), ("title", "text"),
    ("review_id", "order_id"), "created_at",
    "review_id string, order_id string, customer_id string, score int, "
    "created_at timestamp, title string, text string")
CUSTOMERS = SourceSpec(
    catalog.CUSTOMERS, catalog.REJECTED_CUSTOMERS, "customers",
    ("customer_id",), ("region", "acquisition_channel", "signup_date"), ("customer_id",),
    "signup_date",
    "customer_id string, region string, acquisition_channel string, signup_date date")
EVENTS = SourceSpec(
    catalog.EVENTS, catalog.REJECTED_EVENTS, "raw_events",
    ("customer_id", "event_ts", "event_type"), ("session_id", "product_id"),
    ("customer_id", "event_ts", "event_type", "session_id", "product_id"), "event_ts",
    "customer_id string, event_ts timestamp, event_type string, session_id string, "
    "product_id string")
SOURCES: dict[str, SourceSpec] = {s.table: s for s in (ORDER_LINES, REVIEWS, CUSTOMERS, EVENTS)}

#: Columns of every quarantine table, after the contract's columns (as text).
REJECT_COLUMNS = (ROW_COLUMN, "rule", SOURCE_COLUMN, "run_id")


@dataclass(frozen=True)
class SourceLoadResult:
    """What one load of a source did: rows in, accepted, rejected per rule."""

    table: str
    source: str
    as_of_date: dt.date
    rows_in: int
    rows_accepted: int
    rows_rejected: int
    rejected_by_rule: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {"table": self.table, "source": self.source,
                "as_of_date": self.as_of_date.isoformat(), "rows_in": self.rows_in,
                "accepted": self.rows_accepted, "rejected": self.rows_rejected,
                "rejected_by_rule": dict(sorted(self.rejected_by_rule.items()))}

    def __str__(self) -> str:
        rules = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected_by_rule.items())) or "none"
        return (f"{self.table} batch as_of_date={self.as_of_date}: {self.rows_in} rows in, "
                f"{self.rows_accepted} accepted, {self.rows_rejected} rejected ({rules})")


# --------------------------------------------------------------------------- reading

def read_source_file(path: Path, spec: SourceSpec, mapping: dict[str, str] | None = None
                     ) -> pd.DataFrame:
    """A CSV (plain or compressed) or Parquet file as text columns in ``spec``'s contract.

    Args:
        path: the file.
        spec: the source it is loaded into (e.g. :data:`ORDER_LINES`).
        mapping: contract column -> column in the file; unmapped columns are looked up
            under their own names; absent optional columns become nulls.

    Raises:
        IngestError: the file is missing, unreadable, or lacks a required column.
    """
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: file not found")
    try:
        frame = (pd.read_parquet(path) if path.suffix == ".parquet" or path.is_dir() else
                 pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))
    except Exception as exc:  # pandas names the line of a malformed CSV
        raise IngestError(f"{path}: cannot be read for {spec.table}: {exc}") from exc
    return apply_mapping(frame, spec, str(path), mapping)


def apply_mapping(frame: pd.DataFrame, spec: SourceSpec, source: str,
                  mapping: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename ``frame``'s columns into ``spec``'s contract (see :func:`read_source_file`);
    a ``row`` column, when present, is kept (else the 1-based position is used)."""
    mapping = mapping or {}
    unknown = sorted(set(mapping) - set(spec.columns))
    if unknown:
        raise IngestError(f"{source}: mapping names unknown {spec.table} column(s) {unknown}; "
                          f"the contract is {list(spec.columns)}")
    out = pd.DataFrame(index=frame.index)
    for name in spec.columns:
        column = mapping.get(name, name)
        if column in frame.columns:
            out[name] = frame[column]
        elif name in spec.optional or (spec is ORDER_LINES and name == "line_id"):
            out[name] = None
        else:
            raise IngestError(
                f"{source}: {spec.table} needs column {name!r} (looked for {column!r}); the "
                f"file has {list(frame.columns)}; map it with {name}=<column>")
    out[ROW_COLUMN] = (frame[ROW_COLUMN].to_numpy() if ROW_COLUMN in frame.columns
                       else np.arange(1, len(frame) + 1))
    if SOURCE_COLUMN in frame.columns:
        out[SOURCE_COLUMN] = frame[SOURCE_COLUMN].to_numpy()
    return out.reset_index(drop=True)
