"""Budget allocation at scale: 1,000,000 customers x 3 actions, plus the exact path.

    .venv/bin/python bench/bench_allocation.py [--customers 1000000] [--exact-customers 20000]
                                               [--constraints] [--json out.json]

Synthetic, seeded (identical on every run): scores with gamma-distributed
predicted_clv and beta-distributed p_churn in 7 segments, candidates from
``build_candidates`` with per-segment priors, then a per-candidate log-normal
factor on both increments (what an individual uplift model would give; without
it every customer of a segment would rank alike). The budget is 60% of what
the best plan would spend with no budget, so it binds.

Prints, per run: customers, candidates, method, seconds of ``allocate`` (and
of building the candidates), peak resident memory of the whole process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, so it includes the data),
objective, LP bound, gap to the LP bound, spent / budget.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np
import pandas as pd

from clv.allocation import allocate, build_candidates
from clv.uplift import prior_uplift

SEGMENTS = ("champions", "loyal", "promising", "at_risk_high_value", "needs_attention",
            "hibernating", "lost")
ACTIONS = {"email": 0.50, "coupon": 5.00, "call": 8.00}
#: action -> (uplift_conversion, lift_revenue); each segment scales them by 0.7..1.3.
PRIORS = {"email": (0.005, 0.30), "coupon": (0.08, 0.80), "call": (0.20, 0.60)}
LAMBDA = 0.5


def make_candidates(n_customers: int, seed: int = 7) -> tuple[pd.DataFrame, float]:
    """Seeded synthetic candidates and the time build_candidates took."""
    rng = np.random.default_rng(seed)
    clv = rng.gamma(0.8, 60.0, n_customers)
    scores = pd.DataFrame({
        "customer_id": np.arange(n_customers, dtype=np.int64),
        "segment": np.asarray(SEGMENTS, dtype=object)[rng.integers(0, len(SEGMENTS), n_customers)],
        "predicted_clv": clv,
        "p_churn": rng.beta(2.0, 2.0, n_customers),
        "expected_revenue_30d": clv / 6.0,
    })
    uplift = pd.concat([
        prior_uplift(list(ACTIONS), [segment], priors={
            a: {"uplift_conversion": c * scale, "lift_revenue": g * scale}
            for a, (c, g) in PRIORS.items()})
        for segment, scale in zip(SEGMENTS, np.linspace(0.7, 1.3, len(SEGMENTS)), strict=True)
    ], ignore_index=True)
    start = time.perf_counter()
    candidates = build_candidates(scores, uplift, ACTIONS)
    seconds = time.perf_counter() - start
    factor = rng.lognormal(0.0, 0.5, len(candidates))
    candidates["incr_clv"] *= factor
    candidates["incr_revenue"] *= factor
    return candidates, seconds


def binding_budget(candidates: pd.DataFrame, lam: float, share: float = 0.6) -> float:
    """``share`` of the unconstrained best plan's spend (each customer's best action)."""
    net = lam * candidates["incr_clv"] + (1 - lam) * candidates["incr_revenue"] - candidates["cost"]
    best = candidates.assign(net=net)[net > 0].sort_values("net").groupby("customer_id").tail(1)
    # + 0.37: not a multiple of any cost, so the last unit of budget is a real knapsack
    return round(share * float(best["cost"].sum()), 0) + 0.37


#: Side constraints of the ``--constraints`` runs: "lost" gets 5-10% of the spend,
#: "champions" at most 20%, and calls go to at most 2% of customers.
SHARES = {"lost": (0.05, 0.10), "champions": (None, 0.20)}
CALL_SHARE = 0.02


def run(n_customers: int, exact_max_candidates: int, constrained: bool = False) -> dict:
    """One allocation; its figures as a dict."""
    candidates, build_s = make_candidates(n_customers)
    budget = binding_budget(candidates, LAMBDA)
    sides = {}
    if constrained:
        sides = {"segment_share_bounds": SHARES,
                 "action_capacity": {"call": int(CALL_SHARE * n_customers)}}
    start = time.perf_counter()
    result = allocate(candidates, budget, LAMBDA, exact_max_candidates=exact_max_candidates,
                      **sides)
    seconds = time.perf_counter() - start
    return {
        "n_customers": n_customers, "constraints": "shares+cap" if constrained else "budget",
        "n_candidates": len(candidates),
        "method": result.method, "optimal": result.optimal,
        "seconds": round(seconds, 2), "build_candidates_s": round(build_s, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "objective": round(result.objective, 4), "lp_bound": round(result.lp_bound, 4),
        "gap_pct": result.gap * 100, "spent": round(result.spent, 2), "budget": budget,
        "spent_over_budget": round(result.spent / budget, 6), "detail": result.detail,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--exact-customers", type=int, default=20_000)
    parser.add_argument("--constraints", action="store_true",
                        help="also run both sizes with segment shares and a call capacity "
                             "(the large one takes minutes and more memory)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    # Small runs first: peak RSS only grows, so each figure covers its run and those before.
    rows = [run(args.exact_customers, exact_max_candidates=10**9)]
    if args.constraints:
        rows.append(run(args.exact_customers, exact_max_candidates=10**9, constrained=True))
    rows.append(run(args.customers, exact_max_candidates=0))
    if args.constraints:
        rows.append(run(args.customers, exact_max_candidates=0, constrained=True))
    columns = ["n_customers", "constraints", "n_candidates", "method", "optimal", "seconds",
               "build_candidates_s", "peak_rss_gib", "objective", "lp_bound", "gap_pct",
               "spent_over_budget"]
    print(f"# {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(pd.DataFrame(rows)[columns].to_string(index=False))
    for row in rows:
        print(f"{row['method']} @ {row['n_customers']:,} ({row['constraints']}): {row['detail']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
