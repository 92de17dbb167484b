"""TreeSHAP once per split pattern (:mod:`clv.models.treeshap`) vs XGBoost's ``pred_contribs``.

    PYTHONPATH=src:bench .venv/bin/python bench/bench_treeshap.py                  # synthetic
    CLV_HOME=<a run's home> PYTHONPATH=src:bench .venv/bin/python bench/bench_treeshap.py \\
        --version 4 --as-of-date 2025-12-29 --rows 500000      # a registered clv_spend version

Without ``--version``: an XGBoost Tweedie model with the pipeline's settings
(:data:`clv.models.training.XGB_PARAMS`: depth 4, early stopping) fitted on ``--rows``
synthetic customers with 34 heavy-tailed inputs, a tenth of one of them missing. With
it: that ``clv_spend`` version and the home's features at the as-of date (the first
``--rows`` customers), what the explain task computes. Prints the seconds of both ways
(XGBoost on every core, the pattern way's numpy on one), the patterns per tree, and
whether the two matrices are identical; writes ``bench/results/bench_treeshap-*.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

import numpy as np
import pandas as pd
import recording

from clv.models import reasons, treeshap


def _synthetic(rows: int, seed: int = 7):
    import xgboost as xgb

    from clv.models.training import XGB_PARAMS

    rng = np.random.default_rng(seed)
    x = pd.DataFrame({f"x{k:02d}": rng.gamma(1.0 + k % 4, 10.0, rows) for k in range(34)})
    x.loc[rng.random(rows) < 0.1, "x03"] = np.nan
    x = x.astype("float32")
    y = rng.gamma(2.0, np.exp(0.02 * x["x00"] - 0.01 * x["x01"].fillna(0)) * 20.0)
    model = xgb.XGBRegressor(objective="reg:tweedie", **XGB_PARAMS)
    cut = int(rows * 0.8)
    model.fit(x[:cut], y[:cut], eval_set=[(x[cut:], y[cut:])], verbose=False)
    return model, x, "synthetic"


def _registered(version: str, as_of_date: dt.date, rows: int):
    from clv.config import CLV_MODEL_NAME
    from clv.models import scoring
    from clv.models.registry.loading import load_version

    found = load_version(CLV_MODEL_NAME, version)
    x = scoring.model_features(as_of_date).reindex(columns=found.input_columns())
    return found.model, x.astype("float32").iloc[:rows], f"{CLV_MODEL_NAME} v{version}"


def main() -> None:
    import xgboost as xgb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--version", help="a registered clv_spend version (needs CLV_HOME)")
    parser.add_argument("--as-of-date", type=dt.date.fromisoformat)
    args = parser.parse_args()
    load = os.getloadavg()
    model, x, what = (_registered(args.version, args.as_of_date, args.rows) if args.version
                      else _synthetic(args.rows))
    booster, trees = model.get_booster(), reasons.predicting_trees(model)
    started = time.perf_counter()
    reference = booster.predict(xgb.DMatrix(x), pred_contribs=True,
                                iteration_range=trees)[:, :-1]
    xgboost_s = time.perf_counter() - started
    started = time.perf_counter()
    splits = treeshap.tree_splits(booster, trees, list(x.columns))
    got = treeshap.contributions(booster, splits, x)
    patterns_s = time.perf_counter() - started
    per_tree = treeshap.pattern_counts(splits, x)
    row = {"model": what, "rows": len(x), "columns": x.shape[1], "trees": len(splits),
           "xgboost_s": xgboost_s, "patterns_s": patterns_s,
           "speedup": xgboost_s / patterns_s,
           "patterns_per_tree_median": float(np.median(per_tree)),
           "patterns_per_tree_max": int(max(per_tree)),
           "identical": bool(np.array_equal(reference, got))}
    recording.show(row)
    print(f"wrote {recording.write('bench_treeshap', row, load)}")


if __name__ == "__main__":
    main()
