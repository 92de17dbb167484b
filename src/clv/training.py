"""Train the XGBoost CLV (spend over the horizon) and churn models, out of time.

The learning set is the customers at the ``train`` cutoff with the labels of the
horizon after it; the model is then scored on the ``eval`` cutoff, a later,
disjoint period (see :func:`clv.features.backtest_cutoffs`). Early stopping
uses a random 20% of the learning customers, never the evaluation period.
Every run is logged to MLflow (params, metrics, device, model with signature)
and registered; :mod:`clv.registry` decides the alias.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clv import metrics, registry, warehouse
from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME, Settings
from clv.device import xgboost_device
from clv.features import FEATURE_COLUMNS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

TRAINING_TABLE = "features.training_examples"
SEED = 42
XGB_PARAMS: dict[str, Any] = {
    "n_estimators": 600,
    "learning_rate": 0.03,
    "max_depth": 4,
    "min_child_weight": 5,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "tree_method": "hist",
    "early_stopping_rounds": 40,
    "random_state": SEED,
}


@dataclass(frozen=True)
class TrainResult:
    """One trained and registered model version."""

    name: str
    version: str
    run_id: str
    device: str
    metrics: dict[str, float]
    alias: str | None
    reason: str


def feature_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """The model input: :data:`FEATURE_COLUMNS` as float64 (NaN = missing)."""
    missing = [c for c in FEATURE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"feature column(s) missing from the input: {missing}")
    return frame[FEATURE_COLUMNS].astype("float64")


def load_examples(
    as_of_date: dt.date, settings: Settings | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(learn, evaluate) frames of the run's training examples."""
    examples = warehouse.read_partition_pandas(TRAINING_TABLE, as_of_date, settings)
    learn = examples[examples["split"] == "train"].sort_values("customer_id")
    evaluate = examples[examples["split"] == "eval"].sort_values("customer_id")
    if learn.empty or evaluate.empty:
        raise ValueError(
            f"{TRAINING_TABLE} as_of_date={as_of_date}: {len(learn)} train and "
            f"{len(evaluate)} eval rows; both cutoffs need customers with history "
            "(is the horizon too long for the data?)"
        )
    return learn.reset_index(drop=True), evaluate.reset_index(drop=True)


def _early_stopping_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    holdout = rng.random(n) < 0.2
    return ~holdout, holdout


def _fit(estimator: Any, x: pd.DataFrame, y: np.ndarray) -> Any:
    fit_rows, stop_rows = _early_stopping_split(len(x))
    estimator.fit(x[fit_rows], y[fit_rows], eval_set=[(x[stop_rows], y[stop_rows])],
                  verbose=False)
    return estimator


def predict_spend(model: Any, x: pd.DataFrame) -> np.ndarray:
    """Expected spend over the horizon, never negative."""
    return np.clip(model.predict(x), 0.0, None)


def predict_churn(model: Any, x: pd.DataFrame) -> np.ndarray:
    """Probability of no purchase over the horizon."""
    return model.predict_proba(x)[:, 1]


def train_clv_model(
    as_of_date: dt.date, horizon_days: int, run_id: str, settings: Settings | None = None
) -> TrainResult:
    """Tweedie XGBoost regressor of spend over the horizon (zero-inflated target)."""
    import xgboost as xgb

    learn, evaluate = load_examples(as_of_date, settings)
    device = xgboost_device()
    model = xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5,
                             device=device, **XGB_PARAMS)
    # Returns make a customer's window spend negative at times; Tweedie needs >= 0.
    y = np.clip(learn["spend_next"].to_numpy(), 0.0, None)
    _fit(model, feature_matrix(learn), y)
    x_eval, y_eval = feature_matrix(evaluate), evaluate["spend_next"].to_numpy()
    report = metrics.regression_report(y_eval, predict_spend(model, x_eval))
    baseline = metrics.regression_report(y_eval, _past_spend_rate(evaluate, horizon_days))
    return _log_and_register(
        CLV_MODEL_NAME, model, device, report, baseline, x_eval, y_eval, predict_spend,
        dict(as_of_date=as_of_date, horizon_days=horizon_days, run_id=run_id,
             objective="reg:tweedie"), settings,
    )


def train_churn_model(
    as_of_date: dt.date, horizon_days: int, run_id: str, settings: Settings | None = None
) -> TrainResult:
    """XGBoost classifier of churn = no purchase over the horizon."""
    import xgboost as xgb

    learn, evaluate = load_examples(as_of_date, settings)
    device = xgboost_device()
    model = xgb.XGBClassifier(objective="binary:logistic", eval_metric="logloss",
                              device=device, **XGB_PARAMS)
    _fit(model, feature_matrix(learn), learn["churned"].to_numpy())
    x_eval, y_eval = feature_matrix(evaluate), evaluate["churned"].to_numpy()
    report = metrics.classification_report(y_eval, predict_churn(model, x_eval))
    baseline = metrics.classification_report(y_eval, _recency_churn_score(evaluate))
    return _log_and_register(
        CHURN_MODEL_NAME, model, device, report, baseline, x_eval, y_eval, predict_churn,
        dict(as_of_date=as_of_date, horizon_days=horizon_days, run_id=run_id,
             objective="binary:logistic"), settings,
    )


def _past_spend_rate(frame: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Naive baseline: the customer's past spend per day of tenure, times the horizon."""
    tenure = np.maximum(frame["tenure_days"].to_numpy(dtype=float), 1.0)
    return frame["total_spend"].to_numpy(dtype=float) / tenure * horizon_days


def _recency_churn_score(frame: pd.DataFrame) -> np.ndarray:
    """Naive baseline: churn risk grows with days since the last purchase (a rank, in 0..1)."""
    r = frame["recency_days"].to_numpy(dtype=float)
    return (r - r.min()) / max(r.max() - r.min(), 1.0)


def _log_and_register(
    name: str, model: Any, device: str, report: dict[str, float], baseline: dict[str, float],
    x_eval: pd.DataFrame, y_eval: np.ndarray, predict: Any, context: dict[str, Any],
    settings: Settings | None,
) -> TrainResult:
    from mlflow.models import infer_signature

    import mlflow

    experiment_id = registry.configure_mlflow(settings)
    client = mlflow.MlflowClient()
    champion = registry.champion_version(client, name)
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=f"{name}-{context['as_of_date']}") as run:
        mlflow.set_tags({"model_family": "xgboost", "device": device,
                         "airflow_run_id": context["run_id"],
                         "as_of_date": str(context["as_of_date"])})
        mlflow.log_params({**{k: v for k, v in model.get_params().items()
                              if k in XGB_PARAMS or k == "objective"},
                           "horizon_days": context["horizon_days"], "device": device,
                           "n_features": x_eval.shape[1],
                           "best_iteration": getattr(model, "best_iteration", None)})
        mlflow.log_metrics({**report, **{f"baseline_{k}": v for k, v in baseline.items()},
                            "n_eval_customers": float(len(x_eval))})
        info = mlflow.xgboost.log_model(
            model, name="model", registered_model_name=name,
            signature=infer_signature(x_eval, predict(model, x_eval)),
            input_example=x_eval.head(3), pip_requirements=_model_requirements(),
        )
    version = str(info.registered_model_version)
    champion_score = _champion_score(name, champion, x_eval, y_eval, predict)
    metric = registry.PRIMARY_METRIC[name][0]
    decision = registry.decide_alias(name, version, report[metric], champion_score)
    registry.apply_alias(client, decision)
    log.info("%s v%s on %s: %s", name, version, device, report)
    return TrainResult(name, version, run.info.run_id, device, report, decision.alias,
                       decision.reason)


def _model_requirements() -> list[str]:
    """Exact versions a model needs to load: given, so MLflow skips its slow inference."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("xgboost", "scikit-learn", "numpy", "pandas")]


def _champion_score(name: str, champion: str | None, x_eval: pd.DataFrame,
                    y_eval: np.ndarray, predict: Any) -> float | None:
    """The current champion's primary metric on this run's evaluation data."""
    import mlflow

    if champion is None:
        return None
    model = mlflow.xgboost.load_model(f"models:/{name}/{champion}")
    scores = predict(model, x_eval)
    metric = registry.PRIMARY_METRIC[name][0]
    if name == CLV_MODEL_NAME:
        return metrics.regression_report(y_eval, scores)[metric]
    return metrics.classification_report(y_eval, scores)[metric]
