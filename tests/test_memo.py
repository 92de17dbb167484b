"""clv.models.memo: one remembered result, keyed by content (BTYD baseline, level anchor,
ZILN logits use it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from clv.models.memo import LastResult, content_digest


def test_the_digest_follows_values_order_and_labels_not_containers():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([4, 5], dtype=np.int64)
    d = content_digest([a, b], "label", 3)
    assert d == content_digest([pd.Series(a), b.astype(float)], "label", 3)
    assert d != content_digest([b, a], "label", 3)  # order
    assert d != content_digest([a, b], "label", 4)  # labels
    changed = a.copy()
    changed[1] = np.nextafter(2.0, 3.0)  # the smallest change of one value
    assert d != content_digest([changed, b], "label", 3)


def test_only_the_last_key_is_kept_and_computed_once():
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            return value * 10
        return run

    memo: LastResult[int] = LastResult()
    assert memo.get("a", compute(1)) == 10
    assert memo.get("a", compute(2)) == 10  # remembered: not computed again
    assert memo.get("b", compute(3)) == 30
    assert memo.get("a", compute(4)) == 40  # "a" was dropped for "b"
    assert calls == [1, 3, 4]
    memo.clear()
    assert memo.get("a", compute(5)) == 50 and calls[-1] == 5


def test_a_remembered_none_is_not_recomputed():
    calls = []
    memo: LastResult[None] = LastResult()
    for _ in range(3):
        assert memo.get("k", lambda: calls.append(1)) is None
    assert calls == [1]


def test_threads_asking_for_the_key_being_computed_wait_for_it_and_compute_nothing():
    """A head start trains in a thread beside the tasks (clv.pipeline.head_start): a second
    caller of the key in computation gets that result, and no caller gets another key's."""
    import threading

    memo: LastResult[str] = LastResult()
    started, release = threading.Event(), threading.Event()
    calls, got = [], {}

    def slow():
        calls.append("a")
        started.set()
        release.wait(30)
        return "A"

    def ask(name, key, compute):
        got[name] = memo.get(key, compute)

    first = threading.Thread(target=ask, args=("first", "a", slow))
    first.start()
    assert started.wait(30)
    second = threading.Thread(target=ask, args=("second", "a", lambda: calls.append("a2")))
    other = threading.Thread(target=ask, args=("other", "b", lambda: calls.append("b") or "B"))
    second.start()
    other.start()
    while_computing = []

    def finish():
        while_computing.extend(calls)
        release.set()

    threading.Timer(0.5, finish).start()
    for t in (first, second, other):
        t.join(30)
    assert while_computing == ["a"]  # the others waited
    assert got["first"] == "A" and got["other"] == "B"
    # "A" when it asked before "b" replaced it, else computed again: never "B"
    assert (got["second"], calls.count("a2")) in (("A", 0), (None, 1))
