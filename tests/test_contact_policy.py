"""The contact policy's rules (clv.decisions.contact_policy) and how the allocator honours them,
on frames small enough to check by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from clv.decisions import allocation, contact_policy
from clv.decisions.contact_policy import ContactPolicy
from clv.pipeline.params import ParamError, validate_params

D = dt.date(2024, 3, 1)


def _prefs(rows):
    return pd.DataFrame(rows, columns=["customer_id", "channel", "opted_out", "updated_at"])


def test_split_preferences_names_the_rule_and_the_row():
    raw = _prefs([("a", "Email ", "yes", "2024-01-01"), ("b", "all", "1", "2024-01-02 10:00"),
                  ("", "email", "true", "2024-01-01"), ("c", " ", "no", "2024-01-01"),
                  ("d", "sms", "maybe", "2024-01-01"), ("e", "sms", "no", "yesterday"),
                  ("f", "sms", "OPTED_IN", "2024-01-03")])
    valid, rejected = contact_policy.split_preferences(raw, "optouts.csv")
    assert valid["customer_id"].tolist() == ["a", "b", "f"]
    assert valid["channel"].tolist() == ["email", "all", "sms"]  # trimmed, lower case
    assert valid["opted_out"].tolist() == [True, True, False]
    assert rejected["row"].tolist() == [3, 4, 5, 6]
    assert rejected["rule"].tolist() == ["customer_id_missing", "channel_missing",
                                         "opted_out_not_boolean", "updated_at_not_a_date"]
    assert set(rejected["source"]) == {"optouts.csv"}
    assert len(valid) + len(rejected) == len(raw)  # nothing dropped
    with pytest.raises(ValueError, match=r"optouts.csv: raw.contact_preferences needs "
                                         r"column\(s\) \['opted_out'\]"):
        contact_policy.split_preferences(raw.drop(columns="opted_out"), "optouts.csv")


def test_suppressed_latest_row_decides_and_a_later_opt_out_still_wins():
    prefs = _prefs([
        ("a", "email", True, "2024-01-01"),    # opted out before D
        ("b", "email", True, "2024-01-01"),    # ... and back in before D: lifted
        ("b", "email", False, "2024-02-01"),
        ("c", "email", True, "2024-01-01"),    # opted in only after D: still out on D
        ("c", "email", False, "2024-04-01"),
        ("d", "email", True, "2024-04-01"),    # opted out after D: applies to a backfill
        ("e", "all", True, "2024-03-01 23:00"),  # on the as-of date itself
        ("f", "email", False, "2024-01-01"),
        ("g", "email", False, "2024-02-01"),   # a tie on updated_at: opted out wins
        ("g", "email", True, "2024-02-01"),
    ])
    prefs["updated_at"] = pd.to_datetime(prefs["updated_at"], format="mixed")
    out = contact_policy.suppressed(prefs, D)
    assert list(map(tuple, out.to_numpy())) == [("a", "email"), ("c", "email"),
                                                ("d", "email"), ("e", "all"), ("g", "email")]
    assert contact_policy.suppressed(None, D).empty


def _plan(plan_date, rows):
    return pd.DataFrame({"plan_id": f"plan-{plan_date.isoformat()}",
                         "customer_id": [r[0] for r in rows], "action": [r[1] for r in rows],
                         "assignment": [r[2] for r in rows]})


def test_history_counts_treated_contacts_of_earlier_plans_at_their_send_date():
    d0 = D - dt.timedelta(days=20)
    plans = pd.concat([
        _plan(d0, [("a", "winback_email", "treated"), ("b", "winback_email", "holdout"),
                   ("c", "loyalty_perk", "treated")]),
        _plan(D, [("d", "winback_email", "treated")]),  # this date's own plan: not history
        _plan(D + dt.timedelta(days=7), [("e", "winback_email", "treated")]),  # later
    ])
    sends = pd.DataFrame({"plan_id": [f"plan-{d0.isoformat()}"],
                          "sent_date": [D - dt.timedelta(days=10)]})
    hist = contact_policy.contact_history(plans, sends, D)
    assert hist["customer_id"].tolist() == ["a", "c"]  # held out b was not contacted
    assert hist["channel"].tolist() == ["email", "account"]  # the catalogue's channels
    assert set(hist["contact_date"]) == {pd.Timestamp(D - dt.timedelta(days=10))}  # the send
    unsent = contact_policy.contact_history(plans, None, D)
    assert set(unsent["contact_date"]) == {pd.Timestamp(d0)}  # the plan date


def test_excluded_by_applies_opt_outs_then_caps_per_channel():
    cands = pd.DataFrame({
        "customer_id": ["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"],
        "action": ["loyalty_perk", "winback_email"] * 5})
    opt_outs = pd.DataFrame({"customer_id": ["a", "b"], "channel": ["email", "all"]})
    hist = pd.DataFrame({
        "customer_id": ["a", "c", "d", "d", "e"],
        "channel": ["email", "email", "email", "email", "account"],
        "contact_date": pd.to_datetime([D - dt.timedelta(days=3), D - dt.timedelta(days=13),
                                        D - dt.timedelta(days=60), D - dt.timedelta(days=30),
                                        D - dt.timedelta(days=14)])})
    rules = contact_policy.excluded_by(cands, D, ContactPolicy(min_days_between=14), opt_outs,
                                       hist)
    # a: out of e-mail (opt-out wins over its cap), free on the account channel; b: out of
    # every channel; c: e-mailed 13 days ago; d: 30 days since the last e-mail: free;
    # e: its perk was 14 days ago (the gap is met)
    assert rules.tolist() == ["", "opted_out", "opted_out", "opted_out", "", "frequency_cap",
                              "", "", "", ""]
    capped = contact_policy.excluded_by(
        cands, D, ContactPolicy(min_days_between=0, max_per_window=2, window_days=60),
        opt_outs.iloc[:0], hist)
    assert capped.tolist() == [""] * 6 + ["", "frequency_cap", "", ""]  # d: 2 in 60 days
    wider = contact_policy.excluded_by(
        cands, D, ContactPolicy(min_days_between=0, max_per_window=2, window_days=59),
        opt_outs.iloc[:0], hist)
    assert wider.tolist() == [""] * 10  # the 60-day-old e-mail is outside a 59-day window
    # an action the catalogue does not know is e-mail unless action_channels says otherwise
    sms = pd.DataFrame({"customer_id": ["a", "a"], "action": ["sms_offer", "sms_offer"]})
    assert contact_policy.excluded_by(sms, D, ContactPolicy(), opt_outs, hist).tolist() == [
        "opted_out"] * 2
    assert contact_policy.excluded_by(sms, D, ContactPolicy(), opt_outs, hist,
                                      {"sms_offer": "sms"}).tolist() == ["", ""]


def _candidates():
    """Three customers x two actions; net values at lambda 1 (incr_clv - cost) by hand:
    x: e 4, p 9; y: e 3, p 1; z: e 0.5, p -1 (cost e 1, p 2)."""
    return pd.DataFrame({
        "customer_id": ["x", "x", "y", "y", "z", "z"],
        "segment": "s", "action": ["e", "p"] * 3, "cost": [1.0, 2.0] * 3,
        "incr_clv": [5.0, 11.0, 4.0, 3.0, 1.5, 1.0], "incr_revenue": 0.0})


def test_allocator_honours_eligibility_and_the_threshold_and_reports_both_solves():
    cands = _candidates()
    free = allocation.allocate(cands, 100.0, 1.0)
    assert free.objective == pytest.approx(9 + 3 + 0.5)
    cands["eligible"] = [True, False, True, True, True, True]  # x may not get p
    held = allocation.allocate(cands, 100.0, 1.0)
    assert held.plan["action"].tolist() == ["e", "e", "e"]
    assert held.objective == pytest.approx(4 + 3 + 0.5)
    ignored = allocation.allocate(cands, 100.0, 1.0, honour_eligibility=False)
    assert ignored.objective == pytest.approx(free.objective)
    assert ignored.objective - held.objective == pytest.approx(5.0)  # the policy's cost
    # a threshold of 1: z's 0.5 is not worth taking
    thr = allocation.allocate(cands, 100.0, 1.0, min_net_value=1.0)
    assert thr.plan["action"].tolist() == ["e", "e", "none"]
    assert thr.objective == pytest.approx(7.0)
    # budget 2 binds: with x's p allowed it takes it (9), without: x e + y e (7)
    assert allocation.allocate(cands, 2.0, 1.0, honour_eligibility=False).objective == 9.0
    assert allocation.allocate(cands, 2.0, 1.0).objective == pytest.approx(7.0)
    # the frontier honours both too
    front = allocation.frontier(cands, 100.0, [1.0], min_net_value=1.0)
    assert front["objective"].tolist() == pytest.approx([7.0])
    cands["eligible"] = 1
    with pytest.raises(ValueError, match="eligible must be boolean"):
        allocation.allocate(cands, 1.0, 1.0)
    with pytest.raises(ValueError, match="min_net_value must be finite"):
        allocation.allocate(_candidates(), 1.0, 1.0, min_net_value=float("nan"))


def test_budget_summary_counts_excluded_customers_per_rule():
    cands = _candidates()
    cands["eligible"] = [True, False, True, True, True, True]
    plan = allocation.allocate(cands, 100.0, 1.0).plan
    excluded = pd.DataFrame({"segment": ["s", "s"], "action": ["p", "p"],
                             "rule": ["opted_out", "min_net_value"], "customers": [1, 2]})
    summary = allocation.budget_summary(plan, excluded)
    assert summary["action"].tolist() == ["e", "p"]
    assert summary["customers"].tolist() == [3, 0]  # nobody got p, but rules kept 3 from it
    assert summary["excluded_opted_out"].tolist() == [0, 1]
    assert summary["excluded_min_net_value"].tolist() == [0, 2]
    assert summary["excluded_frequency_cap"].tolist() == [0, 0]
    assert summary["spent"].tolist() == [3.0, 0.0]
    plain = allocation.budget_summary(plan)
    assert plain["excluded_opted_out"].tolist() == [0]
    with pytest.raises(ValueError, match="unknown rule"):
        allocation.budget_summary(plan, excluded.assign(rule="typo"))


def test_contact_params_are_checked_once():
    out = validate_params({"budget": 1.0})
    assert out["contact_min_days"] == 14 and out["contact_max_per_window"] is None
    assert out["min_net_value"] is None and out["action_channels"] == {}
    out = validate_params({"budget": 1.0, "contact_min_days": 7.0, "contact_max_per_window": 3,
                           "contact_window_days": 90, "min_net_value": "0.5",
                           "action_channels": {"winback_email": " SMS"}})
    assert (out["contact_min_days"], out["contact_max_per_window"],
            out["contact_window_days"], out["min_net_value"]) == (7, 3, 90, 0.5)
    assert out["action_channels"] == {"winback_email": "sms"}
    for bad, message in (({"contact_min_days": -1}, r"contact_min_days: -1 is outside"),
                         ({"contact_min_days": 2.5}, "not a whole number"),
                         ({"contact_max_per_window": 0}, "contact_max_per_window: 0 is outside"),
                         ({"min_net_value": float("inf")}, "min_net_value: expected a finite"),
                         ({"action_channels": {"nope": "sms"}}, r"\['nope'\] not among"),
                         ({"action_channels": {"winback_email": ""}}, "non-empty name")):
        with pytest.raises(ParamError, match=message):
            validate_params({"budget": 1.0, **bad})


def test_policy_params_reach_the_allocation():
    from clv import pipeline

    params = pipeline.AllocationParams.from_params({"budget": 5.0, "horizon_days": 90,
                                                    "contact_max_per_window": 2,
                                                    "min_net_value": 1})
    assert params.contact == ContactPolicy(min_days_between=14, max_per_window=2,
                                           window_days=90, min_net_value=1.0)
