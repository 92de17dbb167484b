"""The one seeded row sample every capped read and fit takes (learning, holdout, ZILN)."""

from __future__ import annotations

import numpy as np

#: Seed of the samples (the same customers on every re-run of a date).
SAMPLE_SEED = 42


def sample_positions(n: int, max_rows: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Positions of the rows a seeded sample of ``max_rows`` out of ``n`` keeps, in
    order; every position when ``max_rows`` is 0 or at least ``n``."""
    if not max_rows or n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
