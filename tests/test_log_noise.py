"""Third-party noise is filtered out of task logs; everything else gets through (#21)."""

from __future__ import annotations

import logging
import subprocess
import sys

from clv.log_noise import ThirdPartyNoise


def _record(name: str, level: int, msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_the_filter_drops_the_noise_and_keeps_the_rest():
    noise = ThirdPartyNoise()
    assert not noise.filter(_record("great_expectations._docs_decorators", logging.INFO,
                                    "Skipping registering function %s because it is a "
                                    "closure", "DataSourceManager.x"))
    assert not noise.filter(_record("great_expectations.expectations.expectation",
                                    logging.INFO, '_get_default_value called with key '
                                    '"row_condition", but it is not a known field'))
    assert not noise.filter(_record("mlflow.models.signature", logging.INFO,
                                    "Unsupported type hint: %s, skipping schema inference",
                                    "pd.DataFrame"))
    # a warning from the same logger, other messages, other loggers: kept
    assert noise.filter(_record("great_expectations._docs_decorators", logging.WARNING,
                                "Skipping registering function f"))
    assert noise.filter(_record("great_expectations._docs_decorators", logging.INFO,
                                "something else"))
    assert noise.filter(_record("clv.pipeline", logging.INFO, "Skipping registering function"))


def test_importing_clv_then_gx_logs_no_registering_noise():
    """A fresh process with INFO logging: importing GX after clv (what every task does)
    leaves none of its ~130 "Skipping registering function" lines."""
    code = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
            "import clv; import great_expectations; "
            "logging.getLogger('clv.test').info('kept')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    assert "kept" in out
    assert "Skipping registering function" not in out
