"""Past one machine: XGBoost fitted and every champion scored on the Spark executors.

:mod:`.placement` decides where (``CLV_DISTRIBUTED``, the Spark master, the rows);
:mod:`.training` fits XGBoost with ``xgboost.spark`` into the driver's estimator type;
:mod:`.scoring` predicts with the champions inside ``mapInPandas``. The single-node
path (pandas on the driver) stays the default on a ``local`` master.
"""

from clv.models.distributed.placement import LOCAL, Placement, choose, distributed_mode
from clv.models.distributed.scoring import predict_on_executors
from clv.models.distributed.training import FIT_JOB_GROUP, SparkFit, fit_xgboost

__all__ = ["FIT_JOB_GROUP", "LOCAL", "Placement", "SparkFit", "choose", "distributed_mode",
           "fit_xgboost", "predict_on_executors"]
