"""XGBoost's exact TreeSHAP (``pred_contribs``), computed once per split pattern of a tree.

Within one tree, the TreeSHAP values of a row depend on nothing but the way the row goes
at each of the tree's splits: left, right, or its default way when the value is missing.
TreeSHAP walks every branch of the tree and, at each split, asks only that question of
the row. Rows that answer every split of a tree alike (a *pattern*) therefore get the
very same contributions from it, bit for bit. A depth-4 tree has at most 15 splits, and
the 500,000 customers explained at 10M orders fall into a few hundred patterns per tree
(median 289, at most 1,167 over the 262 trees of that run's model).

So, for each tree: every row's pattern is read from the tree's own splits (numpy, the
comparison XGBoost makes: ``value < threshold`` in float32, missing to the default
side); XGBoost computes the exact contributions of that one tree (the booster sliced to
it) for one row of each pattern; every row gets its pattern's values. The trees are
added in XGBoost's order and in its float32, so the result is XGBoost's
``pred_contribs`` exactly (tests/test_treeshap.py compares them bit for bit, missing
values and values on a threshold included). At 10M orders: 5.1 s on one core against
96.6 s on two for the same 500,000 x 34 contributions.

Where the shortcut does not apply (:func:`tree_splits` returns None: not a plain
single-output ``gbtree``, categorical splits, a tree of more than :data:`MAX_SPLITS`
splits, infinite inputs, columns not in the booster's order), the caller asks XGBoost
for the whole matrix as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: A tree's pattern is an int64 of one bit per split.
MAX_SPLITS = 62
#: Up to this many splits, patterns are found through a table of 2**splits entries
#: (4 MiB at 20); past it, by sorting the rows' patterns.
_TABLE_SPLITS = 20


@dataclass(frozen=True)
class TreeSplits:
    """One tree's splits: input column, threshold, and whether a missing value goes right;
    ``tree`` is the tree's index in the booster."""

    tree: int
    feature: np.ndarray
    threshold: np.ndarray  # float32, as XGBoost compares
    missing_right: np.ndarray


def tree_splits(booster: Any, iteration_range: tuple[int, int],
                columns: list[str]) -> list[TreeSplits] | None:
    """The splits of each tree in ``iteration_range`` ((0, 0): every tree), or None
    when the per-pattern computation does not apply to this booster and ``columns``."""
    names = booster.feature_names
    if names is not None and list(names) != list(columns):
        return None
    learner = json.loads(booster.save_raw(raw_format="json"))["learner"]
    gbm = learner["gradient_booster"]
    params = learner["learner_model_param"]
    if (gbm.get("name") != "gbtree" or int(params.get("num_class", 0)) > 1
            or int(params.get("num_target", 1)) > 1
            or int(gbm["model"]["gbtree_model_param"].get("num_parallel_tree", 1)) != 1):
        return None  # one tree per iteration, one output: slicing by tree is exact
    trees = gbm["model"]["trees"]
    start, stop = iteration_range
    found = []
    for index, tree in enumerate(trees[start:stop or len(trees)], start=start):
        if any(tree.get("split_type", ())):  # categorical splits
            return None
        inner = np.flatnonzero(np.asarray(tree["left_children"]) != -1)
        if len(inner) > MAX_SPLITS:
            return None
        found.append(TreeSplits(
            tree=index,
            feature=np.asarray(tree["split_indices"], dtype=np.int64)[inner],
            threshold=np.asarray(tree["split_conditions"], dtype=np.float64)[inner]
            .astype(np.float32),
            missing_right=~np.asarray(tree["default_left"], dtype=bool)[inner]))
    return found


def _patterns(columns: np.ndarray, missing: dict[int, np.ndarray], splits: TreeSplits
              ) -> np.ndarray:
    """Each row's way through the tree's splits, one bit per split (1 = right)."""
    code = np.zeros(columns.shape[1], dtype=np.int64)
    for bit, (f, threshold, missing_right) in enumerate(
            zip(splits.feature, splits.threshold, splits.missing_right, strict=True)):
        right = ~(columns[f] < threshold)  # NaN < t is False: right, unless missing
        if f in missing:
            right = np.where(missing[f], missing_right, right)
        code |= right.astype(np.int64) << bit
    return code


def _one_row_per_pattern(code: np.ndarray, n_splits: int) -> tuple[np.ndarray, np.ndarray]:
    """(a row of each distinct pattern, each row's pattern as an index into them)."""
    if n_splits > _TABLE_SPLITS:
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
        return first, inverse
    table = np.full(1 << n_splits, -1, dtype=np.int64)
    table[code] = np.arange(len(code))  # one row of each pattern (whichever is written last)
    rows = table[table >= 0]
    table[code[rows]] = np.arange(len(rows))
    return rows, table[code]


def _columns(x: pd.DataFrame) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """``x`` as float32 columns, each contiguous (the dtype XGBoost compares in), and the
    missing rows of each column that has any."""
    columns = np.ascontiguousarray(x.to_numpy(dtype=np.float32).T)
    return columns, {f: m for f, m in enumerate(np.isnan(columns)) if m.any()}


def pattern_counts(splits: list[TreeSplits], x: pd.DataFrame) -> list[int]:
    """How many distinct split patterns the rows of ``x`` make in each tree (what XGBoost
    is asked to compute per tree instead of every row)."""
    columns, missing = _columns(x)
    return [len(_one_row_per_pattern(_patterns(columns, missing, tree), len(tree.feature))[0])
            for tree in splits]


def contributions(booster: Any, splits: list[TreeSplits], x: pd.DataFrame
                  ) -> np.ndarray | None:
    """XGBoost's ``pred_contribs`` of ``x`` over the trees ``splits`` describe, without the
    bias column: (rows, columns) float32. None when ``x``
    holds an infinite value (XGBoost's own handling of those is left to it)."""
    import xgboost as xgb

    names = list(x.columns)
    columns, missing = _columns(x)
    if np.isinf(columns).any():
        return None
    if not len(x):
        return np.zeros((0, len(names)), dtype=np.float32)
    total = np.zeros(columns.shape, dtype=np.float32)
    for tree in splits:
        rows, pattern = _one_row_per_pattern(_patterns(columns, missing, tree),
                                             len(tree.feature))
        one_tree = booster[tree.tree:tree.tree + 1]
        values = one_tree.predict(xgb.DMatrix(columns[:, rows].T, feature_names=names),
                                  pred_contribs=True)[:, :-1]
        # the features the tree splits on; the others' contributions are exactly 0
        for f in np.flatnonzero((values != 0).any(axis=0)):
            total[f] += values[:, f][pattern]  # float32, tree after tree, as XGBoost adds
    return np.ascontiguousarray(total.T)
