"""Spark job: customer features at an as-of date, and out-of-time training examples.

Extract ``raw.orders`` -> transform (:mod:`clv.features`, pure) -> load
``features.customer_features`` and ``features.training_examples`` (one partition
each, replaced atomically). The DAG's ``build_features`` task runs the same code
in-process; this file is the entry point for running it on a cluster:

    spark-submit --master spark://host:7077 jobs/build_features.py \\
        --as-of-date 1998-07-01 --horizon-days 180 --run-id manual-1

or locally: ``.venv/bin/python jobs/build_features.py --as-of-date 1998-07-01``.
The master comes from ``CLV_SPARK_MASTER`` unless spark-submit sets one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys

from clv.config import DEFAULT_HORIZON_DAYS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of-date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--horizon-days", type=int, default=DEFAULT_HORIZON_DAYS)
    parser.add_argument("--run-id", default="spark-submit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from clv import pipeline

    result = pipeline.build_features(args.as_of_date, args.horizon_days, args.run_id)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
