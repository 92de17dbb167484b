"""The trigger form as users meet it (#21): it submits with its defaults, a bad date is
refused by the form's own schema, numbers are never clamped silently, no schedule fires
runs past the data, and bad data fails once without retries."""

from __future__ import annotations

import datetime as dt
import runpy
from pathlib import Path

import pytest

from clv.config import load_settings
from clv.pipeline.params import ParamError, validate_params

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "clv_pipeline.py"


@pytest.fixture(scope="module")
def dag_module():
    return runpy.run_path(str(DAG_FILE))


@pytest.fixture(scope="module")
def dag(dag_module):
    return dag_module["clv_pipeline"]()  # the @dag function builds the DAG


def test_the_form_validates_with_its_defaults(dag):
    from airflow.sdk.definitions.param import ParamsDict

    values = ParamsDict(dag.params).validate()  # what the form and the API check
    assert values["as_of_date"] is None
    assert dag.params.get_param("as_of_date").schema["type"] == ["null", "string"]
    assert validate_params(values)["as_of_date"] == ""  # empty: resolved per run


@pytest.mark.parametrize("bad", ["1998-13-45", "01/07/1998", "banana"])
def test_the_date_field_checks_its_format(dag, bad):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(dag.params)
    with pytest.raises(ParamValidationError, match="as_of_date"):
        params["as_of_date"] = bad
        params.validate()
    params["as_of_date"] = "1998-07-01"
    assert params.validate()["as_of_date"] == "1998-07-01"


def test_numbers_have_no_bounds_the_form_would_clamp_to_but_are_refused_by_name(dag):
    """Airflow's number field clamps to the schema's minimum/maximum without a word
    (budget -5 became 0); without them the value reaches validate_params."""
    for name in ("horizon_days", "budget", "clv_weight"):
        schema = dag.params.get_param(name).schema
        assert not {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(schema)
    with pytest.raises(ParamError, match=r"^budget: -5 is outside"):
        validate_params({"budget": -5})
    with pytest.raises(ParamError, match=r"^clv_weight: 2 is outside"):
        validate_params({"clv_weight": 2})


def test_weekly_by_default_and_a_switch_to_turn_it_off(dag, dag_module, monkeypatch):
    """Backfills need a schedule; CLV_SCHEDULE=none turns it off."""
    assert dag.timetable.can_be_scheduled
    monkeypatch.setenv("CLV_SCHEDULE", "none")
    assert dag_module["_schedule"]() is None
    monkeypatch.setenv("CLV_SCHEDULE", "@daily")
    assert dag_module["_schedule"]() == "@daily"


@pytest.mark.parametrize("run_type, outcome", [("scheduled", "skip"), ("manual", "fail"),
                                               ("backfill", "fail")])
def test_a_scheduled_run_past_the_data_skips_saying_why(dag_module, monkeypatch, run_type,
                                                       outcome):
    """Unpausing fired a run for today, past CDNOW, that failed three times (#21)."""
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from clv.pipeline import StaleDataError

    run = SimpleNamespace(run_type=DagRunType(run_type))  # as the task SDK gives it
    monkeypatch.setitem(dag_module["_scheduled_runs_past_the_data_skip"].__wrapped__.__globals__,
                        "get_current_context", lambda: {"dag_run": run})
    expected = AirflowSkipException if outcome == "skip" else AirflowFailException
    with pytest.raises(expected, match="the newest order .* is from 1998-06-30"):
        with dag_module["_data_errors_fail_fast"](), \
                dag_module["_scheduled_runs_past_the_data_skip"]():
            raise StaleDataError("raw.orders: the newest order before as_of_date=2026-11-29 "
                                 "is from 1998-06-30")


def test_data_errors_fail_once(dag_module):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="DataQualityError|ValueError: stale"):
        with dag_module["_data_errors_fail_fast"]():
            raise ValueError("stale")
    with pytest.raises(RuntimeError):  # anything else keeps its retries
        with dag_module["_data_errors_fail_fast"]():
            raise RuntimeError("the JVM went away")


def _batch(root: Path, day: str) -> None:
    folder = root / "raw" / "orders" / f"as_of_date={day}"
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").touch()


def test_an_empty_as_of_date_resolves_to_the_data_or_the_backfill_date(tmp_path, monkeypatch):
    from clv import pipeline

    monkeypatch.setenv("CLV_HOME", str(tmp_path))
    monkeypatch.delenv("CLV_WAREHOUSE_URI", raising=False)
    settings = load_settings()
    logical = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    with pytest.raises(ParamError, match=r"as_of_date: empty, and raw.orders has no loaded"):
        pipeline.resolve_as_of_date("", "manual", logical, settings)
    _batch(settings.warehouse_root, "1998-01-01")
    _batch(settings.warehouse_root, "1998-07-01")
    assert pipeline.resolve_as_of_date("", "manual", logical, settings) == dt.date(1998, 7, 1)
    assert pipeline.resolve_as_of_date("", "manual", None, settings) == dt.date(1998, 7, 1)
    assert pipeline.resolve_as_of_date("", "backfill", logical, settings) == logical.date()
    assert pipeline.resolve_as_of_date("1998-03-01", "manual", logical,
                                       settings) == dt.date(1998, 3, 1)
