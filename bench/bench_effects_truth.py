"""Fitted effects against the generator's known truth (#14): estimates and the plans they make.

    .venv/bin/python bench/bench_effects_truth.py [--customers 200000] [--seed 7]
                                                  [--markdown docs/effects_truth.md]

Synthetic, seeded: ``clv.data.synthetic.sample_customer_features`` customers, one
randomised campaign over all of them (``randomised_campaign_responses``: a third
e-mail, a third retention coupon, a third nothing), and the product's own effect
path (``clv.decisions.effects.fit_action_effect``, own experiment): the e-mail on its 30-day
revenue, the coupon on ``retained`` (active over the horizon; the coupon moves
retention only). The truth is ``clv.data.synthetic.true_effects``.

Prints the e-mail's per-customer revenue effect vs the truth (correlation,
calibration slope of truth on estimate, means with the campaign's standard error),
the held-out Qini of the T-learner and of the cell averages, and for each lambda
the value *under the truth* of three plans made at the same binding budget: with
the fitted effects (the method the product chose per action), with the cell
averages only, and with the true effects (the best any estimate can do).

Scores (the same for every plan): P(active over the horizon) untreated is the
generator's baseline ``q0``, so ``p_churn = 1 - q0``; a customer who stays active
spends their past-year spend over the 180-day horizon pro rata (``M x 180 / 365``),
so ``predicted_clv = q0 x M x 180 / 365``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd

from clv.data import synthetic
from clv.decisions import allocation, effects

COSTS = {"email": 0.5, "retention_coupon": 5.0}
#: The outcome column each action is measured on (its channel in the generator).
OUTCOME = {"email": "revenue", "retention_coupon": "retained"}
HORIZON_DAYS = 180
LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Budget per customer: ~1/12 of the customers could get the e-mail, so it binds.
BUDGET_PER_CUSTOMER = 0.04
SENT = dt.date(2024, 1, 1)


def population(n_customers: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(features, scores, truth): the customers, their scores (see the module doc) and
    per customer x action the true ``tau_revenue``, ``tau_retention``."""
    feats = synthetic.sample_customer_features(n_customers, seed)
    q0 = synthetic.expected_outcomes(feats, np.full(n_customers, synthetic.NO_ACTION))[
        "p_active"].to_numpy()
    spend = synthetic.past_year_spend(feats).to_numpy()
    scores = pd.DataFrame({"customer_id": feats["customer_id"], "segment": "all",
                           "predicted_clv": q0 * spend * HORIZON_DAYS / 365.0,
                           "p_churn": 1.0 - q0})
    return feats, scores, synthetic.true_effects(feats)


def fit_effects(feats: pd.DataFrame, seed: int) -> dict[str, effects.ActionEffect]:
    """Per action, its effect fitted on the randomised campaign (own experiment)."""
    responses = synthetic.randomised_campaign_responses(feats, SENT, seed)
    rows = responses.merge(effects.effect_covariates(feats), on="customer_id")
    fitted = {}
    for action, outcome in OUTCOME.items():
        mine = rows[(rows["action"] == action) | (rows["treatment"] == 0)]
        fitted[action] = effects.fit_action_effect(mine, action, "synthetic_effects",
                                                   effects.OWN, outcome=outcome)
    return fitted


def _effect_rows(ids: np.ndarray, revenue: dict[str, np.ndarray],
                 retention: dict[str, np.ndarray], method: str) -> pd.DataFrame:
    """``clv.decisions.effects.EFFECT_COLUMNS`` (customer-major, actions sorted) from arrays."""
    names = sorted(COSTS)
    n, k = len(ids), len(names)

    def stack(values: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([values.get(a, np.zeros(n)) for a in names], axis=1).reshape(-1)

    rev, ret = stack(revenue), stack(retention)
    return pd.DataFrame({
        "customer_id": np.repeat(ids, k), "action": np.tile(np.asarray(names, object), n),
        "incr_revenue": rev, "incr_revenue_low": rev, "incr_revenue_high": rev,
        "incr_retention": ret, "incr_retention_low": ret, "incr_retention_high": ret,
        "uplift_source": effects.OWN, "effect_method": method})


def effect_frames(feats: pd.DataFrame, truth: pd.DataFrame,
                  fitted: dict[str, effects.ActionEffect]) -> dict[str, pd.DataFrame]:
    """The per-customer effects each plan is made with: ``fitted`` (the method the
    product chose), ``segment_average`` (the cell averages) and ``truth``."""
    covariates = effects.effect_covariates(feats)
    order = np.argsort(feats["customer_id"].to_numpy().astype(str), kind="mergesort")
    ids = feats["customer_id"].to_numpy()[order]
    by_action = {a: truth[truth["action"] == a].set_index("customer_id").loc[ids]
                 for a in COSTS}
    out = {"truth": _effect_rows(
        ids, {a: t["tau_revenue"].to_numpy() for a, t in by_action.items()},
        {a: t["tau_retention"].to_numpy() for a, t in by_action.items()}, "truth")}
    for name, method in (("fitted", None), ("segment_average", effects.AVERAGE)):
        chosen = {a: e if method is None else dataclasses.replace(e, method=method)
                  for a, e in fitted.items()}
        est = {a: e.per_customer(covariates.iloc[order])[0] for a, e in chosen.items()}
        out[name] = _effect_rows(ids, {"email": est["email"]},
                                 {"retention_coupon": est["retention_coupon"]}, name)
    return out


def realised_value(plan: pd.DataFrame, true_candidates: pd.DataFrame, lam: float) -> float:
    """A plan's objective under the truth: per chosen customer, lam x true incremental
    CLV + (1 - lam) x true incremental revenue - cost, with ``true_candidates`` the
    candidates built from the true effects (incr_clv as the allocator counts it)."""
    chosen = plan.loc[plan["action"] != allocation.NO_ACTION, ["customer_id", "action"]]
    rows = chosen.merge(true_candidates, on=["customer_id", "action"], validate="one_to_one")
    value = lam * rows["incr_clv"] + (1 - lam) * rows["incr_revenue"] - rows["cost"]
    return float(value.sum())


def plan_values(scores: pd.DataFrame, frames: dict[str, pd.DataFrame], budget: float,
                lambdas=LAMBDAS) -> pd.DataFrame:
    """Per lambda and effect frame: the plan's value under the truth, spend, customers."""
    rows = []
    candidates = {name: allocation.build_candidates(scores, frame, COSTS)
                  for name, frame in frames.items()}
    for lam in lambdas:
        row = {"lambda": lam}
        for name, cand in candidates.items():
            # the LP-rounded plan (within one candidate of the optimum): the exact MILP
            # changes nothing measurable here and costs minutes at 200,000 customers
            plan = allocation.allocate(cand, budget, lam, exact_max_candidates=0).plan
            row[f"value_{name}"] = realised_value(plan, candidates["truth"], lam)
            row[f"coupons_{name}"] = int((plan["action"] == "retention_coupon").sum())
        rows.append(row)
    return pd.DataFrame(rows)


def effect_accuracy(feats: pd.DataFrame, truth: pd.DataFrame,
                    email: effects.ActionEffect) -> dict[str, float]:
    """The e-mail's per-customer revenue effect vs the truth."""
    est = email.per_customer(effects.effect_covariates(feats))[0]
    tau = truth.loc[truth["action"] == "email", "tau_revenue"].to_numpy()
    slope = float(np.cov(tau, est)[0, 1] / np.var(est, ddof=1))
    return {"method": email.method, "correlation": float(np.corrcoef(est, tau)[0, 1]),
            "calibration_slope": slope, "mean_estimate": float(est.mean()),
            "mean_truth": float(tau.mean()), "campaign_se": float(email.cells.loc["all", "se"]),
            "qini_model": email.qini[effects.MODEL],
            "qini_segment_average": email.qini[effects.AVERAGE]}


def run(n_customers: int, seed: int) -> tuple[dict[str, float], pd.DataFrame]:
    """The e-mail's accuracy figures and the plan values per lambda."""
    feats, scores, truth = population(n_customers, seed)
    fitted = fit_effects(feats, seed)
    accuracy = effect_accuracy(feats, truth, fitted["email"])
    accuracy["coupon_method"] = fitted["retention_coupon"].method
    values = plan_values(scores, effect_frames(feats, truth, fitted),
                         BUDGET_PER_CUSTOMER * n_customers)
    values["fitted_share"] = values["value_fitted"] / values["value_truth"]
    values["segment_average_share"] = values["value_segment_average"] / values["value_truth"]
    return accuracy, values


def markdown(n_customers: int, seed: int, accuracy: dict, values: pd.DataFrame) -> str:
    """The figures as a docs page (docs/effects_truth.md)."""
    acc = pd.DataFrame([accuracy])
    return "\n".join([
        "# Fitted effects against the known truth (#14)", "",
        "Written by `bench/bench_effects_truth.py` (see its docstring for the set-up);",
        "reproduce with", "",
        f"    .venv/bin/python bench/bench_effects_truth.py --customers {n_customers} "
        f"--seed {seed} --markdown docs/effects_truth.md", "",
        f"{n_customers:,} customers, seed {seed}, a randomised campaign over all of them "
        "(a third e-mail, a third retention coupon, a third nothing), effects fitted by "
        "`clv.decisions.effects.fit_action_effect` as the shop's own experiment. Budget "
        f"{BUDGET_PER_CUSTOMER} per customer ({BUDGET_PER_CUSTOMER * n_customers:,.0f}), "
        f"costs {COSTS}.", "",
        "## The e-mail's revenue effect per customer vs the truth", "",
        "Calibration slope: truth regressed on the estimate (1 = calibrated, < 1 = the "
        "estimates spread wider than the truth). Qini: on the held-out half.", "",
        acc.to_markdown(index=False, floatfmt=".4f"), "",
        "## Plans at the same budget, valued under the truth", "",
        "`value_*`: lambda x true incremental CLV + (1 - lambda) x true incremental revenue "
        "- cost, summed over the plan's customers; `truth` is the plan made with the true "
        "effects (the best any estimate can do), `fitted` with the method the product "
        "chose per action, `segment_average` with the cell averages only; `*_share` = "
        "value / value_truth.", "",
        values.to_markdown(index=False, floatfmt=".4g"), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--json", help="also write the figures as JSON")
    args = parser.parse_args()
    accuracy, values = run(args.customers, args.seed)
    text = markdown(args.customers, args.seed, accuracy, values)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"accuracy": accuracy, "plans": values.to_dict("records")}, fh, indent=1)


if __name__ == "__main__":
    main()
