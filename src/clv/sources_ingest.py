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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from clv import warehouse
from clv.ingest import DEFAULT_NULL_TOKENS, IngestError, _env_tokens, check_rejected_share

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

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
    "raw.order_lines", "quality.rejected_order_lines", "raw_order_lines",
    ("order_id", "line_id", "customer_id", "order_ts", "product_id", "quantity", "unit_price"),
    ("category", "currency"), ("order_id", "line_id"), "order_ts",
    "order_id string, line_id string, customer_id string, order_ts timestamp, "
    "product_id string, quantity int, unit_price double, category string, currency string")
REVIEWS = SourceSpec(
    "raw.reviews", "quality.rejected_reviews", "raw_reviews",
    ("review_id", "order_id", "customer_id", "score", "created_at"), ("title", "text"),
    ("review_id", "order_id"), "created_at",
    "review_id string, order_id string, customer_id string, score int, "
    "created_at timestamp, title string, text string")
CUSTOMERS = SourceSpec(
    "raw.customers", "quality.rejected_customers", "customers",
    ("customer_id",), ("region", "acquisition_channel", "signup_date"), ("customer_id",),
    "signup_date",
    "customer_id string, region string, acquisition_channel string, signup_date date")
EVENTS = SourceSpec(
    "raw.events", "quality.rejected_events", "raw_events",
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


# --------------------------------------------------------------------------- typing

def _text(s: pd.Series) -> pd.Series:
    """Trimmed text; blank and null tokens (NULL, NaN, N/A, ...) are missing."""
    tokens = _env_tokens("CLV_NULL_TOKENS", DEFAULT_NULL_TOKENS)
    t = s.astype("string").str.strip()
    return t.mask(t.isna() | (t == "") | t.str.upper().isin(tokens))


def _timestamp(s: pd.Series) -> pd.Series:
    """Timestamps as naive UTC (an offset is converted, a naive value taken as UTC)."""
    parsed = pd.to_datetime(_text(s), errors="coerce", utc=True, format="mixed")
    return parsed.dt.tz_localize(None).astype("datetime64[us]")


def _number(s: pd.Series) -> pd.Series:
    return pd.to_numeric(_text(s), errors="coerce").astype(float)


def _midnight(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.combine(day, dt.time()))


def _suite_floor(spec: SourceSpec) -> pd.Timestamp:
    from clv import quality

    low = quality.suite_bounds(spec.suite, spec.time_column)[0]
    return pd.Timestamp(dt.datetime.fromisoformat(str(low)))


def _suite_range(spec: SourceSpec, column: str) -> tuple[float, float]:
    from clv import quality

    low, high = quality.suite_bounds(spec.suite, column)
    return float(low), float(high)


def _time_checks(name: str, ts: pd.Series, given: pd.Series, as_of: dt.date,
                 floor: pd.Timestamp) -> list[tuple[str, pd.Series]]:
    return [(f"{name}_parseable", given & ts.isna()),
            (f"{name}_not_in_future", ts >= _midnight(as_of)),
            (f"{name}_after_floor", ts < floor)]


def _number_checks(name: str, x: pd.Series, given: pd.Series, low: float, high: float,
                   whole: bool = True) -> list[tuple[str, pd.Series]]:
    checks = [(f"{name}_numeric", given & ~np.isfinite(x.fillna(np.nan)))]
    if whole:
        checks.append((f"{name}_whole", x.notna() & (x != np.floor(x))))
    return checks + [(f"{name}_in_range", (x < low) | (x > high))]


def _missing(name: str, s: pd.Series) -> tuple[str, pd.Series]:
    return (f"{name}_not_null", s.isna())


# --------------------------------------------------------------------------- rules per source

def _order_line_rules(raw: pd.DataFrame, as_of: dt.date) -> tuple[pd.DataFrame, list]:
    spec = ORDER_LINES
    typed = pd.DataFrame({c: _text(raw[c]) for c in ("order_id", "line_id", "customer_id",
                                                     "product_id", "category")})
    typed["line_id"] = typed["line_id"].fillna(  # no line id: the line's place in its order
        raw.groupby(_text(raw["order_id"]).fillna(""), sort=False).cumcount().add(1)
        .astype("string").where(raw["line_id"].isna()))
    typed["currency"] = _text(raw["currency"]).str.upper()
    typed["order_ts"] = _timestamp(raw["order_ts"])
    typed["quantity"], typed["unit_price"] = _number(raw["quantity"]), _number(raw["unit_price"])
    q_low, q_high = _suite_range(spec, "quantity")
    checks = [_missing(c, typed[c]) for c in ("order_id", "line_id", "customer_id", "product_id")]
    checks += _time_checks("order_ts", typed["order_ts"], pd.Series(True, raw.index), as_of,
                           _suite_floor(spec))
    checks += _number_checks("quantity", typed["quantity"], _text(raw["quantity"]).notna(),
                             q_low, q_high)
    checks.append(("quantity_nonzero", typed["quantity"] == 0))
    checks += _number_checks("unit_price", typed["unit_price"], _text(raw["unit_price"]).notna(),
                             *_suite_range(spec, "unit_price"), whole=False)
    checks.append(("currency_known", typed["currency"].notna()
                   & ~typed["currency"].isin(_currencies())))
    return typed, checks


def _review_rules(raw: pd.DataFrame, as_of: dt.date) -> tuple[pd.DataFrame, list]:
    spec = REVIEWS
    typed = pd.DataFrame({c: _text(raw[c]) for c in ("review_id", "order_id", "customer_id")})
    typed["score"], typed["created_at"] = _number(raw["score"]), _timestamp(raw["created_at"])
    for c in ("title", "text"):  # free text: kept as written, blank is missing
        typed[c] = raw[c].astype("string").mask(_text(raw[c]).isna())
    checks = [_missing(c, typed[c]) for c in ("review_id", "order_id", "customer_id")]
    checks += _number_checks("score", typed["score"], pd.Series(True, raw.index),
                             *_suite_range(spec, "score"))
    checks += _time_checks("created_at", typed["created_at"], pd.Series(True, raw.index), as_of,
                           _suite_floor(spec))
    return typed, checks


def _customer_rules(raw: pd.DataFrame, as_of: dt.date) -> tuple[pd.DataFrame, list]:
    typed = pd.DataFrame({c: _text(raw[c]) for c in ("customer_id", "region",
                                                     "acquisition_channel")})
    typed["signup_date"] = _timestamp(raw["signup_date"]).dt.normalize()
    checks = [_missing("customer_id", typed["customer_id"])]
    checks += _time_checks("signup_date", typed["signup_date"], _text(raw["signup_date"]).notna(),
                           as_of, _suite_floor(CUSTOMERS))
    return typed, checks


def _event_rules(raw: pd.DataFrame, as_of: dt.date) -> tuple[pd.DataFrame, list]:
    typed = pd.DataFrame({c: _text(raw[c]) for c in ("customer_id", "session_id",
                                                     "product_id")})
    typed["event_type"] = _text(raw["event_type"]).str.lower()
    typed["event_ts"] = _timestamp(raw["event_ts"])
    checks = [_missing("customer_id", typed["customer_id"])]
    checks += _time_checks("event_ts", typed["event_ts"], pd.Series(True, raw.index), as_of,
                           _suite_floor(EVENTS))
    checks.append(("event_type_known", ~typed["event_type"].isin(EVENT_TYPES)))
    return typed, checks


_RULES: dict[str, Callable[[pd.DataFrame, dt.date], tuple[pd.DataFrame, list]]] = {
    ORDER_LINES.table: _order_line_rules, REVIEWS.table: _review_rules,
    CUSTOMERS.table: _customer_rules, EVENTS.table: _event_rules}

#: Every rule per table, in the order they are checked (the first broken one is reported).
RULES: dict[str, tuple[str, ...]] = {
    ORDER_LINES.table: (
        "order_id_not_null", "line_id_not_null", "customer_id_not_null", "product_id_not_null",
        "order_ts_parseable", "order_ts_not_in_future", "order_ts_after_floor",
        "quantity_numeric", "quantity_whole", "quantity_in_range", "quantity_nonzero",
        "unit_price_numeric", "unit_price_in_range", "currency_known", "line_published",
        "line_unique", "order_customer_consistent", "order_currency_consistent",
        "return_has_sale"),
    REVIEWS.table: (
        "review_id_not_null", "order_id_not_null", "customer_id_not_null", "score_numeric",
        "score_whole", "score_in_range", "created_at_parseable", "created_at_not_in_future",
        "created_at_after_floor", "review_published", "review_unique"),
    CUSTOMERS.table: (
        "customer_id_not_null", "signup_date_parseable", "signup_date_not_in_future",
        "signup_date_after_floor", "customer_unique"),
    EVENTS.table: (
        "customer_id_not_null", "event_ts_parseable", "event_ts_not_in_future",
        "event_ts_after_floor", "event_type_known", "event_published", "event_unique"),
}


def _currencies() -> list[str]:
    import os

    return os.environ.get("CLV_CURRENCIES", "USD,EUR,GBP,BRL,CAD,AUD,JPY,CHF").split(",")


# --------------------------------------------------------------------------- split

def split_source(frame: pd.DataFrame, spec: SourceSpec, as_of_date: dt.date, source: str,
                 run_id: str, published: pd.DataFrame | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Type ``frame`` (contract columns as text, see :func:`apply_mapping`) and split it.

    Args:
        frame: the rows, with a ``row`` column (1-based data row of the file) and
            optionally a per-row ``source``.
        spec: the source's contract.
        as_of_date: the batch; a timestamp on or after its midnight is in the future.
        source: the file's name (on every rejected row, unless ``frame`` has one).
        run_id: stamped on every rejected row.
        published: the keys (and, for order lines, ``customer_id, currency, quantity``)
            of the table's other batches: a key found there is ``*_published``.

    Returns:
        (accepted, in ``spec.schema``'s columns and types; rejected: the contract columns
        as given (text), ``row``, ``rule``, ``source``, ``run_id``), rows in order.
    """
    missing = [c for c in (*spec.columns, ROW_COLUMN) if c not in frame.columns]
    if missing:
        raise IngestError(f"{source}: {spec.table} rows lack column(s) {missing}")
    raw = frame.reset_index(drop=True)
    typed, checks = _RULES[spec.table](raw, as_of_date)
    rule = pd.Series(None, index=raw.index, dtype=object)
    for name, broken in reversed(checks):  # the first rule broken is the one reported
        rule[broken.fillna(False).to_numpy(bool)] = name
    rule = _key_rules(typed, rule, spec, published)
    if spec is ORDER_LINES:
        rule = _order_rules(typed, rule, published)
    ok = rule.isna().to_numpy()
    accepted = typed.loc[ok, list(spec.columns)].reset_index(drop=True)
    rejected = raw.loc[~ok, list(spec.columns)].astype("string").astype(object)
    rejected = rejected.where(rejected.notna(), None).assign(
        row=raw.loc[~ok, ROW_COLUMN].astype("int64").to_numpy(), rule=rule[~ok].to_numpy(),
        source=(raw.loc[~ok, SOURCE_COLUMN].to_numpy() if SOURCE_COLUMN in raw.columns
                else source), run_id=run_id)
    return accepted, rejected.reset_index(drop=True)


_KEY_RULE_PREFIX = {ORDER_LINES.table: "line", REVIEWS.table: "review",
                    CUSTOMERS.table: "customer", EVENTS.table: "event"}


def _key_rules(typed: pd.DataFrame, rule: pd.Series, spec: SourceSpec,
               published: pd.DataFrame | None) -> pd.Series:
    """``<x>_published`` (key in another batch; not for customers, whose later batch
    updates the attributes) and ``<x>_unique`` (every copy of a key after the first
    valid one, in file order)."""
    prefix, key = _KEY_RULE_PREFIX[spec.table], list(spec.key)
    rule = rule.copy()
    keys = typed[key].astype(object).where(typed[key].notna(), "\x00")  # null is a value here
    if published is not None and len(published) and spec is not CUSTOMERS:
        seen = published[key].astype(object).where(published[key].notna(), "\x00")
        hit = keys.merge(seen.drop_duplicates().assign(_hit=1), on=key, how="left")["_hit"]
        rule[rule.isna() & hit.notna().to_numpy(bool)] = f"{prefix}_published"
    valid = rule.isna()
    dupe = keys[valid].duplicated(keep="first").reindex(rule.index, fill_value=False)
    rule[dupe.to_numpy(bool)] = f"{prefix}_unique"
    return rule


def _order_rules(typed: pd.DataFrame, rule: pd.Series, published: pd.DataFrame | None
                 ) -> pd.Series:
    """The order-level rules of :data:`ORDER_LINES`, over the lines still valid.

    ``order_customer_consistent`` / ``order_currency_consistent``: an order's lines name
    one customer and one currency, those of its first line (in a published batch if the
    order is there, else the first valid sale line of the file); ``return_has_sale``: a
    negative line (a return or cancellation) must reverse an order with a sale line,
    in this batch or a published one.
    """
    rule = rule.copy()
    lines = typed.assign(_pos=np.arange(len(typed)))
    earlier = (published.assign(_pos=-1) if published is not None and len(published)
               else lines.iloc[0:0])
    for column in ("customer_id", "currency"):
        pool = pd.concat([earlier, lines[rule.isna()]])
        pool = pool.sort_values(["_pos"], kind="stable")
        pool = pool[pool["quantity"] > 0] if column == "customer_id" else \
            pool[pool[column].notna()]
        first = pool.drop_duplicates("order_id").set_index("order_id")[column]
        expected = lines["order_id"].map(first)
        differs = rule.isna() & expected.notna() & (
            lines[column].fillna("\x00") != expected.fillna("\x00"))
        if column == "currency":  # a line without currency takes the order's
            differs &= lines[column].notna()
        rule[differs.to_numpy(bool)] = f"order_{column.split('_')[0]}_consistent"
    sold = set(lines.loc[rule.isna() & (lines["quantity"] > 0), "order_id"])
    if published is not None and len(published):
        sold |= set(published.loc[published["quantity"] > 0, "order_id"])
    orphan = rule.isna() & (lines["quantity"] < 0) & ~lines["order_id"].isin(sold)
    rule[orphan.to_numpy(bool)] = "return_has_sale"
    return rule


# --------------------------------------------------------------------------- load

def load_source(spark: SparkSession, frame: pd.DataFrame, spec: SourceSpec, source: str,
                run_id: str, as_of_date: dt.date | None = None,
                max_rejected_share: float = 0.01, extra_rejected: pd.DataFrame | None = None
                ) -> SourceLoadResult:
    """Quarantine bad rows, validate the rest with the source's suite, publish both.

    ``quality.rejected_<table>`` is published first, then ``raw.<table>``, each as the
    ``as_of_date`` partition (default: the day after the newest valid timestamp of the
    batch), replacing an earlier load of that batch atomically.

    Raises:
        IngestError: no row is valid, or more than ``max_rejected_share`` of the rows is
            rejected (counts per rule and sample rows in the message; nothing published).
        clv.quality.DataQualityError: the accepted rows break the suite.

    ``extra_rejected``: input rows a source's own mapping refused before the rules (in
    the quarantine's columns, ``rule`` set); they count as rows in and rows rejected.
    """
    from clv import quality

    check_rejected_share(max_rejected_share)
    if frame.empty:
        raise IngestError(f"{source}: no rows for {spec.table}")
    as_of = as_of_date or _default_batch_date(frame, spec, source)
    published = _published(spark, spec, as_of)
    accepted, rejected = split_source(frame, spec, as_of, source, run_id, published)
    if extra_rejected is not None and len(extra_rejected):
        rejected = pd.concat([rejected, extra_rejected.assign(run_id=run_id)[
            list(rejected.columns)]], ignore_index=True)
    rows_in = len(accepted) + len(rejected)
    by_rule = {str(k): int(v) for k, v in rejected["rule"].value_counts().items()}
    result = SourceLoadResult(spec.table, source, as_of, rows_in, len(accepted),
                              len(rejected), by_rule)
    if accepted.empty or len(rejected) > max_rejected_share * rows_in:
        sample = rejected.head(5)[[ROW_COLUMN, "rule"]].to_dict("records")
        raise IngestError(
            f"{source}: {len(rejected)} of {rows_in} rows rejected for {spec.table} "
            f"(allowed: {max_rejected_share:.2%}) by rules {by_rule}, e.g. {sample}; "
            f"nothing was published")
    df = spark.createDataFrame(_spark_ready(accepted, spec), schema=spec.schema)
    quality.assert_valid(df, spec.suite, spec.table, list(spec.key), run_name=run_id)
    warehouse.write_partition(_rejects_frame(spark, spec, rejected), spec.rejected_table, as_of)
    warehouse.write_partition(df, spec.table, as_of)
    log.info("%s", result)
    return result


def _spark_ready(accepted: pd.DataFrame, spec: SourceSpec) -> pd.DataFrame:
    """Whole numbers as integers, dates as dates, text as plain objects (None for null)."""
    out = pd.DataFrame(index=accepted.index)
    for item in spec.schema.split(", "):
        name, kind = item.split(" ")
        s = accepted[name]
        if kind == "int":
            out[name] = s.astype("Int64")
        elif kind == "date":
            out[name] = s.dt.date.where(s.notna(), None)
        elif kind == "string":
            out[name] = s.astype(object).where(s.notna(), None)
        else:
            out[name] = s
    return out


def _rejects_frame(spark: SparkSession, spec: SourceSpec, rejected: pd.DataFrame) -> DataFrame:
    schema = (", ".join(f"{c} string" for c in spec.columns)
              + f", {ROW_COLUMN} long, rule string, {SOURCE_COLUMN} string, run_id string")
    rows = rejected[[*spec.columns, *REJECT_COLUMNS]]
    return spark.createDataFrame(rows if len(rows) else pd.DataFrame(columns=rows.columns),
                                 schema=schema)


def _default_batch_date(frame: pd.DataFrame, spec: SourceSpec, source: str) -> dt.date:
    """The day after the newest parseable timestamp (everything before it is the batch)."""
    newest = _timestamp(frame[spec.time_column]).max()
    if pd.isna(newest):
        raise IngestError(f"{source}: cannot derive as_of_date for {spec.table}: no "
                          f"parseable {spec.time_column}; pass as_of_date")
    return newest.date() + dt.timedelta(days=1)


def _published(spark: SparkSession, spec: SourceSpec, as_of: dt.date) -> pd.DataFrame | None:
    """The keys of the table's other batches (order lines: with customer, currency and
    quantity, for the order rules); None when there are none."""
    from pyspark.sql import functions as F

    others = [d for d in warehouse.list_partitions(spec.table) if d != as_of]
    if not others:
        return None
    extra = ["customer_id", "currency", "quantity"] if spec is ORDER_LINES else []
    columns = list(dict.fromkeys([*spec.key, *extra]))
    return (warehouse.read_table(spark, spec.table)
            .where(F.col(warehouse.PARTITION_COLUMN) != F.lit(as_of))
            .select(*columns).toPandas())


def load_order_lines(spark: SparkSession, frame: pd.DataFrame, source: str, run_id: str,
                     as_of_date: dt.date | None = None, max_rejected_share: float = 0.01
                     ) -> SourceLoadResult:
    """Import order lines into ``raw.order_lines`` (rules: ``RULES['raw.order_lines']``).

    A return or cancellation is a line with a negative quantity that carries the
    order_id of the order it reverses (see :mod:`clv.order_lines` for how orders are
    derived). ``frame``: the contract's columns, e.g. from :func:`read_source_file`.
    """
    return load_source(spark, frame, ORDER_LINES, source, run_id, as_of_date,
                       max_rejected_share)


def load_reviews(spark: SparkSession, frame: pd.DataFrame, source: str, run_id: str,
                 as_of_date: dt.date | None = None, max_rejected_share: float = 0.01
                 ) -> SourceLoadResult:
    """Import product/order reviews into ``raw.reviews`` (score 1-5, free text kept as
    written; rules: ``RULES['raw.reviews']``)."""
    return load_source(spark, frame, REVIEWS, source, run_id, as_of_date, max_rejected_share)


def load_customers(spark: SparkSession, frame: pd.DataFrame, source: str, run_id: str,
                   as_of_date: dt.date | None = None, max_rejected_share: float = 0.01
                   ) -> SourceLoadResult:
    """Import customer attributes into ``raw.customers`` (one row per customer per batch;
    a later batch's row for a customer supersedes an earlier one). ``as_of_date`` is
    required when no row has a ``signup_date``."""
    return load_source(spark, frame, CUSTOMERS, source, run_id, as_of_date,
                       max_rejected_share)


def load_events(spark: SparkSession, frame: pd.DataFrame, source: str, run_id: str,
                as_of_date: dt.date | None = None, max_rejected_share: float = 0.01
                ) -> SourceLoadResult:
    """Import browsing events (view, add_to_cart, purchase) into ``raw.events``."""
    return load_source(spark, frame, EVENTS, source, run_id, as_of_date, max_rejected_share)


def latest_customers(spark: SparkSession) -> DataFrame:
    """``raw.customers`` as one row per customer: the row of the newest batch."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    newest = Window.partitionBy("customer_id").orderBy(F.col(warehouse.PARTITION_COLUMN).desc())
    return (warehouse.read_table(spark, CUSTOMERS.table)
            .withColumn("_n", F.row_number().over(newest)).where("_n = 1").drop("_n"))
