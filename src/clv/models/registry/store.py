"""Where runs and versions go: the MLflow store and experiment, the aliases and what each
registered name predicts, and the registry's read-only look-ups (champion, horizon)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from clv.config import EXPERIMENT_NAME, Settings, load_settings, private_dir

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
#: What each registered model's ``predict`` returns.
OUTPUT = {"clv_spend": "spend", "clv_churn": "churn"}
#: The same in words, for model cards and descriptions.
PREDICTS = {"clv_spend": "expected spend", "clv_churn": "probability of no purchase"}


class RegistryError(RuntimeError):
    """The registry has no usable model for a request."""


class ModelIntegrityError(RegistryError):
    """A version's artifacts are not the ones the pipeline registered (or never signed)."""


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
        with _first_open(uri):
            _EXPERIMENT_IDS[key] = _experiment_id(s)
    return _EXPERIMENT_IDS[key]


@contextlib.contextmanager
def _first_open(uri: str):
    """One process at a time opens a SQLite store for the first time.

    Opening runs MLflow's schema migrations on a new database, and processes that do it at
    once fail (``table logged_models already exists``, alembic's ``expected to match one
    row``): the four training tasks a scheduler starts together on a fresh home did. A lock
    file beside the database serialises the opening; a tracking server migrates its own."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    lock = Path(uri[len("sqlite:///"):]).with_name("store-open.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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


def version_horizon(client: MlflowClient, name: str, version: str) -> int | None:
    """The horizon a version was trained for: its ``horizon_days`` tag, else its run's
    ``horizon_days`` param (versions from before the tag); None when neither says."""
    mv = client.get_model_version(name, str(version))
    value = (mv.tags or {}).get("horizon_days")
    if value is None and mv.run_id:
        value = client.get_run(mv.run_id).data.params.get("horizon_days")
    return int(float(value)) if value is not None else None
