"""What the learning sample costs: XGBoost spend and churn fitted on n learning customers
(seeded samples, as ``CLV_MAX_TRAIN_ROWS`` takes them) and judged on one holdout sample.

    .venv/bin/python bench/bench_train_cap.py --home HOME --as-of-date 2025-12-29 \\
        [--sizes 100000,250000,500000,0]        # 0 = every learning customer

``HOME`` is a ``CLV_HOME`` whose warehouse holds ``features.training_examples`` for the
date (e.g. ``.state/bench/dag-scale-10000000`` after ``make bench``). Per size: fit
seconds, trees kept, normalized Gini, Spearman, decile MAPE and the aggregate error
of spend (after :func:`clv.models.training.balance_tweedie`, as registered), churn AUC
and Brier. Writes ``bench/results/bench_train_cap-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

import numpy as np
import recording


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--as-of-date", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--sizes", default="100000,250000,500000,0")
    args = parser.parse_args(argv)
    os.environ["CLV_HOME"] = str(args.home.resolve())
    import xgboost as xgb

    from clv.features.columns import feature_matrix, model_columns
    from clv.models import metrics
    from clv.models.training import fit, splits

    load_start = os.getloadavg()
    learn_all = splits.load_split(args.as_of_date, "train")
    hold = splits.holdout(args.as_of_date)
    x_eval = feature_matrix(hold, "float32", model_columns(hold))
    y_spend, y_churn = hold["spend_next"].clip(lower=0).to_numpy(), hold["churned"].to_numpy()
    print(f"{len(learn_all):,} learning customers; judged on {len(hold):,} holdout customers",
          flush=True)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        learn = splits.learning_sample(learn_all, n)
        x = feature_matrix(learn, "float32", model_columns(learn))
        row = {"max_rows": n, "learn_rows": len(x)}
        t0 = time.perf_counter()
        spend = xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5,
                                 **fit.XGB_PARAMS)
        y = np.clip(learn["spend_next"].to_numpy(), 0.0, None)
        fit._fit(spend, x, y)
        fit.balance_tweedie(spend, x, y)
        row["spend_fit_s"] = time.perf_counter() - t0
        row["spend_trees"] = spend.best_iteration + 1
        pred = np.clip(spend.predict(x_eval), 0, None)
        row.update({f"spend_{k}": v for k, v in metrics.regression_report(y_spend, pred).items()
                    if k in ("normalized_gini", "spearman", "decile_mape")})
        row["spend_aggregate_error"] = metrics.aggregate_error(y_spend, pred)
        t0 = time.perf_counter()
        churn = xgb.XGBClassifier(objective="binary:logistic", eval_metric="logloss",
                                  **fit.XGB_PARAMS)
        fit._fit(churn, x, learn["churned"].to_numpy())
        row["churn_fit_s"] = time.perf_counter() - t0
        p = churn.predict_proba(x_eval)[:, 1]
        row.update({f"churn_{k}": v for k, v in metrics.classification_report(y_churn, p).items()
                    if k in ("roc_auc", "brier")})
        rows.append(row)
        recording.show(row)
    recording.write_judged_rows("bench_train_cap", args.as_of_date, len(hold), rows, load_start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
