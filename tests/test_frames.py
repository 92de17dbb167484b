"""clv.data.frames.join_one_to_one: the same frame as pandas' one-to-one merge, every case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.data.frames import join_one_to_one


def _pair(ids_left, ids_right):
    left = pd.DataFrame({"customer_id": ids_left, "x": np.arange(len(ids_left), dtype=float)},
                        index=np.arange(len(ids_left)) + 10)  # not a RangeIndex from 0
    right = pd.DataFrame({"customer_id": ids_right,
                          "segment": [f"s{i % 3}" for i in range(len(ids_right))],
                          "cluster": np.arange(len(ids_right)) % 4})
    return left, right


@pytest.mark.parametrize("ids_left, ids_right", [
    (["a", "b", "c", "d"], ["a", "b", "c", "d"]),  # aligned: the column copy
    (["a", "b", "c", "d"], ["d", "c", "b", "a"]),  # another order
    (["b", "a", "c", "d"], ["b", "a", "c", "d"]),  # same order, not ascending
    (["a", "b", "c", "d"], ["a", "c", "d", "e"]),  # other keys
    (["a", "b", "c"], ["a", "b", "c", "d"]),  # fewer on the left
    (["a", None, "c"], ["a", None, "c"]),  # a missing id
    ([], []),
])
@pytest.mark.parametrize("how", ["inner", "left"])
def test_the_join_is_pandas_one_to_one_merge(ids_left, ids_right, how):
    left, right = _pair(ids_left, ids_right)
    expected = left.merge(right, on="customer_id", how=how, validate="one_to_one")
    pd.testing.assert_frame_equal(join_one_to_one(left, right, how=how), expected)


def test_duplicates_and_shared_columns_get_pandas_errors_and_suffixes():
    left, right = _pair(["a", "a", "b"], ["a", "a", "b"])  # same order, a repeat
    with pytest.raises(pd.errors.MergeError, match="one-to-one"):
        join_one_to_one(left, right)
    left, right = _pair(["a", "b"], ["a", "b"])
    right["x"] = [7.0, 8.0]  # a column both hold: pandas' _x/_y names
    expected = left.merge(right, on="customer_id", validate="one_to_one")
    pd.testing.assert_frame_equal(join_one_to_one(left, right), expected)
    assert {"x_x", "x_y"} <= set(expected.columns)


def test_repeated_holds_one_shared_object_where_np_full_makes_one_per_element():
    from clv.data.frames import repeated

    word = "".join(["pri", "or"])  # built at run time: not an interned constant
    shared = repeated(word, 1_000)
    assert shared.dtype == object and shared.shape == (1_000,)
    assert all(x is word for x in shared)
    assert len({id(x) for x in np.full(1_000, word, dtype=object)}) > 1  # why it exists
    assert repeated(word, 0).shape == (0,)


def test_by_customer_is_a_stable_sort_by_id_that_skips_sorted_input():
    from clv.data.frames import by_customer

    frame = pd.DataFrame({"customer_id": ["c", "a", "b"], "x": [3, 1, 2]}, index=[7, 8, 9])
    out = by_customer(frame)
    assert out["customer_id"].tolist() == ["a", "b", "c"] and out["x"].tolist() == [1, 2, 3]
    assert out.index.equals(pd.RangeIndex(3))
    ready = pd.DataFrame({"customer_id": ["a", "b"], "x": [1, 2]}, index=[5, 6])
    pd.testing.assert_frame_equal(by_customer(ready), ready.reset_index(drop=True))
