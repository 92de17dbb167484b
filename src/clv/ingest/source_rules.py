"""Row rules of the optional sources: types, ranges and keys, each broken rule named."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from clv.ingest.files import IngestError
from clv.ingest.orders import DEFAULT_NULL_TOKENS, _env_tokens

if TYPE_CHECKING:  # pragma: no cover
    pass

from clv.ingest.sources_spec import (
    CUSTOMERS,
    EVENT_TYPES,
    EVENTS,
    ORDER_LINES,
    REVIEWS,
    ROW_COLUMN,
    SOURCE_COLUMN,
    SourceSpec,
)

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
