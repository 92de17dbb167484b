"""What each marketing action is expected to do to each customer, in absolute units.

An action moves a customer through up to two *channels* (see
:class:`clv.decisions.segments.Action`):

* ``incr_revenue``: extra revenue in the action's response window (money, per
  customer; the short-term channel);
* ``incr_retention``: change in the probability that the customer stays active
  (buys again) over the horizon (the long-term channel).

Effects are absolute amounts and probability changes, never multipliers: a
relative lift measured on one population, multiplied into another population's
spend, gave +800 per e-mail to large customers. Every row names its evidence:

* ``uplift_source``: ``own_experiment`` (a randomised campaign over this shop's
  customers), ``external_experiment`` (a randomised campaign over another
  population, e.g. Hillstrom's) or ``prior`` (the catalogue's assumption, with a
  stated low/high range);
* ``effect_method``: ``uplift_model`` (a per-customer T-learner on XGBoost),
  ``segment_average`` (the difference in means of the customer's cell), or ``prior``.

**Covariates: one mapping, here.** An experiment and the shop meet on three
pre-treatment covariates defined as Hillstrom defines them
(:func:`effect_covariates`): ``recency_months`` (months since the last purchase,
1..12), ``history`` (spend in the past year) and ``newbie`` (first purchase within
the past year). For the shop they come from :mod:`clv.features` at the send date
(own campaigns) or at the as-of date (scoring): ``ceil(recency_days / 30)`` capped
to 1..12, the sum of the twelve 30-day spend periods (360 days), and
``tenure_days <= 365``. Hillstrom's other columns (channel, zip code, men's /
women's merchandise) have no counterpart in an orders table and are not used.

**Cells.** The segment-average estimate and the bounds of every per-customer
estimate are per *cell*: the past-year spend bands of
:data:`clv.decisions.uplift.HISTORY_BANDS` (about 4,000+ customers per Hillstrom arm each).

**Model or averages.** Per tested action, a T-learner (one XGBoost regressor per
arm, ``tau(x) = mu_treated(x) - mu_control(x)``) and the cell averages are both
fitted on a seeded random half of the campaign and compared on the other half by
the Qini coefficient (:func:`qini_coefficient`); the better one is used (refitted
on the whole campaign). Qini judges the ranking only, but the allocator compares effect
sizes across actions, so a model's estimates are also calibrated on the held-out half
(:func:`calibration_slope`): centred on the campaign's measured average effect, with
only the share of their spread that the held-out bands confirm.

**Honest transfer.** An effect measured on another population is clipped into its
cell's 95% interval (no customer is promised more than the cell's evidence
supports) and shrunk towards zero by the cell's precision: ``x est^2 / (est^2 +
se^2)`` (the posterior mean under a normal prior centred at zero with the
estimate's own scale), its interval likewise; a customer whose covariates lie
outside the range of the experiment's customers (e.g. no purchase in the past
year, which Hillstrom's customers all had) gets the least the cell supports, its
lower bound (never below zero), before the shrinkage. An effect from the shop's own
experiment is used as measured, with the cell's 95% half-width around it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from clv.decisions.segments import DEFAULT_ACTIONS, NO_ACTION, Action

__all__ = [
    "COVARIATES",
    "EFFECT_COLUMNS",
    "ActionEffect",
    "TLearner",
    "action_catalogue",
    "customer_effects",
    "effect_covariates",
    "fit_action_effect",
    "qini_coefficient",
    "qini_curve",
    "uplift_at_k",
]

#: The covariates an experiment and the shop share (Hillstrom's definitions).
COVARIATES = ("recency_months", "history", "newbie")
#: Columns of :func:`customer_effects`, in order.
EFFECT_COLUMNS = (
    "customer_id", "action", "incr_revenue", "incr_revenue_low", "incr_revenue_high",
    "incr_retention", "incr_retention_low", "incr_retention_high", "uplift_source",
    "effect_method",
)
OWN, EXTERNAL, PRIOR = "own_experiment", "external_experiment", "prior"
MODEL, AVERAGE = "uplift_model", "segment_average"
#: A campaign is the shop's own when at least this share of its customers are the
#: shop's customers at the send date; otherwise it was run on another population.
OWN_CAMPAIGN_MIN_SHARE = 0.5
SEED = 42
#: Fewest customers per arm of a cell for the cell's own estimate; smaller cells
#: take the campaign's overall estimate (at 1% conversion, 2,000 customers see 20).
MIN_CELL_ARM = 2_000
#: The T-learner learns from at most this many rows per arm (a seeded sample).
MAX_LEARN_ROWS = 200_000
Z95 = float(norm.ppf(0.975))
_XGB_PARAMS = dict(n_estimators=150, learning_rate=0.05, max_depth=3, min_child_weight=200,
                   subsample=0.8, tree_method="hist", random_state=SEED)


# --------------------------------------------------------------------------- covariates


def effect_covariates(features: pd.DataFrame) -> pd.DataFrame:
    """The shared covariates (``COVARIATES``) of customers from their :mod:`clv.features` row.

    Args:
        features: customer_id, recency_days, tenure_days, spend_p01..spend_p12.

    Returns:
        customer_id, recency_months (1..12), history (>= 0), newbie (0/1).
    """
    from clv.features import period_columns

    spend = [c for c in period_columns() if c.startswith("spend_")]
    needed = ["customer_id", "recency_days", "tenure_days", *spend]
    missing = [c for c in needed if c not in features.columns]
    if missing:
        raise ValueError(f"features are missing columns {missing} (effect covariates)")
    months = np.ceil(features["recency_days"].to_numpy(float) / 30.0)
    return pd.DataFrame({
        "customer_id": features["customer_id"].to_numpy(),
        "recency_months": np.clip(months, 1, 12),
        "history": np.clip(features[spend].to_numpy(float).sum(axis=1), 0.0, None),
        "newbie": (features["tenure_days"].to_numpy(float) <= 365).astype(float),
    })


def cell_of(history: np.ndarray) -> np.ndarray:
    """The cell (past-year spend band) of each customer."""
    from clv.decisions.uplift import HISTORY_BANDS

    edges = np.array([edge for edge, _ in HISTORY_BANDS])
    names = np.array([name for _, name in HISTORY_BANDS], dtype=object)
    return names[np.searchsorted(edges, np.asarray(history, float), side="right")]


# --------------------------------------------------------------------------- evaluation


def qini_curve(tau_hat: np.ndarray, treatment: np.ndarray, y: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve: customers targeted (share) vs incremental outcome gained.

    Customers are taken in decreasing ``tau_hat``; at each point the gain is
    ``Y_t(k) - Y_c(k) * N_t(k) / N_c(k)`` (treated outcome minus the control outcome
    scaled to the treated count), divided by the number of customers. Equal scores
    are taken together (the curve only has points between tie groups), so a
    ranking with ties is not credited with an order it does not have.

    Returns:
        (share targeted, gain per customer), both starting at 0.
    """
    tau_hat, treatment, y = (np.asarray(v, float) for v in (tau_hat, treatment, y))
    order = np.argsort(-tau_hat, kind="mergesort")
    t, yv, s = treatment[order], y[order], tau_hat[order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    nt, nc = np.cumsum(t)[ends], np.cumsum(1 - t)[ends]
    yt, yc = np.cumsum(yv * t)[ends], np.cumsum(yv * (1 - t))[ends]
    gain = yt - np.divide(yc * nt, nc, out=np.zeros_like(yc), where=nc > 0)
    n = len(y)
    return np.r_[0.0, (ends + 1) / n], np.r_[0.0, gain / n]


def qini_coefficient(tau_hat: np.ndarray, treatment: np.ndarray, y: np.ndarray) -> float:
    """Area between the Qini curve and the random-targeting line (trapezoids).

    Positive when the ranking puts responders first; 0 for a ranking no better than
    random; the units are the outcome's per customer.
    """
    x, gain = qini_curve(tau_hat, treatment, y)
    random_line = gain[-1] * x
    diff = gain - random_line
    return float(np.sum((diff[1:] + diff[:-1]) / 2.0 * np.diff(x)))


def uplift_at_k(tau_hat: np.ndarray, treatment: np.ndarray, y: np.ndarray,
                share: float = 0.3) -> float:
    """Difference in mean outcome, treated - control, among the top ``share`` by tau_hat."""
    tau_hat, treatment, y = (np.asarray(v, float) for v in (tau_hat, treatment, y))
    k = max(int(round(share * len(y))), 1)
    top = np.argsort(-tau_hat, kind="mergesort")[:k]
    t, yv = treatment[top], y[top]
    if t.sum() == 0 or (1 - t).sum() == 0:
        return float("nan")
    return float(yv[t == 1].mean() - yv[t == 0].mean())


# --------------------------------------------------------------------------- learners


@dataclass
class TLearner:
    """Conditional effect ``mu_treated(x) - mu_control(x)``, one XGBoost regressor per arm."""

    treated: Any = None
    control: Any = None
    columns: tuple[str, ...] = COVARIATES

    def fit(self, x: pd.DataFrame, treatment: np.ndarray, y: np.ndarray) -> TLearner:
        import xgboost as xgb

        from clv.models.device import xgboost_device

        device = xgboost_device()
        arms = {}
        for arm in (1, 0):
            rows = np.flatnonzero(treatment == arm)
            if len(rows) > MAX_LEARN_ROWS:
                rows = np.sort(np.random.default_rng(SEED + arm).choice(
                    rows, MAX_LEARN_ROWS, replace=False))
            model = xgb.XGBRegressor(objective="reg:squarederror", device=device, **_XGB_PARAMS)
            arms[arm] = model.fit(x.iloc[rows][list(self.columns)].astype("float32"), y[rows])
        self.treated, self.control = arms[1], arms[0]
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        frame = x[list(self.columns)].astype("float32")
        return (self.treated.predict(frame) - self.control.predict(frame)).astype(float)


def _cell_table(cells: np.ndarray, treatment: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Difference in means per cell (Welch 95% interval), plus an ``all`` row.

    A cell with fewer than ``MIN_CELL_ARM`` customers in an arm takes the ``all`` row.
    """
    frame = pd.DataFrame({"cell": cells, "t": treatment, "y": y})
    rows = []
    for cell, part in [("all", frame), *frame.groupby("cell", sort=True)]:
        yt, yc = part.loc[part["t"] == 1, "y"], part.loc[part["t"] == 0, "y"]
        if len(yt) < 2 or len(yc) < 2:
            continue
        est = float(yt.mean() - yc.mean())
        se = math.sqrt(yt.var() / len(yt) + yc.var() / len(yc))
        rows.append({"cell": cell, "n_treated": len(yt), "n_control": len(yc),
                     "effect": est, "se": se,
                     "own_estimate": cell == "all" or min(len(yt), len(yc)) >= MIN_CELL_ARM})
    table = pd.DataFrame(rows).set_index("cell")
    overall = table.loc["all"]
    for column in ("effect", "se"):  # small cells borrow the overall estimate
        table.loc[~table["own_estimate"], column] = overall[column]
    table["low"] = table["effect"] - Z95 * table["se"]
    table["high"] = table["effect"] + Z95 * table["se"]
    return table


def _cell_values(table: pd.DataFrame, cells: np.ndarray, column: str) -> np.ndarray:
    values = table[column].reindex(cells).to_numpy(float)
    return np.where(np.isnan(values), float(table.loc["all", column]), values)


@dataclass
class ActionEffect:
    """One action's measured revenue effect: the evidence, the chosen method, and its scores.

    Attributes:
        action: The action.
        campaign_id: The randomised campaign that measured it.
        source: ``own_experiment`` or ``external_experiment``.
        method: ``uplift_model`` or ``segment_average`` (the better Qini on the held-out half).
        cells: Per cell (and ``all``): n_treated, n_control, effect, se, low, high, shrink.
        model: The T-learner refitted on the whole campaign (logged and registered
            either way; used only when ``method`` is ``uplift_model``).
        qini: Held-out Qini coefficient per method; ``uplift_at_30``: the same for the top 30%.
        support: Per covariate, the (min, max) the experiment saw.
        curves: Held-out Qini curve per method (:func:`qini_curve`).
        calibration: ``slope`` (:func:`calibration_slope` of the learning-half model on
            the held-out half) and ``mean_prediction`` (the final model's mean over the
            campaign): a model estimate is the campaign's measured average effect plus
            ``slope`` x the model's deviation from its own mean.
    """

    action: str
    campaign_id: str
    source: str
    method: str
    cells: pd.DataFrame
    model: TLearner | None
    qini: dict[str, float]
    uplift_at_30: dict[str, float]
    support: dict[str, tuple[float, float]] = field(default_factory=dict)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    calibration: dict[str, float] = field(default_factory=lambda: {"slope": 1.0,
                                                                   "mean_prediction": 0.0})

    def per_customer(self, covariates: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(effect, low, high) per customer.

        Own evidence: the method's estimate as it is (the model was validated on the
        held-out half), with the cell's 95% half-width around it. External evidence:
        the estimate clipped into the cell's 95% interval, then all three times the
        cell's shrinkage, so no customer is promised more than the cell supports.
        """
        cells = cell_of(covariates["history"].to_numpy(float))
        low, high = (_cell_values(self.cells, cells, c) for c in ("low", "high"))
        if self.method == MODEL:
            # Centred on the campaign's measured average effect, with only the share of
            # the model's spread the held-out half confirmed (calibration_slope).
            spread = self.model.predict(covariates) - self.calibration["mean_prediction"]
            raw = float(self.cells.loc["all", "effect"]) + self.calibration["slope"] * spread
        else:
            raw = _cell_values(self.cells, cells, "effect")
        if self.source == OWN:
            half = (high - low) / 2.0
            return raw, raw - half, raw + half
        shrink = _cell_values(self.cells, cells, "shrink")
        # Outside the range of customers the experiment had, it says nothing specific:
        # the least its cell supports (the lower bound, never below zero).
        outside = self.outside(covariates)
        raw = np.where(outside, np.maximum(low, 0.0), raw)
        return np.clip(raw, low, high) * shrink, low * shrink, high * shrink

    def outside(self, covariates: pd.DataFrame) -> np.ndarray:
        """Whether each customer has a covariate outside the range the experiment saw."""
        mask = np.zeros(len(covariates), dtype=bool)
        for column, (low, high) in self.support.items():
            values = covariates[column].to_numpy(float)
            mask |= (values < low) | (values > high)
        return mask


def _shrinkage(cells: pd.DataFrame, source: str) -> pd.Series:
    """est^2 / (est^2 + se^2) for external evidence; 1 for the shop's own."""
    if source == OWN:
        return pd.Series(1.0, index=cells.index)
    est2 = cells["effect"] ** 2
    return (est2 / (est2 + cells["se"] ** 2)).fillna(0.0)


def fit_action_effect(rows: pd.DataFrame, action: str, campaign_id: str, source: str,
                      outcome: str = "revenue") -> ActionEffect:
    """Fit and choose the revenue effect of one action from a randomised campaign.

    Args:
        rows: The campaign's customers given ``action`` (treatment 1) and its controls
            (treatment 0), with ``COVARIATES`` and ``outcome``.
        action: The action's name.
        campaign_id: The campaign.
        source: ``own_experiment`` or ``external_experiment``.
        outcome: The outcome column (``revenue``: money in the response window).

    Returns:
        The :class:`ActionEffect`, with the held-out Qini of both methods.
    """
    missing = [c for c in (*COVARIATES, "treatment", outcome) if c not in rows.columns]
    if missing:
        raise ValueError(f"campaign {campaign_id!r}, action {action!r}: missing {missing}")
    x = rows.loc[:, list(COVARIATES)].astype(float).reset_index(drop=True)
    t = rows["treatment"].to_numpy(int)
    y = rows[outcome].to_numpy(float)
    cells = cell_of(x["history"].to_numpy())
    half = np.random.default_rng(SEED).random(len(x)) < 0.5
    learn, test = ~half, half
    model = TLearner().fit(x[learn], t[learn], y[learn])
    averages = _cell_table(cells[learn], t[learn], y[learn])
    scores = {MODEL: model.predict(x[test]),
              AVERAGE: _cell_values(averages, cells[test], "effect")}
    qini = {m: qini_coefficient(s, t[test], y[test]) for m, s in scores.items()}
    at30 = {m: uplift_at_k(s, t[test], y[test]) for m, s in scores.items()}
    method = MODEL if qini[MODEL] > qini[AVERAGE] else AVERAGE
    table = _cell_table(cells, t, y)
    table["shrink"] = _shrinkage(table, source)
    support = {c: (float(x[c].min()), float(x[c].max())) for c in COVARIATES}
    curves = {m: qini_curve(sc, t[test], y[test]) for m, sc in scores.items()}
    final = TLearner().fit(x, t, y)
    calibration = {"slope": calibration_slope(scores[MODEL], t[test], y[test]),
                   "mean_prediction": float(np.mean(final.predict(x)))}
    return ActionEffect(action, campaign_id, source, method, table, final, qini, at30,
                        support, curves, calibration)


#: Bands of the predicted effect in which :func:`calibration_slope` measures the effect.
N_CALIBRATION_BANDS = 5


def calibration_slope(tau_hat: np.ndarray, treatment: np.ndarray, y: np.ndarray,
                      bands: int = N_CALIBRATION_BANDS) -> float:
    """How much of the predicted spread of effects is real, in [0, 1].

    On held-out randomised rows, cut into ``bands`` equal bands of ``tau_hat``: the
    measured effect per band (difference in means) regressed on the band's mean
    prediction, weighted by the inverse of the measurement's variance. 1: the
    predictions are calibrated; 0.5: the real effects vary half as much as predicted
    (an over-fitted learner); clipped into [0, 1], so it never widens a prediction.
    """
    tau_hat, treatment, y = (np.asarray(v, float) for v in (tau_hat, treatment, y))
    edges = np.quantile(tau_hat, np.linspace(0, 1, bands + 1)[1:-1])
    band = np.searchsorted(edges, tau_hat, side="right")
    points = []
    for b in range(bands):
        yt, yc = y[(band == b) & (treatment == 1)], y[(band == b) & (treatment == 0)]
        if len(yt) < 2 or len(yc) < 2:
            continue
        var = yt.var(ddof=1) / len(yt) + yc.var(ddof=1) / len(yc)
        points.append((tau_hat[band == b].mean(), yt.mean() - yc.mean(), 1 / max(var, 1e-12)))
    if len(points) < 2:
        return 0.0
    p, d, w = (np.array(v) for v in zip(*points, strict=True))
    p_bar, d_bar = np.average(p, weights=w), np.average(d, weights=w)
    spread = np.sum(w * (p - p_bar) ** 2)
    if spread <= 0:
        return 0.0
    return float(np.clip(np.sum(w * (p - p_bar) * (d - d_bar)) / spread, 0.0, 1.0))


# --------------------------------------------------------------------------- per customer


def action_catalogue(names: Sequence[str],
                     catalogue: Sequence[Action] = DEFAULT_ACTIONS) -> dict[str, Action]:
    """The catalogue entries of ``names``; an action with no entry is refused by name."""
    known = {a.name: a for a in catalogue}
    missing = sorted(set(names) - set(known))
    if missing:
        raise ValueError(f"no effect prior for action(s) {missing}: the catalogue "
                         f"(clv.decisions.segments.DEFAULT_ACTIONS) has {sorted(known)}")
    return {n: known[n] for n in names}


def customer_effects(covariates: pd.DataFrame, actions: Sequence[str],
                     measured: Mapping[str, ActionEffect] | None = None,
                     catalogue: Sequence[Action] = DEFAULT_ACTIONS) -> pd.DataFrame:
    """Expected increments per customer and action, with their evidence.

    The revenue channel of an action with a measured effect comes from it
    (:meth:`ActionEffect.per_customer`); every other channel, and every action no
    experiment tested, takes the catalogue's prior (the same for every customer,
    with its stated range).

    Args:
        covariates: customer_id and ``COVARIATES`` (:func:`effect_covariates`).
        actions: Actions on offer.
        measured: action -> its measured effect.
        catalogue: Where the priors come from.

    Returns:
        ``EFFECT_COLUMNS``, sorted by customer_id, then action (one row per pair).
    """
    from clv.data.frames import by_customer, repeated

    measured = dict(measured or {})
    names = sorted(actions)
    if NO_ACTION in names:
        raise ValueError(f"{NO_ACTION!r} is not an action")
    priors = action_catalogue(names, catalogue)
    frame = by_customer(covariates)
    n, k = len(frame), len(names)
    # customer-major (customer, then action): action j fills rows j, j + k, j + 2k, ...
    out = {"customer_id": np.repeat(frame["customer_id"].to_numpy(), k),
           "action": np.tile(np.asarray(names, dtype=object), n)}
    for column in EFFECT_COLUMNS[2:]:
        out[column] = (repeated(PRIOR, n * k) if column in ("uplift_source", "effect_method")
                       else np.empty(n * k))
    for j, name in enumerate(names):
        prior = priors[name]
        revenue = (prior.revenue.expected, prior.revenue.low, prior.revenue.high)
        source = method = PRIOR
        if name in measured:
            revenue = measured[name].per_customer(frame)
            source, method = measured[name].source, measured[name].method
        retention = (prior.retention.expected, prior.retention.low, prior.retention.high)
        for column, value in zip(EFFECT_COLUMNS[2:], (*revenue, *retention, source, method),
                                 strict=True):
            out[column][j::k] = value  # a scalar is one shared object, not n copies
    return pd.DataFrame(out, columns=list(EFFECT_COLUMNS), copy=False)


def outside_support(effect: ActionEffect, covariates: pd.DataFrame) -> float:
    """Share of customers with a covariate outside the range the experiment saw."""
    return float(effect.outside(covariates).mean()) if len(covariates) else 0.0


def plot_qini(effect: ActionEffect, path) -> str:
    """The held-out Qini curves of both methods and the random line, as a PNG."""
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for method, (x, gain) in effect.curves.items():
        ax.plot(x, gain, label=f"{method} (Qini {effect.qini[method]:.4f})")
    x, gain = next(iter(effect.curves.values()))
    ax.plot([0, 1], [0, gain[-1]], linestyle="--", color="grey", label="random")
    ax.set_xlabel("share of customers targeted (by predicted effect)")
    ax.set_ylabel("incremental revenue per customer")
    ax.set_title(f"{effect.action}: Qini on the held-out half of {effect.campaign_id}")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.savefig(path, format="png")
    return str(path)
