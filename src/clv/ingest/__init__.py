"""Ingest: load order history into ``raw.orders`` (the CDNOW reference data or a user's own
file) and the feedback from the field, with every rejected row kept and named by rule.

- :mod:`clv.ingest.files`: reading CDNOW or a user's CSV/Parquet file into the orders
  contract (format, delimiter and encoding sniffing, column mapping, type checks).
- :mod:`clv.ingest.orders`: the row-level rules and :func:`load_orders`, which
  quarantines the rows that break them (``quality.rejected_orders``) and publishes the rest.
- :mod:`clv.ingest.batches`: taking a published batch out (:func:`quarantine_batch`)
  and putting it back (:func:`restore_batch`).
- :mod:`clv.ingest.feedback`: campaign responses and contact preferences, with their
  contracts (:data:`RESPONSE_COLUMNS`, :func:`split_preferences`).
"""

from __future__ import annotations

from clv.ingest.batches import (
    QUARANTINED_ORDERS,
    QuarantineResult,
    RestoreResult,
    quarantine_batch,
    restore_batch,
)
from clv.ingest.feedback import (
    CAMPAIGN_RESPONSES,
    CONTACT_PREFERENCES,
    COVARIATE_COLUMNS,
    PREFERENCE_COLUMNS,
    REJECTED_CONTACT_PREFERENCES,
    RESPONSE_COLUMNS,
    load_campaign_responses,
    load_contact_preferences,
    split_preferences,
)
from clv.ingest.files import (
    CORRUPT_COLUMN,
    DELIMITERS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    IngestError,
    cdnow_packaged_path,
    read_cdnow,
    read_orders_file,
)
from clv.ingest.orders import (
    DEFAULT_NULL_TOKENS,
    FAILED_LOAD_REJECTS,
    RAW_ORDERS,
    RAW_SUITE,
    REJECTED_ORDERS,
    RULES,
    LoadResult,
    OrderRules,
    check_rejected_share,
    default_batch_date,
    load_orders,
    split_valid_orders,
)

__all__ = [
    "CAMPAIGN_RESPONSES",
    "CONTACT_PREFERENCES",
    "CORRUPT_COLUMN",
    "COVARIATE_COLUMNS",
    "DEFAULT_NULL_TOKENS",
    "DELIMITERS",
    "FAILED_LOAD_REJECTS",
    "OPTIONAL_COLUMNS",
    "PREFERENCE_COLUMNS",
    "QUARANTINED_ORDERS",
    "RAW_ORDERS",
    "RAW_SUITE",
    "REJECTED_CONTACT_PREFERENCES",
    "REJECTED_ORDERS",
    "REQUIRED_COLUMNS",
    "RESPONSE_COLUMNS",
    "RULES",
    "IngestError",
    "LoadResult",
    "OrderRules",
    "QuarantineResult",
    "RestoreResult",
    "cdnow_packaged_path",
    "check_rejected_share",
    "default_batch_date",
    "load_campaign_responses",
    "load_contact_preferences",
    "load_orders",
    "quarantine_batch",
    "read_cdnow",
    "read_orders_file",
    "restore_batch",
    "split_preferences",
    "split_valid_orders",
]
