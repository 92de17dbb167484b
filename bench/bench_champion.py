"""Which family wins ``champion`` on CDNOW, by the rule of issue #15 (rank and level).

    .venv/bin/python bench/bench_champion.py [--as-of 1998-07-01] [--horizon 180] [--ziln]

The ``make run`` protocol without Spark or MLflow: features (pandas, as in
``bench/bench_models.py``) at the learning cutoff ``as_of - 2H`` with the labels of
the horizon after it, and at the evaluation cutoff ``as_of - H``
(:func:`clv.features.backtest_cutoffs`). Every family learns at the first and is
scored at the second: the product's XGBoost (balanced Tweedie + classifier), each
BTYD model of :mod:`clv.btyd_models` (fitted on the learning cutoff's history) and,
with ``--ziln``, the ZILN network; XGBoost appears twice, as the raw booster (v1)
and with the product's level anchor (v9, :func:`clv.btyd_models.level_factor`, what a
registered XGBoost spend version predicts); next to the evaluate step's baselines
(:func:`clv.training.baseline_predictions`, fitted at the evaluation cutoff). Prints
the metrics and :func:`clv.registry.decide_aliases`' decisions for a first run (no
champion yet).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import features_at, read_orders, xgb_product  # noqa: E402

from clv import btyd_models, registry, training  # noqa: E402
from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME  # noqa: E402
from clv.features import backtest_cutoffs  # noqa: E402


def _candidates(learn: pd.DataFrame, score: pd.DataFrame, horizon: int, ziln: bool
                ) -> dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]:
    """(spend, churn) per (model, version, family); versions numbered as registered."""
    out = {}
    t0 = time.perf_counter()
    out[("xgboost", "1", "xgboost")] = xgb_product(learn, score)
    print(f"  xgboost: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    for i, kind in enumerate(btyd_models.MODELS, start=2):
        t0 = time.perf_counter()
        model = btyd_models.BtydModel.fit(kind, learn, horizon)
        x = training.feature_matrix(score)
        out[(f"btyd {kind}", str(i), "btyd")] = (model.predict_spend(x), model.predict_churn(x))
        print(f"  btyd {kind}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if ziln:
        from bench_models import ziln_product

        out[("ziln", str(len(out) + 1), "tensorflow")] = ziln_product(learn, score)
    return out


def _table(name: str, y: np.ndarray, preds: dict) -> pd.DataFrame:
    rows = [dict(model_name=name if version != "baseline" else model, model_version=version,
                 model_family=family, label=model, metric=k, value=float(v))
            for (model, version, family), pred in preds.items()
            for k, v in training.report(name, y, pred).items()]
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(1998, 7, 1))
    parser.add_argument("--horizon", type=int, default=180)
    parser.add_argument("--ziln", action="store_true", help="also the ZILN network (slow)")
    args = parser.parse_args()
    cut = backtest_cutoffs(args.as_of, args.horizon)
    orders = read_orders()
    learn = features_at(orders, cut["train"], args.horizon)
    score = features_at(orders, cut["eval"], args.horizon)
    print(f"learn at {cut['train']} ({len(learn)} customers), scored at {cut['eval']} "
          f"({len(score)}), horizon {args.horizon} days", file=sys.stderr)
    found = _candidates(learn, score, args.horizon, args.ziln)
    baselines = training.baseline_predictions(score, args.horizon)
    # issue #15 item 2: the product's level anchor (BG/NBD's total at the evaluation
    # cutoff, history only) on the raw booster; v1 is the booster without it
    xgb_spend, xgb_churn = found[("xgboost", "1", "xgboost")]
    k = btyd_models.level_factor(training.feature_matrix(score), xgb_spend, args.horizon,
                                 btyd_models.LEVEL_ANCHOR or "bgnbd")
    print(f"  XGBoost level factor (BG/NBD total / XGBoost total): {k:.3f}", file=sys.stderr)
    found[("xgboost, level anchored", "9", "xgboost")] = (xgb_spend * k, xgb_churn)
    for name, j, metric_cols in ((CLV_MODEL_NAME, 0, ["normalized_gini", "aggregate_error",
                                                       "decile_mape"]),
                                 (CHURN_MODEL_NAME, 1, ["roc_auc", "brier"])):
        preds = {k: np.clip(np.asarray(v[j], float), 0, None if j == 0 else 1)
                 for k, v in found.items()}
        preds.update({(b, "baseline", "btyd" if b == training.BTYD_BASELINE else "naive"): p
                      for b, p in baselines[name].items()})
        table = _table(name, training.truth(name, score), preds)
        wide = table.pivot_table(index=["label", "model_version"], columns="metric",
                                 values="value")[metric_cols]
        print(f"\n{name}\n{wide.round(4).to_string()}")
        for d in registry.decide_aliases(name, table, None):
            print(f"  v{d.version} -> {d.alias}: {d.reason}")


if __name__ == "__main__":
    main()
