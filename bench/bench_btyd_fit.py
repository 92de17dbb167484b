"""Fit time of the BTYD purchase models (BG/NBD, Pareto/NBD, MBG/NBD).

    .venv/bin/python bench/bench_btyd_fit.py [--n 100000] [--seed 0]

Rows: each family fitted (a) on the CDNOW 2,357-customer, 39-week calibration sample
(weeks, as in the papers) and (b) on ``--n`` customers drawn from the Pareto/NBD story
in days, ages 30-730 days: once with whole days, as the pipeline's features give them
(many customers share an (x, t_x, T) row, which the fit counts once), and once with
continuous times (every row distinct: the worst case). ``BtydBaseline`` fits on at most
``btyd.MAX_FIT_CUSTOMERS`` customers, so (b) is the pipeline's largest fit.

A second table times ``btyd.btyd_spend_quantiles`` (posterior simulation, 1,000 draws
per customer) on ``--n-quantiles`` of the synthetic customers, for each family.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from clv.models import btyd

REPO = Path(__file__).resolve().parents[1]
SUMMARY = (Path(os.environ.get("CLV_SHARED_DATA", REPO.parent / "shared" / "data"))
           / "cdnow" / "cdnow_customers_summary_with_transactions.csv")


def pareto_nbd_customers(n: int, seed: int, whole_days: bool
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in days for ``n`` customers from a Pareto/NBD population."""
    rng = np.random.default_rng(seed)
    r, alpha, s, beta = 0.55, 75.0, 0.6, 80.0  # CDNOW's estimates, weeks -> days
    T = rng.uniform(30.0, 730.0, n)
    lam, mu = rng.gamma(r, 1.0 / alpha, n), rng.gamma(s, 1.0 / beta, n)
    seen = np.minimum(rng.exponential(1.0 / mu), T)
    x = rng.poisson(lam * seen).astype(float)
    t_x = np.where(x > 0, seen * rng.random(n) ** (1.0 / np.maximum(x, 1.0)), 0.0)
    if whole_days:
        T, t_x = np.ceil(T), np.where(x > 0, np.maximum(np.floor(t_x), 1.0), 0.0)
    return x, t_x, T


def time_fits(label: str, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    distinct = len(np.unique(np.column_stack([x, t_x, T]), axis=0))
    for family in btyd.PURCHASE_FAMILIES:
        start = time.perf_counter()
        model = btyd.fit_purchase_model(family, x, t_x, T)
        seconds = time.perf_counter() - start
        print(f"| {label} | {len(x):,} | {distinct:,} | {family} | {seconds:.2f} | "
              f"{model.log_likelihood:.1f} |", flush=True)


def time_quantiles(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, n_sims: int = 1_000) -> None:
    m = np.where(x > 0, 35.0, 0.0)
    gg = btyd.GammaGamma(6.25, 3.74, 15.44, 0.0)  # CDNOW's spend model
    for family in btyd.PURCHASE_FAMILIES:
        model = btyd.fit_purchase_model(family, x, t_x, T)
        start = time.perf_counter()
        btyd.btyd_spend_quantiles(model, gg, 365.0, x, t_x, T, m, n_sims=n_sims)
        print(f"| {family} | {len(x):,} | {n_sims:,} | {time.perf_counter() - start:.2f} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-quantiles", type=int, default=10_000)
    args = parser.parse_args()
    print("| data | customers | distinct rows | family | fit s | log-likelihood |")
    print("|---|---|---|---|---|---|")
    cdnow = pd.read_csv(SUMMARY)
    time_fits("CDNOW sample (weeks)", *(cdnow[c].to_numpy(float) for c in ("x", "t_x", "T")))
    time_fits("synthetic, whole days", *pareto_nbd_customers(args.n, args.seed, True))
    time_fits("synthetic, continuous", *pareto_nbd_customers(args.n, args.seed, False))
    print("\n| family | customers | draws each | spend quantiles s |\n|---|---|---|---|")
    time_quantiles(*pareto_nbd_customers(args.n_quantiles, args.seed, True))


if __name__ == "__main__":
    main()
