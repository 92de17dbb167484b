"""Issue #22's single-node limits: the learning sample and its setting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.config import MAX_TRAIN_ROWS, max_train_rows
from clv.models.training.splits import learning_sample


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": np.arange(n) * 3, "x": np.arange(n, dtype=float)})


def test_a_frame_under_the_cap_is_returned_whole():
    frame = _frame(10)
    got = learning_sample(frame, max_rows=10)
    pd.testing.assert_frame_equal(got, frame)
    assert got.attrs["n_offered_rows"] == 10
    assert len(learning_sample(_frame(10), max_rows=0)) == 10  # 0 = no cap


def test_a_larger_frame_gives_a_seeded_sample_in_the_original_order():
    got = learning_sample(_frame(1000), max_rows=100)
    again = learning_sample(_frame(1000), max_rows=100)
    assert len(got) == 100 and got.attrs["n_offered_rows"] == 1000
    pd.testing.assert_frame_equal(got, again)  # the same customers on a re-run
    ids = got["customer_id"].to_numpy()
    assert (np.diff(ids) > 0).all()  # original (customer) order kept
    assert set(ids) <= set(_frame(1000)["customer_id"])
    # the rows keep their own values: x is customer_id / 3
    np.testing.assert_array_equal(got["x"].to_numpy(), ids / 3)
    # a random sample, not the first rows: it reaches into the last tenth
    assert ids.max() > 900 * 3


def test_the_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("CLV_MAX_TRAIN_ROWS", raising=False)
    assert max_train_rows() == MAX_TRAIN_ROWS
    monkeypatch.setenv("CLV_MAX_TRAIN_ROWS", "7")
    assert max_train_rows() == 7
    assert len(learning_sample(_frame(20))) == 7
    monkeypatch.setenv("CLV_MAX_TRAIN_ROWS", "lots")
    with pytest.raises(ValueError, match="CLV_MAX_TRAIN_ROWS"):
        max_train_rows()


def test_the_holdout_cap_comes_from_the_environment(monkeypatch):
    from clv.config import MAX_EVAL_ROWS, max_eval_rows

    monkeypatch.delenv("CLV_MAX_EVAL_ROWS", raising=False)
    assert max_eval_rows() == MAX_EVAL_ROWS
    monkeypatch.setenv("CLV_MAX_EVAL_ROWS", "0")
    assert max_eval_rows() == 0
    monkeypatch.setenv("CLV_MAX_EVAL_ROWS", "-3")
    with pytest.raises(ValueError, match="CLV_MAX_EVAL_ROWS"):
        max_eval_rows()


def test_the_ziln_sample_read_from_the_warehouse_is_the_one_the_network_would_take():
    """train_ziln_model reads only ZILN's learning sample (splits.sample_positions with
    the network's seed): the same rows ziln.learning_sample takes from the whole split."""
    from clv.models import ziln
    from clv.models.training.splits import sample_positions

    frame = _frame(1000)
    config = ziln.ZilnConfig(max_learn_rows=100, seed=7)
    whole, _ = ziln.learning_sample(frame, frame["x"].to_numpy(), config)
    np.testing.assert_array_equal(
        whole["customer_id"].to_numpy(),
        frame["customer_id"].to_numpy()[sample_positions(1000, 100, seed=7)])


def test_the_customers_explained_are_the_highest_predicted_clvs():
    from clv.models.reasons import customers_to_explain

    scores = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "e"],
                           "predicted_clv": [5.0, 9.0, 5.0, 1.0, 7.0]})
    assert customers_to_explain(scores, 0) is None  # 0 = everyone
    assert customers_to_explain(scores, 5) is None
    # ties broken by customer_id: a before c; the ids come in the scores' order
    assert customers_to_explain(scores, 3).tolist() == ["a", "b", "e"]
    assert customers_to_explain(scores, 2).tolist() == ["b", "e"]


def test_the_customers_explained_match_a_full_sort_with_ties_and_missing_values():
    """The cutoff-based choice against the reference: every customer sorted by predicted
    CLV (descending) then customer_id, the first ``limit`` taken; values with many ties,
    ids in no particular order, and a missing prediction (sorted last)."""
    from clv.models.reasons import customers_to_explain

    rng = np.random.default_rng(3)
    n = 2000
    scores = pd.DataFrame({"customer_id": [f"c{i:05d}" for i in rng.permutation(n)],
                           "predicted_clv": rng.integers(0, 40, n).astype(float)})
    for frame in (scores, scores.assign(predicted_clv=scores["predicted_clv"].where(
            np.arange(n) != 7))):
        reference = frame.sort_values(["predicted_clv", "customer_id"],
                                      ascending=[False, True], kind="mergesort")
        for limit in (1, 37, 50, 1000, 1999):
            got = customers_to_explain(frame, limit)
            assert len(got) == limit
            assert set(got) == set(reference["customer_id"].head(limit))
            # in the scores' row order
            assert got.tolist() == [c for c in frame["customer_id"] if c in set(got)]
