"""What the ZILN network's batch size and learning sample cost: fit seconds, epochs and
the holdout's spend Gini, decile MAPE, aggregate error and churn AUC per setting.

    .venv/bin/python bench/bench_ziln_batch.py --home HOME --as-of-date 2025-12-29 \\
        [--settings 250000:512:3e-4,250000:2048:6e-4]     # rows:batch:learning rate

``HOME`` is a ``CLV_HOME`` whose warehouse holds ``features.training_examples`` for the
date (e.g. ``.state/bench/dag-orders-10000000-seed7-isolated`` after
``bench/bench_dag.py --isolated`` at 10M orders). Each setting learns from the seeded
sample ``train_ziln`` would take (same seed) and is judged on the holdout ``train_ziln``
judges on (``CLV_MAX_EVAL_ROWS``). Writes ``bench/results/bench_ziln_batch-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import time
from pathlib import Path

import recording


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--as-of-date", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--settings", default="250000:512:3e-4,250000:2048:6e-4,"
                                              "250000:2048:1.2e-3,100000:512:3e-4")
    args = parser.parse_args(argv)
    os.environ["CLV_HOME"] = str(args.home.resolve())

    from clv.features.columns import feature_matrix
    from clv.models import metrics, ziln
    from clv.models.training import splits

    load_start = os.getloadavg()
    hold = splits.holdout(args.as_of_date)
    x_eval = feature_matrix(hold)
    y_spend = hold["spend_next"].clip(lower=0).to_numpy()
    y_churn = hold["churned"].to_numpy()
    rows = []
    for setting in args.settings.split(","):
        n, batch, lr = setting.split(":")
        config = dataclasses.replace(ziln.ZilnConfig(), max_learn_rows=int(n),
                                     batch_size=int(batch), learning_rate=float(lr))
        sample = splits.load_split(args.as_of_date, "train", max_rows=config.max_learn_rows,
                                   seed=config.seed)
        t0 = time.perf_counter()
        model = ziln.ZilnModel.fit(sample, sample["spend_next"].to_numpy(float), config)
        row = {"learn_rows": len(sample), "batch_size": config.batch_size,
               "learning_rate": config.learning_rate,
               "fit_s": time.perf_counter() - t0,
               "epochs_run": model.history["epochs_run"],
               "best_epoch": model.history["best_epoch"]}
        spend, churn = model.predict_both(x_eval)
        row.update({f"spend_{k}": v for k, v in metrics.regression_report(y_spend, spend).items()
                    if k in ("normalized_gini", "spearman", "decile_mape")})
        row["spend_aggregate_error"] = metrics.aggregate_error(y_spend, spend)
        row.update({f"churn_{k}": v for k, v in
                    metrics.classification_report(y_churn, churn).items()
                    if k in ("roc_auc", "brier")})
        rows.append(row)
        recording.show(row)
        del sample, model
    recording.write_judged_rows("bench_ziln_batch", args.as_of_date, len(hold), rows, load_start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
