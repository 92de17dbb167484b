"""What the contact policy costs in time and in value, at scale.

    .venv/bin/python bench/bench_contact_policy.py [--customers 1000000] [--json out.json]

The allocation bench's seeded candidates (bench_allocation.make_candidates: 3 actions,
per-customer effects, a binding budget at lambda 0.5); the channels: ``email`` and
``coupon`` go by e-mail, ``call`` by phone. Seeded policy inputs: 8% of customers
opted out of e-mail and 1% of everything; 30% were treated by e-mail 7 days ago (a plan
a week earlier) and 10% by phone 20 days ago; caps: 14 days between contacts per channel,
at most 2 per 180 days.

Prints seconds of each step (opt-out table, contact history, eligibility rules, the
solve with the policy, the solve without it), peak resident memory of the process,
customers excluded per rule, and the policy's cost in value and in spend.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import time

import numpy as np
import pandas as pd
from bench_allocation import LAMBDA, binding_budget, make_candidates

from clv.decisions import contact_policy
from clv.decisions.allocation import allocate
from clv.decisions.contact_policy import ContactPolicy

AS_OF = dt.date(2026, 3, 1)
CHANNELS = {"email": "email", "coupon": "email", "call": "phone"}


def _inputs(n: int, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(preferences, campaign plans, sends), seeded."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64).astype(str)
    email_out = ids[rng.random(n) < 0.08]
    all_out = ids[rng.random(n) < 0.01]
    prefs = pd.DataFrame({
        "customer_id": np.r_[email_out, all_out],
        "channel": ["email"] * len(email_out) + ["all"] * len(all_out),
        "opted_out": True,
        "updated_at": pd.Timestamp(AS_OF - dt.timedelta(days=40))})
    week, earlier = AS_OF - dt.timedelta(days=7), AS_OF - dt.timedelta(days=20)
    mailed = ids[rng.random(n) < 0.30]
    called = ids[rng.random(n) < 0.10]
    plans = pd.DataFrame({
        "plan_id": [f"plan-{week}"] * len(mailed) + [f"plan-{earlier}"] * len(called),
        "customer_id": np.r_[mailed, called],
        "action": ["email"] * len(mailed) + ["call"] * len(called),
        "assignment": "treated"})
    return prefs, plans, pd.DataFrame({"plan_id": [], "sent_date": []})


def run(n_customers: int) -> dict:
    candidates, _, _ = make_candidates(n_customers)
    candidates["customer_id"] = candidates["customer_id"].astype(str)
    budget = binding_budget(candidates, LAMBDA)
    prefs, plans, sends = _inputs(n_customers)
    policy = ContactPolicy(min_days_between=14, max_per_window=2, window_days=180)
    times = {}
    start = time.perf_counter()
    opt_outs = contact_policy.suppressed(prefs, AS_OF)
    times["suppressed_s"] = time.perf_counter() - start
    start = time.perf_counter()
    history = contact_policy.contact_history(plans, sends, AS_OF, CHANNELS)
    times["history_s"] = time.perf_counter() - start
    start = time.perf_counter()
    rules = contact_policy.excluded_by(candidates, AS_OF, policy, opt_outs, history, CHANNELS)
    times["rules_s"] = time.perf_counter() - start
    candidates["eligible"] = rules == ""
    start = time.perf_counter()
    held = allocate(candidates, budget, LAMBDA, exact_max_candidates=0)
    times["solve_with_policy_s"] = time.perf_counter() - start
    start = time.perf_counter()
    free = allocate(candidates, budget, LAMBDA, exact_max_candidates=0,
                    honour_eligibility=False)
    times["solve_without_policy_s"] = time.perf_counter() - start
    ids = candidates["customer_id"].to_numpy()
    return {
        "n_customers": n_customers, "n_candidates": len(candidates),
        **{k: round(v, 2) for k, v in times.items()},
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "customers_opted_out": int(pd.unique(ids[rules == "opted_out"]).size),
        "customers_frequency_cap": int(pd.unique(ids[rules == "frequency_cap"]).size),
        "value_with_policy": round(held.objective, 2),
        "value_without_policy": round(free.objective, 2),
        "policy_cost_value_pct": round(100 * (free.objective - held.objective)
                                       / free.objective, 2),
        "spent_with_policy": round(held.spent, 2), "spent_without_policy": round(free.spent, 2),
        "budget": budget, "gap_with_pct": round(held.gap * 100, 5),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    row = run(args.customers)
    print(f"# {platform.processor() or platform.machine()}, python {platform.python_version()}")
    for key, value in row.items():
        print(f"{key:>26}: {value}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(row, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
