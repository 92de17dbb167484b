"""Model quality on full CDNOW: every model and baseline of issue #3 on one holdout.

    .venv/bin/python bench/bench_models.py [--seed 0] [--swap] [--backtest] [--json out.json]

Protocol (issue #3): the 23,570 CDNOW customers; calibration = the first 39 weeks
from 1997-01-01 (orders before 1997-10-01), holdout = the next 39 weeks
(1997-10-01 <= order < 1998-07-01), target = each customer's holdout spend. The ML
models learn from a random half of the customers (``--seed``; ``--swap`` learns on
the other half instead) and every model and baseline is scored on the held-out
half. Features are :mod:`clv.features`' columns recomputed with pandas (no Spark);
every metric comes from :mod:`clv.models.metrics`.

Rows:

* BG/NBD + Gamma-Gamma (:mod:`clv.models.btyd`), in weeks, fitted on the learning half's
  calibration history (x, t_x, T from purchase days; m = mean repeat spend);
* naive past-spend rate (:func:`clv.models.training.past_spend_rate`);
* plain XGBoost, Tweedie, 6 RFM features (x, t_x, T, m, total spend, orders);
* the product's XGBoost (:func:`clv.models.training.train_clv_model`'s estimator on
  :data:`clv.features.FEATURE_COLUMNS`, same early stopping);
* the product's ZILN network (:class:`clv.models.ziln.ZilnModel`, default config).

A second table gives churn (no purchase in the holdout): BG/NBD's P(no purchase),
naive recency rank, the product's XGBoost classifier and the ZILN network's 1 - p.

``--backtest`` adds a rolling-origin, out-of-time table: for each cutoff c with a
26-week horizon, models learn at c - 26 weeks (labels up to c) on every customer
and are scored at c; all customers are scored (no half split).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from clv.config import N_PERIODS, PERIOD_DAYS
from clv.features import FEATURE_COLUMNS
from clv.models import btyd, metrics, training

REPO = Path(__file__).resolve().parents[1]
CDNOW = Path(os.environ.get("CLV_SHARED_DATA", REPO.parent / "shared" / "data")) / "cdnow" / \
    "CDNOW_master.txt.gz"
START = dt.date(1997, 1, 1)
CUTOFF = START + dt.timedelta(weeks=39)  # 1997-10-01
HORIZON_DAYS = 39 * 7
RFM6 = ["x", "t_x", "T", "m", "total_spend", "n_orders"]
PUBLISHED = {  # issue #3's table: normalized Gini, Spearman, decile MAPE, aggregate error
    "BG/NBD + Gamma-Gamma": (0.669, 0.418, 0.222, -0.193),
    "plain XGBoost, Tweedie, 6 RFM": (0.696, 0.437, 0.222, -0.115),
}


def read_orders(path: Path = CDNOW) -> pd.DataFrame:
    with gzip.open(path, "rt") as fh:
        orders = pd.read_csv(fh, sep=r"\s+", header=0,
                             names=["customer_id", "date", "quantity", "amount"],
                             dtype={"customer_id": int, "date": str})
    orders["day"] = pd.to_datetime(orders["date"], format="%Y%m%d")
    return orders[["customer_id", "day", "amount"]]


def features_at(orders: pd.DataFrame, cutoff: dt.date, horizon_days: int) -> pd.DataFrame:
    """:mod:`clv.features` columns at ``cutoff`` (pandas), plus BTYD inputs and the label
    ``spend_next`` / ``churned`` over ``[cutoff, cutoff + horizon)``; every customer with
    an order before the cutoff."""
    cut = pd.Timestamp(cutoff)
    past = orders[orders["day"] < cut]
    age = (cut - past["day"]).dt.days
    g = past.assign(age=age).groupby("customer_id")
    f = pd.DataFrame({
        "recency_days": g["age"].min(), "tenure_days": g["age"].max(),
        "n_orders": g.size(), "n_purchase_days": g["day"].nunique(),
        "total_spend": g["amount"].sum(), "max_order_value": g["amount"].max(),
    })
    f["frequency"] = f["n_purchase_days"] - 1
    f["avg_order_value"] = f["total_spend"] / f["n_orders"]
    days = past.groupby(["customer_id", "day"])["amount"].sum().reset_index()
    gaps = days.groupby("customer_id")["day"].diff().dt.days
    gstats = gaps.groupby(days["customer_id"]).agg(["mean", "std"])
    f["mean_ipt_days"], f["std_ipt_days"] = gstats["mean"], gstats["std"]
    period = (age - 1) // PERIOD_DAYS + 1
    recent = past.assign(period=period)[period <= N_PERIODS]
    spend = recent.pivot_table(index="customer_id", columns="period", values="amount",
                               aggfunc="sum", fill_value=0.0)
    count = recent.pivot_table(index="customer_id", columns="period", values="amount",
                               aggfunc="size", fill_value=0)
    for k in range(1, N_PERIODS + 1):
        f[f"spend_p{k:02d}"] = spend[k] if k in spend else 0.0
        f[f"orders_p{k:02d}"] = count[k] if k in count else 0
    f[[c for c in FEATURE_COLUMNS if c.startswith(("spend_p", "orders_p"))]] = f[
        [c for c in FEATURE_COLUMNS if c.startswith(("spend_p", "orders_p"))]].fillna(0)
    # BTYD inputs in weeks from purchase days (the papers' convention)
    first = days.groupby("customer_id")["day"].min()
    last = days.groupby("customer_id")["day"].max()
    f["x"] = f["frequency"].astype(float)
    f["t_x"] = (last - first).dt.days / 7.0
    f["T"] = (cut - first).dt.days / 7.0
    repeat = days[days["day"] > days["customer_id"].map(first)]
    f["m"] = repeat.groupby("customer_id")["amount"].mean().reindex(f.index).fillna(0.0)
    end = cut + pd.Timedelta(days=horizon_days)
    future = orders[(orders["day"] >= cut) & (orders["day"] < end)]
    f["spend_next"] = future.groupby("customer_id")["amount"].sum().reindex(f.index).fillna(0.0)
    f["churned"] = (~f.index.isin(future["customer_id"])).astype(int)
    return f.reset_index()


def btyd_predict(learn: pd.DataFrame, score: pd.DataFrame, horizon_weeks: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    bg = btyd.fit_bgnbd(learn["x"], learn["t_x"], learn["T"])
    gg = btyd.fit_gamma_gamma(learn["x"], learn["m"])
    spend = btyd.predict_clv(bg, gg, horizon_weeks, score["x"], score["t_x"], score["T"],
                             score["m"])
    return spend, bg.p_no_purchase(horizon_weeks, score["x"], score["t_x"], score["T"])


def xgb_rfm6(learn: pd.DataFrame, score: pd.DataFrame) -> tuple[np.ndarray, None]:
    import xgboost as xgb

    model = xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5,
                             **training.XGB_PARAMS)
    training._fit(model, learn[RFM6].astype(float), learn["spend_next"].clip(lower=0).to_numpy())
    return np.clip(model.predict(score[RFM6].astype(float)), 0, None), None


def xgb_product(learn: pd.DataFrame, score: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The estimators of train_clv_model / train_churn_model (balanced Tweedie + classifier)."""
    import xgboost as xgb

    model = xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5,
                             **training.XGB_PARAMS)
    x, y = training.feature_matrix(learn), learn["spend_next"].clip(lower=0).to_numpy()
    training._fit(model, x, y)
    training.balance_tweedie(model, x, y)
    churn = xgb.XGBClassifier(objective="binary:logistic", eval_metric="logloss",
                              **training.XGB_PARAMS)
    training._fit(churn, x, learn["churned"].to_numpy())
    xs = training.feature_matrix(score)
    return training.predict_spend(model, xs), training.predict_churn(churn, xs)


def ziln_product(learn: pd.DataFrame, score: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    from clv.models import ziln

    model = ziln.ZilnModel.fit(learn, learn["spend_next"].to_numpy(dtype=float))
    print(f"  ziln: {model.history} on {model.device}", file=sys.stderr)
    xs = training.feature_matrix(score)
    return model.predict_spend(xs), model.predict_churn(xs)


def evaluate_all(learn: pd.DataFrame, score: pd.DataFrame, horizon_days: int,
                 btyd_fit: pd.DataFrame | None = None) -> tuple[list[dict], list[dict]]:
    """Every model and baseline: (spend rows, churn rows); BTYD is fitted on
    ``btyd_fit`` (default: ``learn``)."""
    fit = learn if btyd_fit is None else btyd_fit
    runs = {
        "BG/NBD + Gamma-Gamma": lambda: btyd_predict(fit, score, horizon_days / 7.0),
        "naive past-spend rate": lambda: (training.past_spend_rate(score, horizon_days),
                                          training.recency_churn_score(score)),
        "plain XGBoost, Tweedie, 6 RFM": lambda: xgb_rfm6(learn, score),
        "product XGBoost (Tweedie, 34 features)": lambda: xgb_product(learn, score),
        "product ZILN (TensorFlow, GRU)": lambda: ziln_product(learn, score),
    }
    rows, churn_rows = [], []
    y = score["spend_next"].to_numpy(dtype=float)
    churned = score["churned"].to_numpy(dtype=float)
    for name, fn in runs.items():
        t0 = time.perf_counter()
        spend, churn = fn()
        seconds = time.perf_counter() - t0
        rows.append({"model": name, **metrics.regression_report(y, np.asarray(spend, float)),
                     "seconds": seconds})
        if churn is not None:
            churn_rows.append({"model": name, **metrics.classification_report(
                churned, np.clip(np.asarray(churn, float), 0, 1))})
        print(f"  {name}: {seconds:.1f} s", file=sys.stderr)
    return rows, churn_rows


def print_churn_table(rows: list[dict]) -> None:
    print(f"| {'churn = no purchase in the horizon':<40} |  ROC AUC |   PR AUC |    Brier |")
    print(f"|{'-' * 42}|---------:|---------:|---------:|")
    for r in rows:
        name = "naive recency rank" if r["model"].startswith("naive") else r["model"]
        print(f"| {name:<40} | {r['roc_auc']:8.3f} | {r['pr_auc']:8.3f} | "
              f"{r['brier']:8.3f} |")
    print("(naive churn = recency rank in [0, 1], not a probability: its Brier is not "
          "comparable)")


def print_table(rows: list[dict], title: str, references: bool = True) -> None:
    print(f"\n{title}")
    print(f"| {'model':<40} | norm. Gini | Spearman | decile MAPE | aggregate error |"
          f"    MAE | seconds |")
    print(f"|{'-' * 42}|-----------:|---------:|------------:|----------------:|"
          f"-------:|--------:|")
    for r in rows:
        print(f"| {r['model']:<40} | {r['normalized_gini']:10.3f} | {r['spearman']:8.3f} | "
              f"{r['decile_mape']:11.3f} | {100 * r['aggregate_error']:+14.1f}% | "
              f"{r['mae']:6.2f} | {r['seconds']:7.1f} |")
        if references and r["model"] in PUBLISHED:
            g, s, d, a = PUBLISHED[r["model"]]
            print(f"| {'  (issue #3 reference)':<40} | {g:10.3f} | {s:8.3f} | {d:11.3f} | "
                  f"{100 * a:+14.1f}% |        |         |")
    if not references:
        return
    print(f"| {'  target for the champion':<40} | {'>= 0.71':>10} | {'>= 0.45':>8} | "
          f"{'<= 0.15':>11} | {'within +-5%':>15} |        |         |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--swap", action="store_true", help="learn on the other half")
    parser.add_argument("--backtest", action="store_true",
                        help="also rolling-origin, out-of-time cutoffs (26-week horizon)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    orders = read_orders()
    t0 = time.perf_counter()
    frame = features_at(orders, CUTOFF, HORIZON_DAYS)
    print(f"features for {len(frame)} customers in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    in_a = rng.random(len(frame)) < 0.5
    learn_rows = ~in_a if args.swap else in_a
    learn = frame[learn_rows].reset_index(drop=True)
    score = frame[~learn_rows].reset_index(drop=True)
    rows, churn_rows = evaluate_all(learn, score, HORIZON_DAYS)
    out = {"python": platform.python_version(), "customers": len(frame),
           "learn": len(learn), "scored": len(score), "seed": args.seed, "swap": args.swap,
           "table": rows, "churn": churn_rows}
    print_table(rows, f"CDNOW, calibration {START}..{CUTOFF - dt.timedelta(days=1)}, holdout "
                      f"{HORIZON_DAYS} days; learn {len(learn)} customers, scored "
                      f"{len(score)} (seed {args.seed}{', swapped' if args.swap else ''})")
    print()
    print_churn_table(churn_rows)
    if args.backtest:
        out["backtest"] = backtest(orders)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


def backtest(orders: pd.DataFrame, horizon_days: int = 26 * 7) -> dict[str, dict]:
    """Rolling origin: learn at c - h (labels up to c), score every customer at c."""
    results = {}
    for cutoff in (dt.date(1997, 10, 1), dt.date(1997, 12, 31)):
        learn = features_at(orders, cutoff - dt.timedelta(days=horizon_days), horizon_days)
        score = features_at(orders, cutoff, horizon_days)
        # BTYD needs no labels: it is fitted on the scoring cutoff's own history
        rows, churn_rows = evaluate_all(learn, score, horizon_days, btyd_fit=score)
        print_table(rows, f"backtest: learn at {cutoff - dt.timedelta(days=horizon_days)}, "
                          f"scored at {cutoff}, horizon {horizon_days} days, "
                          f"{len(score)} customers", references=False)
        print()
        print_churn_table(churn_rows)
        results[cutoff.isoformat()] = {"spend": rows, "churn": churn_rows}
    return results


if __name__ == "__main__":
    main()
