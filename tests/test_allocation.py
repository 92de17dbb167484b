"""Budget allocation: hand-worked cases, brute force, an independent LP, invariants."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from clv.decisions.allocation import (
    AllocationResult,
    _dp_tables,
    allocate,
    budget_summary,
    build_candidates,
    frontier,
    plot_frontier,
    value_if_retained,
)

TOL = 1e-7


def _cands(rows: list[tuple]) -> pd.DataFrame:
    """(customer_id, segment, action, cost, incr_clv, incr_revenue) tuples."""
    return pd.DataFrame(rows, columns=["customer_id", "segment", "action", "cost",
                                       "incr_clv", "incr_revenue"])


def _random(n_customers: int, n_actions: int, seed: int, integer_costs: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_customers * n_actions
    cost = (rng.integers(1, 10, n).astype(float) if integer_costs
            else np.round(rng.uniform(0.5, 9.5, n), 7))
    return pd.DataFrame({
        "customer_id": np.repeat(np.arange(100, 100 + n_customers), n_actions),
        "segment": np.repeat(np.where(np.arange(n_customers) % 2 == 0, "s0", "s1"), n_actions),
        "action": np.tile([f"a{k}" for k in range(n_actions)], n_customers),
        "cost": cost,
        "incr_clv": rng.gamma(1.0, 5.0, n),
        "incr_revenue": rng.gamma(1.0, 4.0, n),
    })


# --------------------------------------------------------------------------- reference


def _brute_force(cands: pd.DataFrame, budget: float, lam: float, shares=None, caps=None) -> float:
    """Best objective over every assignment (none or one action per customer)."""
    net = (lam * cands["incr_clv"] + (1 - lam) * cands["incr_revenue"] - cands["cost"]).to_numpy()
    cost, seg, act = (cands[c].to_numpy() for c in ("cost", "segment", "action"))
    groups = [list(g) for g in cands.groupby("customer_id").indices.values()]
    best = 0.0  # the empty plan is always feasible
    for combo in itertools.product(*[[None, *g] for g in groups]):
        idx = [i for i in combo if i is not None]
        if _feasible(idx, cost, seg, act, budget, shares, caps):
            best = max(best, float(net[idx].sum()))
    return best


def _feasible(idx, cost, seg, act, budget, shares, caps, tol: float = 1e-9) -> bool:
    spent = cost[idx].sum()
    if spent > budget + tol:
        return False
    for action, cap in (caps or {}).items():
        if (act[idx] == action).sum() > cap:
            return False
    for segment, (low, high) in (shares or {}).items():
        in_segment = cost[idx][seg[idx] == segment].sum()
        low, high = low or 0.0, 1.0 if high is None else high
        if in_segment < low * spent - tol or in_segment > high * spent + tol:
            return False
    return True


def _check_plan(result: AllocationResult, cands: pd.DataFrame, budget, shares=None, caps=None):
    """The plan is feasible and its reported totals add up."""
    plan = result.plan
    assert plan["customer_id"].is_unique
    assert set(plan["customer_id"]) == set(cands["customer_id"])
    chosen = plan[plan["action"] != "none"]
    merged = chosen.merge(cands, on=["customer_id", "action"], suffixes=("", "_c"))
    assert len(merged) == len(chosen)
    assert np.allclose(merged["cost"], merged["cost_c"])
    idx = np.arange(len(chosen))
    ok = _feasible(idx, chosen["cost"].to_numpy(), chosen["segment"].to_numpy(),
                   chosen["action"].to_numpy(), budget, shares, caps, tol=1e-6)
    assert ok
    assert math.fsum(chosen["cost"]) <= budget + 1e-9
    assert result.spent == pytest.approx(chosen["cost"].sum())
    assert result.objective == pytest.approx(chosen["net_value"].sum())


# --------------------------------------------------------------------------- by hand


def test_knapsack_by_hand_exact_beats_greedy_and_gap_is_reported():
    # Three customers, one action each, budget 10:
    #   x: cost 6 value 9 (1.5 per unit), y and z: cost 5 value 7 (1.4 per unit).
    # Greedy by value per cost takes x (6), then y does not fit: 9.
    # Optimum: y + z = 14. LP: x + 4/5 of y = 9 + 5.6 = 14.6.
    # lam = 1 and incr_revenue unused: net = incr_clv - cost, so incr_clv = value + cost.
    cands = _cands([(1, "s", "m", 6.0, 15.0, 0.0), (2, "s", "m", 5.0, 12.0, 0.0),
                    (3, "s", "m", 5.0, 12.0, 0.0)])
    exact = allocate(cands, budget=10.0, lam=1.0)
    assert exact.method == "milp" and exact.optimal
    assert exact.objective == pytest.approx(14.0)
    assert exact.plan["action"].tolist() == ["none", "m", "m"]
    assert exact.lp_bound == pytest.approx(14.6)
    greedy = allocate(cands, budget=10.0, lam=1.0, exact_max_candidates=0)
    assert greedy.method == "greedy_lp" and not greedy.optimal
    assert greedy.objective == pytest.approx(9.0)
    assert greedy.lp_bound == pytest.approx(14.6)
    assert greedy.gap == pytest.approx((14.6 - 9.0) / 14.6)


def test_multiple_choice_by_hand():
    # One customer, three actions (cost, value): a (1, 3), b (2, 4), c (3, 7).
    # Hull from (0, 0): slopes 3, 2, 2.33 -> a; from a: b slope 1, c slope 2 -> c.
    # b is LP-dominated. Budget 2: LP = a + half the step a -> c = 3 + 0.5 * 4 = 5.
    # Integer optimum: b = 4; the greedy takes a (3) and cannot afford the step to c.
    cands = _cands([(1, "s", "a", 1.0, 4.0, 0.0), (1, "s", "b", 2.0, 6.0, 0.0),
                    (1, "s", "c", 3.0, 10.0, 0.0)])
    exact = allocate(cands, 2.0, 1.0)
    assert (exact.plan["action"].tolist(), exact.objective) == (["b"], pytest.approx(4.0))
    assert exact.lp_bound == pytest.approx(5.0)
    greedy = allocate(cands, 2.0, 1.0, exact_max_candidates=0)
    assert (greedy.plan["action"].tolist(), greedy.objective) == (["a"], pytest.approx(3.0))
    # budget 3: the LP reaches c exactly, no gap on either path
    assert allocate(cands, 3.0, 1.0, exact_max_candidates=0).plan["action"].tolist() == ["c"]


def test_lambda_trades_clv_against_revenue():
    # Budget 5 buys one action. A: clv +100, revenue +2; B: clv +3, revenue +40; cost 5.
    # lam = 1: A nets 100 - 5 = 95, B 3 - 5 = -2 -> A.
    # lam = 0: A nets 2 - 5 = -3, B 40 - 5 = 35 -> B.
    # lam = 0.5: A 51 - 5 = 46, B 21.5 - 5 = 16.5 -> A.
    cands = _cands([("A", "s", "coupon", 5.0, 100.0, 2.0), ("B", "s", "email", 5.0, 3.0, 40.0)])
    pick = {lam: allocate(cands, 5.0, lam) for lam in (0.0, 0.5, 1.0)}
    assert pick[1.0].plan["action"].tolist() == ["coupon", "none"]
    assert pick[0.0].plan["action"].tolist() == ["none", "email"]
    assert [pick[lam].objective for lam in (0.0, 0.5, 1.0)] == pytest.approx([35.0, 46.0, 95.0])
    assert pick[0.5].plan["clv_weight"].tolist() == [0.5, 0.5]
    assert pick[0.5].plan["budget"].tolist() == [5.0, 5.0]


def test_max_share_can_make_a_loss_making_action_worth_it():
    # a1 (segment A): cost 4, net +10. b1 (B): cost 4, net -1. b2 (B): cost 2, net -0.5.
    # A at most 50% of spend, budget 10:
    #   a1 alone: share 100% -> no;  a1 + b2: 4/6 = 67% -> no;
    #   a1 + b1: 4/8 = 50% -> 9;  a1 + b1 + b2: 4/10 -> 8.5;  nothing -> 0.  Optimum 9.
    cands = _cands([(1, "A", "x", 4.0, 14.0, 0.0), (2, "B", "x", 4.0, 3.0, 0.0),
                    (3, "B", "x", 2.0, 1.5, 0.0)])
    shares = {"A": (None, 0.5)}
    result = allocate(cands, 10.0, 1.0, segment_share_bounds=shares)
    assert result.plan["action"].tolist() == ["x", "x", "none"]
    assert result.objective == pytest.approx(9.0)
    # The LP optimum is 9 too; the rounding heuristic is feasible but may settle for
    # a1 + b1 + b2 (8.5): both are allowed answers of the greedy path.
    greedy = allocate(cands, 10.0, 1.0, segment_share_bounds=shares, exact_max_candidates=0)
    assert greedy.lp_bound == pytest.approx(9.0)
    assert greedy.objective in (pytest.approx(9.0), pytest.approx(8.5))
    _check_plan(greedy, cands, 10.0, shares)
    # a minimum works the same way: B at least 50% of spend gives the same plan
    result = allocate(cands, 10.0, 1.0, segment_share_bounds={"B": (0.5, None)})
    assert result.objective == pytest.approx(9.0)


def test_action_capacity_by_hand():
    # Three customers; call nets 10 each (cost 2), email nets 3 each (cost 1).
    # At most one call, budget 5: call + 2 emails = 16 (cost 4);
    # without the cap: 2 calls + 1 email = 23 (cost 5).
    rows = []
    for cid in (1, 2, 3):
        rows += [(cid, "s", "call", 2.0, 12.0, 0.0), (cid, "s", "email", 1.0, 4.0, 0.0)]
    cands = _cands(rows)
    capped = allocate(cands, 5.0, 1.0, action_capacity={"call": 1})
    assert capped.objective == pytest.approx(16.0)
    # which customer gets the call is a tie (all three are alike); one does
    assert sorted(capped.plan["action"]) == ["call", "email", "email"]
    assert allocate(cands, 5.0, 1.0).objective == pytest.approx(23.0)


def test_only_profitable_candidates_and_zero_budget():
    cands = _cands([(1, "s", "m", 5.0, 4.0, 4.0), (2, "s", "m", 1.0, 3.0, 3.0)])
    # customer 1 nets 4 - 5 < 0: never chosen, however large the budget
    assert allocate(cands, 100.0, 0.5).plan["action"].tolist() == ["none", "m"]
    nothing = allocate(cands, 0.0, 0.5)
    assert (nothing.plan["action"] == "none").all()
    assert (nothing.objective, nothing.spent, nothing.lp_bound, nothing.gap) == (0, 0, 0, 0)


def test_rounding_does_not_reject_an_exact_fit():
    # 0.1 + 0.1 + 0.1 is 0.30000000000000004 in binary floating point.
    cands = _cands([(i, "s", "sms", 0.1, 1.0, 1.0) for i in range(3)])
    for exact_max in (10**6, 0):
        plan = allocate(cands, 0.3, 0.5, exact_max_candidates=exact_max).plan
        assert plan["action"].tolist() == ["sms"] * 3


def test_equal_candidates_tie_break_by_customer_id():
    # Two identical customers, room for one: the lower customer_id wins (greedy path).
    cands = _cands([(7, "s", "m", 1.0, 5.0, 5.0), (3, "s", "m", 1.0, 5.0, 5.0)])
    plan = allocate(cands, 1.5, 0.5, exact_max_candidates=0).plan
    assert plan["customer_id"].tolist() == [3, 7]
    assert plan["action"].tolist() == ["m", "none"]


# --------------------------------------------------------------------------- brute force

CONSTRAINTS = [
    (None, None),
    ({"s0": (0.6, None)}, None),
    ({"s1": (None, 0.3)}, {"a1": 2}),
    (None, {"a0": 1, "a2": 2}),
]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("integer_costs", [True, False])
@pytest.mark.parametrize("shares,caps", CONSTRAINTS)
def test_exact_path_equals_brute_force(seed, integer_costs, shares, caps):
    cands = _random(6, 3, seed, integer_costs)
    for budget in (6.5, 14.0):
        best = _brute_force(cands, budget, 0.4, shares, caps)
        exact = allocate(cands, budget, 0.4, shares, caps)
        assert exact.method == "milp" and exact.optimal, exact.detail
        assert exact.objective == pytest.approx(best, abs=TOL)
        assert exact.lp_bound >= best - TOL
        _check_plan(exact, cands, budget, shares, caps)
        greedy = allocate(cands, budget, 0.4, shares, caps, exact_max_candidates=0)
        assert greedy.method == "greedy_lp"
        assert greedy.objective <= best + TOL
        assert greedy.lp_bound == pytest.approx(exact.lp_bound, abs=1e-6)
        assert greedy.objective >= greedy.lp_bound * (1 - greedy.gap) - TOL
        assert best >= greedy.objective - TOL and best <= greedy.lp_bound + TOL
        _check_plan(greedy, cands, budget, shares, caps)


def test_every_exact_route_is_exercised():
    # The exact path has three ways to finish: all fixed by the duals, the DP on
    # a cost grid, HiGHS otherwise. The brute-force cases above must cover each.
    routes = set()
    for seed, integer_costs, (shares, caps) in itertools.product(
            range(6), (True, False), CONSTRAINTS):
        for budget in (6.5, 14.0):
            detail = allocate(_random(6, 3, seed, integer_costs), budget, 0.4,
                              shares, caps).detail
            routes |= {r for r in ("nothing left", "dynamic programming", "HiGHS: Optim")
                       if r in detail}
    assert routes == {"nothing left", "dynamic programming", "HiGHS: Optim"}


def test_lp_bound_equals_an_independent_lp():
    # The hull method's bound against scipy's LP over the same relaxation:
    # max sum(net x) s.t. sum(cost x) <= B, sum over a customer's x <= 1, 0 <= x <= 1,
    # over the candidates with net > 0.
    for seed in range(4):
        cands = _random(40, 3, seed, integer_costs=False)
        net = 0.7 * cands["incr_clv"] + 0.3 * cands["incr_revenue"] - cands["cost"]
        keep = cands[net > 0].reset_index(drop=True)
        v = net[net > 0].to_numpy()
        codes = pd.factorize(keep["customer_id"])[0]
        one_each = np.zeros((codes.max() + 1, len(keep)))
        one_each[codes, np.arange(len(keep))] = 1.0
        a = np.vstack([keep["cost"].to_numpy()[None, :], one_each])
        b = np.r_[40.0, np.ones(codes.max() + 1)]
        lp = linprog(-v, A_ub=a, b_ub=b, bounds=(0, 1), method="highs")
        result = allocate(cands, 40.0, 0.7, exact_max_candidates=0)
        assert result.lp_bound == pytest.approx(-lp.fun, rel=1e-9)


# --------------------------------------------------------------------------- invariants


def test_budget_is_never_exceeded_on_random_instances():
    cands = _random(300, 3, seed=11, integer_costs=False)
    for budget in (0.4, 3.0, 37.5, 250.0, 10_000.0):
        for exact_max in (10**6, 0):
            result = allocate(cands, budget, 0.5, exact_max_candidates=exact_max)
            assert math.fsum(result.plan["cost"]) <= budget + 1e-9
            assert result.spent <= budget + 1e-9
            assert (result.plan.loc[result.plan["action"] != "none", "net_value"] > 0).all()
            # The gap to the LP is at most one candidate's value: large when the
            # budget buys few actions (0.4 buys none, costs are >= 0.5), small after.
            assert 0 <= result.gap <= (1 if budget < 10 else 0.01)


def test_result_does_not_depend_on_row_order():
    cands = _random(60, 3, seed=5, integer_costs=False)
    shuffled = cands.sample(frac=1.0, random_state=9)
    settings = [dict(), dict(exact_max_candidates=0),
                dict(segment_share_bounds={"s0": (0.3, 0.6)}, action_capacity={"a2": 5})]
    for kwargs in settings:
        one = allocate(cands, 60.0, 0.5, **kwargs)
        two = allocate(shuffled, 60.0, 0.5, **kwargs)
        pd.testing.assert_frame_equal(one.plan, two.plan)
        assert (one.objective, one.lp_bound, one.method) == (two.objective, two.lp_bound,
                                                             two.method)


def test_plan_carries_extra_columns_and_marks_none():
    cands = _cands([(1, "s", "m", 1.0, 5.0, 5.0), (2, "t", "m", 9.0, 5.0, 5.0)])
    cands["uplift_source"] = "prior"
    plan = allocate(cands, 2.0, 0.5).plan
    assert list(plan.columns) == ["customer_id", "segment", "action", "cost", "incr_clv",
                                  "incr_revenue", "uplift_source", "net_value", "budget",
                                  "clv_weight"]
    assert plan["uplift_source"].tolist()[0] == "prior" and pd.isna(plan["uplift_source"][1])
    assert plan.iloc[1][["action", "cost", "incr_clv", "net_value"]].tolist() == [
        "none", 0.0, 0.0, 0.0]
    assert plan["net_value"].tolist() == pytest.approx([4.0, 0.0])  # 5 - 1


def test_bad_input_is_rejected():
    cands = _cands([(1, "s", "m", 1.0, 5.0, 5.0)])
    with pytest.raises(ValueError, match="budget"):
        allocate(cands, -1.0, 0.5)
    with pytest.raises(ValueError, match="lam"):
        allocate(cands, 1.0, 1.5)
    with pytest.raises(ValueError, match="missing"):
        allocate(cands.drop(columns="incr_clv"), 1.0, 0.5)
    with pytest.raises(ValueError, match="cost"):
        allocate(cands.assign(cost=0.0), 1.0, 0.5)
    with pytest.raises(ValueError, match="one row per"):
        allocate(pd.concat([cands, cands]), 1.0, 0.5)
    with pytest.raises(ValueError, match="one segment"):
        allocate(_cands([(1, "s", "m", 1.0, 5.0, 5.0), (1, "t", "n", 1.0, 5.0, 5.0)]), 1.0, 0.5)
    with pytest.raises(ValueError, match="share bounds"):
        allocate(cands, 1.0, 0.5, segment_share_bounds={"nope": (0.1, None)})
    with pytest.raises(ValueError, match="share bounds"):
        allocate(cands, 1.0, 0.5, segment_share_bounds={"s": (0.6, 0.5)})
    with pytest.raises(ValueError, match="capacity"):
        allocate(cands, 1.0, 0.5, action_capacity={"m": 1.5})
    with pytest.raises(ValueError, match="present"):
        allocate(cands.assign(segment=None), 1.0, 0.5)


# --------------------------------------------------------------------------- candidates


def _effects(rows):
    """customer_effects' shape from (customer, action, revenue, retention) rows."""
    frame = pd.DataFrame(rows, columns=["customer_id", "action", "incr_revenue",
                                        "incr_retention"])
    return frame.assign(incr_revenue_low=frame["incr_revenue"] - 1.0,
                        incr_revenue_high=frame["incr_revenue"] + 1.0,
                        incr_retention_low=0.0, incr_retention_high=0.5,
                        uplift_source="prior", effect_method="prior")


def test_build_candidates_by_hand():
    scores = pd.DataFrame({
        "customer_id": [2, 1], "segment": ["lost", "loyal"], "predicted_clv": [200.0, 100.0],
        "p_churn": [0.8, 0.03],
    })
    effects = _effects([(1, "coupon", 0.5, 0.10), (1, "email", 0.8, 0.0),
                        (2, "coupon", 0.5, 0.10), (2, "email", 0.3, 0.0)])
    cands = build_candidates(scores, effects, {"email": 0.1, "coupon": 5.0})
    # incr_clv = incr_revenue + min(retention, p_churn) * clv / max(1 - p_churn, 0.1)
    # 1 loyal: value if retained 100 / 0.97 = 103.09; the coupon can keep at most the
    #   3% who would churn: 0.5 + 0.03 * 103.09 = 3.593; e-mail 0.8 + 0 = 0.8
    # 2 lost: value if retained 200 / 0.2 = 1000: coupon 0.5 + 0.10 * 1000 = 100.5;
    #   e-mail 0.3
    assert cands[["customer_id", "action"]].values.tolist() == [
        [1, "coupon"], [1, "email"], [2, "coupon"], [2, "email"]]
    assert cands["incr_revenue"].tolist() == pytest.approx([0.5, 0.8, 0.5, 0.3])
    assert cands["incr_clv"].tolist() == pytest.approx([0.5 + 0.03 * 100 / 0.97, 0.8, 100.5, 0.3])
    assert cands["incr_retention"].tolist() == pytest.approx([0.03, 0.0, 0.10, 0.0])
    assert cands["cost"].tolist() == [5.0, 0.1, 5.0, 0.1]
    assert (cands["uplift_source"] == "prior").all()
    # a near-certain churner's value if retained is capped at 10x its prediction
    assert value_if_retained(np.array([5.0]), np.array([0.99])) == pytest.approx([50.0])
    with pytest.raises(ValueError, match="one row per"):
        build_candidates(scores, effects.iloc[::-1], {"email": 0.1, "coupon": 5.0})
    with pytest.raises(ValueError, match="one row per"):
        build_candidates(scores, effects, {"email": 0.1})
    with pytest.raises(ValueError, match="costs > 0"):
        build_candidates(scores, effects, {"email": 0.0, "coupon": 5.0})


def test_lambda_chooses_between_revenue_now_and_retention():
    # Three customers, budget for two actions of 1.0: an e-mail brings 2.0 now; a
    # perk keeps 10% more of a customer worth 30 if retained (p_churn 0.5, clv 15),
    # i.e. 3.0 of CLV and nothing now. Net per customer: e-mail 2 - 1 = 1 at any
    # lambda; perk 3 lambda - 1. lambda 0 and 0.5: e-mails (revenue 4, CLV 4);
    # 0.8 and 1: perks (net 1.4 / 2.0; revenue 0, CLV 6).
    scores = pd.DataFrame({"customer_id": [1, 2, 3], "segment": "s",
                           "predicted_clv": 15.0, "p_churn": 0.5})
    effects = _effects([(c, a, r, k) for c in (1, 2, 3)
                        for a, r, k in (("email", 2.0, 0.0), ("perk", 0.0, 0.1))])
    cands = build_candidates(scores, effects, {"email": 1.0, "perk": 1.0})
    front = frontier(cands, 2.0, lambdas=[0.0, 0.5, 0.8, 1.0])
    assert front["expected_incremental_revenue"].tolist() == pytest.approx([4, 4, 0, 0])
    assert front["expected_incremental_clv"].tolist() == pytest.approx([4, 4, 6, 6])


# --------------------------------------------------------------------------- reporting


def test_budget_summary_by_hand():
    cands = _cands([(1, "A", "m", 1.0, 5.0, 3.0), (2, "A", "m", 2.0, 6.0, 4.0),
                    (3, "B", "n", 1.0, 4.0, 2.0), (4, "B", "n", 50.0, 1.0, 1.0)])
    summary = budget_summary(allocate(cands, 10.0, 0.5).plan)
    # A/m: customers 1, 2: spent 3, clv 11, revenue 7, net (4 - 1) + (5 - 2) = 6
    # B/n: customer 3: spent 1, clv 4, revenue 2, net 3 - 1 = 2; B/none: customer 4;
    # no contact policy given: nobody excluded by any rule (0, 0, 0)
    assert summary.values.tolist() == [["A", "m", 2, 3.0, 11.0, 7.0, 6.0, 0, 0, 0, 10.0, 0.5],
                                       ["B", "n", 1, 1.0, 4.0, 2.0, 2.0, 0, 0, 0, 10.0, 0.5],
                                       ["B", "none", 1, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 10.0,
                                        0.5]]


def test_frontier_moves_from_revenue_to_clv(tmp_path):
    # Weighted-sum optima: as lambda grows, CLV cannot fall and revenue cannot rise.
    cands = _random(8, 3, seed=3, integer_costs=True)
    front = frontier(cands, 12.0, lambdas=[0.0, 0.25, 0.5, 0.75, 1.0])
    assert front["clv_weight"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert (np.diff(front["expected_incremental_clv"]) >= -TOL).all()
    assert (np.diff(front["expected_incremental_revenue"]) <= TOL).all()
    assert (np.diff(front["expected_net_revenue"]) <= TOL).all()
    assert front["expected_net_revenue"].tolist() == pytest.approx(
        (front["expected_incremental_revenue"] - front["spent"]).tolist())
    assert (front["spent"] <= 12.0 + 1e-9).all()
    first = allocate(cands, 12.0, 0.0)
    assert front["objective"].iat[0] == pytest.approx(first.objective)
    assert front["expected_incremental_revenue"].iat[0] == pytest.approx(
        first.plan["incr_revenue"].sum())
    path = plot_frontier(front, tmp_path / "charts" / "frontier.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def _milp_reference(cands: pd.DataFrame, budget: float, lam: float) -> float:
    """The whole problem handed to HiGHS directly: an independent optimum."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    net = (lam * cands["incr_clv"] + (1 - lam) * cands["incr_revenue"] - cands["cost"]).to_numpy()
    codes = pd.factorize(cands["customer_id"])[0]
    one_each = np.zeros((codes.max() + 1, len(cands)))
    one_each[codes, np.arange(len(cands))] = 1.0
    a = np.vstack([cands["cost"].to_numpy()[None, :], one_each])
    upper = np.r_[budget, np.ones(len(one_each))]
    res = milp(-net, constraints=LinearConstraint(a, -np.inf, upper),
               integrality=np.ones(len(net)), bounds=Bounds(0, 1), options={"mip_rel_gap": 0})
    return -res.fun


@pytest.mark.parametrize("seed", range(3))
def test_dynamic_programme_matches_highs_on_a_real_core(seed):
    # 40 customers x 3 actions on an integer cost grid: the dual fixing leaves a
    # core of several customers (some must take an action, "none" being ruled
    # out) and the DP solves it; HiGHS on the whole model is the reference.
    cands = _random(40, 3, seed + 20, integer_costs=True)
    for budget in (23.0, 61.0):
        result = allocate(cands, budget, 0.6)
        assert "dynamic programming" in result.detail
        assert result.optimal
        assert result.objective == pytest.approx(_milp_reference(cands, budget, 0.6), abs=TOL)
        _check_plan(result, cands, budget)


@pytest.mark.parametrize("seed", range(8))
def test_dynamic_programme_equals_enumeration(seed):
    # The DP alone, against enumerating every choice: 6 groups of 1-3 options,
    # integer weights, some groups that must choose (no "none").
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, 6)
    n = int(sizes.sum())
    weight, value = rng.integers(1, 7, n), rng.normal(3.0, 2.0, n)
    options = np.split(np.arange(n), np.cumsum(sizes)[:-1])
    none_ok = rng.random(6) < 0.6
    capacity = 12
    best, choice = _dp_tables(options, weight, value, capacity, none_ok)
    reference = -np.inf
    for combo in itertools.product(*[([None] if ok else []) + list(g)
                                     for g, ok in zip(options, none_ok, strict=True)]):
        picked = [i for i in combo if i is not None]
        if weight[picked].sum() <= capacity:
            reference = max(reference, value[picked].sum())
    assert best == pytest.approx(reference)
    # the choice table traces back to a plan worth the optimum
    s, total = capacity, 0.0
    for g in range(len(options) - 1, -1, -1):
        j = int(choice[g, s])
        assert j or none_ok[g]
        if j:
            total += value[options[g][j - 1]]
            s -= int(weight[options[g][j - 1]])
    assert s >= 0 and total == pytest.approx(reference)


def _hull_by_hand(group, cost, value):
    """Each group's upper hull walked one group at a time in plain Python: from (0, 0),
    the steepest upgrade worth more and costing more, ties to the cheaper, then to the
    lower position; the steps ordered by efficiency (descending), group, step."""
    steps = []
    for g in sorted(set(group.tolist())):
        items = [i for i in range(len(group)) if group[i] == g]
        cc = cv = 0.0
        for k in itertools.count():
            ahead = [i for i in items if cost[i] > cc and value[i] > cv]
            if not ahead:
                break
            best = min(ahead, key=lambda i: (-(value[i] - cv) / (cost[i] - cc), cost[i], i))
            steps.append((best, g, k, cost[best] - cc, value[best] - cv))
            cc, cv = cost[best], value[best]
    steps.sort(key=lambda s: (-(s[4] / s[3]), s[1], s[2]))
    return steps


@pytest.mark.parametrize("seed", range(6))
def test_hull_steps_match_a_walk_of_each_group_by_hand_ties_included(seed):
    from clv.decisions.allocation.knapsack_model import Problem
    from clv.decisions.allocation.knapsack_relaxation import _hull_steps

    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, 150)
    group = np.repeat(np.arange(len(sizes)), sizes)
    # small integers: many equal slopes and equal costs, so the tie rules decide
    cost = rng.integers(1, 6, len(group)).astype(float)
    value = rng.integers(-3, 9, len(group)).astype(float)
    codes = np.zeros(len(group), dtype=np.int8)
    steps = _hull_steps(Problem(group, np.r_[0, np.cumsum(sizes)[:-1]], cost, value,
                                codes, codes))
    got = list(zip(steps.var.tolist(), steps.group.tolist(), steps.k.tolist(),
                   steps.dcost.tolist(), steps.dvalue.tolist(), strict=True))
    assert got == _hull_by_hand(group, cost, value)
    assert len(got) > len(sizes)  # groups with more than one hull step were walked


def test_coupling_rows_by_hand():
    """Budget, share (min and max) and capacity rows over 5 items, written out by hand;
    an item of cost 0 leaves its budget entry empty, as it would in any sparse form."""
    from clv.decisions.allocation.knapsack_model import Problem, _coupling

    cost = np.array([2.0, 0.0, 4.0, 1.0, 3.0])
    share_class = np.array([1, 1, 0, 2, 1], dtype=np.int8)
    capacity_class = np.array([0, 3, 3, 0, 3], dtype=np.int8)
    p = Problem(np.array([0, 0, 1, 2, 2]), np.array([0, 2, 3]), cost,
                np.ones(5), share_class, capacity_class)
    rows = _coupling(p, 7.5, {1: (0.25, 0.75), 2: (0.0, 0.5)}, {3: 2})
    inside1, inside2 = np.array([1, 1, 0, 0, 1.0]), np.array([0, 0, 0, 1, 0.0])
    expected = np.vstack([
        cost,                       # budget
        cost * (0.25 - inside1),    # class 1 takes at least a quarter of the spend
        cost * (inside1 - 0.75),    # ... and at most three quarters
        cost * (inside2 - 0.5),     # class 2 at most half (no minimum row)
        [0, 1, 1, 0, 1.0],          # capacity class 3: at most 2 items
    ])
    assert np.array_equal(rows.a.toarray(), expected)
    assert rows.a.nnz == np.count_nonzero(expected) == 19  # 4 a row, 3 capacity
    assert rows.b.tolist() == [7.5, 0.0, 0.0, 0.0, 2.0]
