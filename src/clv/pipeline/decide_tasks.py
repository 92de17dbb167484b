"""The decide step: effects, candidates, the contact policy, the budget allocation and
what it publishes and logs (the decisions live in :mod:`clv.decisions.allocation`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from clv.config import DEFAULT_ACTION_COSTS, DEFAULT_CLV_WEIGHT
from clv.data import lineage, warehouse
from clv.data.catalog import NO_ACTION
from clv.decisions.contact_policy import ContactPolicy
from clv.pipeline.effect_inputs import _measured_effects, _shop_covariates, effects_key
from clv.pipeline.loop_tasks import evaluate_plan_policy, publish_campaign_plan
from clv.pipeline.publishing import (
    _partition_or_none,
    _publish_pandas,
    _read_all_pandas,
    _stamp,
)
from clv.pipeline.tables import (
    ACTION_EFFECTS,
    ALLOCATION,
    BUDGET_SUMMARY,
    CAMPAIGN_PLAN,
    CAMPAIGN_SENDS,
    CONTACT_POLICY,
    CONTACT_PREFERENCES,
    FRONTIER,
    RECOMMENDATIONS,
    SCORES,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AllocationParams:
    """The allocation's knobs, as the DAG's trigger form gives them.

    Attributes:
        budget: Total marketing spend allowed.
        clv_weight: The weight on incremental lifetime value (λ); 1 - clv_weight
            weighs incremental short-term (30-day) revenue.
        action_costs: Action -> cost per customer (the actions on offer).
        segment_share_bounds: Segment -> [min_share, max_share] of the amount spent
            (either may be null).
        action_capacity: Action -> most customers that may receive it.
        contact: Frequency caps and the net-value threshold (:mod:`clv.decisions.contact_policy`).
        action_channels: Action -> channel, for actions the catalogue does not know
            (or to override it); opt-outs and caps are per channel.
    """

    budget: float
    clv_weight: float = DEFAULT_CLV_WEIGHT
    action_costs: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTION_COSTS))
    segment_share_bounds: dict[str, tuple[float | None, float | None]] = field(
        default_factory=dict)
    action_capacity: dict[str, int] = field(default_factory=dict)
    contact: ContactPolicy = field(default_factory=lambda: ContactPolicy())
    action_channels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> AllocationParams:
        """Read and check the DAG params (names as in the trigger form)."""
        from clv.pipeline.params import validate_params

        params = validate_params(params)  # {} actions, 2.7 customers: refused, not coerced
        shares = params.get("segment_share_bounds") or {}
        bad = {k: v for k, v in shares.items()
               if not isinstance(v, list | tuple) or len(v) != 2}
        if bad:
            raise ValueError(f"segment_share_bounds: each value must be [min_share, max_share] "
                             f"(null for no bound), got {bad}")
        return cls(
            budget=float(params["budget"]),
            clv_weight=float(params.get("clv_weight", DEFAULT_CLV_WEIGHT)),
            action_costs={str(k): float(v) for k, v in
                          (params.get("action_costs") or DEFAULT_ACTION_COSTS).items()},
            segment_share_bounds={str(k): (v[0], v[1]) for k, v in shares.items()},
            action_capacity={str(k): int(v) for k, v in
                             (params.get("action_capacity") or {}).items()},
            contact=ContactPolicy(
                min_days_between=params["contact_min_days"],
                max_per_window=params["contact_max_per_window"],
                window_days=params["contact_window_days"] or params["horizon_days"],
                min_net_value=params["min_net_value"]),
            action_channels=params["action_channels"],
        )


def allocate(as_of_date: dt.date, params: AllocationParams, run_id: str) -> dict[str, Any]:
    """:func:`_allocate`, or its work that ``score`` began for the same params
    (:func:`clv.pipeline.score_tasks.begin_after_score`)."""
    from clv.pipeline import head_start

    return head_start.take(allocation_key(as_of_date, params, run_id),
                           functools.partial(_allocate, as_of_date, params, run_id))


def allocation_key(as_of_date: dt.date, params: AllocationParams, run_id: str) -> tuple:
    """The head-start key of the allocation with ``params`` (a plan for other params is
    not this one)."""
    from clv.pipeline import head_start

    return (*head_start.task_key("allocate", as_of_date, run_id), repr(params))


def _allocate(as_of_date: dt.date, params: AllocationParams, run_id: str) -> dict[str, Any]:
    """Spend the budget: one action (or none) per customer, maximising
    ``clv_weight * incremental CLV + (1 - clv_weight) * incremental revenue - cost``.

    Each customer's effects are absolute (money now, retention probability) with
    their evidence (:mod:`clv.decisions.effects`): measured per customer where the latest
    randomised campaign that tested the action supports it (the shop's own, or
    another population's, shrunk), else the catalogue's priors. Publishes
    ``marts.action_effects`` (what each action is expected to do, on what evidence),
    ``marts.budget_allocation``, ``marts.budget_summary`` and
    ``marts.allocation_frontier``, and logs the frontier and Qini charts to MLflow.
    """
    from clv.data.frames import join_one_to_one
    from clv.decisions import allocation, effects
    from clv.decisions import recommendation_action as rec_action
    from clv.pipeline import head_start

    # product lists (#18): with them the recommendation e-mail is on offer
    lists = _partition_or_none(RECOMMENDATIONS, as_of_date, ["customer_id", "product_id", "rank"])
    params = dataclasses.replace(params, action_costs=rec_action.offered(
        params.action_costs, lists is not None))
    # Only the columns used: at 2.57M customers the full segments frame alone is 0.76 GiB.
    scores = warehouse.read_partition_pandas(SCORES, as_of_date, columns=_ALLOCATION_INPUTS)
    frame = join_one_to_one(scores, _segments(scores))  # both by customer_id: a column copy
    covariates = _shop_covariates(as_of_date, frame["customer_id"])
    measured = _measured_effects(as_of_date, sorted(params.action_costs),
                                 set(covariates["customer_id"]),
                                 ahead=head_start.take(effects_key(as_of_date, run_id),
                                                       lambda: None))
    per_customer = effects.customer_effects(covariates, sorted(params.action_costs), measured)
    effect_table = allocation.action_effects_table(per_customer, covariates, measured)
    del covariates
    candidates = allocation.build_candidates(frame, per_customer, params.action_costs)
    if lists is not None:
        candidates = rec_action.only_customers_with_a_list(candidates, lists)
    del per_customer
    present = set(frame["segment"])
    del frame
    # contact policy (#19): opt-outs and frequency caps rule candidates out before the solve.
    rules = _contact_rules(as_of_date, candidates, params)
    run = allocation.allocate_with_policy(
        candidates, rules, as_of_date, params.budget, params.clv_weight, params.contact,
        present, params.segment_share_bounds, params.action_capacity)
    log.info("allocation: %s", run.result.detail)
    log.info("contact policy: %s", {k: run.policy[k].iat[0] for k in (
        "value_with_policy", "value_without_policy", "policy_cost_value",
        "customers_opted_out", "customers_frequency_cap", "customers_min_net_value")})
    plan = allocation.published_plan(run.result.plan, scores)
    if lists is not None:  # what each recommendation e-mail shows
        plan[rec_action.PRODUCTS_COLUMN] = rec_action.products_for(plan, lists)
    docs = _publish_pandas(_stamp(plan, run_id), "budget_allocation", ALLOCATION, as_of_date,
                           run_id)
    for frame_out, suite, table in ((run.summary, "budget_summary", BUDGET_SUMMARY),
                                    (run.frontier, "allocation_frontier", FRONTIER),
                                    (effect_table, "action_effects", ACTION_EFFECTS),
                                    (run.policy, "contact_policy", CONTACT_POLICY)):
        _publish_pandas(_stamp(frame_out, run_id), suite, table, as_of_date, run_id)
    out = _allocation_summary(run, plan, params, measured, docs)
    out["mlflow_run_id"] = _log_allocation(as_of_date, run_id, params, out, run.frontier,
                                           run.summary, measured)
    # closed loop (#16): randomised holdout -> marts.campaign_plan; the plan's value
    # before spending (IPS / DR on the randomised responses) -> marts.policy_evaluation.
    out["campaign_plan"] = publish_campaign_plan(as_of_date, run.result.plan, params.budget,
                                                 run_id)
    out["policy_evaluation"] = evaluate_plan_policy(
        as_of_date, run.result.plan, _segments(scores), params.action_costs, run_id)
    return out


def _segments(scores):
    """customer_id and value x risk segment (sorted by customer_id). A function of the
    scores alone (:func:`clv.decisions.segments.assign_segments`, what the segment task
    publishes in ``marts.customer_segments``), so the plan does not wait for that task's
    K-means; made again where needed rather than held through the solve (2.57M rows)."""
    from clv.decisions.segments import assign_segments

    return assign_segments(scores)[["customer_id", "segment"]]


def _allocation_summary(run, plan, params: AllocationParams, measured: dict[str, Any],
                        docs: str | None) -> dict[str, Any]:
    """The allocate step's XCom summary (without its MLflow run and closed-loop parts)."""
    result, front = run.result, run.frontier
    treated = plan["action"] != NO_ACTION
    return {"customers": len(plan), "treated": int(treated.sum()),
            "spent": round(result.spent, 2), "budget": params.budget,
            "clv_weight": params.clv_weight, "objective": round(result.objective, 2),
            "lp_bound": round(result.lp_bound, 2), "gap": result.gap, "method": result.method,
            "optimal": result.optimal, "data_docs": docs,
            **{k: round(float(plan.loc[treated, k].sum()), 2)
               for k in ("expected_incremental_revenue", "expected_incremental_clv")},
            "distinct_frontier_plans": int(front[["expected_incremental_revenue",
                                                  "expected_incremental_clv"]].round(2)
                                           .drop_duplicates().shape[0]),
            "effects": {a: f"{e.source}/{e.method}" for a, e in measured.items()},
            "uplift_sources": plan.loc[treated].groupby("action")["uplift_source"].first()
            .to_dict(),
            "contact_policy": {k: (v.item() if hasattr(v, "item") else v)
                               for k, v in run.policy.iloc[0].items()
                               if k.startswith(("policy_cost", "customers_", "value_"))}}


def _contact_rules(as_of_date: dt.date, candidates, params: AllocationParams):
    """Per candidate: the contact rule that rules it out ("" = eligible), from the opt-outs
    known on the as-of date and the treatments of the plans made before it."""
    from clv.decisions import contact_policy

    preferences = _read_all_pandas(CONTACT_PREFERENCES)
    if preferences is not None:
        preferences = preferences.drop(columns=[warehouse.PARTITION_COLUMN, "run_id"],
                                       errors="ignore")
    opt_outs = contact_policy.suppressed(preferences, as_of_date)
    history = contact_policy.contact_history(
        _read_all_pandas(CAMPAIGN_PLAN, before=as_of_date),
        _read_all_pandas(CAMPAIGN_SENDS, before=as_of_date), as_of_date,
        params.action_channels)
    return contact_policy.excluded_by(candidates, as_of_date, params.contact, opt_outs,
                                      history, params.action_channels)


#: What the allocation reads of marts.customer_scores (with the segment).
_ALLOCATION_INPUTS = ["customer_id", "predicted_clv", "p_churn", "clv_model_version",
                      "churn_model_version"]


def _log_allocation(as_of_date: dt.date, run_id: str, params: AllocationParams,
                    out: dict[str, Any], front, summary, measured: dict[str, Any]) -> str:
    """One MLflow run per allocation: its params, figures, frontier chart and summary, and
    per measured action its held-out Qini (both methods, chart) and its effect model,
    registered as ``uplift_<action>``."""
    import json
    import tempfile
    from pathlib import Path

    import mlflow
    from clv.decisions import allocation
    from clv.models import registry

    experiment_id = registry.configure_mlflow()
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=lineage.run_name("allocation", as_of_date, run_id)) as run, \
            tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"step": "allocation", **lineage.run_tags(run_id, as_of_date),
                         "method": out["method"]})
        mlflow.log_params({"budget": params.budget, "clv_weight": params.clv_weight,
                           "action_costs": json.dumps(params.action_costs, sort_keys=True),
                           "segment_share_bounds": json.dumps(params.segment_share_bounds),
                           "action_capacity": json.dumps(params.action_capacity),
                           "contact_min_days": params.contact.min_days_between,
                           "contact_max_per_window": params.contact.max_per_window,
                           "contact_window_days": params.contact.window_days,
                           "min_net_value": params.contact.min_net_value,
                           "action_channels": json.dumps(params.action_channels)})
        mlflow.log_metrics({k: float(out[k]) for k in ("spent", "objective", "lp_bound", "gap",
                                                        "treated")})
        mlflow.log_metrics({f"contact_{k}": float(v) for k, v in
                            out.get("contact_policy", {}).items()})
        chart = allocation.plot_frontier(front, Path(tmp) / "allocation_frontier.png")
        summary.to_csv(Path(tmp) / "budget_summary.csv", index=False)
        front.to_csv(Path(tmp) / "allocation_frontier.csv", index=False)
        for name in (chart.name, "budget_summary.csv", "allocation_frontier.csv"):
            mlflow.log_artifact(str(Path(tmp) / name))
        for action, effect in measured.items():
            _log_effect(action, effect, Path(tmp))
        return run.info.run_id


def _log_effect(action: str, effect, folder) -> None:
    """Held-out Qini of both methods, the Qini chart, and the registered effect model."""
    import mlflow
    from clv.decisions import effects
    from clv.decisions.uplift_pyfunc import UpliftPyfunc
    from clv.models import registry

    mlflow.log_metrics({f"{action}.qini_{m}": v for m, v in effect.qini.items()}
                       | {f"{action}.uplift_at_30_{m}": v for m, v in effect.uplift_at_30.items()
                          if v == v})
    mlflow.log_artifact(effects.plot_qini(effect, folder / f"qini_{action}.png"),
                        artifact_path="effects")
    info = mlflow.pyfunc.log_model(
        name=f"uplift_{action}", python_model=UpliftPyfunc(effect.model),
        registered_model_name=f"uplift_{action}",
        pip_requirements=[f"xgboost=={_version('xgboost')}", f"numpy=={_version('numpy')}",
                          f"pandas=={_version('pandas')}"])
    client = mlflow.MlflowClient()
    for key, value in {"campaign_id": effect.campaign_id, "uplift_source": effect.source,
                       "used_for_plan": str(effect.method == effects.MODEL).lower(),
                       "qini_uplift_model": f"{effect.qini[effects.MODEL]:.6f}",
                       "qini_segment_average": f"{effect.qini[effects.AVERAGE]:.6f}"}.items():
        client.set_model_version_tag(f"uplift_{action}", str(info.registered_model_version),
                                     key, value)
    registry.record_artifact_digest(f"uplift_{action}", str(info.registered_model_version))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
