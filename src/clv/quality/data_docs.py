"""Great Expectations Data Docs: every validation rendered under ``$CLV_HOME/.state/gx``.

Each validation, passed or failed, is stored and rendered (see :func:`data_docs_dir`;
``CLV_GX_DATA_DOCS=0`` turns this off); :func:`rebuild_data_docs_index` renders the
pages not yet rendered and the index once a run is over, and :func:`write_offline_index`
writes an index that reads without the internet. Inside an Airflow task a passed
validation is only stored: its page is rendered with the others at the run's end
(:func:`rebuild_data_docs_index`, the DAG's ``publish_catalog``), in one pass that costs
~0.02 s a page instead of ~0.09 s one at a time. Data Docs are a view of the outcome:
failing to build them is logged, never raised.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from clv.config import Settings, load_settings, private_dir
from clv.data import warehouse

log = logging.getLogger("clv.quality")  # the package's logger, as before the split

#: One Great Expectations context at work at a time in a process: GX keeps the current one
#: in a process-wide singleton (``project_manager``; its query metrics look their data
#: source up there), so two threads validating at once (the head-start thread of
#: ``airflow dags test`` beside a task, :mod:`clv.pipeline.head_start`) would see each
#: other's. Held around each validation and each Data Docs build.
GX_LOCK = threading.RLock()

#: Environment switch for Data Docs: ``0`` (or false/no/off) turns them off; on by default.
DATA_DOCS_ENV = "CLV_GX_DATA_DOCS"
#: Name of the local Data Docs site.
DATA_DOCS_SITE = "clv"
#: Validation results kept under ``.state/gx`` (and shown in Data Docs); older ones are pruned.
DATA_DOCS_KEEP = 200


def _quiet_gx() -> None:
    """No usage statistics leave the process (must run before GX is first imported)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"


def data_docs_enabled() -> bool:
    """Whether validations are rendered to Data Docs (``CLV_GX_DATA_DOCS``, default on)."""
    value = os.environ.get(DATA_DOCS_ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def data_docs_dir(settings: Settings | None = None) -> Path:
    """Folder of the Data Docs site: ``$CLV_HOME/.state/gx/data_docs`` (git-ignored)."""
    return _gx_dir(settings) / "data_docs"


def _gx_dir(settings: Settings | None = None) -> Path:
    """GX's state: stored validation results and the Data Docs site."""
    return (settings or load_settings()).state_dir / "gx"


def _publish_data_docs(
    result: Any, suite_name: str, table: str, run_name: str | None
) -> tuple[str, str] | None:
    """Store ``result`` and render it: (index.html, the run's page), or None.

    Data Docs are a view of the outcome: failing to build them is logged, never raised.
    """
    if not data_docs_enabled():
        return None
    try:
        index, page = _write_data_docs(result, suite_name, table, run_name)
    except Exception as exc:
        log.warning("%s: Data Docs not built: %s: %s", table, type(exc).__name__, exc)
        return None
    log.info("%s: Data Docs %s (index: %s)", table, page, index)
    return index, page


def _write_data_docs(
    result: Any, suite_name: str, table: str, run_name: str | None
) -> tuple[str, str]:
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    root = _gx_dir()
    private_dir(root.parent)
    root.mkdir(parents=True, exist_ok=True)
    name = (run_name or os.environ.get("AIRFLOW_CTX_DAG_RUN_ID") or "adhoc").replace("/", "_")
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
        run_id=RunIdentifier(run_name=name, run_time=dt.datetime.now(dt.timezone.utc)),
        batch_identifier=table,
    )
    # What the page's header shows (GX's checkpoints set these; batch.validate does not).
    result.meta["run_id"] = key.run_id
    result.meta["batch_kwargs"] = {"data_asset_name": table}
    index = root / "data_docs" / "index.html"
    # concurrent runs would interleave index.html
    with GX_LOCK, warehouse.exclusive_lock(root / ".lock"):
        context = _docs_context(root)
        context.validation_results_store.set(key, result)
        _prune(root / "validations", DATA_DOCS_KEEP)
        if result.success and _rendered_at_run_end():
            log.info("%s: Data Docs page rendered when the run ends", table)
        else:
            # The index re-reads every stored result (0.7 s at 105 of them): built here
            # when a check failed or there is none yet, with the pages it would link to
            # and that are not rendered yet; else at the run's end (rebuild_data_docs_index).
            build_index = not result.success or not index.exists()
            keys = [key, *(k for k in _unrendered(context, root) if k != key)] \
                if build_index else [key]
            context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=keys,
                                    build_index=build_index)
            if build_index:
                write_offline_index(root)
    return str(index), str(_page_path(root, key))


def _rendered_at_run_end() -> bool:
    """True inside an Airflow task: the DAG's publish_catalog renders the run's pages
    (:func:`rebuild_data_docs_index`); a run that fails before it leaves them to the
    next run's, which renders every stored result still without a page."""
    return bool(os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"))


def _page_path(root: Path, key: Any) -> Path:
    """Where the site renders the stored result ``key`` (its store path, as HTML)."""
    *folders, name = key.to_tuple()  # the last part: the batch, the table's name
    return root.joinpath("data_docs", "validations", *folders, f"{name}.html")


def _unrendered(context: Any, root: Path) -> list[Any]:
    """The stored results whose page is not on the site yet."""
    return [key for key in context.validation_results_store.list_keys()
            if not _page_path(root, key).is_file()]


def rebuild_data_docs_index(settings: Settings | None = None) -> str | None:
    """Render the stored validations that have no page yet, and the Data Docs index over
    every stored one; returns the index's path.

    A passed validation renders no index (see :func:`_write_data_docs`), and inside an
    Airflow task not even its page; the DAG calls this once at its end, so the index
    lists the whole run and every link has its page. Never raises: Data Docs are a
    view, a failure to build them is logged.
    """
    if not data_docs_enabled():
        return None
    root = _gx_dir(settings)
    if not (root / "validations").is_dir():
        return None
    try:
        with GX_LOCK, warehouse.exclusive_lock(root / ".lock"):
            context = _docs_context(root)
            # Only the pages not rendered yet (an empty list would render every stored
            # result again: 200 kept, ~4 s); with none, one of them again, for the index.
            keys = _unrendered(context, root) or context.validation_results_store.list_keys()[-1:]
            built = context.build_data_docs(site_names=[DATA_DOCS_SITE],
                                            resource_identifiers=keys)
            write_offline_index(root)
    except Exception as exc:
        log.warning("Data Docs index not built: %s: %s", type(exc).__name__, exc)
        return None
    return _url_path(built[DATA_DOCS_SITE])


#: The Data Docs index that reads without the internet (GX's own index.html builds its
#: table with scripts from CDNs, so offline it is blank).
OFFLINE_INDEX = "offline_index.html"


def write_offline_index(root: Path) -> Path:
    """``data_docs/offline_index.html``: every stored validation, newest first, as a plain
    HTML table (suite, table, run, time, passed, expectations failed / evaluated) linking
    to its page. No script, no stylesheet from anywhere: it reads offline, and the pages
    it links hold their results as server-rendered tables (unstyled offline)."""
    import html
    import json
    from urllib.parse import quote

    docs = root / "data_docs"
    rows = []
    for stored in (root / "validations").rglob("*.json"):
        result = json.loads(stored.read_text())
        relative = stored.relative_to(root / "validations").with_suffix(".html")
        stats = result.get("statistics", {})
        meta = result.get("meta", {})
        run = meta.get("run_id") or {}
        rows.append((str(run.get("run_time", "")), relative.parts[0],
                     (meta.get("batch_kwargs") or {}).get("data_asset_name", relative.stem),
                     str(run.get("run_name", "")), bool(result.get("success")),
                     stats.get("unsuccessful_expectations", ""),
                     stats.get("evaluated_expectations", ""),
                     quote(f"validations/{relative.as_posix()}")))
    rows.sort(reverse=True)
    cells = "".join(
        f"<tr><td>{html.escape(t)}</td><td>{html.escape(suite)}</td>"
        f"<td><a href='{link}'>{html.escape(table)}</a></td><td>{html.escape(run)}</td>"
        f"<td>{'passed' if ok else 'FAILED'}</td><td>{failed} / {evaluated}</td></tr>"
        for t, suite, table, run, ok, failed, evaluated, link in rows)
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Data Docs (offline index)</title></head><body>"
            "<h1>Data quality validations</h1>"
            f"<p>{len(rows)} stored validations, newest first. Great Expectations' own "
            "<a href='index.html'>index</a> needs the internet for its scripts and styles; "
            "each page below reads without them.</p>"
            "<table id='validations' border='1'><tr><th>run time</th><th>suite</th>"
            "<th>table</th><th>run</th><th>result</th><th>failed / evaluated</th></tr>"
            f"{cells}</table></body></html>\n")
    docs.mkdir(parents=True, exist_ok=True)
    out = docs / OFFLINE_INDEX
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def _docs_context(root: Path) -> Any:
    """Ephemeral GX context whose validation results and Data Docs live under ``root``."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults()
    stores = defaults.stores
    stores[defaults.validation_results_store_name]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend", "base_directory": str(root / "validations"),
    }
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(root / "data_docs")},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    config = DataContextConfig(
        store_backend_defaults=defaults, stores=stores, data_docs_sites={DATA_DOCS_SITE: site},
        progress_bars=ProgressBarsConfig(globally=False), analytics_enabled=False,
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest stored results; the index build drops their pages."""
    files = sorted(folder.rglob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)
        for parent in old.parents:
            if parent == folder or any(parent.iterdir()):
                break
            parent.rmdir()


def _url_path(url: str) -> str:
    """``file:///a/b%20c.html`` -> ``/a/b c.html``."""
    return unquote(urlparse(url).path)
