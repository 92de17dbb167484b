"""Airflow plugin: from a DAG run to its MLflow runs, its report and the Data Docs (#21).

Airflow 3 plugin API (``airflow.plugins_manager.AirflowPlugin``):

* ``fastapi_apps``: a small app the API server mounts at ``/clv`` (behind Airflow's login:
  every route needs the session the UI holds):
  ``/clv/runs/<dag_id>/<run_id>`` lists the run's MLflow runs (each a link into MLflow),
  the champions, the report and the Data Docs; ``/clv/runs/<dag_id>/<run_id>/report``
  opens that run's report; ``/clv/report/<as_of_date>`` is a report,
  ``/clv/reports`` all of them; ``/clv/data-docs/...`` the Data Docs site, served from
  this host (no file:// path to copy).
* ``external_views``: tabs on each DAG run ("MLflow and links", "Run report") and menu
  entries ("CLV reports", "Data Docs"); the UI fills in ``{DAG_ID}`` and ``{RUN_ID}``.

MLflow runs link back: each carries ``airflow_run_url`` and says so in its description
(:mod:`clv.data.lineage`). Heavy imports (MLflow) happen inside the requests.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

from airflow.plugins_manager import AirflowPlugin
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from clv.data import lineage

PREFIX = lineage.PLUGIN_PREFIX


def _authenticated():
    """Airflow's own check (the UI's session cookie or a bearer token)."""
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return requires_authenticated()


#: The dependency every route needs; tests override it (``app.dependency_overrides``).
AUTHENTICATED = _authenticated()


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
                        f"{html.escape(title)}</title></head><body style='font-family:"
                        f"sans-serif;max-width:60em;margin:1em auto'><h1>"
                        f"{html.escape(title)}</h1>{body}</body></html>")


def _link(url: str, text: str, new_tab: bool = True) -> str:
    target = " target='_blank' rel='noopener'" if new_tab else ""
    return f"<a href='{html.escape(url)}'{target}>{html.escape(text)}</a>"


def mlflow_runs_of(airflow_run_id: str) -> list[dict[str, str]]:
    """The MLflow runs a DAG run logged: name, step, as-of date, link."""
    import mlflow
    from clv.models import registry

    if "'" in airflow_run_id:
        raise HTTPException(400, "a run id with a quote cannot be looked up")
    experiment_id = registry.configure_mlflow()
    runs = mlflow.MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.airflow_run_id = '{airflow_run_id}'",
        max_results=200)
    return [{"name": r.info.run_name,
             "step": r.data.tags.get("step") or r.data.tags.get("kind")
             or r.data.tags.get("model_family", ""),
             "as_of_date": r.data.tags.get("as_of_date", ""),
             "url": lineage.mlflow_run_url(experiment_id, r.info.run_id)} for r in runs]


def _champions() -> list[tuple[str, str | None]]:
    import mlflow
    from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME
    from clv.models import registry

    registry.configure_mlflow()
    client = mlflow.MlflowClient()
    return [(name, registry.champion_version(client, name))
            for name in (CLV_MODEL_NAME, CHURN_MODEL_NAME)]


def _run_page(dag_id: str, run_id: str) -> HTMLResponse:
    runs = mlflow_runs_of(run_id)
    dates = sorted({r["as_of_date"] for r in runs if r["as_of_date"]})
    items = "".join(f"<li>{_link(r['url'], r['name'])} ({html.escape(r['step'])})</li>"
                    for r in sorted(runs, key=lambda r: r["name"]))
    champions = "".join(
        f"<li>{_link(lineage.mlflow_model_url(name, version), f'{name} champion v{version}')}"
        f"</li>" if version else f"<li>{html.escape(name)}: no champion yet</li>"
        for name, version in _champions())
    reports = "".join(f"<li>{_link(f'{PREFIX}/report/{d}', f'report for {d}')}</li>"
                      for d in dates)
    body = (f"<p>Airflow run {_link(lineage.airflow_run_url(run_id, dag_id), run_id)}</p>"
            f"<h2>MLflow runs of this DAG run</h2><ul id='mlflow-runs'>"
            f"{items or '<li>none yet</li>'}</ul>"
            f"<h2>Registered champions now</h2><ul id='champions'>{champions}</ul>"
            f"<h2>Report and data quality</h2><ul>{reports or '<li>no report yet</li>'}"
            f"<li>{_link(f'{PREFIX}/data-docs/offline_index.html', 'Data Docs')}</li></ul>")
    return _page(f"{dag_id} / {run_id}", body)


def _report_file(as_of_date: str) -> Path:
    from clv.ops import report

    try:
        day = dt.date.fromisoformat(as_of_date)
    except ValueError:
        raise HTTPException(400, f"{as_of_date!r} is not a date YYYY-MM-DD") from None
    path = report.report_path(day)
    if not path.is_file():
        raise HTTPException(404, f"no report for {day}: its DAG run has not reached the "
                                 "summary task")
    return path


def _data_docs_file(path: str) -> Path:
    from clv import quality

    root = quality.data_docs_dir().resolve()
    target = (root / (path or "index.html")).resolve()
    if not target.is_relative_to(root):
        raise HTTPException(404, "not in the Data Docs")
    if not target.is_file():
        raise HTTPException(404, f"no Data Docs page {path!r} (no validation has run yet?)")
    return target


def build_app() -> FastAPI:
    """The plugin's pages (mounted by Airflow's API server at :data:`PREFIX`)."""
    router = APIRouter(dependencies=[Depends(AUTHENTICATED)])

    @router.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
    def run_links(dag_id: str, run_id: str) -> HTMLResponse:
        return _run_page(dag_id, run_id)

    @router.get("/runs/{dag_id}/{run_id}/report")
    def run_report(dag_id: str, run_id: str) -> RedirectResponse:
        dates = sorted({r["as_of_date"] for r in mlflow_runs_of(run_id) if r["as_of_date"]})
        if not dates:
            raise HTTPException(404, f"run {run_id} logged nothing to MLflow yet")
        return RedirectResponse(f"{PREFIX}/report/{dates[-1]}")

    @router.get("/report/{as_of_date}")
    def report_page(as_of_date: str) -> FileResponse:
        return FileResponse(_report_file(as_of_date), media_type="text/html")

    @router.get("/reports", response_class=HTMLResponse)
    def reports() -> HTMLResponse:
        from clv.ops import report

        folder = report.report_path(dt.date(2000, 1, 1)).parent
        days = sorted((p.stem.removeprefix("clv-report-") for p in folder.glob("*.html")),
                      reverse=True)
        items = "".join(f"<li>{_link(f'{PREFIX}/report/{d}', d, new_tab=False)}</li>"
                        for d in days)
        return _page("CLV reports", f"<ul>{items or '<li>none yet</li>'}</ul>")

    @router.get("/data-docs/{path:path}")
    def data_docs(path: str) -> FileResponse:
        return FileResponse(_data_docs_file(path))

    app = FastAPI(title="CLV links")
    app.include_router(router)
    return app


class ClvLinksPlugin(AirflowPlugin):
    """Links between Airflow, MLflow, the run reports and the Data Docs."""

    name = "clv_links"
    fastapi_apps = [{"app": build_app(), "url_prefix": PREFIX, "name": "CLV links"}]
    external_views = [
        {"name": "MLflow and links", "href": f"{PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
         "destination": "dag_run", "url_route": "clv_run_links"},
        {"name": "Run report", "href": f"{PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}/report",
         "destination": "dag_run", "url_route": "clv_run_report"},
        {"name": "CLV reports", "href": f"{PREFIX}/reports", "destination": "nav",
         "category": "browse", "url_route": "clv_reports"},
        {"name": "Data Docs", "href": f"{PREFIX}/data-docs/offline_index.html",
         "destination": "nav", "category": "browse", "url_route": "clv_data_docs"},
    ]
