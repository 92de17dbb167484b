"""The run report (#21): one static page per as-of date, readable offline, built from a
small run's published tables and checked by parsing its HTML."""

from __future__ import annotations

import base64
import datetime as dt
import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from clv.config import load_settings
from clv.ops import report

AS_OF = dt.date(1998, 7, 1)
RUN = "manual__1998-07-01T00:00:00+00:00"


def _publish(root: Path, table: str, frame: pd.DataFrame, day: dt.date = AS_OF) -> None:
    """A published partition as the warehouse lays it out (Parquet + _SUCCESS)."""
    schema, name = table.split(".")
    folder = root / schema / name / f"as_of_date={day}"
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "part-0.parquet", index=False)
    (folder / "_SUCCESS").touch()


def _metrics_rows() -> pd.DataFrame:
    rows = []
    spend = [("clv_spend", "1", "xgboost", "champion", 0.61, 0.05, 0.30),
             ("clv_spend", "2", "tensorflow", "challenger", 0.70, 0.40, 0.90),
             ("btyd_bgnbd_gg", "baseline", "btyd", None, 0.55, 0.02, 0.25),
             ("naive_past_spend_rate", "baseline", "naive", None, 0.50, 1.20, 2.00)]
    for model, version, family, alias, gini, agg, mape in spend:
        for metric, value in (("normalized_gini", gini), ("aggregate_error", agg),
                              ("decile_mape", mape), ("mae", 1.0)):
            rows.append((model, version, alias, family, "spend", metric, value))
    for model, version, family, alias, auc, brier in (
            ("clv_churn", "1", "xgboost", "champion", 0.80, 0.13),
            ("naive_recency", "baseline", "naive", None, 0.79, 0.20)):
        for metric, value in (("roc_auc", auc), ("brier", brier)):
            rows.append((model, version, alias, family, "churn", metric, value))
    frame = pd.DataFrame(rows, columns=["model_name", "model_version", "model_alias",
                                        "model_family", "target", "metric", "value"])
    frame["cutoff_date"] = dt.date(1998, 1, 2)
    return frame


@pytest.fixture
def small_run(clv_home):
    root = clv_home.warehouse_root
    _publish(root, "raw.orders", pd.DataFrame({"order_id": ["o1", "o2", "o3"],
                                               "customer_id": ["a", "b", "a"]}))
    _publish(root, "features.customer_features", pd.DataFrame({"customer_id": ["a", "b"]}))
    _publish(root, "marts.model_metrics", _metrics_rows())
    _publish(root, "marts.segment_summary", pd.DataFrame({
        "grouping": ["value_risk", "value_risk"], "segment": ["champions", "lost"],
        "customers": [1, 1], "share": [0.5, 0.5], "avg_predicted_clv": [120.0, 3.0],
        "avg_p_churn": [0.1, 0.95], "definition": ["top tier, low risk", "p_churn >= 0.9"]}))
    _publish(root, "marts.budget_summary", pd.DataFrame({
        "segment": ["champions", "lost"], "action": ["loyalty_perk", "none"],
        "customers": [1, 1], "spent": [8.0, 0.0], "expected_incremental_revenue": [2.0, 0.0],
        "expected_incremental_clv": [15.0, 0.0], "net_value": [7.0, 0.0]}))
    _publish(root, "marts.contact_policy", pd.DataFrame({
        "plan_id": ["plan-1998-07-01"], "value_with_policy": [7.0], "value_without_policy": [9.5],
        "spent_with_policy": [8.0], "spent_without_policy": [10.0],
        "selected_with_policy": [1], "selected_without_policy": [2],
        "incremental_clv_with_policy": [15.0], "incremental_clv_without_policy": [19.0],
        "incremental_revenue_with_policy": [2.0], "incremental_revenue_without_policy": [3.0],
        "policy_cost_value": [2.5], "policy_cost_spend": [2.0], "customers_opted_out": [1],
        "customers_frequency_cap": [0], "customers_min_net_value": [0]}))
    # a small budget: every lambda picks the same plan (one point on the chart)
    _publish(root, "marts.allocation_frontier", pd.DataFrame({
        "clv_weight": [i / 10 for i in range(11)], "expected_incremental_revenue": [2.0] * 11,
        "expected_incremental_clv": [15.0] * 11, "expected_net_revenue": [-6.0] * 11,
        "spent": [8.0] * 11, "method": ["exact"] * 11, "budget": [10.0] * 11}))
    _publish(root, "marts.churn_alerts", pd.DataFrame({
        "customer_id": ["b"], "alert_type": ["new_at_risk"], "p_churn": [0.95],
        "previous_p_churn": [None], "predicted_clv": [3.0], "value_at_risk": [2.85],
        "reason_1": ["days since last purchase"], "suggested_action": ["none"]}))
    gx = clv_home.state_dir / "gx" / "validations" / "raw_orders" / RUN / "20261202T0000Z"
    gx.mkdir(parents=True)
    (gx / "raw.orders.json").write_text(json.dumps({
        "suite_name": "raw_orders", "success": True,
        "statistics": {"evaluated_expectations": 17, "unsuccessful_expectations": 0}}))
    return clv_home


class _Page(HTMLParser):
    """Tables by id (rows of cell texts), images, links, scripts and external assets."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.external: list[str] = []
        self.ids: dict[str, str] = {}
        self._table = self._cell = self._id = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "img":
            self.images.append(a)
        if tag in ("script", "link") or (tag == "img" and not a["src"].startswith("data:")):
            self.external.append(tag)
        if "id" in a and tag != "table":
            self._id = a["id"]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._id:
            self.ids[self._id] = data
            self._id = None
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _rows(page: _Page, table: str) -> list[dict[str, str]]:
    header, *rows = page.tables[table]
    return [dict(zip(header, r, strict=True)) for r in rows]


def test_the_report_holds_every_section_of_a_small_run(small_run, tmp_path):
    page = _parse(report.build_report(AS_OF, RUN, path=tmp_path / "r.html"))
    counts = {r["table"]: r["rows"] for r in _rows(page, "row-counts")}
    assert counts["raw.orders (all loads)"] == "3"
    assert counts["features.customer_features"] == "2"
    assert counts["marts.churn_alerts"] == "1"
    assert page.ids["quality-status"].startswith("all suites passed (1 validations)")
    assert _rows(page, "quality")[0]["suite"] == "raw_orders"

    spend = _rows(page, "models-spend")  # every family and baseline, ranked by Gini
    assert [(r["rank"], r["model_name"], r["model_version"]) for r in spend] == [
        ("1", "clv_spend", "2"), ("2", "clv_spend", "1"), ("3", "btyd_bgnbd_gg", "baseline"),
        ("4", "naive_past_spend_rate", "baseline")]
    assert spend[1]["alias"] == "champion" and spend[1]["aggregate_error"] == "0.0500"
    assert spend[0]["decile_mape"] == "0.9000"  # the level the champion rule also reads
    churn = _rows(page, "models-churn")
    assert [r["model_name"] for r in churn] == ["clv_churn", "naive_recency"]
    assert churn[0]["brier"] == "0.1300"

    assert [r["segment"] for r in _rows(page, "segments")] == ["champions", "lost"]
    plan = _rows(page, "plan")
    assert (plan[0]["segment"], plan[0]["action"], plan[0]["spent"]) == (
        "champions", "loyalty_perk", "8.00")
    assert page.ids["policy-cost"].startswith("Opt-outs, frequency caps and the net-value "
                                              "threshold cost 2.50 of value at lambda and "
                                              "left 2.00 of the budget unspent")
    sides = _rows(page, "policy-sides")
    assert [(r["plan"], r["value at lambda"]) for r in sides] == [
        ("with the policy", "7.00"), ("without it", "9.50")]
    assert [r["customers excluded"] for r in _rows(page, "policy-rules")] == ["1", "0", "0"]
    assert len(_rows(page, "frontier")) == 11
    assert _rows(page, "alerts")[0]["customer_id"] == "b"


def test_the_report_is_one_offline_file_with_the_chart_inside(small_run, tmp_path):
    path = report.build_report(AS_OF, RUN, path=tmp_path / "r.html")
    page = _parse(path)
    assert page.external == []  # no script, stylesheet or image fetched from anywhere
    [chart] = [i for i in page.images if i.get("id") == "frontier-chart"]
    png = base64.b64decode(chart["src"].split(",", 1)[1])
    assert png.startswith(b"\x89PNG")


def test_the_frontier_labels_each_distinct_point_once():
    """At a small budget every lambda gives the same plan: one label 'λ=0.0–1.0', not
    eleven printed over each other."""
    from clv.decisions import allocation

    same = pd.DataFrame({"clv_weight": [i / 10 for i in range(11)],
                         "expected_incremental_revenue": [2.0] * 11,
                         "expected_incremental_clv": [15.0] * 11})
    assert allocation._points_with_weights(same) == {(2.0, 15.0): [i / 10 for i in range(11)]}
    two = same.assign(expected_incremental_clv=[15.0] * 5 + [20.0] * 6)
    assert list(allocation._points_with_weights(two).values()) == [
        [0.0, 0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]]


def test_without_alerts_or_validations_the_report_says_so(clv_home, tmp_path):
    _publish(clv_home.warehouse_root, "raw.orders", pd.DataFrame({"order_id": ["o1"]}))
    page = _parse(report.build_report(AS_OF, RUN, path=tmp_path / "r.html"))
    text = " ".join(page.text)
    assert "No customer crossed into churn risk" in text
    assert "No stored validation results for this run" in text
    assert report.report_path(AS_OF, load_settings()).name == "clv-report-1998-07-01.html"
