"""The registry trail (#21): every version says its horizon, feature set and Airflow run
and carries a model card; scoring refuses a champion of another horizon; hand moves are
recorded beside the automatic decision; run names are unique; the experiment opens in
MLflow's model-training view."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import in_memory_splits
from test_training import AS_OF, HORIZON, synthetic_examples

from clv.data import lineage
from clv.features import FEATURE_COLUMNS
from clv.models import registry, training


@pytest.fixture
def trained(clv_home, monkeypatch):
    learn = synthetic_examples(200, 1, AS_OF - dt.timedelta(days=2 * HORIZON), "train")
    evaluate = synthetic_examples(200, 2, AS_OF - dt.timedelta(days=HORIZON), "eval")
    by_split = {"train": learn, "eval": evaluate}
    monkeypatch.setattr(training.splits, "load_split",
                        in_memory_splits(by_split))
    monkeypatch.setenv("CLV_DEVICE", "cpu")
    monkeypatch.setenv("CLV_AIRFLOW_UI_URL", "http://airflow.example:8080/")
    monkeypatch.setitem(training.XGB_PARAMS, "n_estimators", 20)
    monkeypatch.setitem(training.XGB_PARAMS, "n_jobs", 1)
    first = training.train_clv_model(AS_OF, HORIZON, "manual__2020-01-01T00:00:00+00:00")
    second = training.train_clv_model(AS_OF, HORIZON, "manual__2020-01-02T00:00:00+00:00")
    import mlflow

    return first, second, mlflow.MlflowClient()


def test_every_version_carries_horizon_feature_set_links_and_a_model_card(trained):
    first, _, client = trained
    mv = client.get_model_version("clv_spend", first.version)
    assert mv.tags["horizon_days"] == str(HORIZON)
    assert mv.tags["feature_set"] == lineage.feature_set(FEATURE_COLUMNS)
    assert mv.tags["feature_set"].startswith(f"customer_features:{len(FEATURE_COLUMNS)}:")
    assert mv.tags["airflow_run_id"] == "manual__2020-01-01T00:00:00+00:00"
    assert mv.tags["airflow_run_url"] == ("http://airflow.example:8080/dags/clv_pipeline/runs/"
                                          "manual__2020-01-01T00%3A00%3A00%2B00%3A00")
    card = mv.description
    assert f"over the next {HORIZON} days" in card and "(xgboost)" in card
    assert "learnt at 2019-07-05 (labels up to 2019-10-03)" in card  # AS_OF - 2H, AS_OF - H
    assert "evaluated out of time at 2019-10-03 (labels up to 2020-01-01)" in card
    header = next(line for line in card.splitlines() if line.startswith("| metric"))
    assert "naive_past_spend_rate" in header and "btyd_bgnbd_gg" in header
    gini = next(line for line in card.splitlines() if line.startswith("| normalized_gini"))
    assert gini.count("|") == header.count("|")  # a figure for the version and each baseline
    assert "champion" in client.get_registered_model("clv_spend").description


def test_run_names_are_unique_and_runs_link_back_to_airflow(trained):
    first, second, client = trained
    runs = [client.get_run(r.run_id) for r in (first, second)]
    names = [r.info.run_name for r in runs]
    assert len(set(names)) == 2 and all(str(AS_OF) in n for n in names)
    assert "manual__2020-01-01T00:00:00+00:00" in names[0]
    note = runs[0].data.tags[lineage.NOTE_TAG]
    assert runs[0].data.tags["airflow_run_url"] in note  # clickable in MLflow's UI
    exp = client.get_experiment(runs[0].info.experiment_id)
    assert exp.tags[lineage.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_scoring_refuses_a_champion_of_another_horizon(trained):
    first, _, _ = trained
    registry.promote("clv_spend", first.version, reason="test")
    version, _ = registry.load_champion("clv_spend", horizon_days=HORIZON)
    assert str(version) == first.version
    with pytest.raises(registry.RegistryError,
                       match=rf"champion v{first.version} was trained for "
                             rf"horizon_days={HORIZON}, this run asks for horizon_days=180"):
        registry.load_champion("clv_spend", horizon_days=180)


def test_evaluate_does_not_defend_a_champion_of_another_horizon(trained):
    first, second, client = trained
    registry.promote("clv_spend", first.version, reason="test")
    same = training._versions_to_evaluate(client, "clv_spend", "other-run", HORIZON)
    assert (first.version, "champion") in same
    assert training._versions_to_evaluate(client, "clv_spend", "other-run", 180) == []


def test_a_hand_promotion_records_who_when_why_and_keeps_the_automatic_decision(trained):
    first, _, client = trained
    client.set_model_version_tag("clv_spend", first.version, "alias_decision",
                                 "does not qualify: ...")
    tags = registry.promote("clv_spend", first.version, reason="beats v2 on the Q3 backtest",
                            by="ml-lead", when=dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC))
    mv = client.get_model_version("clv_spend", first.version)
    assert mv.tags["alias_decision"] == "does not qualify: ..."  # not erased
    assert tags == {"alias_set": "champion", "alias_set_by": "ml-lead",
                    "alias_set_at": "2026-12-02T08:00:00+00:00",
                    "alias_set_reason": "beats v2 on the Q3 backtest"}
    assert {k: mv.tags[k] for k in tags} == tags
    assert str(registry.champion_version(client, "clv_spend")) == first.version


def test_the_cli_wants_a_reason(capsys):
    from clv.ops import cli

    with pytest.raises(SystemExit):
        cli.main(["promote", "--model", "clv_spend", "--version", "1"])
    assert "--reason" in capsys.readouterr().err
