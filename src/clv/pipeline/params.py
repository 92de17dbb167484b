"""The DAG's trigger params, checked once before any task reads or writes data.

:func:`validate_params` is the first task of ``clv_pipeline`` and the first step of
``clv demo``: a typo in the trigger form fails in a second, naming the param, instead
of after features, models and scores were written (or, worse, silently becoming
something else: ``2.7`` customers, ``{}`` meaning "the default actions").
Only the standard library is imported, so the DAG file may use it at parse time.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from clv.config import (
    DEFAULT_ACTION_COSTS,
    DEFAULT_CLV_WEIGHT,
    DEFAULT_CONTACT_MIN_DAYS,
    DEFAULT_HORIZON_DAYS,
)

#: Bounds of ``horizon_days`` (the trigger form's Param has the same).
HORIZON_DAYS_RANGE = (7, 730)


class ParamError(ValueError):
    """A trigger param is missing, of the wrong type or out of its range."""


def validate_params(params: dict[str, Any]) -> dict[str, Any]:
    """Check the pipeline's params and return them normalised.

    Rules: ``as_of_date`` empty or an ISO date (YYYY-MM-DD); ``horizon_days`` a whole
    number in :data:`HORIZON_DAYS_RANGE`; ``budget`` a finite number >= 0;
    ``clv_weight`` in [0, 1]; ``action_costs`` a non-empty map of action -> finite
    cost > 0 (absent: the defaults of :mod:`clv.config`); ``action_capacity`` action
    (one of ``action_costs``) -> whole number >= 0 (``3.0`` is 3, ``2.7`` is refused);
    ``segment_share_bounds`` segment -> ``[min, max]``, each null or in [0, 1], min <= max;
    the contact policy (:mod:`clv.decisions.contact_policy`): ``contact_min_days`` a whole number
    >= 0 (default 14), ``contact_max_per_window`` null or a whole number >= 1,
    ``contact_window_days`` null (= ``horizon_days``) or a whole number >= 1,
    ``min_net_value`` null or a finite number, ``action_channels`` action (one of
    ``action_costs``) -> channel name.

    Returns:
        The params with numbers as float/int, ``as_of_date`` as a string ("" or ISO).

    Raises:
        ParamError: naming the param, the value and the rule.
    """
    out = dict(params)
    out["as_of_date"] = _as_of_date(params.get("as_of_date"))
    out["horizon_days"] = _whole("horizon_days", params.get("horizon_days",
                                                            DEFAULT_HORIZON_DAYS),
                                 *HORIZON_DAYS_RANGE)
    if "budget" in params:
        out["budget"] = _number("budget", params["budget"], low=0.0)
    out["clv_weight"] = _number("clv_weight", params.get("clv_weight", DEFAULT_CLV_WEIGHT),
                                low=0.0, high=1.0)
    out["action_costs"] = _action_costs(params.get("action_costs", DEFAULT_ACTION_COSTS))
    out["action_capacity"] = _action_capacity(params.get("action_capacity") or {},
                                              out["action_costs"])
    out["segment_share_bounds"] = _share_bounds(params.get("segment_share_bounds") or {})
    out["contact_min_days"] = _whole("contact_min_days",
                                     params.get("contact_min_days", DEFAULT_CONTACT_MIN_DAYS),
                                     low=0)
    out["contact_max_per_window"] = _optional_whole("contact_max_per_window",
                                                    params.get("contact_max_per_window"), 1)
    out["contact_window_days"] = _optional_whole("contact_window_days",
                                                 params.get("contact_window_days"), 1)
    net = params.get("min_net_value")
    out["min_net_value"] = None if net is None or net == "" else _number("min_net_value", net)
    out["action_channels"] = _action_channels(params.get("action_channels") or {},
                                              out["action_costs"])
    return out


def _optional_whole(name: str, value: Any, low: int) -> int | None:
    return None if value is None or value == "" else _whole(name, value, low=low)


def _only_offered(name: str, value: dict, costs: dict[str, float]) -> None:
    """A per-action param may only name the actions on offer."""
    unknown = sorted(str(a) for a in value if str(a) not in costs)
    if unknown:
        raise ParamError(f"{name}: {unknown} not among the actions on offer "
                         f"(action_costs: {sorted(costs)})")


def _action_channels(value: Any, costs: dict[str, float]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ParamError(f"action_channels: expected a map action -> channel, got {value!r}")
    _only_offered("action_channels", value, costs)
    bad = {a: c for a, c in value.items() if not isinstance(c, str) or not c.strip()}
    if bad:
        raise ParamError(f"action_channels: each channel must be a non-empty name, got {bad}")
    return {str(a): c.strip().lower() for a, c in value.items()}


def _as_of_date(value: Any) -> str:
    text = "" if value is None else value
    if not isinstance(text, str):
        raise ParamError(f"as_of_date: expected a date YYYY-MM-DD (or empty), got {value!r}")
    text = text.strip()
    if text:
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            raise ParamError(f"as_of_date: {value!r} is not a date YYYY-MM-DD (or leave it "
                             f"empty for the run's logical date)") from None
    return text


def _number(name: str, value: Any, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> float:
    """``value`` as a finite float within [low, high] (``(low, ...`` when ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ParamError(f"{name}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ParamError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ParamError(f"{name}: expected a finite number, got {value!r}")
    too_low = low is not None and (number <= low if low_open else number < low)
    if too_low or (high is not None and number > high):
        left = "(" if low_open else "["
        raise ParamError(f"{name}: {value!r} is outside {left}{low}, "
                         f"{'inf' if high is None else high}]")
    return number


def _whole(name: str, value: Any, low: int, high: int | None = None) -> int:
    number = _number(name, value, low=low, high=high)
    if number != math.floor(number):
        raise ParamError(f"{name}: {value!r} is not a whole number")
    return int(number)


def _action_costs(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ParamError(f"action_costs: expected a map action -> cost, got {value!r}")
    if not value:
        raise ParamError("action_costs: {} means no actions on offer, so there is nothing "
                         "to allocate; give at least one action and its cost (or remove "
                         "the param for the defaults)")
    costs = {}
    for action, cost in value.items():
        if not str(action).strip():
            raise ParamError(f"action_costs: an action needs a name, got {action!r}")
        costs[str(action)] = _number(f"action_costs[{action!r}]", cost, low=0.0, low_open=True)
    return costs


def _action_capacity(value: Any, costs: dict[str, float]) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ParamError(f"action_capacity: expected a map action -> customers, got {value!r}")
    _only_offered("action_capacity", value, costs)
    return {str(a): _whole(f"action_capacity[{a!r}]", n, low=0) for a, n in value.items()}


def _share_bounds(value: Any) -> dict[str, list[float | None]]:
    if not isinstance(value, dict):
        raise ParamError(f"segment_share_bounds: expected a map segment -> [min, max], "
                         f"got {value!r}")
    out = {}
    for segment, pair in value.items():
        name = f"segment_share_bounds[{segment!r}]"
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ParamError(f"segment_share_bounds: each value must be [min_share, "
                             f"max_share] (null for no bound), got {segment!r}: {pair!r}")
        low, high = (None if v is None else _number(name, v, 0.0, 1.0) for v in pair)
        if low is not None and high is not None and low > high:
            raise ParamError(f"{name}: min_share {low} is above max_share {high}")
        out[str(segment)] = [low, high]
    return out
