"""The run's training examples, one split at a time: ``train`` (the learning cutoff)
and ``eval`` (the later, disjoint holdout; :func:`clv.features.backtest_cutoffs`)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

import numpy as np

from clv.config import Settings, max_eval_rows, max_train_rows
from clv.data import warehouse
from clv.data.catalog import EXAMPLES as TRAINING_TABLE

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)
#: Seed of the learning sample (the same customers on every re-run of a date).
SAMPLE_SEED = 42


def load_split(as_of_date: dt.date, split: str, settings: Settings | None = None
               ) -> pd.DataFrame:
    """One split (``train`` or ``eval``) of the run's training examples, by customer_id.

    Read one split at a time, sorted before it becomes pandas: at 2.57M customers
    per split, reading both, filtering and sorting them held 6.5 GiB at peak.
    """
    return warehouse.read_partition_pandas(TRAINING_TABLE, as_of_date, settings,
                                           where={"split": split}, order_by=["customer_id"])


def _split_with_rows(as_of_date: dt.date, split: str, settings: Settings | None
                     ) -> pd.DataFrame:
    """:func:`load_split`, refusing an empty split with the table, date and likely cause."""
    frame = load_split(as_of_date, split, settings)
    if frame.empty:
        raise ValueError(f"{TRAINING_TABLE} as_of_date={as_of_date}: no {split} rows; the "
                         f"{split} cutoff needs customers with history (is the horizon too "
                         "long for the data?)")
    return frame


def _learning_split(as_of_date: dt.date, settings: Settings | None) -> pd.DataFrame:
    return _split_with_rows(as_of_date, "train", settings)


def _holdout(as_of_date: dt.date, settings: Settings | None) -> pd.DataFrame:
    return holdout(as_of_date, settings)


def holdout(as_of_date: dt.date, settings: Settings | None = None) -> pd.DataFrame:
    """The eval split every model is judged on: all of it, or the same seeded sample of
    :func:`clv.config.max_eval_rows` customers for every version and baseline of the run
    (``attrs["n_offered_rows"]`` keeps the split's size)."""
    return learning_sample(_split_with_rows(as_of_date, "eval", settings), max_eval_rows(),
                           what="holdout")


def learning_sample(frame: pd.DataFrame, max_rows: int | None = None,
                    what: str = "learning") -> pd.DataFrame:
    """``frame``, or a seeded random sample of ``max_rows`` of its rows (default
    :func:`clv.config.max_train_rows`) in their original order when it has more; the
    result's ``attrs["n_offered_rows"]`` keeps how many rows were offered."""
    limit = max_train_rows() if max_rows is None else max_rows
    offered = len(frame)
    if limit and offered > limit:
        keep = np.sort(np.random.default_rng(SAMPLE_SEED).choice(offered, size=limit,
                                                                 replace=False))
        frame = frame.iloc[keep].reset_index(drop=True)
        log.info("%s: a seeded sample of %d of %d customers (CLV_MAX_%s_ROWS)", what, limit,
                 offered, "EVAL" if what == "holdout" else "TRAIN")
    frame.attrs["n_offered_rows"] = offered
    return frame
