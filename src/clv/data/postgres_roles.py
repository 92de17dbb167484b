"""PostgreSQL warehouse roles: a writer for the pipeline, a read-only analyst (``clv pg-setup``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from clv.data.postgres import (
    ANALYST_SCHEMAS,
    META_SCHEMA,
    PgTarget,
    _ident,
    ensure_meta,
    ensure_schema,
)


@dataclass(frozen=True)
class RoleSetup:
    writer: str
    analyst: str
    writer_password: str | None  # set only when generated or given
    analyst_password: str | None


def setup_roles(admin_uri: str, schemas: list[str], writer: str = "clv_writer",
                analyst: str = "clv_analyst", writer_password: str | None = None,
                analyst_password: str | None = None) -> RoleSetup:
    """Create (or bring up to date) the pipeline's writer and the read-only analyst role.

    Run as a role that may create roles (the database owner / a superuser). Idempotent:
    roles are created when missing, passwords are set only when given (or generated for a
    new role), grants are re-applied.

    * writer: LOGIN; CONNECT; USAGE + CREATE on every warehouse schema and ``clv_meta``
      (it creates and owns the tables it publishes).
    * analyst: LOGIN; CONNECT; USAGE on ``marts``, SELECT on its tables, and default
      privileges so that tables the writer creates there later are readable; read-only
      sessions by default; nothing on raw, quality, features or clv_meta, no CREATE in
      ``public``.
    """
    from psycopg import sql

    tgt = PgTarget.parse(admin_uri)
    out = {}
    with tgt.connect(autocommit=True) as conn:
        db = _ident(tgt.database)
        for role, given in ((writer, writer_password), (analyst, analyst_password)):
            exists = conn.execute("select 1 from pg_roles where rolname = %s",
                                  [role]).fetchone() is not None
            password = given or (None if exists else secrets.token_urlsafe(18))
            if not exists:
                conn.execute(sql.SQL("create role {} login").format(_ident(role)))
            conn.execute(sql.SQL("alter role {} login nosuperuser nocreatedb nocreaterole")
                         .format(_ident(role)))
            if password is not None:
                conn.execute(sql.SQL("alter role {} password {}").format(
                    _ident(role), sql.Literal(password)))
            out[role] = password
        w, a = _ident(writer), _ident(analyst)
        conn.execute(sql.SQL("revoke all on database {} from public").format(db))
        conn.execute("revoke create on schema public from public")
        conn.execute(sql.SQL("grant connect, temporary on database {} to {}").format(db, w))
        conn.execute(sql.SQL("grant connect on database {} to {}").format(db, a))
        conn.execute(sql.SQL("alter role {} set default_transaction_read_only = on").format(a))
        ensure_meta(conn)
        for schema in sorted({*schemas, META_SCHEMA}):
            s = _ident(schema)
            ensure_schema(conn, schema)
            conn.execute(sql.SQL("grant usage, create on schema {} to {}").format(s, w))
            # tables created earlier by another role (e.g. the admin) stay writable
            conn.execute(sql.SQL("grant select, insert, update, delete, truncate on all tables "
                                 "in schema {} to {}").format(s, w))
            if schema in ANALYST_SCHEMAS:
                conn.execute(sql.SQL("grant usage on schema {} to {}").format(s, a))
                conn.execute(sql.SQL("grant select on all tables in schema {} to {}")
                             .format(s, a))
                for creator in {writer, tgt.user}:
                    conn.execute(sql.SQL("alter default privileges for role {} in schema {} "
                                         "grant select on tables to {}").format(
                                             _ident(creator), s, a))
            else:
                conn.execute(sql.SQL("revoke all on schema {} from {}").format(s, a))
                conn.execute(sql.SQL("revoke all on all tables in schema {} from {}")
                             .format(s, a))
    return RoleSetup(writer, analyst, out[writer], out[analyst])


