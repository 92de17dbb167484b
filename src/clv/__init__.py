"""CLV and churn: features, models, scores, segments and budget allocation.

Heavy libraries (pyspark, xgboost, mlflow, great_expectations) are imported inside
the functions that need them, so importing this package (and the DAG files that
use it) stays cheap.
"""

__version__ = "0.1.0"

import os as _os

# OpenMP threads (XGBoost's) wait for work by sleeping, not by spinning. With the
# default (spinning), two processes that each start a thread per core make every one
# of their barriers burn the other's CPU: make up's LocalExecutor runs the four
# training tasks at once. XGBoost fits of 100,000 rows x 300 trees on the quiet 2-core
# machine: alone 1.6 s spinning vs 2.1 s passive; four at once 33-36 s vs 5.4-6.8 s each
# (docs/DECISIONS.md, #22). Read when libgomp loads: before xgboost is imported.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Before any task imports Great Expectations or MLflow: their INFO noise (about 200
# lines of a failed task's log) never reaches the task logs. Two getLogger calls, no I/O.
from clv import log_noise as _log_noise  # noqa: E402

_log_noise.install()

# Model versions pickled before the stage folders name their classes by the old module
# paths (clv.ziln, clv.btyd_models, ...): those names import as the new modules.
from clv import legacy_modules as _legacy_modules  # noqa: E402

_legacy_modules.install()
