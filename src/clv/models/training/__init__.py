"""Train the CLV (spend over the horizon) and churn models out of time, and evaluate them.

The learning set is the customers at the ``train`` cutoff with the labels of the
horizon after it; every model is then scored on the ``eval`` cutoff, a later,
disjoint period (see :func:`clv.features.backtest_cutoffs`). Early stopping
uses a seeded random 20% of the learning customers, never the evaluation period.

Three model families compete for the same registered names, ``clv_spend`` and
``clv_churn`` (one champion alias each):

* XGBoost: a Tweedie regressor of spend (zero-inflated target) and a churn
  classifier (:func:`train_clv_model`, :func:`train_churn_model`), logged natively
  with their SHAP global importance (XGBoost's ``pred_contribs``) as a chart; the
  spend version's total at a cutoff is anchored to BG/NBD's at that cutoff (version
  tag ``level_anchor``, :func:`clv.models.btyd_pyfunc.level_factor`: history only, no label);
* TensorFlow: one ZILN network (:mod:`clv.models.ziln`) whose expected value is a
  ``clv_spend`` version and whose purchase head (churn = 1 - p) is a ``clv_churn``
  version (:func:`train_ziln_model`), both logged as MLflow pyfunc models from one
  MLflow run. Their ``predict`` returns the spend / the churn probability, so a
  ZILN version can be made champion by hand or by the policy and
  :func:`clv.models.registry.load_champion` / scoring use it with no code change (the
  pyfunc pickles a reference to :class:`clv.models.ziln.ZilnPyfunc`: loading it needs
  the ``clv`` package installed, as everywhere the product runs);
* BTYD: BG/NBD (and the other purchase models of :mod:`clv.models.btyd_pyfunc`) with
  Gamma-Gamma, fitted on the learning split's history without labels, each
  registered as a ``clv_spend`` and a ``clv_churn`` pyfunc version
  (:func:`train_btyd_models`).

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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.data import lineage, warehouse
from clv.models import metrics, registry
from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME, Settings
from clv.models.device import xgboost_device
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
#: Baselines, under the model_name they get in marts.model_metrics.
BTYD_BASELINE = "btyd_bgnbd_gg"
NAIVE_SPEND_BASELINE = "naive_past_spend_rate"
NAIVE_CHURN_BASELINE = "naive_recency"
METRIC_COLUMNS = ["model_name", "model_version", "model_alias", "model_family", "target",
                  "metric", "value", "cutoff_date", "horizon_days", "n_customers", "run_id"]


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
    family: str = "xgboost"


def feature_matrix(frame: pd.DataFrame, dtype: str = "float64") -> pd.DataFrame:
    """The model input: :data:`FEATURE_COLUMNS` as float64 (NaN = missing).

    XGBoost learns from float32 whatever it is given, so the trainers ask for
    float32 here: the same trees from half the memory (2.57M customers x 34
    features: 0.35 GiB instead of 0.7, twice, with the early-stopping split).
    """
    missing = [c for c in FEATURE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"feature column(s) missing from the input: {missing}")
    return frame[FEATURE_COLUMNS].astype(dtype)


def load_split(as_of_date: dt.date, split: str, settings: Settings | None = None
               ) -> pd.DataFrame:
    """One split (``train`` or ``eval``) of the run's training examples, by customer_id.

    Read one split at a time, sorted before it becomes pandas: at 2.57M customers
    per split, reading both, filtering and sorting them held 6.5 GiB at peak.
    """
    return warehouse.read_partition_pandas(TRAINING_TABLE, as_of_date, settings,
                                           where={"split": split}, order_by=["customer_id"])


def _split_with_rows(as_of_date: dt.date, split: str, settings: Settings | None
                     ) -> pd.DataFrame:
    """:func:`load_split`, refusing an empty split with the table, date and likely cause."""
    frame = load_split(as_of_date, split, settings)
    if frame.empty:
        raise ValueError(f"{TRAINING_TABLE} as_of_date={as_of_date}: no {split} rows; the "
                         f"{split} cutoff needs customers with history (is the horizon too "
                         "long for the data?)")
    return frame


def _learning_split(as_of_date: dt.date, settings: Settings | None) -> pd.DataFrame:
    return _split_with_rows(as_of_date, "train", settings)


def _holdout(as_of_date: dt.date, settings: Settings | None) -> pd.DataFrame:
    return _split_with_rows(as_of_date, "eval", settings)


#: Early stopping watches a seeded 20% of the learning customers, at most this many:
#: evaluating the metric on 514,000 rows after each of 600 rounds took 169 s of a
#: 10M-order training; 100,000 rows decide the stopping round as well.
MAX_STOPPING_ROWS = 100_000


def _early_stopping_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    holdout = rng.random(n) < min(0.2, MAX_STOPPING_ROWS / max(n, 1))
    return ~holdout, holdout


def _fit(estimator: Any, x: pd.DataFrame, y: np.ndarray) -> Any:
    fit_rows, stop_rows = _early_stopping_split(len(x))
    estimator.fit(x[fit_rows], y[fit_rows], eval_set=[(x[stop_rows], y[stop_rows])],
                  verbose=False)
    return estimator


def balance_tweedie(model: Any, x: pd.DataFrame, y: np.ndarray) -> float:
    """Rescale a log-link (Tweedie) regressor so its total on the learning customers
    equals theirs; returns the factor.

    Tweedie's log link is not its canonical link, so the fit is not balanced: the
    deviance weights big spenders by mu^(1 - p) and the total comes out low (-12% on
    CDNOW, ``bench/bench_models.py``). Multiplying every prediction by k = sum(y) /
    sum(pred) is adding log(k) to the margin, i.e. ``base_score * k``: stored in the
    model, so the registered model predicts the balanced value, and rankings
    (Gini, Spearman) are unchanged.
    """
    pred_total = float(np.sum(model.predict(x)))
    if pred_total <= 0 or float(np.sum(y)) <= 0:
        return 1.0
    factor = float(np.sum(y)) / pred_total
    booster = model.get_booster()
    config = json.loads(booster.save_config())
    base = float(str(config["learner"]["learner_model_param"]["base_score"]).strip("[]"))
    booster.set_param({"base_score": base * factor})
    model.balance_factor_ = factor
    return factor


def predict_spend(model: Any, x: pd.DataFrame) -> np.ndarray:
    """Expected spend over the horizon, never negative (an XGBoost regressor)."""
    return np.clip(model.predict(x), 0.0, None)


def predict_churn(model: Any, x: pd.DataFrame) -> np.ndarray:
    """Probability of no purchase over the horizon (an XGBoost classifier)."""
    return model.predict_proba(x)[:, 1]


# --------------------------------------------------------------------------- evaluation


def report(name: str, y_true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The shared metrics of a ``clv_spend`` (regression) or ``clv_churn`` prediction."""
    if registry.OUTPUT[name] == "spend":
        return metrics.regression_report(y_true, pred)
    return metrics.classification_report(y_true, pred)


def truth(name: str, frame: pd.DataFrame) -> np.ndarray:
    """The label a model of ``name`` is judged on: spend, or churned (0/1)."""
    column = "spend_next" if registry.OUTPUT[name] == "spend" else "churned"
    return frame[column].to_numpy(dtype=float)


def past_spend_rate(frame: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Naive baseline: the customer's past spend per day of tenure, times the horizon."""
    tenure = np.maximum(frame["tenure_days"].to_numpy(dtype=float), 1.0)
    return np.clip(frame["total_spend"].to_numpy(dtype=float), 0.0, None) / tenure * horizon_days


def recency_churn_score(frame: pd.DataFrame) -> np.ndarray:
    """Naive baseline: churn risk grows with days since the last purchase (a rank, in 0..1)."""
    r = frame["recency_days"].to_numpy(dtype=float)
    return (r - r.min()) / max(r.max() - r.min(), 1.0)


def baseline_predictions(frame: pd.DataFrame, horizon_days: int) -> dict[str, dict[str, Any]]:
    """Baseline predictions per registered name: {name: {baseline_name: prediction}}.

    BG/NBD + Gamma-Gamma is fitted on ``frame`` itself: it uses only the history
    before the cutoff (no labels), so it is out of sample for the horizon after it.
    """
    out: dict[str, dict[str, Any]] = {CLV_MODEL_NAME: {}, CHURN_MODEL_NAME: {}}
    btyd_pred = _btyd_predictions(frame, horizon_days)
    if btyd_pred is not None:
        out[CLV_MODEL_NAME][BTYD_BASELINE] = btyd_pred[0].copy()
        out[CHURN_MODEL_NAME][BTYD_BASELINE] = btyd_pred[1].copy()
    out[CLV_MODEL_NAME][NAIVE_SPEND_BASELINE] = past_spend_rate(frame, horizon_days)
    out[CHURN_MODEL_NAME][NAIVE_CHURN_BASELINE] = recency_churn_score(frame)
    return out


#: BTYD fits by content of the frame they were fitted on: the three training tasks and
#: ``evaluate`` fit the same baseline on the same holdout (3.3 s each on CDNOW); when they
#: run in one process (``airflow dags test``, ``make run``) it is fitted once.
_BTYD_MEMO: dict[tuple, tuple[np.ndarray, np.ndarray] | None] = {}


def _btyd_predictions(frame: pd.DataFrame, horizon_days: int
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """(spend, churn) of BG/NBD + Gamma-Gamma fitted on ``frame``; None if it cannot be."""
    import hashlib

    from clv.models import btyd

    # Key on exactly what the fit reads (btyd.rft_from_features): equal key, equal fit.
    digest = hashlib.sha1()
    for arr in btyd.rft_from_features(frame):
        digest.update(np.ascontiguousarray(arr, dtype=float).tobytes())
    key = (horizon_days, len(frame), digest.hexdigest())
    if key not in _BTYD_MEMO:
        _BTYD_MEMO.clear()  # keep one entry: the process's current holdout
        try:
            base = btyd.BtydBaseline.fit(frame)
            _BTYD_MEMO[key] = (base.predict_spend(frame, horizon_days),
                               base.predict_churn(frame, horizon_days))
        except (ValueError, FloatingPointError) as exc:  # too few repeat customers
            log.warning("BTYD baseline not fitted (%s); the BTYD gate is skipped", exc)
            _BTYD_MEMO[key] = None
    return _BTYD_MEMO[key]


def _baseline_metrics(name: str, y: np.ndarray, baselines: dict[str, np.ndarray]
                      ) -> dict[str, dict[str, float]]:
    return {b: report(name, y, pred) for b, pred in baselines.items()}


def _charts(name: str, label: str, y: np.ndarray, pred: np.ndarray,
            baselines: dict[str, np.ndarray], folder: Path) -> list[str]:
    """PNG charts of one prediction next to the baselines: deciles + gain, or calibration."""
    both = {label: pred, **baselines}
    if registry.OUTPUT[name] == "spend":
        return [metrics.plot_deciles(y, pred, folder / f"{name}_deciles.png",
                                     f"{label}: mean predicted vs actual per decile"),
                metrics.plot_gain(y, both, folder / f"{name}_gain.png",
                                  f"{name}: gain (Lorenz) chart")]
    return [metrics.plot_calibration(y, both, folder / f"{name}_calibration.png",
                                     f"{label}: churn calibration"),
            metrics.plot_gain(y, both, folder / f"{name}_gain.png",
                              f"{name}: cumulative churners captured")]


def _log_evaluation(name: str, label: str, y: np.ndarray, pred: np.ndarray,
                    baselines: dict[str, np.ndarray]) -> dict[str, float]:
    """Metrics (model and baselines) and charts into the active MLflow run."""
    import mlflow

    model_report = report(name, y, pred)
    flat = {f"baseline_{b}_{k}": v
            for b, rep in _baseline_metrics(name, y, baselines).items() for k, v in rep.items()}
    mlflow.log_metrics({**model_report, **flat, "n_eval_customers": float(len(y))})
    with tempfile.TemporaryDirectory() as tmp:
        for path in _charts(name, label, y, pred, baselines, Path(tmp)):
            mlflow.log_artifact(path, artifact_path="evaluation")
    return model_report


# --------------------------------------------------------------------------- XGBoost


def train_clv_model(
    as_of_date: dt.date, horizon_days: int, run_id: str, settings: Settings | None = None
) -> TrainResult:
    """Tweedie XGBoost regressor of spend over the horizon (zero-inflated target)."""
    import xgboost as xgb

    learn = _learning_split(as_of_date, settings)
    device = xgboost_device()
    model = xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5,
                             device=device, **XGB_PARAMS)
    # Returns make a customer's window spend negative at times; Tweedie needs >= 0.
    y = np.clip(learn["spend_next"].to_numpy(), 0.0, None)
    x = feature_matrix(learn, "float32")
    del learn
    _fit(model, x, y)
    balance_tweedie(model, x, y)
    del x
    evaluate = _holdout(as_of_date, settings)  # only now: one split in memory at a time
    return _register_xgboost(CLV_MODEL_NAME, model, device, evaluate, predict_spend,
                             dict(as_of_date=as_of_date, horizon_days=horizon_days,
                                  run_id=run_id, objective="reg:tweedie"), settings)


def train_churn_model(
    as_of_date: dt.date, horizon_days: int, run_id: str, settings: Settings | None = None
) -> TrainResult:
    """XGBoost classifier of churn = no purchase over the horizon."""
    import xgboost as xgb

    learn = _learning_split(as_of_date, settings)
    device = xgboost_device()
    model = xgb.XGBClassifier(objective="binary:logistic", eval_metric="logloss",
                              device=device, **XGB_PARAMS)
    y = learn["churned"].to_numpy()
    x = feature_matrix(learn, "float32")
    del learn
    _fit(model, x, y)
    del x
    evaluate = _holdout(as_of_date, settings)
    return _register_xgboost(CHURN_MODEL_NAME, model, device, evaluate, predict_churn,
                             dict(as_of_date=as_of_date, horizon_days=horizon_days,
                                  run_id=run_id, objective="binary:logistic"), settings)


#: SHAP importance is a mean over rows: a seeded sample of this many is enough (TreeSHAP
#: over all 23,570 CDNOW customers x 600 trees took 3.9 s per model on 2 cores).
SHAP_SAMPLE_ROWS = 5000
#: The signature is column names and types: a few rows give it (MLflow's
#: ``infer_signature`` over all 2.57M holdout rows of the 10M-order bench took minutes).
SIGNATURE_ROWS = 100


def shap_importance(model: Any, x: pd.DataFrame, max_rows: int = SHAP_SAMPLE_ROWS
                    ) -> pd.Series:
    """Mean |SHAP contribution| per feature (XGBoost's exact TreeSHAP, ``pred_contribs``),
    in the model's output space (log of spend for Tweedie, log-odds for churn), over a
    seeded sample of ``max_rows`` rows when ``x`` has more."""
    import pandas as pd
    import xgboost as xgb

    if len(x) > max_rows:
        x = x.sample(n=max_rows, random_state=SEED)
    contribs = model.get_booster().predict(xgb.DMatrix(x), pred_contribs=True)
    return pd.Series(np.abs(contribs[:, :-1]).mean(axis=0), index=list(x.columns))


def _register_xgboost(name: str, model: Any, device: str, evaluate: pd.DataFrame,
                      predict: Callable, context: dict[str, Any],
                      settings: Settings | None) -> TrainResult:
    from mlflow.models import infer_signature

    import mlflow

    x_eval, y_eval = feature_matrix(evaluate), truth(name, evaluate)
    pred = predict(model, x_eval)
    anchor, anchor_params = _level_anchor(name, x_eval, y_eval, pred, context["horizon_days"])
    if anchor:  # what the registered version will predict (ScoringModel applies it)
        pred = pred * anchor_params["level_factor_holdout"]
    baselines = baseline_predictions(evaluate, context["horizon_days"])[name]
    experiment_id = registry.configure_mlflow(settings)
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=lineage.run_name(f"{name}-xgboost", context["as_of_date"],
                                                    context["run_id"])) as run:
        mlflow.set_tags(_run_tags("xgboost", device, context))
        mlflow.log_params({**{k: v for k, v in model.get_params().items()
                              if k in XGB_PARAMS or k == "objective"},
                           "horizon_days": context["horizon_days"], "device": device,
                           "n_features": x_eval.shape[1],
                           "best_iteration": getattr(model, "best_iteration", None),
                           "balance_factor": getattr(model, "balance_factor_", None),
                           **anchor_params})
        model_report = _log_evaluation(name, f"{name} (xgboost)", y_eval, pred, baselines)
        importance = shap_importance(model, x_eval)
        mlflow.log_dict({k: float(v) for k, v in importance.sort_values(ascending=False)
                         .items()}, "evaluation/shap_importance.json")
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(metrics.plot_importance(
                importance, Path(tmp) / "shap_importance.png",
                f"{name}: mean |SHAP| on the holdout"), artifact_path="evaluation")
        info = mlflow.xgboost.log_model(
            model, name="model", registered_model_name=name,
            signature=infer_signature(x_eval.head(SIGNATURE_ROWS), pred[:SIGNATURE_ROWS]),
            input_example=x_eval.head(3),
            pip_requirements=_model_requirements("xgboost", "scikit-learn"),
        )
    version = str(info.registered_model_version)
    if anchor:
        mlflow.MlflowClient().set_model_version_tag(name, version, "level_anchor",
                                                    json.dumps(anchor, sort_keys=True))
    return _tag_version(name, version, "xgboost", device, run.info.run_id, model_report,
                        context)


def _level_anchor(name: str, x_eval: pd.DataFrame, y_eval: np.ndarray, pred: np.ndarray,
                  horizon_days: int) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The spend version's level anchor (:data:`clv.models.btyd_pyfunc.LEVEL_ANCHOR`) and the
    params that record it: the factor on the holdout and the aggregate error without it."""
    from clv.models import btyd_pyfunc

    family = btyd_pyfunc.LEVEL_ANCHOR
    if registry.OUTPUT[name] != "spend" or not family:
        return None, {}
    factor = btyd_pyfunc.level_factor(x_eval, pred, horizon_days, family)
    return {"family": family, "horizon_days": int(horizon_days)}, {
        "level_anchor": family, "level_factor_holdout": factor,
        "aggregate_error_unanchored": metrics.aggregate_error(y_eval, pred)}


# --------------------------------------------------------------------------- TensorFlow ZILN


def train_ziln_model(
    as_of_date: dt.date, horizon_days: int, run_id: str, settings: Settings | None = None,
    config: Any = None,
) -> tuple[TrainResult, TrainResult]:
    """ZILN network (TensorFlow): one training, registered as a ``clv_spend`` version
    (expected value) and a ``clv_churn`` version (1 - p), each gated on its own."""
    from mlflow.models import infer_signature

    import mlflow
    from clv.models import ziln

    learn = _learning_split(as_of_date, settings)
    n_learn = len(learn)
    config = config or ziln.ZilnConfig()
    # Keep only the rows the network learns from (250,000 of 2.57M at 10M orders)
    sample, spend = ziln.learning_sample(learn, learn["spend_next"].to_numpy(dtype=float),
                                         config)
    del learn
    model = ziln.ZilnModel.fit(sample, spend, config, n_offered=n_learn)
    del sample, spend
    evaluate = _holdout(as_of_date, settings)
    device = model.device
    x_eval = feature_matrix(evaluate)
    spend_pred, churn_pred = model.predict_both(x_eval)  # one pass over the holdout
    preds = {CLV_MODEL_NAME: spend_pred, CHURN_MODEL_NAME: churn_pred}
    all_baselines = baseline_predictions(evaluate, horizon_days)
    context = dict(as_of_date=as_of_date, horizon_days=horizon_days, run_id=run_id)
    experiment_id = registry.configure_mlflow(settings)
    reports, versions = {}, {}
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(
            experiment_id=experiment_id,
            run_name=lineage.run_name("ziln-tensorflow", as_of_date, run_id)) as run:
        folder = model.save(Path(tmp) / "ziln")
        mlflow.set_tags(_run_tags("tensorflow", device, context))
        mlflow.log_params({**asdict(model.config), **model.history,
                           "horizon_days": horizon_days, "device": device,
                           "n_features": x_eval.shape[1], "n_learn_customers": n_learn})
        for name, output in ((CLV_MODEL_NAME, "spend"), (CHURN_MODEL_NAME, "churn")):
            reports[name] = _log_evaluation(name, f"{name} (ziln)", truth(name, evaluate),
                                            preds[name], all_baselines[name])
            info = mlflow.pyfunc.log_model(
                name=f"{output}_model", python_model=ziln.ZilnPyfunc(output),
                artifacts={"ziln": str(folder)}, registered_model_name=name,
                signature=infer_signature(x_eval.head(SIGNATURE_ROWS),
                                          preds[name][:SIGNATURE_ROWS]),
                pip_requirements=_model_requirements("tensorflow", "keras"),
            )
            versions[name] = str(info.registered_model_version)
    spend, churn = (_tag_version(name, versions[name], "tensorflow", device, run.info.run_id,
                                 reports[name], context)
                    for name in (CLV_MODEL_NAME, CHURN_MODEL_NAME))
    return spend, churn


# --------------------------------------------------------------------------- BTYD


def train_btyd_models(as_of_date: dt.date, horizon_days: int, run_id: str,
                      settings: Settings | None = None, kinds: list[str] | None = None
                      ) -> list[TrainResult]:
    """Each BTYD purchase model (+ Gamma-Gamma) fitted on the learning split's history
    (no labels), registered as a ``clv_spend`` and a ``clv_churn`` version.

    A model that cannot be fitted (too few repeat customers) is skipped with a warning:
    the other families still compete.
    """
    from clv.models import btyd_pyfunc

    learn = _learning_split(as_of_date, settings)
    fitted = []
    for kind in kinds or list(btyd_pyfunc.MODELS):
        try:
            fitted.append(btyd_pyfunc.BtydModel.fit(kind, learn, horizon_days))
        except (ValueError, FloatingPointError) as exc:
            log.warning("BTYD model %s not fitted (%s); it does not compete", kind, exc)
    del learn
    evaluate = _holdout(as_of_date, settings)
    context = dict(as_of_date=as_of_date, horizon_days=horizon_days, run_id=run_id)
    return [r for model in fitted
            for r in _register_btyd(model, evaluate, context, settings)]


def _register_btyd(model: Any, evaluate: pd.DataFrame, context: dict[str, Any],
                   settings: Settings | None) -> list[TrainResult]:
    from mlflow.models import infer_signature

    import mlflow
    from clv.models import btyd_pyfunc

    x_eval = feature_matrix(evaluate)
    preds = {CLV_MODEL_NAME: model.predict_spend(x_eval),
             CHURN_MODEL_NAME: model.predict_churn(x_eval)}
    all_baselines = baseline_predictions(evaluate, context["horizon_days"])
    experiment_id = registry.configure_mlflow(settings)
    versions, reports = {}, {}
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=lineage.run_name(f"btyd-{model.kind}", context["as_of_date"],
                                                    context["run_id"])) as run:
        mlflow.set_tags({**_run_tags("btyd", "cpu", context), "btyd_model": model.kind})
        mlflow.log_params({**model.params(), "btyd_model": model.kind,
                           "horizon_days": context["horizon_days"],
                           "n_fit_customers": model.n_fit_customers})
        for name, output in ((CLV_MODEL_NAME, "spend"), (CHURN_MODEL_NAME, "churn")):
            reports[name] = _log_evaluation(name, f"{name} (btyd {model.kind})",
                                            truth(name, evaluate), preds[name],
                                            all_baselines[name])
            info = mlflow.pyfunc.log_model(
                name=f"{output}_model", python_model=btyd_pyfunc.BtydPyfunc(model, output),
                registered_model_name=name,
                signature=infer_signature(x_eval.head(SIGNATURE_ROWS),
                                          preds[name][:SIGNATURE_ROWS]),
                pip_requirements=_model_requirements("scipy"),
            )
            versions[name] = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for name, version in versions.items():
        client.set_model_version_tag(name, version, "btyd_model", model.kind)
    return [_tag_version(name, versions[name], "btyd", "cpu", run.info.run_id, reports[name],
                         context) for name in (CLV_MODEL_NAME, CHURN_MODEL_NAME)]


# --------------------------------------------------------------------------- registry


def _run_tags(family: str, device: str, context: dict[str, Any]) -> dict[str, str]:
    """Tags of a training run and (less the ``mlflow.`` ones) of its versions: family,
    device, horizon, feature set and the links back to the Airflow run."""
    return {"model_family": family, "device": device,
            "horizon_days": str(int(context["horizon_days"])),
            "feature_set": lineage.feature_set(FEATURE_COLUMNS),
            **lineage.run_tags(context["run_id"], context["as_of_date"])}


def _tag_version(name: str, version: str, family: str, device: str, mlflow_run_id: str,
                 model_report: dict[str, float], context: dict[str, Any]) -> TrainResult:
    """Tag a new version; its alias is decided later by :func:`evaluate_models`, when
    every family of the run has been scored on the same holdout."""
    import mlflow

    client = mlflow.MlflowClient()
    for key, value in _run_tags(family, device, context).items():
        if not key.startswith("mlflow."):  # the run's description is not the version's
            client.set_model_version_tag(name, version, key, value)
    registry.record_artifact_digest(name, version)  # scoring loads only these artifacts
    reason = "registered; the alias is decided by the evaluate step"
    client.set_model_version_tag(name, version, "alias_decision", reason)
    _describe(client, name, version, family, model_report, mlflow_run_id, context)
    log.info("%s v%s (%s) on %s: %s", name, version, family, device, model_report)
    return TrainResult(name, version, mlflow_run_id, device, model_report, None, reason,
                       family)


def _describe(client: Any, name: str, version: str, family: str,
              model_report: dict[str, float], mlflow_run_id: str,
              context: dict[str, Any]) -> None:
    """The version's model card and the registered model's description (#21)."""
    predicts = registry.PREDICTS[name]
    card = lineage.model_card(name, version, family, predicts, context["as_of_date"],
                              int(context["horizon_days"]), FEATURE_COLUMNS,
                              context["run_id"], model_report,
                              client.get_run(mlflow_run_id).data.metrics)
    client.update_model_version(name, version, description=card)
    client.update_registered_model(
        name, description=lineage.registered_model_description(name, predicts))


def _model_requirements(*packages: str) -> list[str]:
    """Exact versions a model needs to load: given, so MLflow skips its slow inference."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in (*packages, "numpy", "pandas")]


# --------------------------------------------------------------------------- evaluate step


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


def evaluate_models(as_of_date: dt.date, horizon_days: int, run_id: str,
                    settings: Settings | None = None) -> pd.DataFrame:
    """Score every aliased or newly registered version and every baseline on the
    holdout, then decide the aliases (:func:`clv.models.registry.decide_aliases`).

    Per model name, under its alias lock: the versions are scored, the rule is applied
    to their metrics and the aliases move, so the comparison and the move see the same
    champion. Returns the rows of ``marts.model_metrics`` (one per model x metric x
    cutoff; ``model_alias`` = the alias after the decision) and logs them to an MLflow
    run of their own (``kind=evaluation``): each value as a metric
    ``<model>.v<version>.<metric>``, the table as CSV, and comparison charts.
    """
    import pandas as pd

    import mlflow

    evaluate = _holdout(as_of_date, settings)
    cutoff = pd.Timestamp(evaluate["cutoff_date"].iat[0]).date()
    x_eval = feature_matrix(evaluate)
    baselines = baseline_predictions(evaluate, horizon_days)
    truths = {name: truth(name, evaluate) for name in (CLV_MODEL_NAME, CHURN_MODEL_NAME)}
    del evaluate  # the labels and the matrix are all that is left to use (0.9 GiB at 2.57M)
    registry.configure_mlflow(settings)
    client = mlflow.MlflowClient()
    tables, charts = [], {}
    for name in (CLV_MODEL_NAME, CHURN_MODEL_NAME):
        preds = {(b, "baseline", "btyd" if b == BTYD_BASELINE else "naive"): p
                 for b, p in baselines[name].items()}
        with registry.alias_lock(name, settings):
            for version, _ in _versions_to_evaluate(client, name, run_id, horizon_days):
                model = registry.load_version(name, version, settings)
                preds[(name, version, model.family)] = model.predict(x_eval)
            table = _metric_rows(name, truths[name], preds, cutoff, horizon_days, run_id)
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
                 cutoff: dt.date, horizon_days: int, run_id: str) -> pd.DataFrame:
    """marts.model_metrics rows of each (model, version, family) prediction of ``name``."""
    import pandas as pd

    rows = [dict(model_name=model, model_version=version, model_alias=None,
                 model_family=family, target=registry.OUTPUT[name], metric=metric,
                 value=float(value), cutoff_date=cutoff, horizon_days=int(horizon_days),
                 n_customers=len(y), run_id=run_id)
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
