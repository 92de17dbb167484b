"""One remembered result per computation, keyed by the content it was computed from.

Several steps compute the same thing on the same data one after another: the training
tasks and ``evaluate`` fit the same BTYD baseline on one holdout, the level anchor of each
XGBoost version refits the same BTYD model, and the spend version, churn version and
interval code of one ZILN network predict the same customers. A :class:`LastResult` keeps
the last key's result only (the process's current data), so nothing accumulates.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")


def content_digest(arrays: Iterable[Any], *labels: Any) -> str:
    """Digest of ``labels`` (JSON) and of each array's values as float64, in order; one
    array at a time, so a frame's columns need no joint copy."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(labels, sort_keys=True, default=str).encode())
    for arr in arrays:
        digest.update(np.ascontiguousarray(arr, dtype=float).tobytes())
    return digest.hexdigest()


class LastResult(Generic[T]):
    """The result for the last key asked for; a new key drops the old result first.

    Safe across threads (the head starts of :mod:`clv.pipeline.head_start` train beside
    the tasks): one computes at a time, and a caller asking for the key being computed
    waits and gets its result."""

    def __init__(self) -> None:
        self._key: Any = None
        self._value: T | None = None
        self._held = False
        self._lock = threading.RLock()

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        with self._lock:
            if not self._held or key != self._key:
                self.clear()  # free the old result before computing the new one
                self._value, self._key, self._held = compute(), key, True
            return self._value  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self._key, self._value, self._held = None, None, False
