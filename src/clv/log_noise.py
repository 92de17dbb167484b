"""Third-party log noise kept out of task logs.

A failed task's log was about 200 of 221 lines of Great Expectations saying, at INFO,
that it skipped registering its own functions for its docs (issue #21); MLflow adds a
line per pyfunc about type hints it cannot read. :class:`ThirdPartyNoise` drops those
records, by logger and message start, and only below WARNING: a warning or an error
from the same libraries always gets through.

:func:`install` puts the filter on the loggers that emit them. A filter on a logger
sees the records created on it, so it must be in place before the library logs: the
package installs it when ``clv`` is imported, before any task imports GX or MLflow.
"""

from __future__ import annotations

import logging

#: Logger name -> message starts dropped below WARNING.
NOISE: dict[str, tuple[str, ...]] = {
    "great_expectations._docs_decorators": ("Skipping registering function",),
    "great_expectations.expectations.expectation": ("_get_default_value called with key",),
    "great_expectations.datasource.fluent.config": ("Loading 'datasources'",),
    "mlflow.models.signature": ("Unsupported type hint",),
}


class ThirdPartyNoise(logging.Filter):
    """Drops the :data:`NOISE` records below WARNING; keeps every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        starts = NOISE.get(record.name)
        return not (starts and str(record.msg).startswith(starts))


def install() -> None:
    """Put one :class:`ThirdPartyNoise` on each noisy logger (idempotent)."""
    for name in NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ThirdPartyNoise) for f in logger.filters):
            logger.addFilter(ThirdPartyNoise())
