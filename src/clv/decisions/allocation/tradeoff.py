"""The trade-off between short-term revenue and lifetime value as ``clv_weight`` moves.

:func:`frontier` solves the allocation at each weight of a grid (the candidates
prepared once); :func:`plot_frontier` draws it, one label per distinct plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from clv.decisions.allocation.candidates import _Candidates
from clv.decisions.allocation.plan import (
    DEFAULT_EXACT_MAX_CANDIDATES,
    DEFAULT_TIME_LIMIT_S,
    ShareBounds,
    _allocate,
    _check_budget,
    _check_threshold,
    _constraint_codes,
    prepared,
)

#: The frontier's default grid: clv_weight = 0, 0.1, ..., 1.
DEFAULT_LAMBDAS = tuple(float(x) for x in np.linspace(0.0, 1.0, 11))


def frontier(
    candidates: pd.DataFrame | _Candidates,
    budget: float,
    lambdas: Sequence[float] | np.ndarray = DEFAULT_LAMBDAS,
    segment_share_bounds: ShareBounds | None = None,
    action_capacity: Mapping[str, int] | None = None,
    exact_max_candidates: int = DEFAULT_EXACT_MAX_CANDIDATES,
    min_net_value: float | None = None,
) -> pd.DataFrame:
    """Short-term revenue vs lifetime value of the best plan at each clv_weight.

    Args:
        candidates: As for :func:`allocate` (a DataFrame, or already prepared).
        budget: Total cost allowed.
        lambdas: The clv_weight values (weights on incr_clv) to solve for.
        segment_share_bounds: As for :func:`allocate`.
        action_capacity: As for :func:`allocate`.
        exact_max_candidates: As for :func:`allocate`.
        min_net_value: As for :func:`allocate` (applied at each clv_weight); the
            candidates' ``eligible`` column is honoured.

    Returns:
        One row per clv_weight: clv_weight, expected_incremental_revenue,
        expected_incremental_clv, expected_net_revenue (revenue - spent: what clv_weight
        trades away, non-increasing in it for exact plans even where the budget does
        not bind), spent, objective, lp_bound, gap, method, budget.
    """
    budget = _check_budget(budget)
    weights = [float(w) for w in lambdas]
    if any(not 0 <= w <= 1 for w in weights):
        raise ValueError(f"every clv_weight in lambdas must lie in [0, 1], got {weights}")
    c = prepared(candidates)  # once for every clv_weight
    shares, caps = _constraint_codes(c, segment_share_bounds, action_capacity)
    rows = []
    for clv_weight in weights:
        r = _allocate(c, budget, clv_weight, shares, caps, exact_max_candidates,
                      DEFAULT_TIME_LIMIT_S, _check_threshold(min_net_value))
        rows.append({
            "clv_weight": clv_weight,
            "expected_incremental_revenue": math.fsum(c.numbers[r.picked, 2]),
            "expected_incremental_clv": math.fsum(c.numbers[r.picked, 1]),
            "expected_net_revenue": math.fsum(c.numbers[r.picked, 2]) - r.spent,
            "spent": r.spent, "objective": r.objective,
            "lp_bound": r.lp_bound, "gap": r.gap, "method": r.method,
            "budget": budget,
        })
    return pd.DataFrame(rows)


def _points_with_weights(frontier_df: pd.DataFrame) -> dict[tuple[float, float], list[float]]:
    """Distinct frontier points (to 0.1% of the axes' spans) -> the clv_weights giving them."""
    x, y = frontier_df["expected_incremental_revenue"], frontier_df["expected_incremental_clv"]
    tol_x = max(float(x.max() - x.min()), 1e-9) * 1e-3
    tol_y = max(float(y.max() - y.min()), 1e-9) * 1e-3
    points: dict[tuple[float, float], list[float]] = {}
    for clv_weight, xi, yi in sorted(zip(frontier_df["clv_weight"], x, y, strict=True)):
        key = next((k for k in points if abs(k[0] - xi) <= tol_x and abs(k[1] - yi) <= tol_y),
                   (float(xi), float(yi)))
        points.setdefault(key, []).append(float(clv_weight))
    return points


def plot_frontier(frontier_df: pd.DataFrame, path: str | Path) -> Path:
    """Write the frontier as a PNG: revenue (x) vs CLV (y), each point labelled λ (its clv_weight).

    Args:
        frontier_df: Output of :func:`frontier`.
        path: Where to write the PNG (parent folders are created).

    Returns:
        The path written.
    """
    # Figure + Agg canvas directly: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x, y = frontier_df["expected_incremental_revenue"], frontier_df["expected_incremental_clv"]
    ax.plot(x, y, marker="o")
    # One label per distinct point: at a small budget every clv_weight picks the same plan,
    # and eleven labels on one point were unreadable (#21).
    # Labels alternate above and below the curve, so neighbours do not run into each other.
    for i, ((xi, yi), lams) in enumerate(_points_with_weights(frontier_df).items()):
        label = f"λ={lams[0]:.1f}" if len(lams) == 1 else f"λ={lams[0]:.1f}–{lams[-1]:.1f}"
        ax.annotate(label, (xi, yi), textcoords="offset points",
                    xytext=(5, 6) if i % 2 == 0 else (5, -13), fontsize=8)
    ax.margins(0.15)  # a single point sits in the middle, not on the frame
    if x.nunique() == 1 and y.nunique() == 1:  # a degenerate axis would be 0-wide
        ax.set_xlim(x.iat[0] - max(abs(x.iat[0]), 1) * 0.2, x.iat[0] + max(abs(x.iat[0]), 1) * 0.2)
        ax.set_ylim(y.iat[0] - max(abs(y.iat[0]), 1) * 0.2, y.iat[0] + max(abs(y.iat[0]), 1) * 0.2)
    ax.set_xlabel("expected incremental short-term revenue (30 days)")
    ax.set_ylabel("expected incremental CLV (horizon)")
    ax.set_title(f"Allocation frontier, budget {frontier_df['budget'].iat[0]:,.0f}")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()  # the axis labels inside the image at any tick width
    fig.savefig(path, format="png")
    return path
