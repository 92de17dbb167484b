"""A new version's metrics next to the baselines', and its PNG charts (deciles and gain,
or calibration), logged to the active MLflow run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from clv.models import metrics, registry
from clv.models.training.baselines import _baseline_metrics, report


def _charts(name: str, label: str, y: np.ndarray, pred: np.ndarray,
            baselines: dict[str, np.ndarray], folder: Path) -> list[str]:
    """PNG charts of one prediction next to the baselines: deciles + gain, or calibration."""
    both = {label: pred, **baselines}
    if registry.OUTPUT[name] == "spend":
        return [metrics.plot_deciles(y, pred, folder / f"{name}_deciles.png",
                                     f"{label}: mean predicted vs actual per decile"),
                metrics.plot_gain(y, both, folder / f"{name}_gain.png",
                                  f"{name}: gain (Lorenz) chart")]
    return [metrics.plot_calibration(y, both, folder / f"{name}_calibration.png",
                                     f"{label}: churn calibration"),
            metrics.plot_gain(y, both, folder / f"{name}_gain.png",
                              f"{name}: cumulative churners captured")]


def _log_evaluation(name: str, label: str, y: np.ndarray, pred: np.ndarray,
                    baselines: dict[str, np.ndarray]) -> dict[str, float]:
    """Metrics (model and baselines) and charts into the active MLflow run."""
    import mlflow

    model_report = report(name, y, pred)
    flat = {f"baseline_{b}_{k}": v
            for b, rep in _baseline_metrics(name, y, baselines).items() for k, v in rep.items()}
    mlflow.log_metrics({**model_report, **flat, "n_eval_customers": float(len(y))})
    with tempfile.TemporaryDirectory() as tmp:
        for path in _charts(name, label, y, pred, baselines, Path(tmp)):
            mlflow.log_artifact(path, artifact_path="evaluation")
    return model_report
