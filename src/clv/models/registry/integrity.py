"""Model integrity: a registered version's artifacts, digested and signed.

Model artifacts are code: XGBoost's sklearn wrapper, the ZILN and BTYD pyfuncs are
unpickled when loaded. At registration the pipeline records a SHA-256 digest of the
version's artifacts (tag ``artifact_sha256``) with an HMAC of it under the pipeline's
signing key (tag ``artifact_signature``; :func:`record_artifact_digest`).
:func:`clv.models.registry.loading.load_version` downloads the artifacts, checks both, and
loads the checked copy; a version whose files changed since, or that the pipeline never
signed (registered by hand, or a tag written by someone without the key), is refused with
a :class:`ModelIntegrityError` naming the model, version and alias. An ML lead vouches for
such a version with ``clv sign-model``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clv.config import Settings, load_settings, private_dir
from clv.models.registry.store import ModelIntegrityError, configure_mlflow

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
