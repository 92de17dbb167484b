"""MLflow tracking and registry: where runs go, and who is ``champion``.

Alias policy (the one place it is decided):

* a new version that fails the quality floor (see :data:`QUALITY_FLOOR`) gets no alias;
* the first version that passes becomes ``champion``;
* a later version is re-compared with the current champion **on the same
  evaluation data**: if it is better on the primary metric by more than
  :data:`PROMOTION_MARGIN`, it becomes ``champion``, otherwise ``challenger``;
* an ML lead can move ``champion`` by hand (``make promote`` or the MLflow UI);
  scoring always resolves the alias to an exact version and records it.

Versions are taken from what ``log_model`` returns, never from "the newest
version" in the registry, so two training runs racing cannot swap each other's
models.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clv.config import EXPERIMENT_NAME, Settings, load_settings

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Primary metric per model name suffix, and whether higher is better.
PRIMARY_METRIC = {"clv_spend": ("normalized_gini", True), "clv_churn": ("roc_auc", True)}
#: Minimum primary metric a version needs to get any alias (better than random).
QUALITY_FLOOR = {
    "clv_spend": float(os.environ.get("CLV_MIN_GINI", "0.0")),
    "clv_churn": float(os.environ.get("CLV_MIN_AUC", "0.5")),
}
PROMOTION_MARGIN = float(os.environ.get("CLV_PROMOTION_MARGIN", "0.0"))


class RegistryError(RuntimeError):
    """The registry has no usable model for a request."""


def configure_mlflow(settings: Settings | None = None) -> str:
    """Point MLflow at the configured store and return the experiment id.

    The default store is a SQLite file (the registry needs a database) with an
    artifact folder beside it, both under ``.state/mlflow``.
    """
    import mlflow

    s = settings or load_settings()
    uri = s.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri[len("sqlite:///"):]), exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return _experiment_id(s)


def _experiment_id(s: Settings) -> str:
    from mlflow.exceptions import MlflowException

    import mlflow

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT_NAME)
    if exp is not None:
        return exp.experiment_id
    s.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    try:
        return client.create_experiment(
            EXPERIMENT_NAME, artifact_location=s.mlflow_artifact_root.resolve().as_uri()
        )
    except MlflowException:  # another process created it first
        return client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version the ``champion`` alias points at, or None when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION).version
    except MlflowException:
        return None


@dataclass(frozen=True)
class AliasDecision:
    """What the policy did with a new version, and why."""

    name: str
    version: str
    alias: str | None
    reason: str


def decide_alias(
    name: str, version: str, new_score: float, champion_score: float | None
) -> AliasDecision:
    """Apply the alias policy to scores measured on the same evaluation data."""
    metric, higher_is_better = PRIMARY_METRIC[name]
    floor = QUALITY_FLOOR[name]
    sign = 1.0 if higher_is_better else -1.0
    if sign * (new_score - floor) <= 0:
        return AliasDecision(name, version, None,
                             f"{metric}={new_score:.4f} does not pass the floor {floor}")
    if champion_score is None:
        return AliasDecision(name, version, CHAMPION,
                             f"first version passing the floor ({metric}={new_score:.4f})")
    if sign * (new_score - champion_score) > PROMOTION_MARGIN:
        return AliasDecision(name, version, CHAMPION,
                             f"{metric}={new_score:.4f} beats the champion's "
                             f"{champion_score:.4f} by more than {PROMOTION_MARGIN}")
    return AliasDecision(name, version, CHALLENGER,
                         f"{metric}={new_score:.4f} does not beat the champion's "
                         f"{champion_score:.4f} by more than {PROMOTION_MARGIN}")


def apply_alias(client: MlflowClient, decision: AliasDecision) -> None:
    """Set the decided alias and record the reason on the version."""
    client.set_model_version_tag(decision.name, decision.version, "alias_decision",
                                 decision.reason)
    if decision.alias is not None:
        client.set_registered_model_alias(decision.name, decision.alias, decision.version)
    log.info("%s v%s -> %s: %s", decision.name, decision.version, decision.alias,
             decision.reason)


def load_champion(name: str, settings: Settings | None = None) -> tuple[str, Any]:
    """Resolve ``models:/<name>@champion`` to an exact version and load that version.

    Returns:
        (version, model). Loading by version (not by alias) means a promotion
        that happens while scoring runs cannot mix two models in one output.
    """
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    version = champion_version(client, name)
    if version is None:
        raise RegistryError(
            f"model {name!r} has no '{CHAMPION}' alias in the registry at "
            f"{mlflow.get_tracking_uri()}: train a model first, or promote a version with "
            f"`make promote MODEL={name} VERSION=<n>`"
        )
    return version, mlflow.xgboost.load_model(f"models:/{name}/{version}")


def promote(name: str, version: str, alias: str = CHAMPION,
            settings: Settings | None = None) -> None:
    """Move ``alias`` to ``version`` by hand (what an ML lead does)."""
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    client.get_model_version(name, version)  # raises a clear error if it does not exist
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "alias_decision", f"{alias} set by hand")
