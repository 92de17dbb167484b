"""The PostgreSQL warehouse backend (``CLV_WAREHOUSE_URI=postgresql://user:pw@host:port/db``).

:mod:`clv.data.warehouse` dispatches here when the URI is ``postgresql://``; callers never
import this module. Layout and guarantees, the same as the embedded backend's:

* ``schema.table`` is the PostgreSQL table ``schema.table``; ``as_of_date`` is a ``date``
  column (indexed), one "partition" per value.
* Spark reads and writes over JDBC (the driver jar is ``CLV_JDBC_JAR``, Debian's
  ``/usr/share/java/postgresql.jar`` by default). Reads of ``raw.orders`` are split into
  ``CLV_PG_READ_PARTITIONS`` ranges of ``order_ts`` (``partitionColumn`` /
  ``lowerBound`` / ``upperBound`` / ``numPartitions``): one connection per Spark task.
* A write is atomic and idempotent per ``as_of_date``. Spark's JDBC writer commits once
  per task, so a killed job leaves a half-written table: Spark therefore writes a
  *staging* table ``clv_meta.stg__<schema>__<table>__<yyyymmdd>`` (dropped and rebuilt
  by each attempt), its row count is checked against what Spark wrote, and one
  transaction then deletes the date from the published table, inserts the staged rows,
  records the partition in ``clv_meta.partitions`` and drops the staging table. Readers
  (MVCC, READ COMMITTED) see the old partition or the new one, never a mix; a retry
  replaces the leftover staging table and leaves no duplicates. Writers of one
  partition are serialised by a PostgreSQL advisory lock.
* ``clv_meta.partitions`` lists the published partitions (empty ones included) and
  their row counts; the analysts' catalog is the database itself (table comments).

:func:`setup_roles` creates the pipeline's writer role and a read-only analyst role
(SELECT on ``marts`` only, default privileges for tables created later); idempotent.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from clv.data.catalog import PARTITION_COLUMN, RAW_ORDERS, WarehouseError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import psycopg
    from pyspark.sql import DataFrame, SparkSession

    from clv.config import Settings
    from clv.data.catalog import Table

log = logging.getLogger(__name__)

META_SCHEMA = "clv_meta"
PARTITIONS_TABLE = f"{META_SCHEMA}.partitions"
#: Tables read with partitioned JDBC scans, and the column whose range is split.
READ_PARTITION_COLUMNS: dict[str, str] = {RAW_ORDERS: "order_ts"}
DEFAULT_READ_PARTITIONS = 4
#: Schemas the analyst role may read.
ANALYST_SCHEMAS = ("marts",)


@dataclass(frozen=True)
class PgTarget:
    """Connection details parsed from a ``postgresql://`` URI."""

    user: str
    password: str | None
    host: str
    port: int
    database: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, uri: str) -> PgTarget:
        u = urlsplit(uri)
        if u.scheme not in ("postgresql", "postgres") or not u.path.strip("/"):
            raise ValueError(f"not a postgresql://user:password@host:port/database URI: "
                             f"{redact(uri)}")
        return cls(user=unquote(u.username or os.environ.get("PGUSER", "postgres")),
                   password=unquote(u.password) if u.password is not None
                   else os.environ.get("PGPASSWORD"),
                   host=u.hostname or "127.0.0.1", port=u.port or 5432,
                   database=unquote(u.path.strip("/")), params=tuple(parse_qsl(u.query)))

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    def jdbc_properties(self) -> dict[str, str]:
        props = {"user": self.user, "driver": "org.postgresql.Driver",
                 # one multi-row INSERT per batch instead of one round trip per row
                 "reWriteBatchedInserts": "true", **dict(self.params)}
        if self.password is not None:
            props["password"] = self.password
        return props

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, dbname=self.database,
                               user=self.user, password=self.password,
                               autocommit=autocommit, **dict(self.params))


def redact(uri: str) -> str:
    """The URI with its password hidden (for messages and logs)."""
    u = urlsplit(uri)
    if u.password is None:
        return uri
    return uri.replace(f":{u.password}@", ":***@", 1)


def target(settings: Settings) -> PgTarget:
    return PgTarget.parse(settings.warehouse_uri)


def _ident(*parts: str):
    from psycopg import sql

    return sql.Identifier(*parts)


def _qualified(table: Table) -> str:
    """``"schema"."table"`` quoted for SQL text handed to Spark."""
    return f'"{table.schema}"."{table.name}"'


def staging_name(table: Table, as_of_date: dt.date) -> str:
    return f"stg__{table.schema}__{table.name}__{as_of_date:%Y%m%d}"


def _lock_key(table: Table, as_of_date: dt.date) -> int:
    return zlib.crc32(f"{table.qualified_name}/{as_of_date}".encode())


def _exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    row = conn.execute("select to_regclass(%s)", [f'"{schema}"."{name}"']).fetchone()
    return row is not None and row[0] is not None


def ensure_schema(conn: psycopg.Connection, schema: str) -> None:
    """Create a schema when missing (``if not exists`` alone needs CREATE on the database)."""
    if conn.execute("select 1 from pg_namespace where nspname = %s", [schema]).fetchone():
        return
    conn.execute(f'create schema if not exists "{schema}"')


def ensure_meta(conn: psycopg.Connection) -> None:
    """The bookkeeping schema and table (idempotent; concurrent callers are serialised)."""
    if _exists(conn, META_SCHEMA, "partitions"):
        return
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", [zlib.crc32(PARTITIONS_TABLE.encode())])
        ensure_schema(conn, META_SCHEMA)
        conn.execute(f"""create table if not exists {PARTITIONS_TABLE} (
            table_name text not null, as_of_date date not null, row_count bigint not null,
            published_at timestamptz not null default now(),
            primary key (table_name, as_of_date))""")


@contextmanager
def _partition_lock(tgt: PgTarget, table: Table, as_of_date: dt.date) -> Iterator[None]:
    """Serialise writers of one partition (session advisory lock, released on exit/death)."""
    conn = tgt.connect(autocommit=True)
    try:
        conn.execute("select pg_advisory_lock(%s)", [_lock_key(table, as_of_date)])
        yield
    finally:
        conn.close()  # closing the session releases the lock


# --------------------------------------------------------------------------- writes

def write_partition(df: DataFrame, table: Table, as_of_date: dt.date,
                    settings: Settings) -> str:
    """Stage ``df`` over JDBC, validate, then publish it in one transaction."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F


    tgt = target(settings)
    staging = staging_name(table, as_of_date)
    with tgt.connect(autocommit=True) as conn:
        ensure_meta(conn)
        ensure_schema(conn, table.schema)
    with _partition_lock(tgt, table, as_of_date):
        with tgt.connect(autocommit=True) as conn:  # a killed attempt's leftover
            conn.execute(f'drop table if exists "{META_SCHEMA}"."{staging}"')
        obs = Observation(f"rows_{staging}")
        staged = df.withColumn(PARTITION_COLUMN, F.lit(as_of_date).cast("date")).observe(
            obs, F.count(F.lit(1)).alias("rows"))
        (staged.write.format("jdbc").mode("errorifexists")
         .option("url", tgt.jdbc_url).option("dbtable", f'"{META_SCHEMA}"."{staging}"')
         .option("batchsize", int(os.environ.get("CLV_PG_BATCH_SIZE", "5000")))
         .options(**tgt.jdbc_properties()).save())
        written = int(obs.get["rows"])
        with tgt.connect() as conn:
            n = publish(conn, table, as_of_date, staging, expected_rows=written)
    if n != written:  # pragma: no cover - publish raises first
        raise WarehouseError(f"{table.qualified_name}: staged {n} rows, Spark wrote {written}")
    log.info("published %s partition %s (%d rows) to %s", table.qualified_name, as_of_date,
             n, redact(settings.warehouse_uri))
    where = redact(settings.warehouse_uri)
    return f"{where}#{table.qualified_name}/{PARTITION_COLUMN}={as_of_date}"


def publish(conn: psycopg.Connection, table: Table, as_of_date: dt.date, staging: str,
            expected_rows: int | None = None) -> int:
    """Replace the partition with the staging table's rows in one transaction.

    Creates the published table from the staging table's columns the first time and
    adds columns that appeared since (older partitions read them as null). Returns the
    number of rows published.
    """
    from psycopg import sql


    pub = _ident(table.schema, table.name)
    stg = _ident(META_SCHEMA, staging)
    with conn.transaction():
        # publishes of one table take turns (creating it / adding columns must not race);
        # held until commit, a few statements long; Spark's staging writes stay parallel
        conn.execute("select pg_advisory_xact_lock(%s)",
                     [zlib.crc32(table.qualified_name.encode())])
        if not _exists(conn, META_SCHEMA, staging):
            raise WarehouseError(f"{table.qualified_name}: staging table {staging} is missing")
        n = conn.execute(sql.SQL("select count(*) from {}").format(stg)).fetchone()[0]
        if expected_rows is not None and n != expected_rows:
            raise WarehouseError(f"{table.qualified_name}: staging table {staging} holds {n} "
                                 f"rows, Spark wrote {expected_rows}: not published")
        staged_cols = _columns(conn, META_SCHEMA, staging)
        if not _exists(conn, table.schema, table.name):
            conn.execute(sql.SQL("create table {} (like {})").format(pub, stg))
            conn.execute(sql.SQL("create index on {} ({})").format(
                pub, _ident(PARTITION_COLUMN)))
            comment = table.description
            conn.execute(sql.SQL("comment on table {} is {}").format(pub, sql.Literal(comment)))
        else:
            published_cols = dict(_columns(conn, table.schema, table.name))
            for col, typ in staged_cols:
                if col not in published_cols:
                    conn.execute(sql.SQL("alter table {} add column {} " + typ).format(
                        pub, _ident(col)))
        cols = sql.SQL(", ").join(_ident(c) for c, _ in staged_cols)
        conn.execute(sql.SQL("delete from {} where {} = %s").format(
            pub, _ident(PARTITION_COLUMN)), [as_of_date])
        conn.execute(sql.SQL("insert into {} ({}) select {} from {}").format(
            pub, cols, cols, stg))
        conn.execute(
            f"insert into {PARTITIONS_TABLE} (table_name, as_of_date, row_count) "
            "values (%s, %s, %s) on conflict (table_name, as_of_date) do update "
            "set row_count = excluded.row_count, published_at = now()",
            [table.qualified_name, as_of_date, n])
        conn.execute(sql.SQL("drop table {}").format(stg))
    return n


def drop_partition(table: Table, as_of_date: dt.date, settings: Settings) -> bool:
    """Delete a published partition's rows and its bookkeeping row in one transaction."""
    from psycopg import sql

    tgt = target(settings)
    with _partition_lock(tgt, table, as_of_date), tgt.connect() as conn:
        if not _exists(conn, META_SCHEMA, "partitions"):
            return False
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)",
                         [zlib.crc32(table.qualified_name.encode())])
            gone = conn.execute(f"delete from {PARTITIONS_TABLE} where table_name = %s and "
                                "as_of_date = %s", [table.qualified_name, as_of_date]).rowcount
            if gone and _exists(conn, table.schema, table.name):
                conn.execute(sql.SQL("delete from {} where {} = %s").format(
                    _ident(table.schema, table.name), _ident(PARTITION_COLUMN)), [as_of_date])
    return bool(gone)


def _columns(conn: psycopg.Connection, schema: str, name: str) -> list[tuple[str, str]]:
    """(column, SQL type) in table order."""
    return conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
        "where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped "
        "order by a.attnum", [f'"{schema}"."{name}"']).fetchall()


# --------------------------------------------------------------------------- reads

def list_partitions(table: Table, settings: Settings) -> list[dt.date]:
    with target(settings).connect(autocommit=True) as conn:
        if not _exists(conn, META_SCHEMA, "partitions"):
            return []
        rows = conn.execute(f"select as_of_date from {PARTITIONS_TABLE} where table_name = %s "
                            "order by as_of_date", [table.qualified_name]).fetchall()
    return [r[0] for r in rows]


def row_count(table: Table, as_of_date: dt.date, settings: Settings) -> int | None:
    """Rows of a published partition (from the bookkeeping table: no scan), or None."""
    with target(settings).connect(autocommit=True) as conn:
        if not _exists(conn, META_SCHEMA, "partitions"):
            return None
        row = conn.execute(f"select row_count from {PARTITIONS_TABLE} where table_name = %s "
                           "and as_of_date = %s", [table.qualified_name, as_of_date]).fetchone()
    return None if row is None else int(row[0])


def _missing(table: Table, as_of_date: dt.date | None, settings: Settings):

    where = redact(settings.warehouse_uri)
    if as_of_date is None:
        return WarehouseError(f"{table.qualified_name}: table is empty or missing (in {where})")
    return WarehouseError(f"{table.qualified_name}: partition {PARTITION_COLUMN}={as_of_date} "
                          f"does not exist in {where}")


def read_table(spark: SparkSession, table: Table, as_of_date: dt.date | None,
               settings: Settings) -> DataFrame:
    """One partition or the whole table over JDBC; ``as_of_date`` is the last column."""
    tgt = target(settings)
    partitions = list_partitions(table, settings)
    if (as_of_date is None and not partitions) or (
            as_of_date is not None and as_of_date not in partitions):
        raise _missing(table, as_of_date, settings)
    source = _qualified(table)
    if as_of_date is not None:
        source = (f"(select * from {source} where {PARTITION_COLUMN} = "
                  f"date '{as_of_date.isoformat()}') as p")
    reader = (spark.read.format("jdbc").option("url", tgt.jdbc_url).option("dbtable", source)
              .option("fetchsize", 10_000).options(**tgt.jdbc_properties()))
    column = READ_PARTITION_COLUMNS.get(table.qualified_name)
    n_parts = int(os.environ.get("CLV_PG_READ_PARTITIONS", DEFAULT_READ_PARTITIONS))
    if column and n_parts > 1:
        bounds = _bounds(tgt, table, column, as_of_date)
        if bounds is not None:
            reader = (reader.option("partitionColumn", column)
                      .option("lowerBound", bounds[0]).option("upperBound", bounds[1])
                      .option("numPartitions", n_parts))
    df = reader.load()
    return df.select(*[c for c in df.columns if c != PARTITION_COLUMN], PARTITION_COLUMN)


def _bounds(tgt: PgTarget, table: Table, column: str,
            as_of_date: dt.date | None) -> tuple[str, str] | None:
    """Min and max of the partitioning column (stride of the partitioned read)."""
    from psycopg import sql

    q = sql.SQL("select min({c})::text, max({c})::text from {t}").format(
        c=_ident(column), t=_ident(table.schema, table.name))
    args: list[Any] = []
    if as_of_date is not None:
        q = q + sql.SQL(" where {} = %s").format(_ident(PARTITION_COLUMN))
        args = [as_of_date]
    with tgt.connect(autocommit=True) as conn:
        low, high = conn.execute(q, args).fetchone()
    if low is None or low == high:
        return None
    return low, high


def read_partition_pandas(table: Table, as_of_date: dt.date, settings: Settings,
                          columns: Sequence[str] | None = None,
                          where: Mapping[str, Any] | None = None,
                          order_by: Sequence[str] | None = None,
                          keep: Callable[[int], Any] | None = None) -> pd.DataFrame:
    """One partition into pandas with psycopg (no JVM); ``columns``: only these;
    ``where``: only rows whose columns equal these values; ``order_by``: sorted by
    these columns as Python sorts (not by the database's collation)."""
    import pandas as pd
    from psycopg import sql

    if as_of_date not in list_partitions(table, settings):
        raise _missing(table, as_of_date, settings)
    with target(settings).connect(autocommit=True) as conn:
        cols = [c for c, _ in _columns(conn, table.schema, table.name) if c != PARTITION_COLUMN]
        if columns is not None or where or order_by:
            missing = [c for c in [*(columns or []), *(where or {}), *(order_by or [])]
                       if c not in cols]
            if missing:

                raise WarehouseError(f"{table.qualified_name}: no column(s) {missing} "
                                     f"(has {cols})")
            cols = list(columns) if columns is not None else cols
        where = dict(where or {})
        cur = conn.execute(sql.SQL("select {} from {} where {}").format(
            sql.SQL(", ").join(_ident(c) for c in cols), _ident(table.schema, table.name),
            sql.SQL(" and ").join(sql.SQL("{} = %s").format(_ident(c))
                                  for c in [PARTITION_COLUMN, *where])),
            [as_of_date, *where.values()])
        frame = pd.DataFrame.from_records(cur.fetchall(), columns=cols)
    for col in frame.columns:  # Spark's timestamps (timestamptz): UTC, as Parquet gives them
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].dt.tz_convert("UTC")
    if order_by:
        frame = frame.sort_values(list(order_by), kind="stable", ignore_index=True)
    if keep is not None:
        frame = frame.iloc[keep(len(frame))].reset_index(drop=True)
    frame[PARTITION_COLUMN] = as_of_date
    return frame


def refresh_catalog(tables: list[Table], settings: Settings) -> str:
    """The database is the catalog: make sure every schema exists and tables are described."""
    from psycopg import sql

    with target(settings).connect(autocommit=True) as conn:
        ensure_meta(conn)
        for table in tables:
            ensure_schema(conn, table.schema)
            if _exists(conn, table.schema, table.name):
                conn.execute(sql.SQL("comment on table {} is {}").format(
                    _ident(table.schema, table.name), sql.Literal(table.description)))
    return redact(settings.warehouse_uri)


class PostgresBackend:
    """:class:`clv.data.backend.Backend` over a PostgreSQL database (the functions above)."""

    kind = "postgresql"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def location(self) -> str:
        return redact(self.settings.warehouse_uri)

    def list_partitions(self, table: Table) -> list[dt.date]:
        return list_partitions(table, self.settings)

    def row_count(self, table: Table, as_of_date: dt.date) -> int | None:
        return row_count(table, as_of_date, self.settings)

    def write_partition(self, df: DataFrame, table: Table, as_of_date: dt.date) -> str:
        return write_partition(df, table, as_of_date, self.settings)

    def drop_partition(self, table: Table, as_of_date: dt.date) -> bool:
        return drop_partition(table, as_of_date, self.settings)

    def columns(self, table: Table, as_of_date: dt.date) -> list[str]:
        with target(self.settings).connect(autocommit=True) as conn:
            return [c for c, _ in _columns(conn, table.schema, table.name)]

    def read_table(self, spark: SparkSession, table: Table,
                   as_of_date: dt.date | None) -> DataFrame:
        return read_table(spark, table, as_of_date, self.settings)

    def read_partition_pandas(
        self, table: Table, as_of_date: dt.date, columns: Sequence[str] | None,
        where: Mapping[str, Any] | None, order_by: Sequence[str] | None,
        keep: Callable[[int], Any] | None = None,
    ) -> pd.DataFrame:
        return read_partition_pandas(table, as_of_date, self.settings, columns, where, order_by,
                                     keep)

    def refresh_catalog(self, tables: Sequence[Table]) -> str:
        return refresh_catalog(list(tables), self.settings)
