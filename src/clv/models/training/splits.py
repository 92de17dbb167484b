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
from clv.models.sampling import SAMPLE_SEED, sample_positions

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)


def load_split(as_of_date: dt.date, split: str, settings: Settings | None = None,
               max_rows: int = 0, seed: int = SAMPLE_SEED) -> pd.DataFrame:
    """One split (``train`` or ``eval``) of the run's training examples, by customer_id;
    with ``max_rows``, the seeded sample :func:`sample_positions` picks (taken before the
    rows become pandas). ``attrs["n_offered_rows"]``: the split's size.

    Read one split at a time, sorted before it becomes pandas: at 2.57M customers
    per split, reading both, filtering and sorting them held 6.5 GiB at peak.
    """
    offered = []

    def keep(n: int) -> np.ndarray:
        offered.append(n)
        return sample_positions(n, max_rows, seed)

    frame = warehouse.read_partition_pandas(TRAINING_TABLE, as_of_date, settings,
                                            where={"split": split}, order_by=["customer_id"],
                                            keep=keep if max_rows else None)
    frame.attrs["n_offered_rows"] = offered[0] if offered else len(frame)
    if offered and offered[0] > len(frame):
        log.info("%s %s: a seeded sample of %d of %d customers", TRAINING_TABLE, split,
                 len(frame), offered[0])
    return frame


def _split_with_rows(as_of_date: dt.date, split: str, settings: Settings | None,
                     max_rows: int = 0, seed: int = SAMPLE_SEED) -> pd.DataFrame:
    """:func:`load_split`, refusing an empty split with the table, date and likely cause."""
    frame = load_split(as_of_date, split, settings, max_rows, seed)
    if frame.empty:
        raise ValueError(f"{TRAINING_TABLE} as_of_date={as_of_date}: no {split} rows; the "
                         f"{split} cutoff needs customers with history (is the horizon too "
                         "long for the data?)")
    return frame


def _learning_split(as_of_date: dt.date, settings: Settings | None,
                    max_rows: int = 0, seed: int = SAMPLE_SEED) -> pd.DataFrame:
    return _split_with_rows(as_of_date, "train", settings, max_rows, seed)


def learning_split(as_of_date: dt.date, settings: Settings | None = None) -> pd.DataFrame:
    """The learning customers the models learn from: all of them, or the seeded sample
    of :func:`clv.config.max_train_rows` (read as such: the rest never become pandas)."""
    return _learning_split(as_of_date, settings, max_train_rows())


def _holdout(as_of_date: dt.date, settings: Settings | None) -> pd.DataFrame:
    return holdout(as_of_date, settings)


def holdout(as_of_date: dt.date, settings: Settings | None = None) -> pd.DataFrame:
    """The eval split every model is judged on: all of it, or the same seeded sample of
    :func:`clv.config.max_eval_rows` customers for every version and baseline of the run
    (``attrs["n_offered_rows"]`` keeps the split's size)."""
    return _split_with_rows(as_of_date, "eval", settings, max_eval_rows())


def learning_sample(frame: pd.DataFrame, max_rows: int | None = None,
                    what: str = "learning") -> pd.DataFrame:
    """``frame``, or a seeded random sample of ``max_rows`` of its rows (default
    :func:`clv.config.max_train_rows`) in their original order when it has more; the
    result's ``attrs["n_offered_rows"]`` keeps how many rows were offered."""
    limit = max_train_rows() if max_rows is None else max_rows
    offered = len(frame)
    if limit and offered > limit:
        frame = frame.iloc[sample_positions(offered, limit)].reset_index(drop=True)
        log.info("%s: a seeded sample of %d of %d customers (CLV_MAX_%s_ROWS)", what, limit,
                 offered, "EVAL" if what == "holdout" else "TRAIN")
    frame.attrs["n_offered_rows"] = offered
    return frame
