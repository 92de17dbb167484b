"""Registering a recommender run in MLflow: params, metrics, the factors, its alias decision."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover

    from clv.config import Settings

from clv.models.recommend.evaluation import (
    champion_rule,
)
from clv.models.recommend.spec import (
    MODEL_FAMILY,
    RECOMMEND_MODEL_NAME,
    RecommenderRun,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- MLflow


def register_recommender(run: RecommenderRun, settings: Settings | None = None,
                         context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Log the run (params, every method's metrics) and register the ALS factors as a
    version of :data:`RECOMMEND_MODEL_NAME`; it becomes ``champion`` only under
    :func:`decide_champion` (the decision and the rule are its tags either way).

    Args:
        context: Optional ``run_id`` / ``as_of_date`` of the Airflow run (lineage tags).

    Returns:
        ``{"version", "alias", "reason", "mlflow_run_id", "method"}``.
    """
    import mlflow
    from clv.data import lineage
    from clv.models import registry
    from clv.models.recommend_pyfunc import AlsRecommenderPyfunc

    experiment_id = registry.configure_mlflow(settings)
    ctx = dict(context or {})
    tags = {"model_family": MODEL_FAMILY, "horizon_days": str(run.params["horizon_days"]),
            "cutoff": run.params["cutoff"], "published_method": run.method}
    if "run_id" in ctx:
        tags.update(lineage.run_tags(ctx["run_id"], ctx.get("as_of_date", run.params["cutoff"])))
    name = f"recommend {run.params['cutoff']}" + (f" {ctx['run_id']}" if "run_id" in ctx else "")
    with tempfile.TemporaryDirectory() as tmp, \
            mlflow.start_run(experiment_id=experiment_id, run_name=name) as mlrun:
        mlflow.set_tags(tags)
        mlflow.log_params(run.params)
        mlflow.log_metrics(run.metrics)
        info = mlflow.pyfunc.log_model(
            name="recommender", python_model=AlsRecommenderPyfunc(),
            artifacts={"factors": str(run.factors.save(Path(tmp) / "factors.npz"))},
            registered_model_name=RECOMMEND_MODEL_NAME, signature=_signature(),
            pip_requirements=[f"numpy=={np.__version__}", f"pandas=={pd.__version__}"])
    version = str(info.registered_model_version)
    registry.record_artifact_digest(RECOMMEND_MODEL_NAME, version, settings)
    return {"version": version, **_apply_decision(version, run, tags, settings),
            "mlflow_run_id": mlrun.info.run_id, "method": run.method}


def _signature() -> Any:
    """customer_id in; customer_id, product_id, score, rank out; ``k`` a parameter."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "customer_id")]),
        outputs=Schema([ColSpec("string", "customer_id"), ColSpec("string", "product_id"),
                        ColSpec("double", "score"), ColSpec("long", "rank")]),
        params=ParamSchema([ParamSpec("k", "long", 10)]))


def _apply_decision(version: str, run: RecommenderRun, tags: Mapping[str, str],
                    settings: Settings | None) -> dict[str, Any]:
    """Tag the version with the decision and the rule; move ``champion`` if it won."""
    import mlflow
    from clv.models import registry

    alias, reason = run.decision
    client = mlflow.MlflowClient()
    for key, value in {**{k: v for k, v in tags.items() if not k.startswith("mlflow.")},
                       "alias_decision": reason,
                       "alias_rule": json.dumps(champion_rule(int(run.params["k"])),
                                                sort_keys=True)}.items():
        client.set_model_version_tag(RECOMMEND_MODEL_NAME, version, key, str(value))
    if alias is not None:
        with registry.alias_lock(RECOMMEND_MODEL_NAME, settings):
            client.set_registered_model_alias(RECOMMEND_MODEL_NAME, alias, version)
    log.info("%s v%s -> %s: %s", RECOMMEND_MODEL_NAME, version, alias, reason)
    return {"alias": alias, "reason": reason}
