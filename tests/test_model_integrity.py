"""Scoring loads only the artifacts the pipeline registered (issue #20): model versions
are pickled code, so whoever could write the artifact folder, or register a version and
move ``champion``, ran code in the score task. Training records a signed SHA-256 digest of
every version's artifacts; loading checks it and names the model, version and alias."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import in_memory_splits
from test_training import AS_OF, HORIZON, synthetic_examples

from clv.models import registry, scoring, training
from clv.ops import cli


@pytest.fixture
def champions(clv_home, monkeypatch):
    """XGBoost spend and churn versions trained by the pipeline and made champion; the
    features to score come from memory."""
    learn = synthetic_examples(200, 1, AS_OF - dt.timedelta(days=2 * HORIZON), "train")
    evaluate = synthetic_examples(150, 2, AS_OF - dt.timedelta(days=HORIZON), "eval")
    by_split = {"train": learn, "eval": evaluate}
    monkeypatch.setattr(training.splits, "load_split",
                        in_memory_splits(by_split))
    monkeypatch.setattr(scoring.warehouse, "columns",  # the served frame's columns
                        lambda table, as_of, settings=None: list(evaluate.columns))
    monkeypatch.setattr(scoring.warehouse, "read_partition_pandas",
                        lambda table, as_of, settings=None, columns=None: evaluate)
    monkeypatch.setenv("CLV_DEVICE", "cpu")
    monkeypatch.setitem(training.XGB_PARAMS, "n_estimators", 20)
    monkeypatch.setitem(training.XGB_PARAMS, "n_jobs", 1)
    training.train_clv_model(AS_OF, HORIZON, "run-1")
    training.train_churn_model(AS_OF, HORIZON, "run-1")
    registry.promote("clv_spend", "1")
    registry.promote("clv_churn", "1")
    registry._LOADED.clear()  # each test loads from the store, not this process's cache
    yield
    registry._LOADED.clear()


def _artifact_folder(name: str, version: str) -> Path:
    import mlflow

    uri = mlflow.MlflowClient().get_model_version_download_uri(name, version)
    return Path(uri.removeprefix("file://"))


def _score():
    return scoring.score_customers(AS_OF, HORIZON, "run-2")


def test_untampered_versions_score_and_carry_a_signed_digest(champions):
    import mlflow

    tags = mlflow.MlflowClient().get_model_version("clv_spend", "1").tags
    assert len(tags[registry.DIGEST_TAG]) == 64 and len(tags[registry.SIGNATURE_TAG]) == 64
    assert tags[registry.DIGEST_TAG] != \
        mlflow.MlflowClient().get_model_version("clv_churn", "1").tags[registry.DIGEST_TAG]
    assert len(_score()) == 150


def test_a_tampered_artifact_is_refused_naming_model_version_and_alias(champions):
    folder = _artifact_folder("clv_spend", "1")
    model_file = next(p for p in folder.rglob("*") if p.is_file() and p.name.startswith("model."))
    with open(model_file, "ab") as fh:
        fh.write(b"\n# injected")
    with pytest.raises(registry.ModelIntegrityError,
                       match=r"model 'clv_spend' version 1 \(alias 'champion'\): its artifacts "
                             r"do not match the digest recorded at registration"):
        _score()
    # a file added beside the model counts too (a second pickle MLflow might load)
    model_file.write_bytes(model_file.read_bytes().removesuffix(b"\n# injected"))
    assert len(_score()) == 150
    registry._LOADED.clear()
    (folder / "extra.pkl").write_bytes(b"x")
    with pytest.raises(registry.ModelIntegrityError, match="do not match"):
        _score()


def test_a_version_without_the_pipelines_digest_is_refused(champions):
    import mlflow

    client = mlflow.MlflowClient()
    for tag in (registry.DIGEST_TAG, registry.SIGNATURE_TAG):
        client.delete_model_version_tag("clv_churn", "1", tag)
    with pytest.raises(registry.ModelIntegrityError,
                       match=r"model 'clv_churn' version 1 \(alias 'champion'\) has no "
                             r"artifact digest recorded by the pipeline"):
        _score()
    # a digest written by someone without the pipeline's signing key is no better
    digest = registry.artifact_digest(_artifact_folder("clv_churn", "1"))
    client.set_model_version_tag("clv_churn", "1", registry.DIGEST_TAG, digest)
    client.set_model_version_tag("clv_churn", "1", registry.SIGNATURE_TAG, "0" * 64)
    with pytest.raises(registry.ModelIntegrityError, match="not recorded by this pipeline"):
        _score()
    # an ML lead who reviewed the version vouches for it with one command
    assert cli.main(["sign-model", "--model", "clv_churn", "--version", "1"]) == 0
    assert len(_score()) == 150


def test_the_signing_key_is_private_and_stable(clv_home):
    import stat

    key = registry.signing_key()
    path = clv_home.state_dir / "mlflow" / registry.SIGNING_KEY_FILE
    assert oct(stat.S_IMODE(path.stat().st_mode)) == "0o600"
    assert registry.signing_key() == key and len(key) == 64
