"""Data quality: expectation suites over Spark DataFrames, Data Docs, row counts, drift.

- :mod:`clv.quality.results`: :class:`ValidationReport`, :class:`Failure` and
  :class:`DataQualityError` (what a check found, and the error it raises).
- :mod:`clv.quality.suites`: the suite runner (GX Core 1.x): load a suite from
  ``expectations/<name>.json``, validate a frame against it, name each failed rule.
- :mod:`clv.quality.engines`: which GX engine evaluates what. A frame of at most
  ``CLV_GX_PANDAS_MAX_ROWS`` rows (default
  :data:`~clv.config.DEFAULT_GX_PANDAS_MAX_ROWS`; ``0``: always Spark) is collected
  once through Arrow and validated on GX's pandas engine instead of a Spark job per
  metric. Spark keeps what pandas would answer differently: ``unexpected_rows``
  queries (Spark SQL), Spark type names, dates, timestamps and decimals, row conditions
  and column pairs over columns holding nulls, and every frame with a NaN. The two
  results merge, in suite order, into the one GX result Data Docs render; the report
  is the same either way (tests/test_quality_engines.py runs both).
- :mod:`clv.quality.data_docs`: every validation rendered to GX Data Docs, and an
  index that reads offline.
- :mod:`clv.quality.checks`: a batch's row count against the previous partition's.
- :mod:`clv.quality.drift`: population stability index (PSI) of numeric columns
  between two partitions.

Great Expectations is imported inside the functions, so importing this package stays
cheap (GX takes seconds to import). Its analytics are switched off before the import.
"""

from __future__ import annotations

from clv.quality.checks import (
    MAX_ROW_RATIO,
    assert_row_count_sane,
    check_row_count,
    previous_partition,
    previous_row_count,
)
from clv.quality.data_docs import (
    DATA_DOCS_ENV,
    DATA_DOCS_KEEP,
    DATA_DOCS_SITE,
    OFFLINE_INDEX,
    data_docs_dir,
    data_docs_enabled,
    rebuild_data_docs_index,
    write_offline_index,
)
from clv.quality.drift import (
    PSI_DRIFT,
    PSI_EPSILON,
    PSI_WATCH,
    feature_drift,
    numeric_columns,
)
from clv.quality.results import (
    MESSAGE_SAMPLE_SIZE,
    SAMPLE_SIZE,
    DataQualityError,
    Failure,
    ValidationReport,
)
from clv.quality.suites import (
    assert_valid,
    expectations_dir,
    load_suite,
    suite_bounds,
    validate_dataframe,
)

__all__ = [
    "DATA_DOCS_ENV",
    "DATA_DOCS_KEEP",
    "DATA_DOCS_SITE",
    "MAX_ROW_RATIO",
    "MESSAGE_SAMPLE_SIZE",
    "OFFLINE_INDEX",
    "PSI_DRIFT",
    "PSI_EPSILON",
    "PSI_WATCH",
    "SAMPLE_SIZE",
    "DataQualityError",
    "Failure",
    "ValidationReport",
    "assert_row_count_sane",
    "assert_valid",
    "check_row_count",
    "data_docs_dir",
    "data_docs_enabled",
    "expectations_dir",
    "feature_drift",
    "load_suite",
    "numeric_columns",
    "previous_partition",
    "previous_row_count",
    "rebuild_data_docs_index",
    "suite_bounds",
    "validate_dataframe",
    "write_offline_index",
]
