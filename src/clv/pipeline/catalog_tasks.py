"""Run-end steps: the analysts' catalog, the Data Docs index and the run's summary."""

from __future__ import annotations

import datetime as dt
from typing import Any

from clv.config import Settings, load_settings
from clv.data import warehouse
from clv.pipeline.tables import OUTPUT_TABLES, RAW_ORDERS


def publish_catalog(settings: Settings | None = None) -> dict[str, Any]:
    """Refresh the analysts' DuckDB catalog (one view per table) and the Data Docs index
    (the run's validations rendered only their own pages)."""
    from clv import quality

    path = warehouse.refresh_catalog(settings)
    return {"catalog": str(path), "data_docs": quality.rebuild_data_docs_index(settings)}


def run_summary(as_of_date: dt.date, settings: Settings | None = None) -> dict[str, Any]:
    """Rows per output table at the as-of date and the champions with their metrics."""
    import mlflow
    from clv.config import CHURN_MODEL_NAME, CLV_MODEL_NAME
    from clv.models import registry

    s = settings or load_settings()
    # Counted from partition metadata, so it works on either warehouse backend.
    rows = {t: warehouse.row_count(t, as_of_date, s) or 0
            for t in OUTPUT_TABLES if t != RAW_ORDERS}
    rows[RAW_ORDERS] = sum(warehouse.row_count(RAW_ORDERS, d, s) or 0
                           for d in warehouse.list_partitions(RAW_ORDERS, s))
    registry.configure_mlflow(s)
    client = mlflow.MlflowClient()
    champions = {}
    for name in (CLV_MODEL_NAME, CHURN_MODEL_NAME):
        version = registry.champion_version(client, name)
        run = client.get_run(client.get_model_version(name, version).run_id) if version else None
        champions[name] = {"version": version,
                           "metrics": {k: round(v, 4) for k, v in sorted(run.data.metrics.items())
                                       if not k.startswith("baseline_")} if run else {}}
    return {"as_of_date": as_of_date.isoformat(), "rows": rows, "champions": champions,
            "catalog": str(warehouse.catalog_path(s))}
