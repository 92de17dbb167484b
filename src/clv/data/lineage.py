"""Links and records between Airflow, MLflow and the run report (issue #21).

One place knows how a DAG run, its MLflow runs, its registered versions and its report
point at each other:

* MLflow run names are unique: ``<kind> <as_of_date> <airflow run id>`` (the same kind
  and date ran twice used to give two runs of one name);
* every run carries ``airflow_run_id``, ``airflow_dag_id``, ``airflow_run_url`` and a
  description (``mlflow.note.content``, rendered as Markdown by the MLflow UI) whose
  link opens the Airflow run;
* every registered version carries ``horizon_days`` and ``feature_set`` tags (scoring
  refuses a champion trained for another horizon) and a short model card as its
  description;
* the experiment is tagged as a model-training experiment, so the MLflow 3 UI opens it
  in its training view, not the GenAI one.

The UIs' addresses come from ``CLV_AIRFLOW_UI_URL`` and ``CLV_MLFLOW_UI_URL`` (defaults:
the ``make up`` ports on 127.0.0.1). Standard library only: the Airflow plugin imports it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping, Sequence
from urllib.parse import quote

DAG_ID = "clv_pipeline"
#: MLflow 3's experiment-kind tag (its UI reads it to choose the GenAI or training view).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: Run description tag the MLflow UI renders as Markdown.
NOTE_TAG = "mlflow.note.content"


def airflow_ui_url() -> str:
    """Base address of the Airflow UI (``CLV_AIRFLOW_UI_URL``)."""
    return (os.environ.get("CLV_AIRFLOW_UI_URL") or "http://127.0.0.1:8080").rstrip("/")


def mlflow_ui_url() -> str:
    """Base address of the MLflow UI (``CLV_MLFLOW_UI_URL``)."""
    return (os.environ.get("CLV_MLFLOW_UI_URL") or "http://127.0.0.1:5000").rstrip("/")


def airflow_run_url(run_id: str, dag_id: str = DAG_ID) -> str:
    """The Airflow 3 UI page of one DAG run."""
    return f"{airflow_ui_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def mlflow_run_url(experiment_id: str, mlflow_run_id: str) -> str:
    """The MLflow UI page of one run."""
    return f"{mlflow_ui_url()}/#/experiments/{experiment_id}/runs/{mlflow_run_id}"


def mlflow_model_url(name: str, version: str | None = None) -> str:
    """The MLflow UI page of a registered model (or one of its versions)."""
    base = f"{mlflow_ui_url()}/#/models/{quote(name, safe='')}"
    return f"{base}/versions/{version}" if version else base


#: Where the Airflow plugin (plugins/clv_links.py) serves its pages in Airflow's API server.
PLUGIN_PREFIX = "/clv"


def report_url(as_of_date: dt.date | str) -> str:
    """The run report of an as-of date, served by the Airflow plugin."""
    return f"{airflow_ui_url()}{PLUGIN_PREFIX}/report/{as_of_date}"


def data_docs_url() -> str:
    """The Data Docs index, served by the Airflow plugin."""
    return f"{airflow_ui_url()}{PLUGIN_PREFIX}/data-docs/index.html"


def run_links_url(run_id: str, dag_id: str = DAG_ID) -> str:
    """The plugin's page of one DAG run: its MLflow runs, report and Data Docs."""
    return (f"{airflow_ui_url()}{PLUGIN_PREFIX}/runs/{quote(dag_id, safe='')}/"
            f"{quote(run_id, safe='')}")


def run_name(kind: str, as_of_date: dt.date | str, airflow_run_id: str) -> str:
    """A unique, readable MLflow run name: what, for which date, in which DAG run."""
    return f"{kind} {as_of_date} {airflow_run_id}"


def run_tags(airflow_run_id: str, as_of_date: dt.date | str) -> dict[str, str]:
    """Tags that link an MLflow run back to its Airflow run (and say so in its
    description, where the MLflow UI makes the link clickable)."""
    url = airflow_run_url(airflow_run_id)
    return {"airflow_run_id": airflow_run_id, "airflow_dag_id": DAG_ID,
            "airflow_run_url": url, "as_of_date": str(as_of_date),
            NOTE_TAG: f"Logged by the Airflow run [{airflow_run_id}]({url}) of `{DAG_ID}` "
                      f"for as-of date {as_of_date}."}


def feature_set(columns: Sequence[str]) -> str:
    """Names the model's inputs: ``customer_features:<n>:<hash of the ordered names>``,
    so two versions with the same tag read the same columns in the same order."""
    digest = hashlib.sha256(",".join(columns).encode()).hexdigest()[:12]
    return f"customer_features:{len(columns)}:{digest}"


def training_windows(as_of_date: dt.date, horizon_days: int) -> dict[str, str]:
    """The out-of-time windows of a run (:func:`clv.features.backtest_cutoffs`): learnt at
    as_of - 2H with labels up to as_of - H, evaluated at as_of - H with labels up to as_of."""
    h = dt.timedelta(days=horizon_days)
    return {"train_cutoff": str(as_of_date - 2 * h), "train_labels_end": str(as_of_date - h),
            "eval_cutoff": str(as_of_date - h), "eval_labels_end": str(as_of_date)}


def model_card(name: str, version: str, family: str, predicts: str, as_of_date: dt.date,
               horizon_days: int, features: Sequence[str], airflow_run_id: str,
               own: Mapping[str, float], metrics: Mapping[str, float]) -> str:
    """A short Markdown model card for a registered version's description.

    ``own`` is the version's holdout metrics; ``metrics`` its MLflow run's, which hold
    the baselines' on the same holdout (``baseline_<name>_<metric>``).
    """
    w = training_windows(as_of_date, horizon_days)
    baselines = _baselines(own, metrics)
    lines = [
        f"**{name} v{version}** ({family}): {predicts} over the next {horizon_days} days.",
        "",
        f"- horizon: {horizon_days} days; features: {len(features)} columns of "
        f"`features.customer_features` from `raw.orders` ({feature_set(features)})",
        f"- learnt at {w['train_cutoff']} (labels up to {w['train_labels_end']}); evaluated "
        f"out of time at {w['eval_cutoff']} (labels up to {w['eval_labels_end']})",
        f"- trained by Airflow run [{airflow_run_id}]({airflow_run_url(airflow_run_id)}) "
        f"for as-of date {as_of_date}",
        "",
        "| metric | this version | " + " | ".join(baselines) + " |",
        "|---|---|" + "---|" * len(baselines),
    ]
    for metric, value in sorted(own.items()):
        row = [_fmt(metrics.get(f"baseline_{b}_{metric}")) for b in baselines]
        lines.append(f"| {metric} | {_fmt(value)} | " + " | ".join(row) + " |")
    lines += ["", "The alias (`champion` / `challenger`) is decided by the evaluate step; "
                  "see the `alias_decision` tag."]
    return "\n".join(lines)


def registered_model_description(name: str, predicts: str) -> str:
    """The registered model's description: what it is and how its versions compete."""
    return (f"**{name}**: {predicts} per customer over the run's horizon (`horizon_days` "
            "tag on each version). XGBoost, TensorFlow ZILN and BTYD versions compete on "
            "the same out-of-time holdout against the BG/NBD + Gamma-Gamma and naive "
            "baselines; the evaluate step moves `champion` / `challenger` by rank and level "
            "(reason in each version's `alias_decision` tag; hand moves in `alias_set_by`, "
            "`alias_set_at`, `alias_set_reason`). Scoring uses `@champion` and refuses a "
            "champion trained for another horizon. Each version's description is its model "
            "card.")


def _baselines(own: Mapping[str, float], metrics: Mapping[str, float]) -> list[str]:
    """Baseline names in ``baseline_<name>_<metric>`` keys (both may hold underscores:
    a name is what is left once one of the version's own metrics is taken off)."""
    return sorted({key[len("baseline_"): -len(m) - 1] for key in metrics
                   if key.startswith("baseline_") for m in own if key.endswith("_" + m)})


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
