"""A newly registered version: its tags (family, device, horizon, feature set, Airflow
run), its signed artifact digest, its model card, and the :class:`TrainResult` returned."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from clv.data import lineage
from clv.features import FEATURE_COLUMNS
from clv.models import registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """One trained and registered model version."""

    name: str
    version: str
    run_id: str
    device: str
    metrics: dict[str, float]
    alias: str | None
    reason: str
    family: str = "xgboost"


def _run_tags(family: str, device: str, context: dict[str, Any]) -> dict[str, str]:
    """Tags of a training run and (less the ``mlflow.`` ones) of its versions: family,
    device, horizon, feature set and the links back to the Airflow run."""
    return {"model_family": family, "device": device,
            "horizon_days": str(int(context["horizon_days"])),
            "feature_set": lineage.feature_set(FEATURE_COLUMNS),
            **lineage.run_tags(context["run_id"], context["as_of_date"]),
            # where an XGBoost fit ran: ``local`` or ``spark:<master> x<num_workers>``
            **({"trained_on": context["trained_on"]} if context.get("trained_on") else {})}


def _tag_version(name: str, version: str, family: str, device: str, mlflow_run_id: str,
                 model_report: dict[str, float], context: dict[str, Any]) -> TrainResult:
    """Tag a new version; its alias is decided later by :func:`evaluate_models`, when
    every family of the run has been scored on the same holdout."""
    import mlflow

    client = mlflow.MlflowClient()
    for key, value in _run_tags(family, device, context).items():
        if not key.startswith("mlflow."):  # the run's description is not the version's
            client.set_model_version_tag(name, version, key, value)
    registry.record_artifact_digest(name, version)  # scoring loads only these artifacts
    reason = "registered; the alias is decided by the evaluate step"
    client.set_model_version_tag(name, version, "alias_decision", reason)
    _describe(client, name, version, family, model_report, mlflow_run_id, context)
    log.info("%s v%s (%s) on %s: %s", name, version, family, device, model_report)
    return TrainResult(name, version, mlflow_run_id, device, model_report, None, reason,
                       family)


def _describe(client: Any, name: str, version: str, family: str,
              model_report: dict[str, float], mlflow_run_id: str,
              context: dict[str, Any]) -> None:
    """The version's model card and the registered model's description (#21)."""
    predicts = registry.PREDICTS[name]
    card = lineage.model_card(name, version, family, predicts, context["as_of_date"],
                              int(context["horizon_days"]), FEATURE_COLUMNS,
                              context["run_id"], model_report,
                              client.get_run(mlflow_run_id).data.metrics)
    client.update_model_version(name, version, description=card)
    client.update_registered_model(
        name, description=lineage.registered_model_description(name, predicts))


def _model_requirements(*packages: str) -> list[str]:
    """Exact versions a model needs to load: given, so MLflow skips its slow inference."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in (*packages, "numpy", "pandas")]
