"""Which family wins ``champion`` on CDNOW, by the rule of issue #15 (rank and level).

    .venv/bin/python bench/bench_champion.py [--as-of 1998-07-01] [--horizon 180] [--ziln]
    .venv/bin/python bench/bench_champion.py --synthetic 20000 [--returns 0.08] [--seed 7]

The ``make run`` protocol without Spark or MLflow: features (pandas, as in
``bench/bench_models.py``) at the learning cutoff ``as_of - 2H`` with the labels of
the horizon after it, and at the evaluation cutoff ``as_of - H``
(:func:`clv.features.backtest_cutoffs`). Every family learns at the first and is
scored at the second: the product's XGBoost (balanced Tweedie + classifier), each
BTYD model of :mod:`clv.models.btyd_pyfunc` (fitted on the learning cutoff's history) and,
with ``--ziln``, the ZILN network; XGBoost appears twice, as the raw booster (v1)
and with the product's level anchor (v9, :func:`clv.models.btyd_pyfunc.level_factor`, what a
registered XGBoost spend version predicts); next to the evaluate step's baselines
(:func:`clv.models.training.baseline_predictions`, fitted at the evaluation cutoff). Prints
the metrics and :func:`clv.models.registry.decide_aliases`' decisions for a first run (no
champion yet), and the champion's Gini and decile MAPE next to the naive past-spend
rate's.

``--synthetic N``: instead of CDNOW, N customers of :mod:`clv.data.synthetic` with
seasonality (``SYNTHETIC_SPEC``: yearly amplitude 0.5, weekly 0.2, 156 weeks observed)
and returns (:func:`clv.data.synthetic.with_returns`: a ``--returns`` share of the orders is
followed by a negative order of the same customer 1-30 days later, full or partial);
the as-of date is the spec's, returns after it are dropped (not yet observed).
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

from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME, DEFAULT_HORIZON_DAYS  # noqa: E402
from clv.data.synthetic import SyntheticSpec, simulate_orders, with_returns  # noqa: E402
from clv.features import backtest_cutoffs  # noqa: E402
from clv.models import btyd_pyfunc, registry, training  # noqa: E402

#: The seasonal synthetic set: three years observed so that the learning cutoff
#: (as_of - 2H, H = 180 days) already has two years of history behind it.
SYNTHETIC_SPEC = dict(observation_weeks=156.0, yearly_amplitude=0.5, weekly_amplitude=0.2)


def synthetic_orders(n_customers: int, returns_share: float, seed: int
                     ) -> tuple[pd.DataFrame, dt.date]:
    """Seasonal synthetic orders with returns in ``read_orders``' columns, and the as-of date."""
    spec = SyntheticSpec(n_customers=n_customers, seed=seed, **SYNTHETIC_SPEC)
    raw = with_returns(simulate_orders(spec, np.arange(n_customers)), returns_share, seed)
    as_of = spec.as_of_date
    day = pd.to_datetime(raw["order_us"], unit="us").dt.normalize()
    orders = pd.DataFrame({"customer_id": raw["customer_num"], "day": day,
                           "amount": raw["amount"]})
    observed = orders[orders["day"] < pd.Timestamp(as_of)]
    n_ret = int((observed["amount"] < 0).sum())
    print(f"synthetic: {n_customers} customers, {len(observed)} orders of which {n_ret} "
          f"returns ({n_ret / max(len(observed) - n_ret, 1):.1%} of purchases), "
          f"as of {as_of}", file=sys.stderr)
    return observed.reset_index(drop=True), as_of


def _candidates(learn: pd.DataFrame, score: pd.DataFrame, horizon: int, ziln: bool
                ) -> dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]:
    """(spend, churn) per (model, version, family); versions numbered as registered."""
    out = {}
    t0 = time.perf_counter()
    out[("xgboost", "1", "xgboost")] = xgb_product(learn, score)
    print(f"  xgboost: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    for i, kind in enumerate(btyd_pyfunc.MODELS, start=2):
        t0 = time.perf_counter()
        model = btyd_pyfunc.BtydModel.fit(kind, learn, horizon)
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


def _champion_vs_naive(wide: pd.DataFrame, table: pd.DataFrame, decisions: list) -> None:
    """One line: the champion's Gini and decile MAPE against the naive past-spend rate's."""
    champ = next((d for d in decisions if d.alias == "champion"), None)
    naive = wide.loc[(training.NAIVE_SPEND_BASELINE, "baseline")]
    if champ is None:
        print(f"champion vs naive: no champion; naive Gini {naive['normalized_gini']:.4f}, "
              f"decile MAPE {naive['decile_mape']:.4f}")
        return
    rows = table[(table["model_version"] == str(champ.version))]
    label, family = rows["label"].iloc[0], rows["model_family"].iloc[0]
    c = wide.loc[(label, str(champ.version))]
    gini = c["normalized_gini"] > naive["normalized_gini"]
    mape = c["decile_mape"] < naive["decile_mape"]
    print(f"champion vs naive: v{champ.version} {label} ({family}) Gini "
          f"{c['normalized_gini']:.4f} vs {naive['normalized_gini']:.4f} "
          f"({'beats' if gini else 'does not beat'}), decile MAPE {c['decile_mape']:.4f} vs "
          f"{naive['decile_mape']:.4f} ({'beats' if mape else 'does not beat'}), aggregate "
          f"error {c['aggregate_error']:.4f} vs {naive['aggregate_error']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(1998, 7, 1))
    parser.add_argument("--horizon", type=int, default=DEFAULT_HORIZON_DAYS)
    parser.add_argument("--ziln", action="store_true", help="also the ZILN network (slow)")
    parser.add_argument("--synthetic", type=int, metavar="N",
                        help="N seasonal synthetic customers with returns instead of CDNOW")
    parser.add_argument("--returns", type=float, default=0.08,
                        help="with --synthetic: share of orders returned (default 0.08)")
    parser.add_argument("--seed", type=int, default=7, help="with --synthetic: the seed")
    args = parser.parse_args()
    if args.synthetic:
        orders, args.as_of = synthetic_orders(args.synthetic, args.returns, args.seed)
    else:
        orders = read_orders()
    cut = backtest_cutoffs(args.as_of, args.horizon)
    learn = features_at(orders, cut["train"], args.horizon)
    score = features_at(orders, cut["eval"], args.horizon)
    print(f"learn at {cut['train']} ({len(learn)} customers), scored at {cut['eval']} "
          f"({len(score)}), horizon {args.horizon} days", file=sys.stderr)
    found = _candidates(learn, score, args.horizon, args.ziln)
    baselines = training.baseline_predictions(score, args.horizon)
    # issue #15 item 2: the product's level anchor (BG/NBD's total at the evaluation
    # cutoff, history only) on the raw booster; v1 is the booster without it
    xgb_spend, xgb_churn = found[("xgboost", "1", "xgboost")]
    k = btyd_pyfunc.level_factor(training.feature_matrix(score), xgb_spend, args.horizon,
                                 btyd_pyfunc.LEVEL_ANCHOR or "bgnbd")
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
        decisions = registry.decide_aliases(name, table, None)
        for d in decisions:
            print(f"  v{d.version} -> {d.alias}: {d.reason}")
        if name == CLV_MODEL_NAME:
            _champion_vs_naive(wide, table, decisions)


if __name__ == "__main__":
    main()
