"""Does each optional source raise churn ROC AUC? Figures over seeds, informative vs noise.

    PYTHONPATH=src python bench/bench_sources.py [--customers 3000] [--seeds 5] [--horizon 90]

For each seed, the synthetic orders of :mod:`clv.synthetic` with the reviews,
customers and events of :mod:`clv.data.synthetic.sources`, once informative (drawn from
the latents that drive churn) and once noise (independent of them); the orders and
the labels are the same in both. Prints the out-of-time churn ROC AUC of the
XGBoost churn model with orders only, with each source and with all of them
(:mod:`clv.models.source_evidence`), and the gain over orders only (mean, std, min, max
over seeds): the std of the gain is the seed-to-seed noise the test's margins
are set against. Then the sentiment figures on the Olist sample's review texts.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from clv.data.synthetic import orders as syn
from clv.data.synthetic import sources as ss
from clv.models.source_evidence import churn_auc_by_variant, summarise

OLIST_REVIEWS = "olist_sample/olist_order_reviews_dataset.csv.gz"


def olist_sentiment() -> None:
    """Spearman correlation of sentiment with the review score, and the status shares."""
    import os
    from pathlib import Path

    from clv.features.sentiment import score_texts

    path = Path(os.environ.get("CLV_SHARED_DATA", "../shared/data")) / OLIST_REVIEWS
    reviews = pd.read_csv(path)
    text = reviews["review_comment_message"]
    scored = score_texts(text.tolist())
    has_text = text.notna() & text.str.strip().ne("")
    status = scored["sentiment_status"]
    ok = status.eq("scored").to_numpy()
    rho = scored["sentiment"][ok].corr(reviews["review_score"][ok], method="spearman")
    print(f"\nOlist sample: {len(reviews)} reviews, {int(has_text.sum())} with a message")
    print("status of all reviews:", status.value_counts().to_dict())
    print(f"unknown among texts: {1 - ok[has_text.to_numpy()].mean():.4f}  "
          f"(unsupported/undetermined language or no letter)")
    print(f"Spearman(sentiment, score) over {ok.sum()} scored texts: {rho:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--horizon", type=int, default=90)
    args = ap.parse_args()
    from clv.data.spark import get_spark

    spark = get_spark("bench-sources")
    for informative in (True, False):
        rows = []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            spec = syn.SyntheticSpec(n_customers=args.customers, seed=seed)
            tables = ss.simulate_sources(spec, ss.SourceSpec(informative=informative))
            rows.append(churn_auc_by_variant(spark, tables, spec.as_of_date, args.horizon))
            print(f"{'informative' if informative else 'noise'} seed {seed}: "
                  + " ".join(f"{k}={v:.4f}" for k, v in rows[-1].items())
                  + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
        print(f"\n{'INFORMATIVE' if informative else 'NOISE'} sources, {args.customers} "
              f"customers, horizon {args.horizon} d, {args.seeds} seeds:")
        print(summarise(rows).to_string(), "\n", flush=True)
    olist_sentiment()


if __name__ == "__main__":
    main()
