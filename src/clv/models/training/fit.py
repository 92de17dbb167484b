"""Train the CLV (spend over the horizon) and churn models out of time, each family.

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
  fitted on the driver, or on the Spark executors on a cluster (:mod:`clv.models.distributed`:
  same params, stopping rule and balancing; version tag ``trained_on``);
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

Each family's versions are only registered here; :mod:`.evaluate` decides the aliases.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME, Settings
from clv.data import lineage
from clv.features.columns import feature_matrix, model_columns, sources_of
from clv.models import distributed, metrics, registry
from clv.models.device import xgboost_device
from clv.models.reasons import shap_contributions
from clv.models.training.baselines import baseline_predictions, truth
from clv.models.training.charts import _log_evaluation
from clv.models.training.register import (
    TrainResult,
    _model_requirements,
    _run_tags,
    _tag_version,
)
from clv.models.training.splits import _holdout, _learning_split, learning_split

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

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
    return _balance(model, float(np.sum(model.predict(x))), float(np.sum(y)))


def _balance(model: Any, pred_total: float, label_total: float) -> float:
    """:func:`balance_tweedie` given the two totals (a fit on the executors sums them there)."""
    if pred_total <= 0 or label_total <= 0:
        return 1.0
    factor = label_total / pred_total
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


# --------------------------------------------------------------------------- XGBoost


def train_clv_model(
    as_of_date: dt.date, horizon_days: int, run_id: str, settings: Settings | None = None
) -> TrainResult:
    """Tweedie XGBoost regressor of spend over the horizon (zero-inflated target)."""
    import xgboost as xgb

    device = xgboost_device()
    model = xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5,
                             device=device, **XGB_PARAMS)
    trained_on = _fit_on_executors(model, "spend_next", as_of_date, settings)
    if trained_on is None:  # on the driver, from the learning sample
        learn = learning_split(as_of_date, settings)
        # Returns make a customer's window spend negative at times; Tweedie needs >= 0.
        y = np.clip(learn["spend_next"].to_numpy(), 0.0, None)
        x = feature_matrix(learn, "float32", model_columns(learn))  # + optional sources
        offered = learn.attrs["n_offered_rows"]
        del learn
        _fit(model, x, y)
        balance_tweedie(model, x, y)
        model.n_learn_rows_, model.n_offered_rows_ = len(x), offered
        del x
    evaluate = _holdout(as_of_date, settings)  # only now: one split in memory at a time
    return _register_xgboost(CLV_MODEL_NAME, model, device, evaluate, predict_spend,
                             dict(as_of_date=as_of_date, horizon_days=horizon_days,
                                  run_id=run_id, objective="reg:tweedie",
                                  trained_on=trained_on or distributed.LOCAL), settings)


def train_churn_model(
    as_of_date: dt.date, horizon_days: int, run_id: str, settings: Settings | None = None
) -> TrainResult:
    """XGBoost classifier of churn = no purchase over the horizon."""
    import xgboost as xgb

    device = xgboost_device()
    model = xgb.XGBClassifier(objective="binary:logistic", eval_metric="logloss",
                              device=device, **XGB_PARAMS)
    trained_on = _fit_on_executors(model, "churned", as_of_date, settings)
    if trained_on is None:  # on the driver, from the learning sample
        learn = learning_split(as_of_date, settings)
        y = learn["churned"].to_numpy()
        x = feature_matrix(learn, "float32", model_columns(learn))  # + optional sources
        offered = learn.attrs["n_offered_rows"]
        del learn
        _fit(model, x, y)
        model.n_learn_rows_, model.n_offered_rows_ = len(x), offered
        del x
    evaluate = _holdout(as_of_date, settings)
    return _register_xgboost(CHURN_MODEL_NAME, model, device, evaluate, predict_churn,
                             dict(as_of_date=as_of_date, horizon_days=horizon_days,
                                  run_id=run_id, objective="binary:logistic",
                                  trained_on=trained_on or distributed.LOCAL), settings)


def _fit_on_executors(model: Any, label: str, as_of_date: dt.date,
                      settings: Settings | None) -> str | None:
    """Fit ``model`` on the Spark executors when :func:`clv.models.distributed.choose`
    says so (same params, early-stopping rule and Tweedie balancing as on the driver);
    returns the ``trained_on`` tag, or None: fit it on the driver."""
    from clv.config import load_settings
    from clv.data import warehouse
    from clv.models.training.splits import TRAINING_TABLE

    s = settings or load_settings()
    where = distributed.choose(f"{type(model).__name__} fit", s, needs_spark_context=True,
                               rows=lambda: warehouse.row_count(TRAINING_TABLE, as_of_date, s))
    if not where.distributed:
        return None
    fitted = distributed.fit_xgboost(model, label, as_of_date, s, _early_stopping_split,
                                     clip_negative=label == "spend_next")
    if label == "spend_next":
        _balance(model, fitted.prediction_total, fitted.label_total)
    return fitted.trained_on


#: SHAP importance is a mean over rows: a seeded sample of this many is enough (TreeSHAP
#: over all 23,570 CDNOW customers x 600 trees took 3.9 s per model on 2 cores).
SHAP_SAMPLE_ROWS = 5000
#: The signature is column names and types: a few rows give it (MLflow's
#: ``infer_signature`` over all 2.57M holdout rows of the 10M-order bench took minutes).
SIGNATURE_ROWS = 100
#: Version tag: the data sources its inputs came from (``orders,reviews,...``).
SOURCES_TAG = "sources"


def shap_importance(model: Any, x: pd.DataFrame, max_rows: int = SHAP_SAMPLE_ROWS
                    ) -> pd.Series:
    """Mean |SHAP contribution| per feature (XGBoost's exact TreeSHAP, ``pred_contribs``),
    in the model's output space (log of spend for Tweedie, log-odds for churn), over a
    seeded sample of ``max_rows`` rows when ``x`` has more."""
    import pandas as pd

    if len(x) > max_rows:
        x = x.sample(n=max_rows, random_state=SEED)
    contribs = shap_contributions(model, x)
    return pd.Series(np.abs(contribs).mean(axis=0), index=list(x.columns))


def _register_xgboost(name: str, model: Any, device: str, evaluate: pd.DataFrame,
                      predict: Callable, context: dict[str, Any],
                      settings: Settings | None) -> TrainResult:
    from mlflow.models import infer_signature

    import mlflow

    x_eval = feature_matrix(evaluate, columns=model_columns(evaluate))
    y_eval = truth(name, evaluate)
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
                           "n_learn_rows": getattr(model, "n_learn_rows_", None),
                           "n_offered_rows": getattr(model, "n_offered_rows_", None),
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
    client = mlflow.MlflowClient()
    # which data the version learned from (marts.model_metrics shows it per version)
    client.set_model_version_tag(name, version, SOURCES_TAG,
                                 ",".join(sources_of(list(x_eval.columns))))
    if anchor:
        client.set_model_version_tag(name, version, "level_anchor",
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


def ziln_fit_inputs(as_of_date: dt.date, settings: Settings | None = None,
                    config: Any = None) -> tuple[Any, pd.DataFrame, np.ndarray, int]:
    """What the ZILN fit learns from: ``(config, sample, spend, customers offered)``.

    Only the rows the network learns from become pandas (250,000 of 2.57M at 10M
    orders): the sample :func:`clv.models.ziln.learning_sample` would take, same seed."""
    from clv.models import ziln

    config = config or ziln.ZilnConfig()
    sample = _learning_split(as_of_date, settings, config.max_learn_rows, config.seed)
    return (config, sample, sample["spend_next"].to_numpy(dtype=float),
            int(sample.attrs["n_offered_rows"]))


def fit_ziln(as_of_date: dt.date, settings: Settings | None = None, config: Any = None):
    """The ZILN network fitted on :func:`ziln_fit_inputs` (the fit of :func:`train_ziln_model`)."""
    from clv.models import ziln

    config, sample, spend, n_learn = ziln_fit_inputs(as_of_date, settings, config)
    return ziln.ZilnModel.fit(sample, spend, config, n_offered=n_learn)


def train_ziln_model(
    as_of_date: dt.date, horizon_days: int, run_id: str, settings: Settings | None = None,
    config: Any = None, fitted: Any = None,
) -> tuple[TrainResult, TrainResult]:
    """ZILN network (TensorFlow): one training, registered as a ``clv_spend`` version
    (expected value) and a ``clv_churn`` version (1 - p), each gated on its own.

    ``fitted``: the network :func:`fit_ziln` gives for these arguments, where it was
    fitted beforehand (a head start, :mod:`clv.pipeline.head_start`); else it is fitted here.
    """
    from mlflow.models import infer_signature

    import mlflow
    from clv.models import ziln

    model = fitted or fit_ziln(as_of_date, settings, config)
    n_learn = model.history["n_offered_rows"]
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

    learn = learning_split(as_of_date, settings)
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
    broken = {name: int((~np.isfinite(np.asarray(p, dtype=float))).sum())
              for name, p in preds.items()}
    if any(broken.values()):
        # A fit can converge to parameters whose predictions overflow on some customers
        # (Olist: 73 repeat buyers among 8,000). Such a version could never be scored.
        log.warning("BTYD model %s not registered: predictions not finite on the evaluation "
                    "split (%s of %d customers); the other families still compete", model.kind,
                    ", ".join(f"{n} {c}" for n, c in broken.items() if c), len(x_eval))
        return []
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
