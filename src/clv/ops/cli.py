"""``clv`` command line: load data, inspect results, promote models.

    clv import-cdnow [--path FILE]                 CDNOW into raw.orders
    clv import-orders FILE --map order_id=OrderNo,customer_id=Cust,order_ts=Date,amount=Total
    clv import-campaign --hillstrom [--sent-date 1998-03-01]   Hillstrom e-mail experiment
    clv import-campaign responses.csv              a campaign in the raw.campaign_responses contract
    clv import-contact-preferences optouts.csv     opt-outs, suppression list (contact prefs)
    clv summary --as-of-date 1998-07-01            rows per table, champions
    clv demo --as-of-date 1998-07-01               make run: load CDNOW + Hillstrom, run the DAG
    clv spark-connect-server [--port 15002]        the long-lived Spark JVM tasks attach to
    clv promote --model clv_spend --version 3      move the champion alias
    clv sign-model --model clv_spend --version 3   vouch for a version's artifacts (digest)
    clv catalog                                    rebuild the DuckDB views
    clv quarantine-batch --as-of-date 2020-02-01 --reason "amounts in cents"
                                                   take a published raw.orders batch out
    clv restore-batch --as-of-date 2020-02-01      and put it back as it was
    clv mark-plan-sent --plan-id plan-1998-07-01 [--sent-date 1998-07-03]   outcomes from then
    clv warehouse-roles --admin-uri postgresql://postgres@host/db   PostgreSQL writer/analyst roles
    clv import-source order_lines lines.csv --map order_id=OrderNo   an optional source
    clv import-olist DIR [--as-of-date 2018-10-18]  Olist export -> order lines, orders, reviews,
                                                   customers
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import uuid
from pathlib import Path

from clv.config import DEFAULT_BUDGET, DEFAULT_CLV_WEIGHT, DEFAULT_HORIZON_DAYS


def _parse_mapping(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    bad = [p for p in pairs if len(p) != 2 or not p[0].strip() or not p[1].strip()]
    if bad:
        raise SystemExit(f"--map: expected contract=column pairs separated by commas, got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def _share(text: str) -> float:
    """argparse type: a share of rows in [0, 1] (``nan`` would switch the check off)."""
    from clv.ingest import IngestError, check_rejected_share

    try:
        return check_rejected_share(float(text))
    except (ValueError, IngestError) as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number in [0, 1] (a share of the rows)") from exc


def _import(args: argparse.Namespace) -> int:
    from clv import ingest
    from clv.data import warehouse
    from clv.data.spark import get_spark

    spark = get_spark("clv-import")
    if args.command == "import-cdnow":
        path = Path(args.path) if args.path else ingest.cdnow_packaged_path()
        df = ingest.read_cdnow(spark, path)
    else:
        df = ingest.read_orders_file(spark, Path(args.file), _parse_mapping(args.map),
                                     args.format, args.timestamp_format)
    as_of = dt.date.fromisoformat(args.as_of_date) if args.as_of_date else \
        ingest.default_batch_date(df)
    run_id = args.run_id or f"import-{uuid.uuid4().hex[:8]}"
    print(f"loading {args.command.removeprefix('import-')} into raw.orders "
          f"(batch as_of_date={as_of}) ...", flush=True)
    result = ingest.load_orders(spark, df, as_of, run_id, args.max_rejected_share,
                                source=str(args.file) if args.command == "import-orders"
                                else str(path))
    warehouse.refresh_catalog()
    print(result)
    return 0


def _import_campaign(args: argparse.Namespace) -> int:
    import pandas as pd

    from clv import ingest
    from clv.data import warehouse
    from clv.data.spark import get_spark
    from clv.decisions import uplift

    if args.hillstrom is not None:
        path = Path(args.hillstrom) if args.hillstrom else _shared_hillstrom()
        frame = uplift.load_hillstrom(path)
        # Its customers are not this shop's: prefix their ids so they never match ours.
        frame["customer_id"] = "hillstrom-" + frame["customer_id"]
        if args.sent_date:
            frame["sent_date"] = pd.Timestamp(args.sent_date)
    elif args.file:
        path = Path(args.file)
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    else:
        raise SystemExit("import-campaign: give a FILE or --hillstrom")
    as_of = dt.date.fromisoformat(args.as_of_date) if args.as_of_date else None
    run_id = args.run_id or f"import-{uuid.uuid4().hex[:8]}"
    print(f"loading {len(frame)} campaign responses from {path} ...", flush=True)
    result = ingest.load_campaign_responses(get_spark("clv-import"), frame, run_id, as_of)
    warehouse.refresh_catalog()
    print(json.dumps(result, indent=2))
    return 0


def _import_contact_preferences(args: argparse.Namespace) -> int:
    import pandas as pd

    from clv import ingest
    from clv.data import warehouse
    from clv.data.spark import get_spark

    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"import-contact-preferences: no file {path}")
    frame = (pd.read_parquet(path) if path.suffix == ".parquet"
             else pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))
    as_of = dt.date.fromisoformat(args.as_of_date) if args.as_of_date else None
    run_id = args.run_id or f"import-{uuid.uuid4().hex[:8]}"
    print(f"loading {len(frame)} contact preferences from {path} ...", flush=True)
    result = ingest.load_contact_preferences(get_spark("clv-import"), frame, str(path), run_id,
                                             as_of)
    warehouse.refresh_catalog()
    print(json.dumps(result, indent=2))
    if result["rejected"]:
        print(f"warning: {result['rejected']} row(s) of {path} were not loaded (see "
              f"{ingest.REJECTED_CONTACT_PREFERENCES}, as_of_date={result['as_of_date']}): an "
              f"opt-out among them is not honoured until the row is fixed and reloaded",
              file=sys.stderr)
    return 0


def _mark_plan_sent(args: argparse.Namespace) -> int:
    from clv import pipeline
    from clv.data import warehouse

    sent = dt.date.fromisoformat(args.sent_date) if args.sent_date else None
    result = pipeline.mark_plan_sent(args.plan_id, sent, args.run_id or "cli")
    warehouse.refresh_catalog()
    print(json.dumps(result, indent=2))
    return 0


def _shared_hillstrom() -> Path:
    """The Hillstrom file of the reference data folder beside the checkout."""
    import os

    from clv.config import load_settings

    root = Path(os.environ.get("CLV_SHARED_DATA") or load_settings().home.parent / "shared/data")
    path = root / "hillstrom" / "hillstrom.csv.gz"
    if not path.exists():
        raise ValueError(f"Hillstrom data not found at {path}: pass --hillstrom PATH "
                         "or set CLV_SHARED_DATA")
    return path


def _summary(args: argparse.Namespace) -> int:
    from clv import pipeline

    print(json.dumps(pipeline.run_summary(dt.date.fromisoformat(args.as_of_date)), indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from clv.ops import demo
    from clv.pipeline.params import validate_params

    # the DAG checks them too, but only after Airflow's DB and the data were loaded
    if args.orders and args.olist:
        raise SystemExit("demo: give --orders or --olist, not both")
    as_of = args.as_of_date if args.as_of_date is not None else (
        "" if args.orders or args.olist else demo.CDNOW_AS_OF_DATE)
    validate_params({"as_of_date": as_of, "horizon_days": args.horizon_days,
                     "budget": args.budget, "clv_weight": args.clv_weight})
    orders = demo.OrdersFile(Path(args.orders), _parse_mapping(args.map), args.format,
                             args.timestamp_format) if args.orders else None
    if args.olist:
        orders = demo.OlistExport(Path(args.olist))
    hillstrom = None
    if orders is not None:
        print("your orders: the Hillstrom campaign (CDNOW's timeline) is not loaded; "
              "`clv import-campaign` loads your own", flush=True)
    elif not args.no_campaign:
        try:
            hillstrom = _shared_hillstrom()
        except ValueError as exc:
            print(f"{exc}; the allocation uses prior uplifts (see README)", flush=True)
    summary = demo.run(dt.date.fromisoformat(as_of) if as_of else None, args.horizon_days,
                       args.budget, args.clv_weight, Path(args.log), hillstrom,
                       args.sent_date, orders)
    print(json.dumps(summary, indent=2))
    return 0


def _spark_connect_server(args: argparse.Namespace) -> int:
    """Replace this process with a Spark Connect server (what ``make up`` starts)."""
    import os

    from clv.config import load_settings
    from clv.data.spark import LOOPBACK, connect_server_command, is_local_master

    argv = connect_server_command(args.port)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}  # its Python workers import clv
    if is_local_master(load_settings().spark_master):  # its UI binds to $SPARK_LOCAL_IP
        env.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    print(f"Spark Connect server on sc://127.0.0.1:{args.port} "
          f"(tasks attach with CLV_SPARK_REMOTE=sc://127.0.0.1:{args.port})", flush=True)
    os.execve(argv[0], argv, env)
    return 0  # pragma: no cover (execve does not return)


def _promote(args: argparse.Namespace) -> int:
    from clv.models import registry

    tags = registry.promote(args.model, str(args.version), args.alias, reason=args.reason,
                            by=args.by)
    print(f"{args.model}: alias '{args.alias}' -> version {args.version} "
          f"(by {tags['alias_set_by']} at {tags['alias_set_at']}: {tags['alias_set_reason']})")
    return 0


def _restore_batch(args: argparse.Namespace) -> int:
    from clv import ingest
    from clv.data import warehouse
    from clv.data.spark import get_spark

    result = ingest.restore_batch(get_spark("clv-restore"),
                                  dt.date.fromisoformat(args.as_of_date))
    warehouse.refresh_catalog()
    print(result)
    return 0


def _quarantine_batch(args: argparse.Namespace) -> int:
    from clv import ingest
    from clv.data import warehouse
    from clv.data.spark import get_spark

    result = ingest.quarantine_batch(get_spark("clv-quarantine"),
                                     dt.date.fromisoformat(args.as_of_date), args.reason,
                                     args.run_id or f"quarantine-{uuid.uuid4().hex[:8]}")
    warehouse.refresh_catalog()
    print(result)
    return 0


def _sign_model(args: argparse.Namespace) -> int:
    from clv.models import registry

    digest = registry.record_artifact_digest(args.model, str(args.version))
    print(f"{args.model} v{args.version}: artifacts sha256 {digest} recorded and signed; "
          "scoring will load exactly these files")
    return 0


def _catalog(args: argparse.Namespace) -> int:
    from clv.data import warehouse

    print(f"catalog rebuilt: {warehouse.refresh_catalog()}")
    return 0


def _warehouse_roles(args: argparse.Namespace) -> int:
    import os

    from clv.data import postgres_roles, warehouse

    done = postgres_roles.setup_roles(
        args.admin_uri or os.environ.get("CLV_PG_ADMIN_URI") or "",
        sorted({t.schema for t in warehouse.TABLES.values()}), args.writer, args.analyst,
        os.environ.get("CLV_PG_WRITER_PASSWORD"), os.environ.get("CLV_PG_ANALYST_PASSWORD"))
    for role, pw, var in ((done.writer, done.writer_password, "CLV_PG_WRITER_PASSWORD"),
                          (done.analyst, done.analyst_password, "CLV_PG_ANALYST_PASSWORD")):
        given = os.environ.get(var)
        note = ("password from $" + var if given else
                f"new password (shown once): {pw}" if pw else "password unchanged")
        print(f"{role}: {note}")
    return 0


def _import_source(args: argparse.Namespace) -> int:
    from clv.data import warehouse
    from clv.data.spark import get_spark
    from clv.ingest import sources

    spec = sources.SOURCES[f"raw.{args.source}"]
    frame = sources.read_source_file(Path(args.file), spec, _parse_mapping(args.map))
    as_of = dt.date.fromisoformat(args.as_of_date) if args.as_of_date else None
    run_id = args.run_id or f"import-{uuid.uuid4().hex[:8]}"
    print(f"loading {args.file} into {spec.table} (run {run_id}) ...", flush=True)
    result = sources.load_source(get_spark("clv-import"), frame, spec, str(args.file), run_id,
                                 as_of, args.max_rejected_share)
    warehouse.refresh_catalog()
    print(result)
    return 0


def _import_olist(args: argparse.Namespace) -> int:
    from clv.data import warehouse
    from clv.data.spark import get_spark
    from clv.ingest import olist

    as_of = dt.date.fromisoformat(args.as_of_date) if args.as_of_date else None
    print(f"loading the Olist export in {args.directory} ...", flush=True)
    result = olist.load_olist(get_spark("clv-import"), Path(args.directory), as_of,
                              args.run_id, args.max_rejected_share)
    warehouse.refresh_catalog()
    print(json.dumps(result, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clv", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("import-cdnow", "import-orders"):
        s = sub.add_parser(name)
        if name == "import-cdnow":
            s.add_argument("--path", help="CDNOW_master.txt[.gz]; default: the lifetimes package's")
        else:
            s.add_argument("file", help="CSV or Parquet orders file")
            s.add_argument("--map", help="contract=column,... e.g. order_id=OrderNo,amount=Total")
            s.add_argument("--format", choices=["csv", "parquet"])
            s.add_argument("--timestamp-format", help="Spark datetime pattern of order_ts")
        s.add_argument("--as-of-date", help="batch date; default: the day after the newest order")
        s.add_argument("--run-id")
        s.add_argument("--max-rejected-share", type=_share, default=0.01,
                       help="refuse the batch when more than this share of rows is rejected")
        s.set_defaults(fn=_import)
    s = sub.add_parser("import-campaign", help="randomised campaign -> raw.campaign_responses")
    s.add_argument("file", nargs="?", help="CSV or Parquet in the raw.campaign_responses "
                   "contract (customer_id, campaign_id, sent_date, treatment, action, "
                   "converted, revenue)")
    s.add_argument("--hillstrom", nargs="?", const="", metavar="PATH",
                   help="load the Hillstrom e-mail experiment (default path: "
                        "$CLV_SHARED_DATA/hillstrom/hillstrom.csv.gz)")
    s.add_argument("--sent-date", help="with --hillstrom: when the campaign went out in "
                   "this shop's timeline (its data set has no date; default 2008-03-01)")
    s.add_argument("--as-of-date", help="batch partition; default: the day after sent_date")
    s.add_argument("--run-id")
    s.set_defaults(fn=_import_campaign)
    s = sub.add_parser("import-contact-preferences",
                       help="a CRM's opt-outs / suppression list -> raw.contact_preferences")
    s.add_argument("file", help="CSV or Parquet: customer_id, channel (email, account, ... or "
                   "all), opted_out (true/false, yes/no, 1/0), updated_at (date or timestamp)")
    s.add_argument("--as-of-date", help="batch partition; default: the newest updated_at")
    s.add_argument("--run-id")
    s.set_defaults(fn=_import_contact_preferences)
    s = sub.add_parser("summary")
    s.add_argument("--as-of-date", required=True)
    s.set_defaults(fn=_summary)
    s = sub.add_parser("demo", help="make run: Airflow DB, CDNOW and the Hillstrom campaign "
                       "into the warehouse, one DAG run (airflow dags test), its summary")
    s.add_argument("--as-of-date", help="default: 1998-07-01 for CDNOW; with --orders the "
                   "day after the file's newest order")
    s.add_argument("--orders", help="your orders file (CSV or Parquet) instead of CDNOW, "
                   "into an empty raw.orders; columns as for import-orders")
    s.add_argument("--olist", help="an Olist export folder (orders, items, products, reviews, "
                   "customers) instead of CDNOW, into an empty warehouse")
    s.add_argument("--map", help="with --orders: contract=column,... e.g. "
                   "order_id=OrderNo,amount=Total")
    s.add_argument("--format", choices=["csv", "parquet"])
    s.add_argument("--timestamp-format", help="with --orders: Spark datetime pattern of "
                   "order_ts")
    s.add_argument("--horizon-days", type=int, default=DEFAULT_HORIZON_DAYS)
    s.add_argument("--budget", type=float, default=DEFAULT_BUDGET)
    s.add_argument("--clv-weight", type=float, default=DEFAULT_CLV_WEIGHT)
    s.add_argument("--sent-date", default="1998-03-01",
                   help="when the Hillstrom campaign went out in CDNOW's timeline")
    s.add_argument("--no-campaign", action="store_true", help="skip the Hillstrom campaign")
    s.add_argument("--log", default=".state/last_run.log", help="the DAG run's full log")
    s.set_defaults(fn=_demo)
    s = sub.add_parser("spark-connect-server", help="run a Spark Connect server that "
                       "tasks attach to (CLV_SPARK_REMOTE); make up starts one")
    s.add_argument("--port", type=int, default=15002)
    s.set_defaults(fn=_spark_connect_server)
    s = sub.add_parser("promote")
    s.add_argument("--model", required=True, help="registered model name, e.g. clv_spend")
    s.add_argument("--version", required=True)
    s.add_argument("--alias", default="champion")
    s.add_argument("--reason", required=True, help="why (kept in the version's "
                   "alias_set_reason tag; the evaluate step's alias_decision stays)")
    s.add_argument("--by", help="who (default: the OS user)")
    s.set_defaults(fn=_promote)
    sub.add_parser("catalog").set_defaults(fn=_catalog)
    s = sub.add_parser("sign-model", help="record and sign the SHA-256 digest of a version's "
                       "artifacts (one registered outside the pipeline, after review): "
                       "the score task loads only signed, unchanged versions")
    s.add_argument("--model", required=True)
    s.add_argument("--version", required=True)
    s.set_defaults(fn=_sign_model)
    s = sub.add_parser("quarantine-batch", help="move a published raw.orders batch (its "
                       "as_of_date) to quality.quarantined_orders, so the next DAG run "
                       "proceeds on the other batches; idempotent")
    s.add_argument("--as-of-date", required=True, help="the batch, as its import printed it")
    s.add_argument("--reason", required=True, help="why; kept on every quarantined row")
    s.add_argument("--run-id")
    s.set_defaults(fn=_quarantine_batch)
    s = sub.add_parser("restore-batch", help="put a batch that quarantine-batch took out "
                       "back into raw.orders, as it was; idempotent")
    s.add_argument("--as-of-date", required=True, help="the quarantined batch")
    s.set_defaults(fn=_restore_batch)
    s = sub.add_parser("mark-plan-sent", help="record when a plan (marts.campaign_plan) "
                       "was sent: its outcomes are measured from that date")
    s.add_argument("--plan-id", required=True, help="e.g. plan-1998-07-01")
    s.add_argument("--sent-date", help="YYYY-MM-DD; default: the plan's as-of date")
    s.add_argument("--run-id")
    s.set_defaults(fn=_mark_plan_sent)
    s = sub.add_parser("warehouse-roles", help="PostgreSQL warehouse: create/update the "
                       "pipeline's writer role and the read-only analyst role (idempotent)")
    s.add_argument("--admin-uri", help="postgresql:// URI of a role that may create roles "
                   "(default $CLV_PG_ADMIN_URI); passwords: $CLV_PG_WRITER_PASSWORD, "
                   "$CLV_PG_ANALYST_PASSWORD, else generated for new roles")
    s.add_argument("--writer", default="clv_writer")
    s.add_argument("--analyst", default="clv_analyst")
    s.set_defaults(fn=_warehouse_roles)
    s = sub.add_parser("import-source", help="an optional source file (order lines, reviews, "
                       "customers, events) into its raw table, bad rows quarantined by rule")
    s.add_argument("source", choices=["order_lines", "reviews", "customers", "events"])
    s.add_argument("file", help="CSV (plain or compressed) or Parquet")
    s.add_argument("--map", help="contract=column,... e.g. order_id=OrderNo,unit_price=Price")
    s.add_argument("--as-of-date", help="batch date; default: the day after its newest row")
    s.add_argument("--run-id")
    s.add_argument("--max-rejected-share", type=_share, default=0.01,
                   help="refuse the load when more than this share of its rows is rejected")
    s.set_defaults(fn=_import_source)
    s = sub.add_parser("import-olist", help="an Olist export (orders, items, products, "
                       "reviews, customers) -> raw.order_lines, raw.orders, raw.reviews, "
                       "raw.customers, each with its quarantine")
    s.add_argument("directory", help="folder of the olist_*.csv[.gz] files")
    s.add_argument("--as-of-date", help="batch date; default: the day after the newest order")
    s.add_argument("--run-id")
    s.add_argument("--max-rejected-share", type=_share, default=0.01,
                   help="refuse a table when more than this share of its rows is rejected")
    s.set_defaults(fn=_import_olist)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clv`` command."""
    from clv.config import apply_runtime_umask

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        apply_runtime_umask()  # what the command creates is the owner's only (CLV_UMASK)
        return args.fn(args)
    except (ValueError, RuntimeError) as exc:  # our errors carry readable messages
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
