"""MLflow tracking and registry: where runs go, and who is ``champion``.

Alias policy (the one place it is decided, :func:`decide_aliases`): training tasks
only register versions; the ``evaluate`` step scores every version of the run, the
current ``champion`` and ``challenger`` and the baselines on one holdout, then:

* a version **qualifies** when its primary metric (normalized Gini for ``clv_spend``,
  ROC AUC for ``clv_churn``) passes the floor (:data:`QUALITY_FLOOR`) and beats every
  baseline of another family (rank), **and** its level is sound: for ``clv_spend``
  ``|aggregate_error| <=`` :data:`MAX_AGGREGATE_ERROR` and ``decile_mape <=``
  :data:`DECILE_MAPE_RATIO` x the best baseline's; for ``clv_churn`` Brier ``<=``
  :data:`BRIER_RATIO` x the best probability baseline's (BG/NBD);
* the champion keeps the alias if it qualifies, unless a qualifying version beats it
  on the primary metric by more than :data:`PROMOTION_MARGIN`; a champion that does
  not qualify on this holdout loses it to the best qualifying version;
* when nothing qualifies the champion stays; with no champion yet, the version with
  the best level among those passing the floor becomes champion (the reason says
  so), so the very first run can score;
* the best other qualifying version is ``challenger``; the rest get no alias;
* every decision's reason, with the figures, is the version's ``alias_decision`` tag
  and the rule with its bounds its ``alias_rule`` tag;
* an ML lead can move ``champion`` by hand (``make promote`` or the MLflow UI);
  scoring always resolves the alias to an exact version and records it.

Every model family competes for the same names: XGBoost, the TensorFlow ZILN
network and the BTYD models (:mod:`clv.models.btyd_pyfunc`) register versions of
``clv_spend`` and ``clv_churn`` alike (tag ``model_family`` = ``xgboost`` /
``tensorflow`` / ``btyd``). :func:`load_version`
returns a :class:`ScoringModel` whose ``predict`` gives the spend or the churn
probability whatever the family, so promoting either needs no code change.

Model artifacts are code: XGBoost's sklearn wrapper, the ZILN and BTYD pyfuncs are
unpickled when loaded. At registration the pipeline records a SHA-256 digest of the
version's artifacts (tag ``artifact_sha256``) with an HMAC of it under the pipeline's
signing key (tag ``artifact_signature``; :func:`record_artifact_digest`).
:func:`load_version` downloads the artifacts, checks both, and loads the checked copy;
a version whose files changed since, or that the pipeline never signed (registered by
hand, or a tag written by someone without the key), is refused with a
:class:`ModelIntegrityError` naming the model, version and alias. An ML lead vouches for
such a version with ``clv sign-model``.

Versions are taken from what ``log_model`` returns, never from "the newest
version" in the registry, so two training runs racing cannot swap each other's
models; reading the champion, scoring it and moving the alias happen under one
file lock per model name (:func:`alias_lock`), so two runs on one host cannot
both become champion from the same stale comparison.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.config import EXPERIMENT_NAME, Settings, load_settings, private_dir

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Primary metric per model name suffix, and whether higher is better.
PRIMARY_METRIC = {"clv_spend": ("normalized_gini", True), "clv_churn": ("roc_auc", True)}
#: What each registered model's ``predict`` returns.
OUTPUT = {"clv_spend": "spend", "clv_churn": "churn"}
#: The same in words, for model cards and descriptions.
PREDICTS = {"clv_spend": "expected spend", "clv_churn": "probability of no purchase"}
#: Minimum primary metric a version needs to get any alias (better than random).
QUALITY_FLOOR = {
    "clv_spend": float(os.environ.get("CLV_MIN_GINI", "0.0")),
    "clv_churn": float(os.environ.get("CLV_MIN_AUC", "0.5")),
}
PROMOTION_MARGIN = float(os.environ.get("CLV_PROMOTION_MARGIN", "0.0"))
#: Level rule for ``clv_spend``: the predicted total within this share of the actual one
#: (XGBoost v1 won on Gini by 0.0007 at +44% on CDNOW's holdout, issue #15) ...
MAX_AGGREGATE_ERROR = float(os.environ.get("CLV_MAX_AGGREGATE_ERROR", "0.15"))
#: ... and a decile MAPE at most this multiple of the best baseline's.
DECILE_MAPE_RATIO = float(os.environ.get("CLV_DECILE_MAPE_RATIO", "1.2"))
#: Level rule for ``clv_churn``: Brier at most this multiple of the best probability
#: baseline's (BG/NBD's P(no purchase)). Not 1.0: on CDNOW's make-run holdout XGBoost's
#: 0.1317 against BG/NBD's 0.1310 would fail by 0.5% while its AUC is 0.804 vs 0.788, and
#: with nothing qualifying the incumbent would stay whatever came later.
BRIER_RATIO = float(os.environ.get("CLV_BRIER_RATIO", "1.05"))


class RegistryError(RuntimeError):
    """The registry has no usable model for a request."""


class ModelIntegrityError(RegistryError):
    """A version's artifacts are not the ones the pipeline registered (or never signed)."""


#: Version tags recorded at registration: the artifacts' digest and its HMAC.
DIGEST_TAG = "artifact_sha256"
SIGNATURE_TAG = "artifact_signature"
#: The pipeline's signing key: ``CLV_MODEL_SIGNING_KEY`` (text), else the file named by
#: ``CLV_MODEL_SIGNING_KEY_FILE``, else ``<state>/mlflow/model_signing.key`` (generated
#: once, 0600). Whoever holds it can vouch for artifacts; keep it with the pipeline.
SIGNING_KEY_FILE = "model_signing.key"


def signing_key(settings: Settings | None = None) -> bytes:
    """The key that signs artifact digests (see :data:`SIGNING_KEY_FILE`)."""
    import secrets

    if os.environ.get("CLV_MODEL_SIGNING_KEY"):
        return os.environ["CLV_MODEL_SIGNING_KEY"].encode()
    given = os.environ.get("CLV_MODEL_SIGNING_KEY_FILE")
    path = Path(given) if given else \
        private_dir((settings or load_settings()).state_dir / "mlflow") / SIGNING_KEY_FILE
    if not given and not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
        except FileExistsError:  # another process made it first
            pass
    key = path.read_text().strip()
    if not key:
        raise ModelIntegrityError(f"model signing key file {path} is empty")
    return key.encode()


def artifact_digest(folder: Path) -> str:
    """SHA-256 over every file under ``folder``: its relative path and its content's
    SHA-256, in path order (a renamed, added or removed file changes it too)."""
    total = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        content = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                content.update(block)
        total.update(path.relative_to(folder).as_posix().encode() + b"\0"
                     + content.digest())
    return total.hexdigest()


def _signature(key: bytes, name: str, version: str, digest: str) -> str:
    return hmac.new(key, f"{name}\0{version}\0{digest}".encode(), hashlib.sha256).hexdigest()


@contextmanager
def _downloaded(name: str, version: str, settings: Settings | None) -> Iterator[Path]:
    """The version's artifacts copied into a private scratch folder, removed afterwards."""
    import mlflow

    scratch = private_dir((settings or load_settings()).state_dir / "mlflow" / "verify")
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-{version}-", dir=scratch))
    try:
        yield Path(mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(folder)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def record_artifact_digest(name: str, version: str, settings: Settings | None = None) -> str:
    """Tag a version with its artifacts' digest and the pipeline's signature of it
    (what training does at registration; ``clv sign-model`` for a vouched version)."""
    import mlflow

    configure_mlflow(settings)
    with _downloaded(name, str(version), settings) as folder:
        digest = artifact_digest(folder)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(name, str(version), DIGEST_TAG, digest)
    client.set_model_version_tag(name, str(version), SIGNATURE_TAG,
                                 _signature(signing_key(settings), name, str(version), digest))
    return digest


def _who(name: str, version: str, alias: str | None) -> str:
    return f"model {name!r} version {version}" + (f" (alias '{alias}')" if alias else "")


def _check_signed(name: str, version: str, alias: str | None, tags: dict[str, str],
                  settings: Settings | None) -> str:
    """The recorded digest, once its signature checks out."""
    digest, signature = tags.get(DIGEST_TAG), tags.get(SIGNATURE_TAG)
    fix = (f"retrain it, or after reviewing its artifacts vouch for it with "
           f"`clv sign-model --model {name} --version {version}`")
    if not digest or not signature:
        raise ModelIntegrityError(
            f"{_who(name, version, alias)} has no artifact digest recorded by the pipeline "
            f"(tags {DIGEST_TAG}/{SIGNATURE_TAG}); refusing to load it, as loading runs code "
            f"from its artifacts: {fix}")
    if not hmac.compare_digest(signature, _signature(signing_key(settings), name, version,
                                                     digest)):
        raise ModelIntegrityError(
            f"{_who(name, version, alias)}: its {DIGEST_TAG} tag was not recorded by this "
            f"pipeline (the signature does not match the pipeline's signing key); refusing "
            f"to load it: {fix}")
    return digest


def configure_mlflow(settings: Settings | None = None) -> str:
    """Point MLflow at the configured store and return the experiment id.

    The default store is a SQLite file (the registry needs a database) with an
    artifact folder beside it, both under ``.state/mlflow``.
    """
    import mlflow

    s = settings or load_settings()
    uri = s.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        private_dir(Path(os.path.dirname(uri[len("sqlite:///"):])))
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    key = (uri, str(s.mlflow_artifact_root))
    if key not in _EXPERIMENT_IDS:  # one look-up per store and process (each costs a query)
        _EXPERIMENT_IDS[key] = _experiment_id(s)
    return _EXPERIMENT_IDS[key]


_EXPERIMENT_IDS: dict[tuple[str, str], str] = {}


def uri_is_server(tracking_uri: str) -> bool:
    """True for a tracking server (``http(s)://``), False for a local store."""
    return tracking_uri.split("://", 1)[0].lower() in ("http", "https")


def _experiment_id(s: Settings) -> str:
    from mlflow.exceptions import MlflowException

    import mlflow
    from clv.data.lineage import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT_NAME)
    if exp is None:
        # A tracking server (production) decides where artifacts go: it proxies them
        # (mlflow-artifacts:/), so they pass its auth; only a local store gets our folder.
        served = uri_is_server(s.mlflow_tracking_uri)
        if not served:
            private_dir(s.mlflow_artifact_root)
        try:
            return client.create_experiment(
                EXPERIMENT_NAME,
                artifact_location=None if served else s.mlflow_artifact_root.resolve().as_uri(),
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:  # another process created it first
            exp = client.get_experiment_by_name(EXPERIMENT_NAME)
    # Untagged, MLflow 3's UI guesses the kind and opened this one in its GenAI view.
    if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version the ``champion`` alias points at, or None when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION).version
    except MlflowException:
        return None


@dataclass(frozen=True)
class AliasDecision:
    """What the policy did with a version, and why (with the figures)."""

    name: str
    version: str
    alias: str | None
    reason: str


def selection_rule(name: str) -> dict[str, Any]:
    """The champion rule for ``name`` and its bounds, as recorded on every decided version."""
    metric, higher_is_better = PRIMARY_METRIC[name]
    rule: dict[str, Any] = {
        "primary_metric": metric, "higher_is_better": higher_is_better,
        "floor": QUALITY_FLOOR[name], "promotion_margin": PROMOTION_MARGIN,
        "rank": f"{metric} beats every baseline of another family on the same holdout",
    }
    if OUTPUT[name] == "spend":
        rule.update(level=f"|aggregate_error| <= {MAX_AGGREGATE_ERROR} and decile_mape <= "
                          f"{DECILE_MAPE_RATIO} x the best baseline's",
                    max_abs_aggregate_error=MAX_AGGREGATE_ERROR,
                    decile_mape_ratio=DECILE_MAPE_RATIO)
    else:
        rule.update(level=f"brier <= {BRIER_RATIO} x the best probability baseline's "
                          "(BTYD; the naive recency rank is no probability)",
                    brier_ratio=BRIER_RATIO)
    return rule


@dataclass(frozen=True)
class _Scored:
    """One model's metrics on the holdout: a registered version or a baseline."""

    model: str
    version: str
    family: str
    metrics: dict[str, float]

    def get(self, metric: str) -> float:
        value = self.metrics.get(metric, float("nan"))
        return float(value) if value is not None else float("nan")


@dataclass(frozen=True)
class Assessment:
    """A version judged by the rule: the figures it was judged on and what it fails."""

    version: str
    family: str
    primary: float
    passes_floor: bool
    failures: tuple[str, ...]
    figures: str
    level_gap: float  # smaller is better: |aggregate_error| (spend) or Brier (churn)
    passes_rank: bool = True  # beats the best baseline of another family

    @property
    def qualifies(self) -> bool:
        return self.passes_floor and not self.failures


def _scored_models(table: pd.DataFrame, name: str) -> tuple[list[_Scored], list[_Scored]]:
    """(versions of ``name``, baselines) from metric rows, versions in registration order."""
    versions, baselines = [], []
    for (model, version, family), rows in table.groupby(
            ["model_name", "model_version", "model_family"], sort=False, dropna=False):
        scored = _Scored(str(model), str(version), str(family),
                         dict(zip(rows["metric"], rows["value"], strict=True)))
        if scored.version == "baseline":
            baselines.append(scored)
        elif scored.model == name:
            versions.append(scored)
    return sorted(versions, key=lambda v: int(v.version)), baselines


def _best(models: list[_Scored], metric: str, sign: float) -> _Scored | None:
    finite = [m for m in models if np.isfinite(m.get(metric))]
    return max(finite, key=lambda m: sign * m.get(metric), default=None)


def _level_checks(name: str, v: _Scored, baselines: list[_Scored]
                  ) -> tuple[list[str], list[str], float]:
    """(figures, failures, level gap) of the level rule: spend totals and deciles, or Brier."""
    figures, failures = [], []
    if OUTPUT[name] == "spend":
        agg, mape = v.get("aggregate_error"), v.get("decile_mape")
        figures.append(f"aggregate_error={agg:+.3f} (bound +/-{MAX_AGGREGATE_ERROR})")
        if not abs(agg) <= MAX_AGGREGATE_ERROR:
            failures.append(f"|aggregate_error| {abs(agg):.3f} > {MAX_AGGREGATE_ERROR}")
        best = _best(baselines, "decile_mape", -1.0)
        if best is not None:
            bound = DECILE_MAPE_RATIO * best.get("decile_mape")
            figures.append(f"decile_mape={mape:.3f} (bound {DECILE_MAPE_RATIO} x "
                           f"{best.model}'s {best.get('decile_mape'):.3f} = {bound:.3f})")
            if not mape <= bound:
                failures.append(f"decile_mape {mape:.3f} > {bound:.3f}")
        return figures, failures, abs(agg) if np.isfinite(agg) else np.inf
    score = v.get("brier")
    best = _best([b for b in baselines if b.family != "naive"], "brier", -1.0)
    if best is None:
        figures.append(f"brier={score:.4f} (no probability baseline: no level bound)")
    else:
        bound = BRIER_RATIO * best.get("brier")
        figures.append(f"brier={score:.4f} (bound {BRIER_RATIO} x {best.model}'s "
                       f"{best.get('brier'):.4f} = {bound:.4f})")
        if not score <= bound:
            failures.append(f"brier {score:.4f} > {bound:.4f}")
    return figures, failures, score if np.isfinite(score) else np.inf


def assess(name: str, v: _Scored, baselines: list[_Scored]) -> Assessment:
    """Judge one version: the quality floor, the rank gate, then the level rule.

    The rank gate skips baselines of the version's own family: a BTYD version against
    the BTYD baseline is the same model fitted at another cutoff, not a rival.
    """
    metric, higher_is_better = PRIMARY_METRIC[name]
    sign, floor = (1.0 if higher_is_better else -1.0), QUALITY_FLOOR[name]
    primary = v.get(metric)
    passes_floor = bool(np.isfinite(primary) and sign * (primary - floor) > 0)
    failures = [] if passes_floor else [f"{metric}={primary:.4f} does not pass the floor {floor}"]
    figures = [f"{metric}={primary:.4f}"]
    rival = _best([b for b in baselines if b.family != v.family], metric, sign)
    passes_rank = True
    if rival is not None:
        figures[0] += f" (best baseline {rival.model} {rival.get(metric):.4f})"
        if not sign * (primary - rival.get(metric)) > 0:
            passes_rank = False
            failures.append(f"{metric}={primary:.4f} does not beat the baseline "
                            f"{rival.model}'s {rival.get(metric):.4f}")
    level_figures, level_failures, gap = _level_checks(name, v, baselines)
    return Assessment(v.version, v.family, primary, passes_floor,
                      tuple(failures + level_failures), "; ".join(figures + level_figures), gap,
                      passes_rank)


def _choose_champion(name: str, assessed: list[Assessment], incumbent: Assessment | None
                     ) -> tuple[Assessment | None, str]:
    """The champion and why: see the module docstring for the rule."""
    metric, higher_is_better = PRIMARY_METRIC[name]
    sign = 1.0 if higher_is_better else -1.0
    best = max((a for a in assessed if a.qualifies), key=lambda a: sign * a.primary,
               default=None)
    if incumbent is not None and incumbent.qualifies:
        if best is not incumbent and sign * (best.primary - incumbent.primary) > PROMOTION_MARGIN:
            return best, (f"qualifies and beats champion v{incumbent.version}'s {metric} "
                          f"{incumbent.primary:.4f} by more than {PROMOTION_MARGIN}")
        return incumbent, (f"champion kept: it qualifies and no qualifying version beats its "
                           f"{metric} by more than {PROMOTION_MARGIN}")
    if best is not None:
        if incumbent is None:
            return best, f"the best {metric} among qualifying versions; there was no champion"
        return best, (f"the best {metric} among qualifying versions; champion "
                      f"v{incumbent.version} does not qualify on this holdout "
                      f"({'; '.join(incumbent.failures)})")
    if incumbent is not None:
        return incumbent, ("champion kept although it does not qualify "
                           f"({'; '.join(incumbent.failures)}): no version qualifies")
    floor_ok = [a for a in assessed if a.passes_floor]
    if not floor_ok:
        return None, ""
    # A first champion that ranks below a baseline would be worse than the baseline at
    # the one thing every decision needs (who is worth more): rank first, then level.
    ranked = [a for a in floor_ok if a.passes_rank]
    level = "|aggregate_error|" if OUTPUT[name] == "spend" else "brier"
    pick = min(ranked or floor_ok, key=lambda a: a.level_gap)
    among = ("versions passing the floor and the rank gate" if ranked
             else "versions passing the floor (none passes the rank gate)")
    return pick, (f"no version qualifies and there is no champion yet: the smallest {level} "
                  f"among the {among}, so the product can score (it fails: "
                  f"{'; '.join(pick.failures)})")


def decide_aliases(name: str, table: pd.DataFrame, champion: str | None
                   ) -> list[AliasDecision]:
    """Apply the champion rule to every version scored on one holdout (no MLflow).

    Args:
        name: The registered model (``clv_spend`` or ``clv_churn``).
        table: Metric rows (``model_name, model_version, model_family, metric, value``)
            of this model's versions and of the baselines (``model_version='baseline'``),
            all on the same holdout and target.
        champion: The version holding ``champion`` now (None: none yet); it must be
            among the table's versions to be defended.

    Returns:
        One decision per version: ``champion`` (exactly one when any version passes the
        floor), ``challenger`` (the best other qualifying version, if any) or None.
    """
    versions, baselines = _scored_models(table, name)
    assessed = [assess(name, v, baselines) for v in versions]
    incumbent = next((a for a in assessed if a.version == str(champion)), None)
    chosen, why = _choose_champion(name, assessed, incumbent)
    metric, higher_is_better = PRIMARY_METRIC[name]
    others = [a for a in assessed if a.qualifies and a is not chosen]
    challenger = max(others, key=lambda a: (1.0 if higher_is_better else -1.0) * a.primary,
                     default=None)
    decisions = []
    for a in assessed:
        if a is chosen:
            alias, reason = CHAMPION, why
        elif a is challenger:
            alias, reason = CHALLENGER, f"qualifies; the best after champion v{chosen.version}"
        elif a.qualifies:
            alias, reason = None, f"qualifies, behind challenger v{challenger.version}"
        else:
            alias, reason = None, "does not qualify: " + "; ".join(a.failures)
        decisions.append(AliasDecision(name, a.version, alias, f"{reason} [{a.figures}]"))
    return decisions


def apply_aliases(client: MlflowClient, name: str, decisions: list[AliasDecision]) -> None:
    """Record each decision and the rule on its version, then move the aliases.

    ``challenger`` is removed when no version earned it: every version that held an
    alias was among the decided ones, so the old holder was judged and lost it.
    """
    rule = json.dumps(selection_rule(name), sort_keys=True)
    for d in decisions:
        client.set_model_version_tag(name, d.version, "alias_decision", d.reason)
        client.set_model_version_tag(name, d.version, "alias_rule", rule)
        log.info("%s v%s -> %s: %s", name, d.version, d.alias, d.reason)
    for alias in (CHAMPION, CHALLENGER):
        holder = next((d.version for d in decisions if d.alias == alias), None)
        if holder is not None:
            client.set_registered_model_alias(name, alias, holder)
        elif alias == CHALLENGER and decisions:
            _delete_alias(client, name, alias)


def _delete_alias(client: MlflowClient, name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model_alias(name, alias)
    except MlflowException:  # nobody held it
        pass


def version_horizon(client: MlflowClient, name: str, version: str) -> int | None:
    """The horizon a version was trained for: its ``horizon_days`` tag, else its run's
    ``horizon_days`` param (versions from before the tag); None when neither says."""
    mv = client.get_model_version(name, str(version))
    value = (mv.tags or {}).get("horizon_days")
    if value is None and mv.run_id:
        value = client.get_run(mv.run_id).data.params.get("horizon_days")
    return int(float(value)) if value is not None else None


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

    def predict(self, x: Any) -> np.ndarray:
        output = OUTPUT[self.name]
        if self.family == "xgboost":
            if output == "churn":
                return np.asarray(self.model.predict_proba(x)[:, 1], dtype=float)
            pred = np.clip(np.asarray(self.model.predict(x), dtype=float), 0.0, None)
            if self.level_anchor:
                from clv.models import btyd_pyfunc

                pred = pred * btyd_pyfunc.level_factor(
                    x, pred, self.level_anchor["horizon_days"], self.level_anchor["family"])
            return pred
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
    from clv.data.warehouse import exclusive_lock

    folder = private_dir((settings or load_settings()).state_dir / "mlflow")
    with exclusive_lock(folder / f"{name}.alias.lock"):
        yield


def promote(name: str, version: str, alias: str = CHAMPION,
            settings: Settings | None = None, reason: str | None = None,
            by: str | None = None, when: dt.datetime | None = None) -> dict[str, str]:
    """Move ``alias`` to ``version`` by hand (what an ML lead does), and record it.

    The version's ``alias_decision`` tag (the evaluate step's reason) is left as it
    was; the hand move is recorded beside it: ``alias_set_by`` (``by``, default the OS
    user), ``alias_set_at`` (UTC), ``alias_set_reason`` and ``alias_set`` (the alias).

    Returns:
        The tags written.
    """
    import getpass

    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    client.get_model_version(name, version)  # raises a clear error if it does not exist
    client.set_registered_model_alias(name, alias, version)
    moment = when or dt.datetime.now(dt.UTC)  # an operator's act, not pipeline logic
    tags = {"alias_set": alias, "alias_set_by": by or getpass.getuser(),
            "alias_set_at": moment.isoformat(timespec="seconds"),
            "alias_set_reason": reason or "(no reason given)"}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    log.info("%s v%s -> %s by hand: %s", name, version, alias, tags)
    return tags
