"""MLflow tracking and registry: where runs go, and who is ``champion``.

Alias policy (the one place it is decided):

* a new version that fails the quality floor (see :data:`QUALITY_FLOOR`) gets no alias;
* the first version that passes becomes ``champion`` (automatic for the very first
  model, so the product can always score);
* a later version must beat the BTYD baseline (BG/NBD + Gamma-Gamma, see
  :mod:`clv.btyd`) on the primary metric on the same holdout, or it gets no alias;
* one that does is re-compared with the current champion **on the same
  evaluation data**: if it is better on the primary metric by more than
  :data:`PROMOTION_MARGIN`, it becomes ``champion``, otherwise ``challenger``;
* an ML lead can move ``champion`` by hand (``make promote`` or the MLflow UI);
  scoring always resolves the alias to an exact version and records it.

Both model families compete for the same names: the XGBoost models and the
TensorFlow ZILN network register versions of ``clv_spend`` and ``clv_churn``
alike (tag ``model_family`` = ``xgboost`` / ``tensorflow``). :func:`load_version`
returns a :class:`ScoringModel` whose ``predict`` gives the spend or the churn
probability whatever the family, so promoting either needs no code change.

Versions are taken from what ``log_model`` returns, never from "the newest
version" in the registry, so two training runs racing cannot swap each other's
models; reading the champion, scoring it and moving the alias happen under one
file lock per model name (:func:`alias_lock`), so two runs on one host cannot
both become champion from the same stale comparison.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.config import EXPERIMENT_NAME, Settings, load_settings

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Primary metric per model name suffix, and whether higher is better.
PRIMARY_METRIC = {"clv_spend": ("normalized_gini", True), "clv_churn": ("roc_auc", True)}
#: What each registered model's ``predict`` returns.
OUTPUT = {"clv_spend": "spend", "clv_churn": "churn"}
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
    key = (uri, str(s.mlflow_artifact_root))
    if key not in _EXPERIMENT_IDS:  # one look-up per store and process (each costs a query)
        _EXPERIMENT_IDS[key] = _experiment_id(s)
    return _EXPERIMENT_IDS[key]


_EXPERIMENT_IDS: dict[tuple[str, str], str] = {}


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
    name: str, version: str, new_score: float, champion_score: float | None,
    baseline_score: float | None = None,
) -> AliasDecision:
    """Apply the alias policy to scores measured on the same evaluation data.

    ``baseline_score`` is the BTYD baseline's primary metric on that data (None: no
    baseline could be fitted, the gate is skipped and the reason says so).
    """
    metric, higher_is_better = PRIMARY_METRIC[name]
    floor = QUALITY_FLOOR[name]
    sign = 1.0 if higher_is_better else -1.0
    if not np.isfinite(new_score) or sign * (new_score - floor) <= 0:
        return AliasDecision(name, version, None,
                             f"{metric}={new_score:.4f} does not pass the floor {floor}")
    vs_baseline = ("" if baseline_score is None or not np.isfinite(baseline_score)
                   else f"; BTYD baseline {baseline_score:.4f}")
    if champion_score is None:
        return AliasDecision(name, version, CHAMPION,
                             f"first version passing the floor ({metric}={new_score:.4f}"
                             f"{vs_baseline})")
    if vs_baseline and sign * (new_score - baseline_score) <= 0:
        return AliasDecision(name, version, None,
                             f"{metric}={new_score:.4f} does not beat the BTYD baseline's "
                             f"{baseline_score:.4f}")
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
    return version, load_version(name, version, settings)


class ScoringModel:
    """A registered version, whatever its family: ``predict(features)`` returns the
    expected spend (``clv_spend``) or the churn probability (``clv_churn``)."""

    def __init__(self, name: str, version: str, family: str, model: Any):
        self.name, self.version, self.family, self.model = name, version, family, model

    def predict(self, x: Any) -> np.ndarray:
        output = OUTPUT[self.name]
        if self.family == "xgboost":
            if output == "churn":
                return np.asarray(self.model.predict_proba(x)[:, 1], dtype=float)
            return np.clip(np.asarray(self.model.predict(x), dtype=float), 0.0, None)
        out = np.asarray(self.model.predict(x), dtype=float).reshape(-1)
        return np.clip(out, 0.0, 1.0) if output == "churn" else np.clip(out, 0.0, None)

    def __repr__(self) -> str:
        return f"ScoringModel({self.name} v{self.version}, {self.family})"


def model_family(client: MlflowClient, name: str, version: str) -> str:
    """The version's ``model_family`` tag (else its run's; versions from before the
    tag existed are XGBoost)."""
    mv = client.get_model_version(name, version)
    family = (mv.tags or {}).get("model_family")
    if family is None and mv.run_id:
        family = client.get_run(mv.run_id).data.tags.get("model_family")
    return family or "xgboost"


#: Loaded versions, newest last. A registered version's artifacts never change, so a
#: process that loads the same version twice (``make run`` runs every task in one
#: process: two training gates and ``score`` load the champion; a Keras model takes
#: ~5 s to load) reuses it. Keyed by tracking URI, name, version and the version's
#: run, so a re-created registry at the same place is not confused with the old one.
_LOADED: OrderedDict[tuple[str, str, str, str], ScoringModel] = OrderedDict()
_LOADED_MAX = 4


def load_version(name: str, version: str, settings: Settings | None = None) -> ScoringModel:
    """Load one exact version: XGBoost natively, every other family as MLflow pyfunc."""
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    mv = client.get_model_version(name, str(version))
    key = (mlflow.get_tracking_uri(), name, str(version), str(mv.run_id))
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    family = model_family(client, name, version)
    uri = f"models:/{name}/{version}"
    if family == "xgboost":
        model = mlflow.xgboost.load_model(uri)
    else:
        model = mlflow.pyfunc.load_model(uri)
    loaded = ScoringModel(name, str(version), family, model)
    _LOADED[key] = loaded
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)
    return loaded


@contextmanager
def alias_lock(name: str, settings: Settings | None = None) -> Iterator[None]:
    """Serialise "read the champion, compare, move the alias" for one model name.

    A file lock under the state folder: it covers every run on this host (the
    embedded SQLite registry is local too). With a remote tracking server, runs on
    different hosts are not serialised by it.
    """
    from clv.warehouse import exclusive_lock

    folder = (settings or load_settings()).state_dir / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(folder / f"{name}.alias.lock"):
        yield


def promote(name: str, version: str, alias: str = CHAMPION,
            settings: Settings | None = None) -> None:
    """Move ``alias`` to ``version`` by hand (what an ML lead does)."""
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    client.get_model_version(name, version)  # raises a clear error if it does not exist
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "alias_decision", f"{alias} set by hand")
