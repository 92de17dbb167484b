"""Loading a registered version to score with, whatever its family.

Every model family competes for the same names: XGBoost, the TensorFlow ZILN
network and the BTYD models (:mod:`clv.models.btyd_pyfunc`) register versions of
``clv_spend`` and ``clv_churn`` alike (tag ``model_family`` = ``xgboost`` /
``tensorflow`` / ``btyd``). :func:`load_version`
returns a :class:`ScoringModel` whose ``predict`` gives the spend or the churn
probability whatever the family, so promoting either needs no code change. Only
artifacts whose signed digest checks out are loaded (:mod:`.integrity`).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.config import Settings
from clv.models.registry.integrity import _check_signed, _downloaded, _who, artifact_digest
from clv.models.registry.store import (
    CHAMPION,
    OUTPUT,
    ModelIntegrityError,
    RegistryError,
    champion_version,
    configure_mlflow,
    version_horizon,
)

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient


def load_champion(name: str, settings: Settings | None = None,
                  horizon_days: int | None = None) -> tuple[str, Any]:
    """Resolve ``models:/<name>@champion`` to an exact version and load that version.

    Args:
        horizon_days: The run's horizon: a champion trained for another one is refused
            (a 180-day spend model silently scored 90-day runs, issue #21).

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
    trained_for = version_horizon(client, name, version) if horizon_days else None
    if trained_for is not None and trained_for != int(horizon_days):
        raise RegistryError(
            f"model {name!r} champion v{version} was trained for horizon_days={trained_for}, "
            f"this run asks for horizon_days={horizon_days}: its predictions would be for the "
            f"wrong period. Run the DAG with horizon_days={trained_for}, or let this run's "
            f"training and evaluate steps make a {horizon_days}-day champion (or promote "
            f"one: `make promote MODEL={name} VERSION=<n> REASON=...`)")
    return version, load_version(name, version, settings, alias=CHAMPION)


class ScoringModel:
    """A registered version, whatever its family: ``predict(features)`` returns the
    expected spend (``clv_spend``) or the churn probability (``clv_churn``)."""

    def __init__(self, name: str, version: str, family: str, model: Any,
                 level_anchor: dict[str, Any] | None = None):
        self.name, self.version, self.family, self.model = name, version, family, model
        #: {"family", "horizon_days"}: the spend total is the BTYD model's at the input's
        #: cutoff (:func:`clv.models.btyd_pyfunc.level_factor`); None: as the model predicts.
        self.level_anchor = level_anchor

    def input_columns(self) -> list[str] | None:
        """The columns the version was trained on (None: unknown, take ``x`` as it is)."""
        if self.family == "xgboost":
            booster = getattr(self.model, "get_booster", None)
            names = booster().feature_names if booster else None
            return list(names) if names else None
        schema = getattr(getattr(self.model, "metadata", None), "get_input_schema", None)
        names = schema().input_names() if schema and schema() is not None else None
        return [str(n) for n in names] if names else None

    def predict(self, x: Any, anchored: bool = True) -> np.ndarray:
        """The spend or churn probability of each row of ``x``; ``anchored=False``: the
        spend before its level anchor (a factor over all of ``x``: scoring on the
        executors applies it on the driver, :meth:`apply_level_anchor`)."""
        output = OUTPUT[self.name]
        columns = self.input_columns() if hasattr(x, "reindex") else None
        if columns is not None and list(x.columns) != columns:
            # a version sees its own inputs: an optional source it was trained with and
            # that is absent now reads as missing; one it never saw is left out
            x = x.reindex(columns=columns)
        if self.family == "xgboost":
            if output == "churn":
                return np.asarray(self.model.predict_proba(x)[:, 1], dtype=float)
            pred = np.clip(np.asarray(self.model.predict(x), dtype=float), 0.0, None)
            return self.apply_level_anchor(x, pred) if anchored else pred
        out = np.asarray(self.model.predict(x), dtype=float).reshape(-1)
        return np.clip(out, 0.0, 1.0) if output == "churn" else np.clip(out, 0.0, None)

    def apply_level_anchor(self, x: Any, pred: np.ndarray) -> np.ndarray:
        """``pred`` (this version's unanchored spend on all of ``x``) times its level
        anchor's factor; unchanged for a version without one."""
        if not self.level_anchor:
            return pred
        from clv.models import btyd_pyfunc

        return pred * btyd_pyfunc.level_factor(x, pred, self.level_anchor["horizon_days"],
                                               self.level_anchor["family"])

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
#: Held around each use of ``_LOADED``: under ``airflow dags test`` a head-start thread
#: loads versions beside the tasks' thread (:mod:`clv.pipeline.head_start`).
_LOADED_LOCK = threading.Lock()


def load_version(name: str, version: str, settings: Settings | None = None,
                 alias: str | None = None) -> ScoringModel:
    """Load one exact version: XGBoost natively, every other family as MLflow pyfunc.

    Only a version whose artifacts match the digest the pipeline signed at registration
    is loaded, from the copy that was checked (``alias``: named in the error).

    Raises:
        ModelIntegrityError: no signed digest, or the artifacts changed since.
    """
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    version = str(version)
    mv = client.get_model_version(name, version)
    key = (mlflow.get_tracking_uri(), name, version, str(mv.run_id))
    with _LOADED_LOCK:
        if key in _LOADED:
            _LOADED.move_to_end(key)
            return _LOADED[key]
    family = model_family(client, name, version)
    recorded = _check_signed(name, version, alias, dict(mv.tags or {}), settings)
    with _downloaded(name, version, settings) as folder:
        found = artifact_digest(folder)
        if found != recorded:
            raise ModelIntegrityError(
                f"{_who(name, version, alias)}: its artifacts do not match the digest "
                f"recorded at registration (sha256 {recorded[:16]}..., found "
                f"{found[:16]}...): they were changed after registration; refusing to load")
        loader = mlflow.xgboost if family == "xgboost" else mlflow.pyfunc
        model = loader.load_model(str(folder))  # the checked copy, not the store's files
    anchor = (mv.tags or {}).get("level_anchor")
    loaded = ScoringModel(name, str(version), family, model,
                          json.loads(anchor) if anchor else None)
    with _LOADED_LOCK:
        _LOADED[key] = loaded
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)
    return loaded
