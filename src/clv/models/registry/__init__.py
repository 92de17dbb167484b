"""MLflow tracking and registry: where runs go, and who is ``champion``.

Training tasks only register versions; the ``evaluate`` step applies the champion rule
and moves the aliases; scoring loads one exact, signed version.

Submodules:

* :mod:`.store` — the MLflow store and experiment, alias and output names, look-ups;
* :mod:`.integrity` — artifact digests and their signatures (:class:`ModelIntegrityError`);
* :mod:`.policy` — the champion rule, pure: :func:`decide_aliases` and its thresholds;
* :mod:`.aliases` — moving the aliases and their trail (decisions, hand promotions, lock);
* :mod:`.loading` — loading a version to score with (:class:`ScoringModel`).
"""

from clv.models.registry.aliases import alias_lock, apply_aliases, promote
from clv.models.registry.integrity import (
    DIGEST_TAG,
    SIGNATURE_TAG,
    SIGNING_KEY_FILE,
    artifact_digest,
    record_artifact_digest,
    signing_key,
)
from clv.models.registry.loading import (
    _LOADED,
    ScoringModel,
    load_champion,
    load_version,
    model_family,
)
from clv.models.registry.policy import (
    BRIER_RATIO,
    DECILE_MAPE_RATIO,
    MAX_AGGREGATE_ERROR,
    PRIMARY_METRIC,
    PROMOTION_MARGIN,
    QUALITY_FLOOR,
    AliasDecision,
    Assessment,
    assess,
    decide_aliases,
    selection_rule,
)
from clv.models.registry.store import (
    CHALLENGER,
    CHAMPION,
    OUTPUT,
    PREDICTS,
    ModelIntegrityError,
    RegistryError,
    champion_version,
    configure_mlflow,
    uri_is_server,
    version_horizon,
)

__all__ = [
    "BRIER_RATIO", "CHALLENGER", "CHAMPION", "DECILE_MAPE_RATIO", "DIGEST_TAG",
    "MAX_AGGREGATE_ERROR", "OUTPUT", "PREDICTS", "PRIMARY_METRIC", "PROMOTION_MARGIN",
    "QUALITY_FLOOR", "SIGNATURE_TAG", "SIGNING_KEY_FILE", "_LOADED",
    "AliasDecision", "Assessment", "ModelIntegrityError", "RegistryError", "ScoringModel",
    "alias_lock", "apply_aliases", "artifact_digest", "assess", "champion_version",
    "configure_mlflow", "decide_aliases", "load_champion", "load_version", "model_family",
    "promote", "record_artifact_digest", "selection_rule", "signing_key", "uri_is_server",
    "version_horizon",
]
