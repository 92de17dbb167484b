"""The run report: one static HTML page per as-of date, for analysts and managers (#21).

Written by the DAG's ``summary`` task to ``$CLV_HOME/.state/reports/`` and logged to
MLflow (run ``report <date> <run id>``); the Airflow plugin serves it from each DAG run.
It reads only published tables (and the run's stored Great Expectations results), so it
shows what analysts can query. One file, readable offline: inline CSS, the frontier chart
embedded as a PNG data URI, no script and nothing fetched from a CDN.

Sections: rows per table and the data-quality status; the model table (every registered
family and every baseline on the run's holdout, ranked by the primary metric, with the
level metrics the champion rule also checks); the segments; the plan per segment and
action; the allocation frontier (chart and table); the churn alerts, when there are any.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv.config import Settings, load_settings
from clv.data import catalog, lineage, warehouse

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Level metrics shown beside the primary one (what the champion rule's level check reads).
LEVEL_METRICS = {"spend": ["aggregate_error", "decile_mape"], "churn": ["brier"]}
PRIMARY = {"spend": "normalized_gini", "churn": "roc_auc"}
TOP_ALERTS = 20

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.ok{color:#176f2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}
.note{color:#555;font-size:.9em}img{max-width:100%}
"""


def report_path(as_of_date: dt.date, settings: Settings | None = None) -> Path:
    """Where the report of an as-of date is written."""
    s = settings or load_settings()
    return s.state_dir / "reports" / f"clv-report-{as_of_date.isoformat()}.html"


def build_report(as_of_date: dt.date, run_id: str, settings: Settings | None = None,
                 path: Path | None = None) -> Path:
    """Write the report of ``as_of_date`` (``path``, default :func:`report_path`).

    Returns:
        The path written (replaced atomically: a reader never sees half a page).
    """
    s = settings or load_settings()
    sections = [
        _header(as_of_date, run_id),
        _rows_and_quality(as_of_date, run_id, s),
        _model_table(as_of_date, s),
        _segments(as_of_date, s),
        _plan(as_of_date, s),
        _contact_policy(as_of_date, s),
        _frontier(as_of_date, s),
        _alerts(as_of_date, s),
    ]
    page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>CLV report {as_of_date}</title><style>{_CSS}</style></head><body>"
            + "\n".join(sections) + "</body></html>\n")
    out = path or report_path(as_of_date, s)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def _header(as_of_date: dt.date, run_id: str) -> str:
    return (f"<h1>Customer value and churn: as of {as_of_date}</h1>"
            f"<p class='note'>Airflow run <a href='{html.escape(lineage.airflow_run_url(run_id))}'>"
            f"{html.escape(run_id)}</a>. Features use orders before {as_of_date}; every table "
            "below is the published partition of that date.</p>")


def _partition(table: str, as_of_date: dt.date, s: Settings) -> pd.DataFrame | None:
    if as_of_date not in warehouse.list_partitions(table, s):
        return None
    return warehouse.read_partition_pandas(table, as_of_date, s)


def _table(frame: pd.DataFrame, table_id: str, digits: int = 2) -> str:
    """An HTML table of ``frame`` (values escaped, floats rounded)."""
    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: "" if v != v else f"{v:,.{digits}f}")
    return shown.to_html(index=False, escape=True, table_id=table_id, border=0, na_rep="")


def _rows_and_quality(as_of_date: dt.date, run_id: str, s: Settings) -> str:
    import pandas as pd

    from clv.pipeline import OUTPUT_TABLES, RAW_ORDERS

    rows = [(t, warehouse.row_count(t, as_of_date, s) or 0)
            for t in OUTPUT_TABLES if t != RAW_ORDERS]
    rows.insert(0, (f"{RAW_ORDERS} (all loads)", sum(
        warehouse.row_count(RAW_ORDERS, d, s) or 0
        for d in warehouse.list_partitions(RAW_ORDERS, s))))
    rejected = sum(warehouse.row_count(catalog.REJECTED_ORDERS, d, s) or 0
                   for d in warehouse.list_partitions(catalog.REJECTED_ORDERS, s))
    rows.append(("quality.rejected_orders (all loads)", rejected))
    counts = _table(pd.DataFrame(rows, columns=["table", "rows"]), "row-counts")
    checks = _quality_results(run_id, s)
    if checks.empty:
        status = ("<p class='note'>No stored validation results for this run (Data Docs "
                  "off?). A failed suite stops the run before this report.</p>")
    else:
        failed = int((~checks["success"]).sum())
        status = (f"<p id='quality-status' class='{'bad' if failed else 'ok'}'>"
                  f"{'FAILED: ' + str(failed) + ' suite(s)' if failed else 'all suites passed'}"
                  f" ({len(checks)} validations)</p>"
                  + _table(checks.assign(success=checks["success"].map(
                      {True: "passed", False: "FAILED"})), "quality"))
    return (f"<h2>Data: rows and quality</h2>{counts}{status}"
            f"<p class='note'>Data Docs: <a href='{html.escape(lineage.data_docs_url())}'>"
            "every validation with its observed values</a>.</p>")


def _quality_results(run_id: str, s: Settings) -> pd.DataFrame:
    """The run's stored Great Expectations results: suite, table, success, counts."""
    import pandas as pd

    root = s.state_dir / "gx" / "validations"
    rows = []
    for f in sorted(root.glob(f"*/{run_id.replace('/', '_')}/*/*.json")):
        result = json.loads(f.read_text())
        stats = result.get("statistics", {})
        rows.append({"suite": result.get("suite_name", f.parts[-4]), "table": f.stem,
                     "success": bool(result.get("success")),
                     "expectations": stats.get("evaluated_expectations"),
                     "failed": stats.get("unsuccessful_expectations")})
    return pd.DataFrame(rows, columns=["suite", "table", "success", "expectations", "failed"])


def model_table(metrics: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per target (``spend``, ``churn``): every version and baseline on the run's holdout,
    ranked by the primary metric (1 = best), with the level metrics and the alias after
    the run's decision. ``metrics`` is a marts.model_metrics partition."""
    latest = metrics[metrics["cutoff_date"] == metrics["cutoff_date"].max()]
    keys = ["model_name", "model_version", "model_family"]
    out = {}
    for target, primary in PRIMARY.items():
        part = latest[latest["target"] == target]
        if part.empty:
            continue
        wide = part.pivot_table(index=keys, columns="metric", values="value", aggfunc="first")
        wide = wide.reindex(columns=[primary, *LEVEL_METRICS[target]])
        wide.columns.name = None
        aliases = part.groupby(keys)["model_alias"].first().reindex(wide.index)
        wide.insert(0, "alias", aliases.fillna("").to_numpy())
        wide = wide.reset_index().sort_values(primary, ascending=False, kind="stable")
        wide.insert(0, "rank", range(1, len(wide) + 1))
        out[target] = wide.reset_index(drop=True)
    return out


def _model_table(as_of_date: dt.date, s: Settings) -> str:
    metrics = _partition(catalog.MODEL_METRICS, as_of_date, s)
    if metrics is None or metrics.empty:
        return "<h2>Models</h2><p>No model metrics for this date.</p>"
    tables = "".join(f"<h3>{target}</h3>" + _table(frame, f"models-{target}", digits=4)
                     for target, frame in model_table(metrics).items())
    return ("<h2>Models: every family and baseline on the holdout</h2>"
            "<p class='note'>Rank by the primary metric (normalized Gini for spend, ROC AUC "
            "for churn); level: aggregate error and decile MAPE (spend), Brier (churn), which "
            "the champion rule also checks, so the top rank is not always the champion. "
            "Baselines have version <code>baseline</code>.</p>" + tables)


def _segments(as_of_date: dt.date, s: Settings) -> str:
    seg = _partition(catalog.SEGMENT_SUMMARY, as_of_date, s)
    if seg is None:
        return "<h2>Segments</h2><p>No segments for this date.</p>"
    columns = [c for c in ("grouping", "segment", "customers", "share", "avg_predicted_clv",
                           "avg_p_churn", "definition") if c in seg.columns]
    seg = seg.sort_values(["grouping", "customers"], ascending=[False, False])[columns]
    return "<h2>Segments</h2>" + _table(seg, "segments")


def _plan(as_of_date: dt.date, s: Settings) -> str:
    plan = _partition(catalog.BUDGET_SUMMARY, as_of_date, s)
    if plan is None:
        return "<h2>Plan</h2><p>No plan for this date.</p>"
    columns = [c for c in ("segment", "action", "customers", "spent",
                           "expected_incremental_revenue", "expected_incremental_clv",
                           "net_value", "excluded_opted_out", "excluded_frequency_cap",
                           "excluded_min_net_value") if c in plan.columns]
    plan = plan.sort_values(["segment", "action"])[columns]
    spent = f"<p>Spent {float(plan['spent'].sum()):,.2f} in total.</p>" \
        if "spent" in plan.columns else ""
    return "<h2>Plan per segment and action</h2>" + spent + _table(plan, "plan")


def _contact_policy(as_of_date: dt.date, s: Settings) -> str:
    import pandas as pd

    policy = _partition(catalog.CONTACT_POLICY, as_of_date, s)
    if policy is None or policy.empty:
        return "<h2>Contact policy</h2><p>No contact policy figures for this date.</p>"
    row = policy.iloc[0]
    sides = pd.DataFrame({
        "plan": ["with the policy", "without it"],
        **{name: [row[f"{column}_with_policy"], row[f"{column}_without_policy"]]
           for name, column in (("value at lambda", "value"), ("spent", "spent"),
                                ("customers selected", "selected"),
                                ("incremental CLV", "incremental_clv"),
                                ("incremental revenue", "incremental_revenue"))}})
    rules = pd.DataFrame({"rule": ["opted out", "frequency cap", "below min_net_value"],
                          "customers excluded": [int(row[f"customers_{r}"]) for r in (
                              "opted_out", "frequency_cap", "min_net_value")]})
    return ("<h2>Contact policy</h2>"
            f"<p id='policy-cost'>Opt-outs, frequency caps and the net-value threshold cost "
            f"{float(row['policy_cost_value']):,.2f} of value at lambda and left "
            f"{float(row['policy_cost_spend']):,.2f} of the budget unspent (the same run "
            "solved without them).</p>" + _table(sides, "policy-sides")
            + _table(rules, "policy-rules"))


def _frontier(as_of_date: dt.date, s: Settings) -> str:
    from clv.decisions import allocation

    front = _partition(catalog.FRONTIER, as_of_date, s)
    if front is None or front.empty:
        return "<h2>Frontier</h2><p>No frontier for this date.</p>"
    front = front.sort_values("clv_weight")
    with tempfile.TemporaryDirectory() as tmp:
        png = allocation.plot_frontier(front, Path(tmp) / "frontier.png").read_bytes()
    image = base64.b64encode(png).decode("ascii")
    columns = [c for c in ("clv_weight", "expected_incremental_revenue",
                           "expected_incremental_clv", "expected_net_revenue", "spent",
                           "method") if c in front.columns]
    return ("<h2>Allocation frontier: CLV vs short-term revenue by lambda</h2>"
            f"<img id='frontier-chart' alt='allocation frontier' "
            f"src='data:image/png;base64,{image}'>" + _table(front[columns], "frontier"))


def _alerts(as_of_date: dt.date, s: Settings) -> str:
    alerts = _partition(catalog.CHURN_ALERTS, as_of_date, s)
    if alerts is None or alerts.empty:
        return "<h2>Churn alerts</h2><p>No customer crossed into churn risk.</p>"
    columns = [c for c in ("customer_id", "alert_type", "p_churn", "previous_p_churn",
                           "predicted_clv", "value_at_risk", "reason_1", "suggested_action")
               if c in alerts.columns]
    top = alerts.sort_values("value_at_risk", ascending=False).head(TOP_ALERTS)[columns]
    return (f"<h2>Churn alerts</h2><p>{len(alerts):,} customers alerted; the "
            f"{len(top)} with the most value at risk:</p>" + _table(top, "alerts"))


def log_to_mlflow(path: Path, as_of_date: dt.date, run_id: str,
                  settings: Settings | None = None) -> str:
    """Log the report as an artifact of its own MLflow run; returns that run's id."""
    import mlflow
    from clv.models import registry

    experiment_id = registry.configure_mlflow(settings)
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=lineage.run_name("report", as_of_date, run_id)) as run:
        mlflow.set_tags({"step": "report", **lineage.run_tags(run_id, as_of_date)})
        mlflow.log_artifact(str(path), artifact_path="report")
    return run.info.run_id


def publish(as_of_date: dt.date, run_id: str, settings: Settings | None = None
            ) -> dict[str, Any]:
    """Build the report, log it to MLflow; what the summary task returns about it."""
    path = build_report(as_of_date, run_id, settings)
    return {"report": str(path), "report_url": lineage.report_url(as_of_date),
            "mlflow_run_id": log_to_mlflow(path, as_of_date, run_id, settings)}
