"""Interval coverage, reasons and p_alive on full CDNOW, the pipeline's way (issue #15).

    PYTHONPATH=src:bench .venv/bin/python bench/bench_intervals.py [--horizon 180] [--no-ziln]

As the DAG at as-of 1998-07-01 (the day after CDNOW ends): the models learn at
as_of - 2H (labels up to as_of - H) on every customer, the holdout is the customers at
as_of - H with their spend up to as_of. Prints, per model family, the 80 % interval's
coverage on the holdout's measurement half next to the method's own expectation
(:func:`clv.models.intervals.holdout_coverage`), the share of customers with P10 = 0 and
P50 = 0, and the seconds TreeSHAP reasons and the BG/NBD p_alive take for everyone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
from bench_models import features_at, read_orders

from clv.config import DEFAULT_HORIZON_DAYS
from clv.models import btyd, intervals, reasons, training
from clv.models.registry import ScoringModel

AS_OF = dt.date(1998, 7, 1)


class _Ziln:
    """A fitted ZilnModel with the scoring interface (predict = expected spend)."""

    def __init__(self, model):
        self.model = model

    def predict(self, x):
        return self.model.predict_spend(x)


def _report(name: str, model, holdout) -> None:
    out = intervals.holdout_coverage(model, holdout)
    x = training.feature_matrix(holdout)
    q = intervals.fit_intervals(model, holdout).quantiles(model, x, model.predict(x))
    print(f"{name:8s} coverage_80 {out[intervals.COVERAGE_METRIC]:.3f}  nominal "
          f"{out[intervals.NOMINAL_METRIC]:.3f}  PIT {out[intervals.PIT_METRIC]:.3f}  "
          f"n {out['n_customers']}  P10=0 "
          f"{np.mean(q[:, 0] == 0):.3f}  P50=0 {np.mean(q[:, 1] == 0):.3f}  "
          f"({out['method']})")


def main() -> None:
    import xgboost as xgb

    parser = argparse.ArgumentParser()
    parser.add_argument("--horizon", type=int, default=DEFAULT_HORIZON_DAYS)
    parser.add_argument("--no-ziln", action="store_true")
    args = parser.parse_args()
    h = dt.timedelta(days=args.horizon)
    orders = read_orders()
    learn = features_at(orders, AS_OF - 2 * h, args.horizon)
    holdout = features_at(orders, AS_OF - h, args.horizon)
    holdout["customer_id"] = holdout["customer_id"].astype(str)
    print(f"horizon {args.horizon} d: learn at {AS_OF - 2 * h} ({len(learn)}), holdout at "
          f"{AS_OF - h} ({len(holdout)}, {np.mean(holdout['spend_next'] > 0):.3f} buy)")
    model = xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5,
                             **training.XGB_PARAMS)
    x, y = training.feature_matrix(learn), learn["spend_next"].clip(lower=0).to_numpy()
    training._fit(model, x, y)
    training.balance_tweedie(model, x, y)
    scoring = ScoringModel("clv_spend", "bench", "xgboost", model)
    _report("xgboost", scoring, holdout)
    start = time.perf_counter()
    top = reasons.top_reasons(reasons.shap_contributions(model, training.feature_matrix(
        holdout, "float32")), holdout, "bench", "bench")
    print(f"reasons: {len(top)} rows in {time.perf_counter() - start:.1f} s; rank-1 features "
          f"{top[top['rank'] == 1]['feature'].value_counts().head(3).to_dict()}")
    start = time.perf_counter()
    alive = btyd.BtydBaseline.fit(holdout).bgnbd.p_alive(*btyd.rft_from_features(holdout)[:3])
    print(f"p_alive: mean {alive.mean():.3f}, buyers {alive[holdout['spend_next'] > 0].mean():.3f}"
          f", non-buyers {alive[holdout['spend_next'] <= 0].mean():.3f} "
          f"({time.perf_counter() - start:.1f} s)")
    if not args.no_ziln:
        from clv.models import ziln

        _report("ziln", _Ziln(ziln.ZilnModel.fit(learn, learn["spend_next"].to_numpy(float))),
                holdout)


if __name__ == "__main__":
    main()
