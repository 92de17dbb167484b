"""The evaluate step: the aliases decided on one holdout, and ``marts.model_metrics``.

Every version is evaluated on the same holdout with the shared metrics
(:mod:`clv.models.metrics`) next to two baselines fitted without labels: BG/NBD +
Gamma-Gamma (:mod:`clv.models.btyd`) and the naive past-spend rate (with recency as the
naive churn score). Metrics and PNG charts go to the version's MLflow run.
Training only registers: :func:`evaluate_models` scores every version of the run,
the current champion and challenger and the baselines on one holdout, applies
:mod:`clv.models.registry`'s rule (rank *and* level) to move the aliases, and builds the
rows of ``marts.model_metrics``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME, Settings
from clv.data import lineage
from clv.features.columns import feature_matrix, model_columns
from clv.models import metrics, registry
from clv.models.training.baselines import BTYD_BASELINE, baseline_predictions, report, truth
from clv.models.training.fit import SOURCES_TAG
from clv.models.training.splits import _holdout

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["model_name", "model_version", "model_alias", "model_family", "target",
                  "metric", "value", "cutoff_date", "horizon_days", "n_customers", "run_id",
                  "sources"]


def _versions_to_evaluate(client: Any, name: str, run_id: str, horizon_days: int | None = None
                          ) -> list[tuple[str, str | None]]:
    """(version, alias) of every version with an alias or registered by this DAG run;
    with ``horizon_days``, an aliased version trained for another horizon is left out
    (it predicts another period, so it cannot be defended on this holdout)."""
    aliases: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model(name).aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    out = []
    for mv in client.search_model_versions(f"name='{name}'"):
        version = str(mv.version)
        mine = (mv.tags or {}).get("airflow_run_id") == run_id
        if version in aliases and not mine and horizon_days is not None:
            trained_for = registry.version_horizon(client, name, version)
            if trained_for is not None and trained_for != int(horizon_days):
                log.info("%s v%s (%s) trained for %d days, not %d: not evaluated", name,
                         version, ",".join(aliases[version]), trained_for, horizon_days)
                continue
        if version in aliases or mine:
            out.append((version, ",".join(sorted(aliases.get(version, []))) or None))
    return sorted(out, key=lambda v: int(v[0]))


@dataclass(frozen=True)
class VersionScore:
    """What one registered version gives on one holdout: its family, its predictions
    and, for a spend version, its interval coverage
    (:func:`clv.models.intervals.holdout_coverage`)."""

    family: str
    predictions: np.ndarray
    coverage: dict[str, Any] | None = None


def score_versions(holdout: pd.DataFrame, horizon_days: int, run_id: str,
                   settings: Settings | None = None) -> dict[tuple[str, str], VersionScore]:
    """Every version :func:`evaluate_models` would score on ``holdout`` now, by (name,
    version), each loaded once. Versions never change once registered, so the evaluate
    step takes these (``scored``) instead of scoring them again: under ``airflow dags
    test`` they are scored while the ZILN network fits (:mod:`clv.pipeline.head_start`)."""
    import mlflow
    from clv.models import intervals

    x_eval = feature_matrix(holdout, columns=model_columns(holdout))
    registry.configure_mlflow(settings)
    client = mlflow.MlflowClient()
    out = {}
    for name in (CLV_MODEL_NAME, CHURN_MODEL_NAME):
        for version, _ in _versions_to_evaluate(client, name, run_id, horizon_days):
            model = registry.load_version(name, version, settings)
            out[(name, version)] = VersionScore(
                model.family, model.predict(x_eval),
                intervals.holdout_coverage(model, holdout) if name == CLV_MODEL_NAME else None)
    return out


def evaluate_models(as_of_date: dt.date, horizon_days: int, run_id: str,
                    settings: Settings | None = None,
                    holdout: pd.DataFrame | None = None,
                    scored: dict[tuple[str, str], VersionScore] | None = None) -> pd.DataFrame:
    """Score every aliased or newly registered version and every baseline on the
    holdout, then decide the aliases (:func:`clv.models.registry.decide_aliases`).

    Per model name, under its alias lock: the versions are scored, the rule is applied
    to their metrics and the aliases move, so the comparison and the move see the same
    champion. Returns the rows of ``marts.model_metrics`` (one per model x metric x
    cutoff; ``model_alias`` = the alias after the decision) and logs them to an MLflow
    run of their own (``kind=evaluation``): each value as a metric
    ``<model>.v<version>.<metric>``, the table as CSV, and comparison charts.
    ``holdout``: the as-of date's holdout (:func:`clv.models.training.splits.holdout`) when
    the caller has read it already; ``scored``: :func:`score_versions` of that holdout
    (versions it lacks, registered since, are scored here).
    """
    import pandas as pd

    import mlflow

    evaluate = _holdout(as_of_date, settings) if holdout is None else holdout
    cutoff = pd.Timestamp(evaluate["cutoff_date"].iat[0]).date()
    x_eval = feature_matrix(evaluate, columns=model_columns(evaluate))  # each version
    # takes its own columns (ScoringModel.predict)
    baselines = baseline_predictions(evaluate, horizon_days)
    truths = {name: truth(name, evaluate) for name in (CLV_MODEL_NAME, CHURN_MODEL_NAME)}
    # the labels and the matrix are all that is left to use (0.9 GiB at 2.57M), unless
    # the caller keeps the holdout (the evaluate task measures intervals on it next)
    del evaluate
    registry.configure_mlflow(settings)
    client = mlflow.MlflowClient()
    tables, charts = [], {}
    for name in (CLV_MODEL_NAME, CHURN_MODEL_NAME):
        preds = {(b, "baseline", "btyd" if b == BTYD_BASELINE else "naive"): p
                 for b, p in baselines[name].items()}
        with registry.alias_lock(name, settings):
            sources = {}
            for version, _ in _versions_to_evaluate(client, name, run_id, horizon_days):
                known = (scored or {}).get((name, version))
                if known is None:
                    model = registry.load_version(name, version, settings)
                    known = VersionScore(model.family, model.predict(x_eval))
                preds[(name, version, known.family)] = known.predictions
                sources[version] = (client.get_model_version(name, version).tags or {}).get(
                    SOURCES_TAG, "orders")
            table = _metric_rows(name, truths[name], preds, cutoff, horizon_days, run_id,
                                 sources)
            decisions = registry.decide_aliases(name, table,
                                                registry.champion_version(client, name))
            registry.apply_aliases(client, name, decisions)
        aliases = {d.version: d.alias for d in decisions}
        mine = (table["model_name"] == name) & (table["model_version"] != "baseline")
        table.loc[mine, "model_alias"] = [aliases.get(v) for v in table.loc[mine,
                                                                           "model_version"]]
        tables.append(table)
        charts[name] = {(m if v == "baseline" else f"{m} v{v}")
                        + (f" @{aliases[v]}" if aliases.get(v) else ""): p
                        for (m, v, _), p in preds.items()}
    table = pd.concat(tables, ignore_index=True)[METRIC_COLUMNS]
    _log_evaluation_run(table, truths, charts, as_of_date, run_id, settings)
    return table


def _metric_rows(name: str, y: np.ndarray, preds: dict[tuple[str, str, str], np.ndarray],
                 cutoff: dt.date, horizon_days: int, run_id: str,
                 sources: dict[str, str] | None = None) -> pd.DataFrame:
    """marts.model_metrics rows of each (model, version, family) prediction of ``name``;
    ``sources``: per version, the data its inputs came from (baselines: orders)."""
    import pandas as pd

    sources = sources or {}
    rows = [dict(model_name=model, model_version=version, model_alias=None,
                 model_family=family, target=registry.OUTPUT[name], metric=metric,
                 value=float(value), cutoff_date=cutoff, horizon_days=int(horizon_days),
                 n_customers=len(y), run_id=run_id, sources=sources.get(version, "orders"))
            for (model, version, family), pred in preds.items()
            for metric, value in report(name, y, pred).items()]
    return pd.DataFrame(rows, columns=METRIC_COLUMNS).astype({"model_alias": object})


def _log_evaluation_run(table: pd.DataFrame, truths: dict[str, np.ndarray],
                        charts: dict[str, dict[str, np.ndarray]], as_of_date: dt.date,
                        run_id: str, settings: Settings | None) -> None:
    import mlflow

    experiment_id = registry.configure_mlflow(settings)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(
            experiment_id=experiment_id,
            run_name=lineage.run_name("evaluation", as_of_date, run_id)):
        mlflow.set_tags({"kind": "evaluation", **lineage.run_tags(run_id, as_of_date)})
        mlflow.log_metrics({
            (f"{r.model_name}.{r.metric}" if r.model_version == "baseline"
             else f"{r.model_name}.v{r.model_version}.{r.metric}"): r.value
            for r in table.itertuples() if np.isfinite(r.value)})
        folder = Path(tmp)
        table.to_csv(folder / "model_metrics.csv", index=False)
        paths = [str(folder / "model_metrics.csv")]
        spend, churn = charts.get(CLV_MODEL_NAME, {}), charts.get(CHURN_MODEL_NAME, {})
        if spend:
            y = truths[CLV_MODEL_NAME]
            paths.append(metrics.plot_gain(y, spend, folder / "spend_gain.png",
                                           "spend: every model and baseline"))
        if churn:
            y = truths[CHURN_MODEL_NAME]
            paths.append(metrics.plot_calibration(
                y, {k: v for k, v in churn.items() if "naive" not in k},
                folder / "churn_calibration.png", "churn: calibration"))
        for p in paths:
            mlflow.log_artifact(p, artifact_path="evaluation")
        mlflow.log_text(json.dumps(sorted(charts.get(CLV_MODEL_NAME, {}))), "models.json")
