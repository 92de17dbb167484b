"""Budget allocation at scale: 1,000,000 customers x 3 actions, plus the exact path.

    .venv/bin/python bench/bench_allocation.py [--customers 1000000] [--exact-customers 20000]
                                               [--constraints] [--json out.json]

Synthetic, seeded (identical on every run): scores with gamma-distributed
predicted_clv and beta-distributed p_churn in 7 segments, and per-customer
absolute effects from the product's own path (``clv.decisions.effects``): the e-mail's
revenue effect from a T-learner fitted on a seeded randomised campaign of 40,000
customers (heterogeneous in recency and past-year spend) and applied to every
customer; the coupon and the call move retention (priors). The budget is 60% of
what the best plan would spend with no budget, so it binds.

Prints, per run: customers, candidates, method, seconds of ``allocate`` (and
of building the effects and the candidates), peak resident memory of the whole
process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, so it includes the data),
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

from clv.decisions import effects
from clv.decisions.allocation import allocate, build_candidates
from clv.decisions.segments import Action, EffectPrior

SEGMENTS = ("champions", "loyal", "promising", "at_risk_high_value", "needs_attention",
            "hibernating", "lost")
ACTIONS = {"email": 0.50, "coupon": 5.00, "call": 8.00}
CATALOGUE = (
    Action("email", ACTIONS["email"], revenue=EffectPrior(0.4, 0.0, 1.0)),
    Action("coupon", ACTIONS["coupon"], revenue=EffectPrior(0.5, 0.0, 1.5),
           retention=EffectPrior(0.04, 0.01, 0.07)),
    Action("call", ACTIONS["call"], retention=EffectPrior(0.08, 0.02, 0.12)),
)
LAMBDA = 0.5


def _covariates(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({"recency_months": rng.integers(1, 13, n).astype(float),
                         "history": np.round(rng.lognormal(4.8, 0.9, n), 2),
                         "newbie": rng.integers(0, 2, n).astype(float)})


def email_effect(seed: int = 3) -> effects.ActionEffect:
    """The e-mail's effect, fitted on a seeded randomised campaign of 40,000 customers."""
    rng = np.random.default_rng(seed)
    x = _covariates(rng, 40_000)
    tau = 0.2 + 0.8 * (x["recency_months"] <= 3) + 0.001 * np.minimum(x["history"], 500)
    t = rng.integers(0, 2, len(x))
    y = 0.5 + 0.002 * x["history"] + t * tau + rng.normal(0.0, 2.0, len(x))
    return effects.fit_action_effect(x.assign(treatment=t, revenue=y), "email", "bench",
                                     effects.OWN)


def make_candidates(n_customers: int, seed: int = 7) -> tuple[pd.DataFrame, float, float]:
    """Seeded synthetic candidates, and the seconds customer_effects and build_candidates took."""
    rng = np.random.default_rng(seed)
    clv = rng.gamma(0.8, 60.0, n_customers)
    ids = np.arange(n_customers, dtype=np.int64)
    scores = pd.DataFrame({
        "customer_id": ids,
        "segment": np.asarray(SEGMENTS, dtype=object)[rng.integers(0, len(SEGMENTS), n_customers)],
        "predicted_clv": clv,
        "p_churn": rng.beta(2.0, 2.0, n_customers),
    })
    covariates = _covariates(rng, n_customers).assign(customer_id=ids)
    measured = {"email": email_effect()}
    start = time.perf_counter()
    per_customer = effects.customer_effects(covariates, list(ACTIONS), measured, CATALOGUE)
    effects_s = time.perf_counter() - start
    start = time.perf_counter()
    candidates = build_candidates(scores, per_customer, ACTIONS)
    return candidates, effects_s, time.perf_counter() - start


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
    candidates, effects_s, build_s = make_candidates(n_customers)
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
        "seconds": round(seconds, 2), "customer_effects_s": round(effects_s, 2),
        "build_candidates_s": round(build_s, 2),
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
               "customer_effects_s", "build_candidates_s", "peak_rss_gib", "objective",
               "lp_bound", "gap_pct", "spent_over_budget"]
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
