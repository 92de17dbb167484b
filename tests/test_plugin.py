"""The Airflow plugin (#21): it loads in Airflow, and the links on a DAG run lead to that
run's MLflow runs, its report and the Data Docs (behind Airflow's login)."""

from __future__ import annotations

import datetime as dt
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from clv.data import lineage

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
RUN = "manual__1998-07-01T00:00:00+00:00"


@pytest.fixture
def plugin():
    return runpy.run_path(str(PLUGINS / "clv_links.py"))


@pytest.fixture
def client(plugin, clv_home, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    monkeypatch.setenv("CLV_MLFLOW_UI_URL", "http://mlflow.example:5000")
    app = plugin["build_app"]()
    app.dependency_overrides[plugin["AUTHENTICATED"]] = lambda: None  # a logged-in user
    server = FastAPI()  # what Airflow's API server does with a plugin's fastapi_apps
    server.mount(lineage.PLUGIN_PREFIX, app)
    return TestClient(server)


def _href(view: dict, dag_id: str, run_id: str) -> str:
    """What Airflow's UI does with an external view's href on a DAG run."""
    return (view["href"].replace("{DAG_ID}", quote(dag_id, safe=""))
            .replace("{RUN_ID}", quote(run_id, safe="")))


def test_airflow_loads_the_plugin(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    airflow = str(Path(sys.executable).with_name("airflow"))
    out = subprocess.run([airflow, "plugins", "-o", "json"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    plugins = json.loads(out.stdout[out.stdout.index("["):])
    [mine] = [p for p in plugins if p["name"] == "clv_links"]
    assert "clv_pipeline" not in out.stderr and "Failed to import" not in out.stderr
    text = json.dumps(mine)
    assert "/clv/runs/{DAG_ID}/{RUN_ID}" in text and '"dag_run"' in text
    assert "CLV links" in text  # the FastAPI app is mounted


def test_the_run_tab_lists_the_runs_mlflow_runs_and_links_the_report(plugin, client):
    import mlflow
    from clv.models import registry
    from clv.ops import report

    experiment_id = registry.configure_mlflow()
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=lineage.run_name("evaluation", "1998-07-01", RUN)) as run:
        mlflow.set_tags(lineage.run_tags(RUN, dt.date(1998, 7, 1)))
    with mlflow.start_run(experiment_id=experiment_id, run_name="another dag run"):
        mlflow.set_tags(lineage.run_tags("manual__other", dt.date(1998, 7, 1)))
    path = report.report_path(dt.date(1998, 7, 1))
    path.parent.mkdir(parents=True)
    path.write_text("<html><body>the report</body></html>")

    links, report_view = plugin["ClvLinksPlugin"].external_views[:2]
    page = client.get(_href(links, "clv_pipeline", RUN))
    assert page.status_code == 200, page.text
    expected = f"http://mlflow.example:5000/#/experiments/{experiment_id}/runs/{run.info.run_id}"
    assert f"href='{expected}'" in page.text
    assert "another dag run" not in page.text  # only this DAG run's MLflow runs
    assert "href='/clv/report/1998-07-01'" in page.text
    assert "href='/clv/data-docs/offline_index.html'" in page.text  # reads offline
    assert "clv_spend: no champion yet" in page.text

    jump = client.get(_href(report_view, "clv_pipeline", RUN), follow_redirects=False)
    assert jump.status_code == 307 and jump.headers["location"] == "/clv/report/1998-07-01"
    assert client.get("/clv/report/1998-07-01").text == path.read_text()
    assert client.get("/clv/report/1998-13-45").status_code == 400
    assert "has not reached the summary task" in client.get("/clv/report/1999-01-01").text


def test_data_docs_are_served_from_their_folder_only(client, clv_home):
    from clv import quality

    docs = quality.data_docs_dir()
    docs.mkdir(parents=True)
    (docs / "index.html").write_text("<html>docs</html>")
    (clv_home.home / "secret.txt").write_text("no")
    assert client.get("/clv/data-docs/index.html").text == "<html>docs</html>"
    assert client.get("/clv/data-docs/..%2F..%2F..%2Fsecret.txt").status_code == 404


def test_every_page_needs_airflows_login(plugin, clv_home):
    from fastapi.testclient import TestClient

    bare = TestClient(plugin["build_app"]())
    for url in ("/reports", "/report/1998-07-01", f"/runs/clv_pipeline/{RUN}",
                "/data-docs/index.html"):
        assert bare.get(url).status_code == 401, url
