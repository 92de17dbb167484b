"""Load order history into ``raw.orders``: the CDNOW reference data or a user's own file.

Input contract of ``raw.orders``::

    order_id string, customer_id string, order_ts timestamp (UTC), amount double,
    quantity int (nullable), currency string (nullable)

Rows that break a row-level rule are written to ``quality.rejected_orders`` with
the rule's name and the run id, never dropped silently: rows in = rows accepted +
rows rejected, and the load reports both counts.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import importlib.metadata
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from clv.data import warehouse

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("order_id", "customer_id", "order_ts", "amount")
OPTIONAL_COLUMNS = ("quantity", "currency")
CORRUPT_COLUMN = "_corrupt_record"
RAW_ORDERS = "raw.orders"
REJECTED_ORDERS = "quality.rejected_orders"
FAILED_LOAD_REJECTS = "quality.failed_load_rejects"
QUARANTINED_ORDERS = "quality.quarantined_orders"


class IngestError(ValueError):
    """An input file cannot be read into the orders contract."""


@dataclass(frozen=True)
class LoadResult:
    """What one load did: the batch it wrote and how many rows went where."""

    as_of_date: dt.date
    rows_in: int
    rows_accepted: int
    rows_rejected: int
    rejected_by_rule: dict[str, int]

    def __str__(self) -> str:
        rules = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected_by_rule.items())) or "none"
        return (
            f"raw.orders batch as_of_date={self.as_of_date}: {self.rows_in} rows in, "
            f"{self.rows_accepted} accepted, {self.rows_rejected} rejected ({rules})"
        )


# --------------------------------------------------------------------------- sources

def cdnow_packaged_path() -> Path:
    """Path of ``CDNOW_master.txt`` shipped by the PyPI package ``lifetimes==0.11.3``.

    The package is installed with ``--no-deps`` and never imported: only its data
    file is read.
    """
    try:
        dist = importlib.metadata.distribution("lifetimes")
    except importlib.metadata.PackageNotFoundError:
        raise IngestError(
            "the CDNOW data comes from the PyPI package lifetimes==0.11.3, which is not "
            "installed: run `make install` (or pip install --no-deps lifetimes==0.11.3)"
        ) from None
    path = Path(str(dist.locate_file("lifetimes/datasets/CDNOW_master.txt")))
    if not path.exists():
        raise IngestError(f"lifetimes is installed but {path} is missing")
    return path


def read_cdnow(spark: SparkSession, path: Path) -> DataFrame:
    """Read CDNOW's whitespace-separated master file (plain or .gz) into the contract.

    CDNOW has no order id: each line is one purchase, and same-day purchases of a
    customer are separate lines, so the id is ``<customer>-<yyyymmdd>-<n>`` with n
    the line's rank within that customer and day (stable for the published file).
    """
    import pandas as pd

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        frame = pd.read_csv(
            fh, sep=r"\s+", header=0,
            names=["customer_id", "date", "quantity", "amount"],
            dtype={"customer_id": str, "date": str, "quantity": "Int64", "amount": float},
        )
    if frame.empty:
        raise IngestError(f"{path}: no rows")
    frame["customer_id"] = frame["customer_id"].str.lstrip("0")
    seq = frame.groupby(["customer_id", "date"]).cumcount() + 1
    frame["order_id"] = frame["customer_id"] + "-" + frame["date"] + "-" + seq.astype(str)
    frame["order_ts"] = pd.to_datetime(frame["date"], format="%Y%m%d").astype("datetime64[us]")
    frame["currency"] = "USD"
    frame = frame[list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)]
    return spark.createDataFrame(frame).withColumn("quantity", _col("quantity").cast("int"))


def read_orders_file(
    spark: SparkSession,
    path: Path,
    mapping: dict[str, str] | None = None,
    fmt: str | None = None,
    timestamp_format: str | None = None,
) -> DataFrame:
    """Read a user's CSV or Parquet orders file, renaming columns by ``mapping``.

    Args:
        path: the file (or a folder of Parquet files).
        mapping: contract column -> column in the file, e.g. ``{"order_id": "OrderNo"}``;
            unmapped contract columns are looked up under their own names.
        fmt: ``csv`` or ``parquet``; guessed from the suffix when omitted.
        timestamp_format: Spark datetime pattern for ``order_ts`` in a CSV, if not ISO.

    Returns:
        A DataFrame with the contract's columns as strings/raw values; types are
        enforced (and bad values quarantined) by :func:`split_valid_orders`.
    """
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: file not found")
    fmt = (fmt or _guess_format(path)).lower()
    if fmt not in ("csv", "parquet"):
        raise IngestError(f"{path}: unsupported format {fmt!r} (use csv or parquet)")
    if path.is_file() and path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty")
    try:
        df = _read_csv(spark, path) if fmt == "csv" else spark.read.parquet(str(path))
        out = _apply_mapping(df, path, mapping or {}, timestamp_format)
        if out.limit(1).count() == 0:
            raise IngestError(f"{path}: no data rows (a header only?)")
    except IngestError:
        raise
    except Exception as exc:  # Spark's own errors are long; keep the first line, name the file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IngestError(f"{path}: cannot be read as {fmt}: {first}") from exc
    return out


#: Field separators recognised in a CSV header (the first with the most fields wins).
DELIMITERS = (",", ";", "\t", "|")


def _read_csv(spark: SparkSession, path: Path) -> DataFrame:
    """Every column as text, plus ``_corrupt_record`` holding lines Spark could not split.

    The delimiter is the one of :data:`DELIMITERS` that splits the header into the most
    fields (``;`` is what spreadsheets write in comma-decimal locales); a UTF-16 file
    is refused by name, as Spark would read its bytes as garbled text.
    """
    from pyspark.sql.types import StringType, StructField, StructType

    delimiter = _sniff_delimiter(path, _first_line(path))
    reader = spark.read.option("header", True).option("sep", delimiter)
    header = reader.csv(str(path)).columns
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise IngestError(f"{path}: duplicate column name(s) in the header: {dupes}")
    schema = StructType([StructField(c, StringType()) for c in header]
                        + [StructField(CORRUPT_COLUMN, StringType())])
    return (reader.schema(schema).option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_COLUMN).csv(str(path)))


def _first_line(path: Path) -> str:
    """The header line of a CSV file (of the first data file of a folder), as UTF-8 text.

    Raises:
        IngestError: the bytes are UTF-16/32 (a byte-order mark or NUL bytes) or not UTF-8.
    """
    first = path if path.is_file() else next(
        (f for f in sorted(path.rglob("*")) if f.is_file() and not f.name.startswith((".", "_"))),
        None)
    if first is None:
        raise IngestError(f"{path}: no data files in the folder")
    suffix = first.suffix.lower()
    if suffix not in (".gz", ".bz2") and suffix in _COMPRESSED:
        return ""  # a codec only Spark reads: no sniffing, the default delimiter
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(suffix, open)
    with opener(first, "rb") as fh:
        head = fh.read(65536)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise IngestError(f"{first}: the file's encoding is UTF-16 (or UTF-32), which the "
                          f"CSV reader does not take; save it as UTF-8 and import it again")
    line = head.split(b"\n", 1)[0].removeprefix(b"\xef\xbb\xbf").rstrip(b"\r")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise IngestError(f"{first}: the header is not valid UTF-8 text (encoding); save "
                          f"the file as UTF-8 and import it again") from None


#: Compressed CSV suffixes Spark (Hadoop's codecs) reads transparently.
_COMPRESSED = (".gz", ".bz2", ".deflate", ".lz4", ".snappy", ".zst")


def _sniff_delimiter(path: Path, header: str) -> str:
    """The delimiter of :data:`DELIMITERS` that splits ``header`` into the most fields."""
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # ties: the earlier, i.e. ","
    if best != ",":
        log.info("%s: reading with delimiter %r (found %d in the header)", path, best,
                 counts[best])
    return best if counts[best] else ","


def _guess_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if ".csv" in suffixes:
        return "csv"
    if ".parquet" in suffixes or path.is_dir():
        return "parquet"
    raise IngestError(f"{path}: cannot tell the format from the name; pass --format csv|parquet")


def _apply_mapping(
    df: DataFrame, path: Path, mapping: dict[str, str], timestamp_format: str | None
) -> DataFrame:
    from pyspark.sql import functions as F

    unknown = sorted(set(mapping) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS))
    if unknown:
        raise IngestError(f"{path}: mapping names unknown contract column(s) {unknown}")
    selected = []
    for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
        source = mapping.get(name, name)
        if source not in df.columns:
            if name in OPTIONAL_COLUMNS:
                selected.append(F.lit(None).cast("string").alias(name))
                continue
            raise IngestError(
                f"{path}: required column {name!r} not found (looked for {source!r}; "
                f"the file has {[c for c in df.columns if c != CORRUPT_COLUMN]}); map it "
                f"with --map {name}=<column>{_delimiter_hint(df)}"
            )
        selected.append(F.col(f"`{source}`").alias(name))
    if CORRUPT_COLUMN in df.columns:
        selected.append(F.col(CORRUPT_COLUMN))
    out = df.select(*selected)
    _check_types(out, path)
    if timestamp_format:
        out = out.withColumn("order_ts", F.to_timestamp(F.col("order_ts").cast("string"),
                                                        timestamp_format))
    return out


def _delimiter_hint(df: DataFrame) -> str:
    """A hint when the header was not split: one column whose name holds a delimiter."""
    columns = [c for c in df.columns if c != CORRUPT_COLUMN]
    if len(columns) == 1 and any(d in columns[0] for d in DELIMITERS + (" ",)):
        return "; the header was not split into columns: check the file's delimiter"
    return ""


def _check_types(df: DataFrame, path: Path) -> None:
    """Refuse columns whose type cannot hold the contract's values at all (e.g. a struct)."""
    allowed = {
        "order_id": ("string", "int", "bigint", "decimal"),
        "customer_id": ("string", "int", "bigint", "decimal"),
        "order_ts": ("string", "timestamp", "timestamp_ntz", "date"),
        "amount": ("string", "double", "float", "int", "bigint", "decimal", "smallint"),
        "quantity": ("string", "int", "bigint", "smallint", "double", "decimal", "void"),
        "currency": ("string", "void"),
    }
    for name, dtype in df.dtypes:
        ok = allowed.get(name)
        if ok is not None and not dtype.startswith(ok):
            raise IngestError(f"{path}: column {name!r} has type {dtype}, which cannot hold "
                              f"{name} values (expected one of {', '.join(ok)})")


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col(name)


# --------------------------------------------------------------------------- quarantine

#: Texts that mean "no value" in exports (SQL dumps, pandas, Excel), compared
#: case-insensitively after trimming: such an id is missing, such a quantity or currency
#: absent. Override with ``CLV_NULL_TOKENS`` (comma-separated).
DEFAULT_NULL_TOKENS = ("NULL", "NONE", "NAN", "NA", "N/A", "#N/A", "NIL", "\\N")
#: The suite whose row-level limits the import enforces (one set of rules: a batch
#: the import accepts passes ``validate_raw``).
RAW_SUITE = "raw_orders"


def _suite_limit(column: str, end: int) -> float:
    from clv import quality

    return float(quality.suite_bounds(RAW_SUITE, column)[end])


def _suite_ts_floor() -> dt.date:
    from clv import quality

    return dt.datetime.fromisoformat(quality.suite_bounds(RAW_SUITE, "order_ts")[0]).date()


def _env_tokens(name: str, default: tuple[str, ...]) -> frozenset[str]:
    text = os.environ.get(name)
    items = text.split(",") if text is not None else default
    return frozenset(t.strip().upper() for t in items if t.strip())


@dataclass(frozen=True)
class OrderRules:
    """Row-level rules' settings. The bounds default to those of the ``raw_orders``
    suite (read from its file), so the import quarantines what the suite would refuse."""

    ts_floor: dt.date = field(default_factory=_suite_ts_floor)
    currencies: frozenset[str] = field(default_factory=lambda: frozenset(
        os.environ.get("CLV_CURRENCIES", "USD,EUR,GBP,BRL,CAD,AUD,JPY,CHF").split(",")))
    amount_min: float = field(default_factory=lambda: _suite_limit("amount", 0))
    amount_max: float = field(default_factory=lambda: _suite_limit("amount", 1))
    quantity_min: float = field(default_factory=lambda: _suite_limit("quantity", 0))
    quantity_max: float = field(default_factory=lambda: _suite_limit("quantity", 1))
    null_tokens: frozenset[str] = field(
        default_factory=lambda: _env_tokens("CLV_NULL_TOKENS", DEFAULT_NULL_TOKENS))


#: Row rules in the order they are checked; a row is rejected by the first it breaks.
RULES = ("malformed_row", "order_id_not_null", "customer_id_not_null", "order_ts_parseable",
         "order_ts_not_in_future", "order_ts_after_floor", "amount_numeric", "amount_in_range",
         "quantity_numeric", "quantity_whole", "quantity_in_range", "currency_known",
         "order_id_published", "order_id_unique")


def split_valid_orders(
    df: DataFrame, run_id: str, as_of_date: dt.date, rules: OrderRules | None = None,
    published_ids: DataFrame | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Type the contract columns and split rows into (accepted, rejected).

    Rules (see :data:`RULES`; the first failing rule wins): a CSV line Spark could
    not split; a missing id (null, blank or one of ``rules.null_tokens``); an
    unparseable ``order_ts``, one at or after the batch's ``as_of_date`` (the future,
    for this batch) or before ``rules.ts_floor``; an amount that is not a finite
    number, or outside the suite's bounds; a quantity that is given but not a number,
    not whole (``40.0`` is 40, ``40.5`` is rejected) or outside the suite's bounds; a
    currency not in ``rules.currencies`` (a missing currency is allowed);
    ``order_id_published``: the id is in ``published_ids`` (earlier batches);
    ``order_id_unique``: the first copy by timestamp, then amount, is kept, every
    further copy is rejected.

    Returns:
        accepted rows in the contract's types; rejected rows with every input
        column as text plus ``rule`` and ``run_id``.
    """
    from pyspark.sql import functions as F

    rules = rules or OrderRules()
    contract = list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)
    if CORRUPT_COLUMN not in df.columns:
        df = df.withColumn(CORRUPT_COLUMN, F.lit(None).cast("string"))
    raw = df.select(*[F.col(c).cast("string").alias(f"_raw_{c}") for c in contract],
                    F.col(CORRUPT_COLUMN), *contract)

    def value(c: str) -> Column:  # trimmed text, null for a null token
        text = F.trim(F.col(c).cast("string"))
        return F.when(F.upper(text).isin(sorted(rules.null_tokens)), None).otherwise(text)

    typed = (
        raw.withColumn("order_id", value("order_id"))
        .withColumn("customer_id", value("customer_id"))
        .withColumn("order_ts", F.col("order_ts").try_cast("timestamp"))
        .withColumn("amount", F.col("amount").try_cast("double"))
        # via double: an export's "40.0" is the whole number 40 (checked by the rules)
        .withColumn("_quantity", value("quantity").try_cast("double"))
        .withColumn("_quantity_given", value("quantity").isNotNull())
        .withColumn("currency", F.upper(value("currency")))
    )
    typed = typed.withColumn("rule", _first_broken_rule(as_of_date, rules))
    typed = typed.withColumn("quantity", F.when(F.col("rule").isNull(),
                                                F.col("_quantity").cast("int")))
    typed = _reject_published_ids(typed, published_ids)
    typed = _reject_duplicate_ids(typed)
    accepted = typed.where(F.col("rule").isNull()).select(*contract)
    rejected = typed.where(F.col("rule").isNotNull()).select(
        *[F.col(f"_raw_{c}").alias(c) for c in contract],
        F.col(CORRUPT_COLUMN).alias("raw_line"), "rule", F.lit(run_id).alias("run_id"),
    )
    return accepted, rejected


def _first_broken_rule(as_of_date: dt.date, rules: OrderRules) -> Column:
    from pyspark.sql import functions as F

    def blank(c: str) -> Column:
        return F.col(c).isNull() | (F.col(c) == "")

    def finite(c: str) -> Column:
        return F.col(c).isNotNull() & ~F.isnan(c) & (F.abs(c) < F.lit(float("inf")))

    def outside(c: str, low: float, high: float) -> Column:
        return (F.col(c) < F.lit(low)) | (F.col(c) > F.lit(high))

    as_of = F.lit(dt.datetime.combine(as_of_date, dt.time())).cast("timestamp")
    floor = F.lit(dt.datetime.combine(rules.ts_floor, dt.time())).cast("timestamp")
    quantity = F.col("_quantity")
    checks = [
        ("malformed_row", F.col(CORRUPT_COLUMN).isNotNull()),
        ("order_id_not_null", blank("order_id")),
        ("customer_id_not_null", blank("customer_id")),
        ("order_ts_parseable", F.col("order_ts").isNull()),
        ("order_ts_not_in_future", F.col("order_ts") >= as_of),
        ("order_ts_after_floor", F.col("order_ts") < floor),
        ("amount_numeric", ~finite("amount")),
        ("amount_in_range", outside("amount", rules.amount_min, rules.amount_max)),
        ("quantity_numeric", F.col("_quantity_given") & ~finite("_quantity")),
        ("quantity_whole", F.col("_quantity_given") & (quantity != F.floor(quantity))),
        ("quantity_in_range", F.col("_quantity_given")
         & outside("_quantity", rules.quantity_min, rules.quantity_max)),
        ("currency_known", F.col("currency").isNotNull()
         & ~F.col("currency").isin(sorted(rules.currencies))),
    ]
    rule = F.when(checks[0][1], checks[0][0])
    for name, broken in checks[1:]:
        rule = rule.when(broken, name)
    return rule


def _reject_published_ids(typed: DataFrame, published_ids: DataFrame | None) -> DataFrame:
    """``order_id_published``: the id is already in an earlier batch of ``raw.orders``
    (the suite checks uniqueness over the whole history, so the copy would block it)."""
    from pyspark.sql import functions as F

    if published_ids is None:
        return typed
    seen = published_ids.select(F.col("order_id").alias("_published_id")).distinct()
    joined = typed.join(seen, typed["order_id"] == seen["_published_id"], "left")
    return joined.withColumn(
        "rule", F.when(F.col("rule").isNull() & F.col("_published_id").isNotNull(),
                       "order_id_published").otherwise(F.col("rule"))
    ).drop("_published_id")


def _reject_duplicate_ids(typed: DataFrame) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Valid rows sort first, so a valid copy is kept over an invalid one.
    first_copy = Window.partitionBy("order_id").orderBy(
        F.col("rule").isNotNull(), "order_ts", "amount", "customer_id", "quantity", "currency"
    )
    return typed.withColumn(
        "rule",
        F.when(F.col("rule").isNull() & (F.row_number().over(first_copy) > 1), "order_id_unique")
        .otherwise(F.col("rule")),
    )


def load_orders(
    spark: SparkSession,
    df: DataFrame,
    as_of_date: dt.date,
    run_id: str,
    max_rejected_share: float = 0.01,
    rules: OrderRules | None = None,
    source: str | None = None,
) -> LoadResult:
    """Quarantine bad rows, then publish the batch to ``raw.orders`` at ``as_of_date``.

    Ids already published by another batch are quarantined (``order_id_published``).
    The rejected rows go to ``quality.rejected_orders`` when the batch is published;
    when the load is refused they go to ``quality.failed_load_rejects`` instead, so the
    quarantine of the published batch of that date stays its own.

    Args:
        source: Where the rows came from (the file), named in messages.

    Raises:
        IngestError: ``max_rejected_share`` is not a number in [0, 1], or more than
            that share of the rows is rejected (nothing is published then).
    """
    from pyspark.sql import functions as F

    check_rejected_share(max_rejected_share)
    where = source or "the input"
    df = df.cache()
    rows_in = df.count()
    if rows_in == 0:
        raise IngestError(f"{where}: the input has no rows")
    accepted, rejected = split_valid_orders(df, run_id, as_of_date, rules,
                                            _published_ids(spark, as_of_date))
    rejected = rejected.withColumn("order_id", F.coalesce("order_id", F.lit(""))).cache()
    by_rule = {r["rule"]: r["n"] for r in rejected.groupBy("rule").agg(F.count("*").alias("n"))
               .collect()}
    n_rejected = sum(by_rule.values())
    result = LoadResult(as_of_date, rows_in, rows_in - n_rejected, n_rejected, by_rule)
    if n_rejected > max_rejected_share * rows_in:
        warehouse.write_partition(rejected.withColumn("source", F.lit(where)),
                                  FAILED_LOAD_REJECTS, as_of_date)
        raise IngestError(
            f"{where}: {n_rejected} of {rows_in} rows rejected "
            f"({n_rejected / rows_in:.2%} > the {max_rejected_share:.2%} allowed) by rules "
            f"{by_rule}; nothing was published to {RAW_ORDERS}; the rejected rows are in "
            f"{FAILED_LOAD_REJECTS} partition as_of_date={as_of_date} (run_id={run_id})"
        )
    warehouse.write_partition(rejected, REJECTED_ORDERS, as_of_date)
    warehouse.write_partition(accepted, RAW_ORDERS, as_of_date)
    rejected.unpersist()
    df.unpersist()
    log.info("%s", result)
    return result


def check_rejected_share(value: float) -> float:
    """``value`` when it is a number in [0, 1]; else :class:`IngestError` (NaN would
    switch the share check off: every comparison with it is false)."""
    import math

    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) \
            or not 0 <= value <= 1:
        raise IngestError(f"max_rejected_share must be a number in [0, 1] (a share of the "
                          f"rows), got {value!r}")
    return float(value)


def _published_ids(spark: SparkSession, as_of_date: dt.date) -> DataFrame | None:
    """Order ids of every other batch of ``raw.orders`` (reloading a date replaces it)."""
    from pyspark.sql import functions as F

    others = [d for d in warehouse.list_partitions(RAW_ORDERS) if d != as_of_date]
    if not others:
        return None
    return (warehouse.read_table(spark, RAW_ORDERS)
            .where(F.col(warehouse.PARTITION_COLUMN) != F.lit(as_of_date))
            .select("order_id"))


@dataclass(frozen=True)
class QuarantineResult:
    """What :func:`quarantine_batch` did with one ``raw.orders`` batch."""

    as_of_date: dt.date
    rows_quarantined: int
    rows_kept: int
    already_quarantined: bool

    def __str__(self) -> str:
        done = "was already" if self.already_quarantined else "is now"
        return (f"{RAW_ORDERS} batch as_of_date={self.as_of_date} {done} quarantined: "
                f"{self.rows_quarantined} rows in {QUARANTINED_ORDERS}, {self.rows_kept} "
                f"rows of other batches kept in {RAW_ORDERS}")


def quarantine_batch(spark: SparkSession, as_of_date: dt.date, reason: str, run_id: str
                     ) -> QuarantineResult:
    """Take a published ``raw.orders`` batch out of the history (``clv quarantine-batch``).

    A batch is a ``raw.orders`` partition: the ``as_of_date`` an import printed. Its rows
    go to ``quality.quarantined_orders`` (same partition, with ``reason`` and
    ``quarantine_run_id``), then the batch leaves ``raw.orders`` in one atomic step, so
    the next DAG run validates and learns from the other batches. Nothing else changes
    (the batch's import rejects stay in ``quality.rejected_orders``). Idempotent: a
    quarantined batch is left as it is; a run killed between the two steps is completed
    by running it again. To bring the orders back as they were: :func:`restore_batch`;
    corrected: fix the file and import it again.

    Raises:
        IngestError: ``reason`` is empty, or ``raw.orders`` has no such batch (the
            message lists the batches it has).
    """
    if not reason.strip():
        raise IngestError("quarantine-batch: give a --reason (it is kept with the rows)")
    batches = warehouse.list_partitions(RAW_ORDERS)
    if as_of_date not in batches:
        if as_of_date in warehouse.list_partitions(QUARANTINED_ORDERS):
            return QuarantineResult(as_of_date, warehouse.row_count(
                QUARANTINED_ORDERS, as_of_date) or 0, _rows_kept(batches), True)
        raise IngestError(f"{RAW_ORDERS} has no batch as_of_date={as_of_date}; its batches: "
                          f"{[d.isoformat() for d in batches] or 'none'}")
    n = _move_to_quarantine(spark, as_of_date, reason, run_id)
    warehouse.drop_partition(RAW_ORDERS, as_of_date)
    result = QuarantineResult(as_of_date, n, _rows_kept(warehouse.list_partitions(RAW_ORDERS)),
                              False)
    log.warning("%s (reason: %s; run_id=%s)", result, reason, run_id)
    return result


def _move_to_quarantine(spark: SparkSession, as_of_date: dt.date, reason: str,
                        run_id: str) -> int:
    """Publish the batch's rows to the quarantine table; their count, checked."""
    from pyspark.sql import functions as F

    rows = warehouse.read_table(spark, RAW_ORDERS, as_of_date).drop(warehouse.PARTITION_COLUMN)
    expected = warehouse.row_count(RAW_ORDERS, as_of_date)
    warehouse.write_partition(rows.withColumn("reason", F.lit(reason))
                              .withColumn("quarantine_run_id", F.lit(run_id)),
                              QUARANTINED_ORDERS, as_of_date)
    n = warehouse.row_count(QUARANTINED_ORDERS, as_of_date)
    if n != expected:  # never drop a batch whose copy is not whole
        raise IngestError(f"{QUARANTINED_ORDERS} as_of_date={as_of_date}: {n} rows written, "
                          f"the batch has {expected}; {RAW_ORDERS} left unchanged")
    return n


def _rows_kept(batches: list[dt.date]) -> int:
    return sum(warehouse.row_count(RAW_ORDERS, d) or 0 for d in batches)


#: Columns ``quarantine_batch`` adds to a batch's rows; ``restore_batch`` removes them.
_QUARANTINE_COLUMNS = ("reason", "quarantine_run_id")


@dataclass(frozen=True)
class RestoreResult:
    """What :func:`restore_batch` did with one quarantined batch."""

    as_of_date: dt.date
    rows_restored: int
    already_restored: bool

    def __str__(self) -> str:
        done = "was already" if self.already_restored else "is now"
        return (f"{RAW_ORDERS} batch as_of_date={self.as_of_date} {done} restored from "
                f"{QUARANTINED_ORDERS}: {self.rows_restored} rows")


def restore_batch(spark: SparkSession, as_of_date: dt.date) -> RestoreResult:
    """Put a batch that :func:`quarantine_batch` took out back into ``raw.orders``
    (``clv restore-batch``): its rows, without the quarantine's columns, are published as
    the ``as_of_date`` partition, checked whole, then the quarantine partition is
    dropped. Idempotent: a restored batch is left as it is; a run killed between the two
    steps is completed by running it again. Nothing else changes.

    Raises:
        IngestError: no such quarantined batch (the message lists those there are);
            ``raw.orders`` has a different batch of that date (imported again after the
            quarantine: restoring would replace it); or one of its order ids was
            published since by another batch (the ids are named).
    """
    quarantined = warehouse.list_partitions(QUARANTINED_ORDERS)
    published = as_of_date in warehouse.list_partitions(RAW_ORDERS)
    if as_of_date not in quarantined:
        if published:
            return RestoreResult(as_of_date, warehouse.row_count(RAW_ORDERS, as_of_date)
                                 or 0, True)
        raise IngestError(f"{QUARANTINED_ORDERS} has no batch as_of_date={as_of_date}; its "
                          f"batches: {[d.isoformat() for d in quarantined] or 'none'}")
    rows = (warehouse.read_table(spark, QUARANTINED_ORDERS, as_of_date)
            .drop(warehouse.PARTITION_COLUMN, *_QUARANTINE_COLUMNS))
    expected = warehouse.row_count(QUARANTINED_ORDERS, as_of_date)
    if published:  # a run killed after the copy, or a new import of that date?
        _check_same_batch(spark, rows, as_of_date)
    else:
        _check_ids_unpublished(spark, rows, as_of_date)
        warehouse.write_partition(rows, RAW_ORDERS, as_of_date)
    n = warehouse.row_count(RAW_ORDERS, as_of_date)
    if n != expected:  # never drop the quarantined copy of a batch not back whole
        raise IngestError(f"{RAW_ORDERS} as_of_date={as_of_date}: {n} rows written, the "
                          f"quarantined batch has {expected}; {QUARANTINED_ORDERS} kept")
    warehouse.drop_partition(QUARANTINED_ORDERS, as_of_date)
    result = RestoreResult(as_of_date, n, False)
    log.warning("%s", result)
    return result


def _check_same_batch(spark: SparkSession, rows: DataFrame, as_of_date: dt.date) -> None:
    """Refuse when the published batch of ``as_of_date`` is not the quarantined one."""
    published = warehouse.read_table(spark, RAW_ORDERS, as_of_date).select("order_id")
    differ = published.exceptAll(rows.select("order_id")).union(
        rows.select("order_id").exceptAll(published)).limit(5).collect()
    if differ:
        raise IngestError(
            f"{RAW_ORDERS} has another batch as_of_date={as_of_date} (imported again after "
            f"the quarantine?): restoring would replace it; order ids that differ: "
            f"{[r.order_id for r in differ]}. The quarantined rows stay in {QUARANTINED_ORDERS}")


def _check_ids_unpublished(spark: SparkSession, rows: DataFrame, as_of_date: dt.date) -> None:
    """Refuse a batch whose order ids another batch published since (the suite's and
    the import's rule: an order id appears once in the history)."""
    others = _published_ids(spark, as_of_date)
    if others is None:
        return
    clash = rows.select("order_id").join(others, "order_id").distinct().limit(5).collect()
    if clash:
        raise IngestError(
            f"restore-batch as_of_date={as_of_date}: order ids published since by another "
            f"{RAW_ORDERS} batch: {sorted(r.order_id for r in clash)}; nothing restored")


def default_batch_date(df: DataFrame) -> dt.date:
    """The day after the newest order: everything strictly before it is in the batch."""
    from pyspark.sql import functions as F

    newest = df.select(F.max(F.col("order_ts").try_cast("timestamp"))).first()[0]
    if newest is None:
        raise IngestError("cannot derive as_of_date: no parseable order_ts in the input")
    return newest.date() + dt.timedelta(days=1)


# --------------------------------------------------------------------------- campaigns

CAMPAIGN_RESPONSES = "raw.campaign_responses"


def load_campaign_responses(
    spark: SparkSession, responses, run_id: str, as_of_date: dt.date | None = None
) -> dict[str, object]:
    """Validate a campaign's responses (suite ``campaign_responses``) and publish them.

    The batch lands in the ``raw.campaign_responses`` partition ``as_of_date``
    (default: the day after the newest ``sent_date``). A batch that breaks the
    suite is refused whole, with a message naming each failed rule, its column and
    sample rows; nothing is published.

    Args:
        spark: The Spark session.
        responses: pandas frame in the contract (``clv.decisions.uplift.RESPONSE_COLUMNS``).
        run_id: Stamped on every row.
        as_of_date: The batch's partition.

    Returns:
        as_of_date, rows, campaigns, and rows per (campaign, arm).
    """
    import pandas as pd

    from clv import quality
    from clv.decisions.uplift import COVARIATE_COLUMNS, RESPONSE_COLUMNS

    missing = [c for c in RESPONSE_COLUMNS if c not in responses.columns]
    if missing:
        raise IngestError(f"{CAMPAIGN_RESPONSES}: required column(s) {missing} not found; "
                          f"the input has {list(responses.columns)}")
    # The optional pre-treatment covariates travel with the rows (clv.decisions.effects learns from
    # them); a file without them gets them as nulls so every batch has one schema.
    frame = responses.loc[:, list(RESPONSE_COLUMNS)].copy()
    for column in COVARIATE_COLUMNS:
        frame[column] = (pd.to_numeric(responses[column], errors="raise").astype(float)
                         if column in responses.columns else float("nan"))
    # Spark 4 refuses Parquet nanosecond timestamps: dates are dates.
    frame["sent_date"] = pd.to_datetime(frame["sent_date"]).dt.date
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["run_id"] = run_id
    if as_of_date is None:
        as_of_date = max(frame["sent_date"]) + dt.timedelta(days=1)
    df = spark.createDataFrame(frame)
    quality.assert_valid(df, "campaign_responses", CAMPAIGN_RESPONSES,
                         ["campaign_id", "customer_id"], run_name=run_id)
    warehouse.write_partition(df, CAMPAIGN_RESPONSES, as_of_date)
    arms = frame.groupby(["campaign_id", "action", "treatment"]).size()
    return {"table": CAMPAIGN_RESPONSES, "as_of_date": as_of_date.isoformat(),
            "rows": len(frame), "campaigns": sorted(frame["campaign_id"].unique().tolist()),
            "arms": {f"{c}/{a}/{'treated' if t else 'control'}": int(n)
                     for (c, a, t), n in arms.items()}}


# --------------------------------------------------------------------------- contact preferences

CONTACT_PREFERENCES = "raw.contact_preferences"
REJECTED_CONTACT_PREFERENCES = "quality.rejected_contact_preferences"
_PREFERENCE_SCHEMA = ("customer_id string, channel string, opted_out boolean, "
                      "updated_at timestamp, source string, run_id string")
_REJECTED_PREFERENCE_SCHEMA = ("row long, customer_id string, channel string, opted_out string, "
                               "updated_at string, rule string, source string, run_id string")


def load_contact_preferences(
    spark: SparkSession, frame, source: str, run_id: str, as_of_date: dt.date | None = None
) -> dict[str, object]:
    """Import a CRM's suppression list / preference export into ``raw.contact_preferences``.

    Rows that break a rule (:func:`clv.decisions.contact_policy.split_preferences`: customer or
    channel missing, ``opted_out`` not a yes/no, ``updated_at`` not a date) go to
    ``quality.rejected_contact_preferences`` with the rule, the file and the row number;
    the rest is checked by the ``contact_preferences`` suite and published. Both land in
    the partition ``as_of_date`` (default: the newest ``updated_at``'s date), replacing
    an earlier load of the same batch. Rejected rows are counted by rule in the result
    (the CLI prints them): an opt-out that could not be read must be fixed and reloaded,
    never silently lost.

    Args:
        spark: The Spark session.
        frame: pandas frame with ``customer_id, channel, opted_out, updated_at``.
        source: The file's name (in messages and on every row).
        run_id: Stamped on every row.
        as_of_date: The batch's partition.

    Returns:
        table, as_of_date, rows, accepted, rejected, rejected per rule, opted_out rows.
    """
    import pandas as pd

    from clv.decisions import contact_policy
    from clv import quality

    try:
        valid, rejected = contact_policy.split_preferences(frame, source)
    except ValueError as exc:
        raise IngestError(str(exc)) from None
    if valid.empty:
        raise IngestError(f"{source}: no valid row for {CONTACT_PREFERENCES} "
                          f"({len(rejected)} rejected: "
                          f"{rejected['rule'].value_counts().to_dict()})")
    if as_of_date is None:
        as_of_date = valid["updated_at"].max().date()
    valid = valid.assign(source=source, run_id=run_id)
    df = spark.createDataFrame(valid, schema=_PREFERENCE_SCHEMA)
    quality.assert_valid(df, "contact_preferences", CONTACT_PREFERENCES,
                         ["customer_id", "channel", "updated_at"], run_name=run_id)
    # Quarantine first, then the batch: a failed publish leaves the old batch's record whole.
    rejected_out = rejected.assign(run_id=run_id)[
        ["row", "customer_id", "channel", "opted_out", "updated_at", "rule", "source",
         "run_id"]].astype({"row": "int64"})
    warehouse.write_partition(spark.createDataFrame(
        rejected_out if len(rejected_out) else pd.DataFrame(columns=rejected_out.columns),
        schema=_REJECTED_PREFERENCE_SCHEMA), REJECTED_CONTACT_PREFERENCES, as_of_date)
    warehouse.write_partition(df, CONTACT_PREFERENCES, as_of_date)
    return {"table": CONTACT_PREFERENCES, "source": source,
            "as_of_date": as_of_date.isoformat(), "rows": len(frame), "accepted": len(valid),
            "rejected": len(rejected), "opted_out": int(valid["opted_out"].sum()),
            "rejected_by_rule": rejected["rule"].value_counts().sort_index().to_dict()}
