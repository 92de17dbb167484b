"""Trigger params are checked once, up front, each error naming its param (#20)."""

from __future__ import annotations

import pytest

from clv.config import DEFAULT_ACTION_COSTS, DEFAULT_CLV_WEIGHT
from clv.ops import cli
from clv.pipeline.params import ParamError, validate_params

GOOD = {"as_of_date": "1998-07-01", "horizon_days": 180, "budget": 5000.0,
        "clv_weight": 0.5, "action_costs": {"winback_email": 0.5, "retention_coupon": 5},
        "segment_share_bounds": {"lost": [None, 0.1]},
        "action_capacity": {"retention_coupon": 500.0}}


def test_good_params_come_back_normalised():
    out = validate_params(GOOD)
    assert out["action_capacity"] == {"retention_coupon": 500}
    assert isinstance(out["action_capacity"]["retention_coupon"], int)
    assert out["action_costs"] == {"winback_email": 0.5, "retention_coupon": 5.0}
    assert out["segment_share_bounds"] == {"lost": [None, 0.1]}
    assert (out["as_of_date"], out["horizon_days"], out["budget"]) == ("1998-07-01", 180, 5000.0)


def test_absent_params_take_the_configured_defaults_and_empty_date_is_allowed():
    out = validate_params({"as_of_date": "  ", "budget": 0})
    assert out["as_of_date"] == ""
    assert out["action_costs"] == DEFAULT_ACTION_COSTS
    assert out["clv_weight"] == DEFAULT_CLV_WEIGHT and out["action_capacity"] == {}


@pytest.mark.parametrize("change, message", [
    ({"as_of_date": "banana"}, r"as_of_date: 'banana' is not a date YYYY-MM-DD"),
    ({"as_of_date": "1998-02-30"}, r"as_of_date: '1998-02-30' is not a date"),
    ({"action_costs": {"winback_email": -0.5}},
     r"action_costs\['winback_email'\]: -0.5 is outside \(0.0, inf\]"),
    ({"action_costs": {"winback_email": 0}}, r"action_costs\['winback_email'\]: 0 is outside"),
    ({"action_costs": {"winback_email": "free"}},
     r"action_costs\['winback_email'\]: expected a number, got 'free'"),
    ({"action_costs": {}}, r"action_costs: \{\} means no actions on offer"),
    ({"action_capacity": {"retention_coupon": 2.7}},
     r"action_capacity\['retention_coupon'\]: 2.7 is not a whole number"),
    ({"action_capacity": {"retention_coupon": -1}},
     r"action_capacity\['retention_coupon'\]: -1 is outside \[0"),
    ({"action_capacity": {"retention_cuopon": 5}},
     r"action_capacity: \['retention_cuopon'\] not among the actions on offer"),
    ({"budget": -1}, r"budget: -1 is outside \[0.0, inf\]"),
    ({"budget": float("nan")}, r"budget: expected a finite number, got nan"),
    ({"budget": True}, r"budget: expected a number, got True"),
    ({"clv_weight": 1.5}, r"clv_weight: 1.5 is outside \[0.0, 1.0\]"),
    ({"clv_weight": -0.1}, r"clv_weight: -0.1 is outside \[0.0, 1.0\]"),
    ({"horizon_days": 90.5}, r"horizon_days: 90.5 is not a whole number"),
    ({"horizon_days": 3}, r"horizon_days: 3 is outside \[7, 730\]"),
    ({"segment_share_bounds": {"lost": [0.5, 0.2]}},
     r"segment_share_bounds\['lost'\]: min_share 0.5 is above max_share 0.2"),
    ({"segment_share_bounds": {"lost": [None, 1.2]}},
     r"segment_share_bounds\['lost'\]: 1.2 is outside \[0.0, 1.0\]"),
])
def test_each_bad_param_is_named(change, message):
    with pytest.raises(ParamError, match=message):
        validate_params({**GOOD, **change})


def test_allocation_params_no_longer_coerce_silently():
    from clv import pipeline

    with pytest.raises(ValueError, match=r"action_capacity\['winback_email'\]: 2.7 is not a "
                                         r"whole number"):
        pipeline.AllocationParams.from_params({"budget": 10.0, "action_capacity":
                                               {"winback_email": 2.7}})
    with pytest.raises(ValueError, match=r"no actions on offer"):
        pipeline.AllocationParams.from_params({"budget": 10.0, "action_costs": {}})


def test_the_demo_refuses_bad_params_before_starting_anything(capsys, tmp_path):
    log = tmp_path / "run.log"
    assert cli.main(["demo", "--as-of-date", "1998-13-01", "--log", str(log)]) == 2
    assert "as_of_date: '1998-13-01' is not a date" in capsys.readouterr().err
    assert cli.main(["demo", "--clv-weight", "2", "--log", str(log)]) == 2
    assert "clv_weight: 2.0 is outside [0.0, 1.0]" in capsys.readouterr().err
    assert not log.exists()  # the run (and its log) never started
