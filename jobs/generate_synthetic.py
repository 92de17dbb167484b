"""Spark job: synthetic orders (and campaign responses) with known truth, at any size.

BG/NBD purchases and dropout, Gamma-Gamma spend, optional seasonality and an
optional randomised campaign (:mod:`clv.data.synthetic`). Deterministic for a seed;
the orders are generated and written by the executors (nothing at order level
reaches the driver).

    spark-submit --master spark://host:7077 jobs/generate_synthetic.py --orders 10000000 \\
        --seed 7 --out /data/synthetic-10m            # Parquet: orders/, truth.json
    .venv/bin/python jobs/generate_synthetic.py --customers 50000 --campaign
                                                     # into raw.orders via clv.ingest
    .venv/bin/python jobs/generate_synthetic.py --customers 50000 --effects-campaign
                                                     # + a campaign with known effects

Without ``--out`` the orders are loaded as the ``raw.orders`` batch of the data's
as-of date through :func:`clv.ingest.load_orders` (quarantine rules, atomic
publish); ``--no-quarantine`` publishes them with :func:`clv.data.warehouse.write_partition`
directly (skips the duplicate-id shuffle, for 100M+ orders). Campaign responses go to
``<out>/campaign_responses`` or, without ``--out``, through the ``campaign_responses``
suite to the ``raw.campaign_responses`` partition of the as-of date. The generating
parameters are written as ``truth.json`` beside the data (``.state/synthetic/`` in
warehouse mode) and printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--customers", type=int, help="number of customers")
    size.add_argument("--orders", type=int,
                      help="target number of orders (customers = orders / E[orders per customer])")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        help="write Parquet under this folder instead of the warehouse")
    parser.add_argument("--partitions", type=int,
                        help="Spark tasks (default: ~200k customers each); never changes the data")
    parser.add_argument("--no-quarantine", action="store_true",
                        help="warehouse mode: publish without the ingest rules")
    parser.add_argument("--weekly-amplitude", type=float, default=0.0,
                        help="weekly seasonality of the purchase intensity, in [0, 1)")
    parser.add_argument("--yearly-amplitude", type=float, default=0.0,
                        help="yearly seasonality of the purchase intensity, in [0, 1)")
    parser.add_argument("--campaign", action="store_true",
                        help="also write one randomised campaign (raw.campaign_responses)")
    parser.add_argument("--effects-campaign", action="store_true",
                        help="also a campaign randomised over every customer (none / email / "
                             "retention_coupon) with known per-customer effects "
                             "(clv.data.synthetic.true_effects of the features at its send date)")
    parser.add_argument("--effects-sent-days", type=int, default=60,
                        help="the effects campaign goes out this many days before the as-of date")
    parser.add_argument("--run-id", default="synthetic")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from clv.config import load_settings
    from clv.data import catalog, synthetic, warehouse
    from clv.data.spark import get_spark

    knobs = {"seed": args.seed, "weekly_amplitude": args.weekly_amplitude,
             "yearly_amplitude": args.yearly_amplitude,
             "campaign": synthetic.CampaignSpec() if args.campaign else None}
    n_customers = args.customers or synthetic.customers_for_orders(args.orders, **knobs)
    spec = synthetic.SyntheticSpec(n_customers=n_customers, **knobs)
    spark = get_spark("clv-generate-synthetic")
    started = time.perf_counter()
    orders = synthetic.orders_frame(spark, spec, args.partitions)
    report: dict = {"customers": n_customers, "as_of_date": spec.as_of_date.isoformat()}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        orders.write.mode("overwrite").parquet(str(args.out / "orders"))
        report["orders_path"] = str(args.out / "orders")
        truth_dir = args.out
        responses_path = args.out / "campaign_responses"
    else:
        settings = load_settings()
        if args.no_quarantine:
            warehouse.write_partition(orders, catalog.RAW_ORDERS, spec.as_of_date)
        else:
            from clv import ingest

            result = ingest.load_orders(spark, orders, spec.as_of_date, args.run_id)
            report["load"] = str(result)
        truth_dir = settings.state_dir / "synthetic"
        responses_path = None
    if spec.campaign is not None:
        responses = synthetic.responses_frame(spark, spec, args.partitions)
        if responses_path is not None:
            responses.write.mode("overwrite").parquet(str(responses_path))
            report["campaign_responses_path"] = str(responses_path)
        else:  # validated with its suite, then published like ingest.load_campaign_responses
            from pyspark.sql import functions as F

            from clv import quality

            table = catalog.CAMPAIGN_RESPONSES
            responses = responses.withColumn("run_id", F.lit(args.run_id))
            quality.assert_valid(responses, "campaign_responses", table,
                                 ["campaign_id", "customer_id"], run_name=args.run_id)
            report["campaign_responses_path"] = str(
                warehouse.write_partition(responses, table, spec.as_of_date))
    if args.effects_campaign:
        report.update(_effects_campaign(spark, spec, orders, args))
    # Counting re-reads what was written (Parquet footers): cheap, and nothing is collected.
    written = (spark.read.parquet(report["orders_path"]) if args.out is not None
               else warehouse.read_table(spark, catalog.RAW_ORDERS, spec.as_of_date))
    report["orders"] = written.count()
    report["seconds"] = round(time.perf_counter() - started, 1)
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth_file = truth_dir / ("truth.json" if args.out is not None
                              else f"truth-{spec.as_of_date.isoformat()}.json")
    truth_file.write_text(spec.to_json())
    report["truth"] = str(truth_file)
    print(json.dumps(report, indent=2))
    return 0


def _effects_campaign(spark, spec, orders, args) -> dict:
    """The randomised campaign with known effects: features at the send date (so the
    effects are functions of pre-treatment features), responses and the true effects.

    Warehouse mode: responses through the ``campaign_responses`` suite into the
    ``raw.campaign_responses`` partition of the day after the send, true effects in
    ``.state/synthetic/true-effects-<sent>.parquet``; with ``--out``: both under it.
    Outcomes are drawn apart from ``raw.orders`` (they add no orders).
    """
    import datetime as dt

    from clv import features, ingest
    from clv.config import load_settings
    from clv.data import synthetic

    sent = spec.as_of_date - dt.timedelta(days=args.effects_sent_days)
    needed = ["customer_id", "recency_days", "tenure_days",
              *[f"spend_p{k:02d}" for k in range(1, 13)]]
    feats = features.customer_features(orders, sent).select(*needed).toPandas()
    responses = synthetic.randomised_campaign_responses(feats, sent, args.seed)
    truth = synthetic.true_effects(feats)
    if args.out is not None:
        folder = args.out
        responses.to_parquet(folder / "effects_campaign_responses.parquet", index=False)
        out = {"effects_responses_path": str(folder / "effects_campaign_responses.parquet")}
    else:
        folder = load_settings().state_dir / "synthetic"
        out = {"effects_load": ingest.load_campaign_responses(spark, responses, args.run_id)}
    folder.mkdir(parents=True, exist_ok=True)
    truth_path = folder / f"true-effects-{sent.isoformat()}.parquet"
    truth.to_parquet(truth_path, index=False)
    return {**out, "effects_sent_date": sent.isoformat(), "true_effects": str(truth_path),
            "effects_customers": len(feats)}


if __name__ == "__main__":
    sys.exit(main())
