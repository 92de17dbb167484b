"""Train the CLV (spend over the horizon) and churn models out of time, and evaluate them.

Three families (XGBoost, the TensorFlow ZILN network, the BTYD models) register
versions of ``clv_spend`` and ``clv_churn``; the evaluate step scores them with the
baselines on one holdout and moves the aliases (:mod:`clv.models.registry`'s rule).

Submodules:

* :mod:`.splits` — the run's training examples, one split (``train`` / ``eval``) at a time;
* :mod:`.baselines` — the label and metrics a version is judged on, and the baselines;
* :mod:`.charts` — a version's metrics and charts next to the baselines, into MLflow;
* :mod:`.register` — tags, signed digest and model card of a new version (:class:`TrainResult`);
* :mod:`.fit` — fitting and registering each family (XGBoost, ZILN, BTYD);
* :mod:`.evaluate` — the evaluate step: aliases decided, ``marts.model_metrics`` rows.

The model input, :func:`clv.features.feature_matrix`, is re-exported here for old callers.
"""

from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME
from clv.features.columns import feature_matrix
from clv.models.training.baselines import (
    BTYD_BASELINE,
    NAIVE_CHURN_BASELINE,
    NAIVE_SPEND_BASELINE,
    baseline_predictions,
    past_spend_rate,
    recency_churn_score,
    report,
    truth,
)
from clv.models.training.evaluate import (
    METRIC_COLUMNS,
    VersionScore,
    _versions_to_evaluate,
    evaluate_models,
    score_versions,
)
from clv.models.training.fit import (
    MAX_STOPPING_ROWS,
    SEED,
    SHAP_SAMPLE_ROWS,
    SIGNATURE_ROWS,
    XGB_PARAMS,
    _early_stopping_split,
    _fit,
    balance_tweedie,
    fit_ziln,
    predict_churn,
    predict_spend,
    shap_importance,
    train_btyd_models,
    train_churn_model,
    train_clv_model,
    train_ziln_model,
    ziln_fit_inputs,
)
from clv.models.training.register import TrainResult
from clv.models.training.splits import TRAINING_TABLE, _split_with_rows, holdout, load_split

__all__ = [
    "BTYD_BASELINE", "CHURN_MODEL_NAME", "CLV_MODEL_NAME", "MAX_STOPPING_ROWS",
    "METRIC_COLUMNS", "NAIVE_CHURN_BASELINE", "NAIVE_SPEND_BASELINE", "SEED",
    "SHAP_SAMPLE_ROWS", "SIGNATURE_ROWS", "TRAINING_TABLE", "XGB_PARAMS",
    "TrainResult", "VersionScore", "_early_stopping_split", "_fit", "_split_with_rows",
    "_versions_to_evaluate",
    "balance_tweedie", "baseline_predictions", "evaluate_models", "feature_matrix", "fit_ziln",
    "holdout", "load_split", "past_spend_rate", "predict_churn", "predict_spend",
    "recency_churn_score", "report", "score_versions", "shap_importance", "train_btyd_models",
    "train_churn_model", "train_clv_model", "train_ziln_model", "truth", "ziln_fit_inputs",
]
