"""Which device the models train on: the GPU when one is usable, else the CPU.

``CLV_DEVICE=cpu`` or ``CLV_DEVICE=cuda`` overrides the detection. The chosen
device is logged to MLflow with every training run.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil

log = logging.getLogger(__name__)


@functools.cache
def xgboost_device() -> str:
    """``"cuda"`` when XGBoost can train on a GPU here, otherwise ``"cpu"``."""
    forced = os.environ.get("CLV_DEVICE", "").strip().lower()
    if forced in ("cpu", "cuda"):
        return forced
    if shutil.which("nvidia-smi") is None:
        return "cpu"
    try:  # a GPU exists: prove XGBoost can use it with a tiny fit
        import numpy as np
        import xgboost as xgb

        x = np.arange(20, dtype=float).reshape(10, 2)
        xgb.train({"device": "cuda", "tree_method": "hist"}, xgb.DMatrix(x, label=x[:, 0]), 1)
        return "cuda"
    except Exception as exc:  # noqa: BLE001 - any failure means: train on the CPU
        log.warning("a GPU is present but XGBoost cannot use it (%s); training on the CPU", exc)
        return "cpu"
