"""Per-customer intervals of predicted spend: P10, P50 and P90 over the horizon.

Two methods, chosen by the champion's family (:func:`fit_intervals`):

* **ZILN** (TensorFlow): the network predicts a whole distribution per customer, a
  zero-inflated lognormal (0 with probability 1 - p, else LogNormal(mu, sigma)); the
  interval is its quantiles (:func:`ziln_quantiles`), nothing is fitted after training.
* **Every other family** (XGBoost): the model predicts a mean only, so its spread is
  learnt from customers it never learnt from: the run's out-of-time holdout, the
  ``eval`` split of ``features.training_examples`` (features at as_of - H, realised
  spend in the H days up to the as-of date). The models learn from the ``train``
  cutoff (labels end at as_of - H), so the holdout's labels lie after everything
  they saw (a backfill of an old date scored by a champion trained later is the
  exception: that champion may have learnt from the holdout's period). The holdout is
  split in two halves by a hash of ``customer_id``
  (:func:`calibration_half`): on the *calibration* half, customers are grouped in
  bands of predicted spend (deciles, fewer when the half is small) and the empirical
  10/50/90 % quantiles of actual / predicted spend are taken per band
  (:class:`BandCalibration`); a customer's interval is its band's ratios times its
  own prediction. The early-stopping rows were not used instead: they belong to
  the learning period and chose the number of trees, so they are not fully out of
  sample, and they are a horizon older than the holdout.

Coverage (:func:`holdout_coverage`) is measured on the *other* half of the holdout,
so no interval is judged on the customers that calibrated it. A realised spend of 0
lies inside [0, P90] and counts as covered; a negative realised spend (net
returns) counts as 0, as the ZILN loss treats it. Because many customers spend 0
(an atom at zero), an interval whose P10 is 0 holds the whole atom, so its own
probability of covering is above 80 %: :data:`NOMINAL_METRIC` reports what the
method itself expects (ZILN: the mean of F(P90) - F(P10-) per customer; bands: the
coverage on the calibration half), to read the measured coverage against.
:data:`PIT_METRIC` is the check whose target is exactly 0.80 whatever the atom: the
share of customers whose realised spend falls in the central 80 % of their predicted
distribution by probability (randomised PIT: a realised 0 counts for the part of the
atom [0, F(0)] that lies in [0.1, 0.9], :func:`pit_coverage`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)
INTERVAL_COLUMNS = ["clv_p10", "clv_p50", "clv_p90"]
COVERAGE_METRIC = "interval_coverage_80"
NOMINAL_METRIC = "interval_nominal_80"
PIT_METRIC = "interval_pit_coverage_80"
N_BANDS = 10
#: A band holds at least this many calibration customers (fewer bands otherwise).
MIN_BAND_ROWS = 50
ZILN_METHOD = "ziln_distribution"
BAND_METHOD = "holdout_band_calibration"
_MAX_LOG_SPEND = 30.0


# --------------------------------------------------------------------------- ZILN


def ziln_quantiles(p: Any, mu: Any, sigma: Any, quantiles=QUANTILES) -> np.ndarray:
    """Quantiles of the zero-inflated lognormal, shape (n, len(quantiles)).

    F(0) = 1 - p and F(y) = 1 - p + p * Phi((ln y - mu) / sigma) for y > 0, so the
    q-quantile is 0 when q <= 1 - p, else exp(mu + sigma * Phi^-1((q - (1 - p)) / p)).
    """
    from scipy.special import ndtri

    p, mu, sigma = (np.asarray(v, dtype=float)[:, None] for v in (p, mu, sigma))
    q = np.asarray(quantiles, dtype=float)[None, :]
    inner = (q - (1.0 - p)) / np.maximum(p, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = ndtri(np.clip(inner, 1e-300, 1.0))
        value = np.exp(np.minimum(mu + sigma * z, _MAX_LOG_SPEND))
    return np.where(inner > 0, value, 0.0)


def ziln_cdf(y: Any, p: Any, mu: Any, sigma: Any) -> np.ndarray:
    """P(spend <= y) under the zero-inflated lognormal (elementwise)."""
    from scipy.special import ndtr

    y, p, mu, sigma = (np.asarray(v, dtype=float) for v in (y, p, mu, sigma))
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = 1.0 - p + p * ndtr((np.log(np.maximum(y, 1e-300)) - mu) / sigma)
    return np.where(y > 0, positive, np.where(y == 0, 1.0 - p, 0.0))


# --------------------------------------------------------------------------- bands


@dataclass(frozen=True)
class BandCalibration:
    """Empirical quantiles of actual / predicted spend per band of predicted spend.

    Band b holds predictions in (edges[b-1], edges[b]] (the first from -inf, the last
    to +inf); ``ratios[b]`` are its quantiles of max(actual, 0) / predicted.
    """

    edges: np.ndarray
    ratios: np.ndarray
    n_customers: int
    #: Each band's calibration ratios, sorted (its empirical distribution, for :meth:`cdf`).
    sorted_ratios: tuple[np.ndarray, ...] = ()

    @classmethod
    def fit(cls, predicted: Any, actual: Any, quantiles=QUANTILES, n_bands: int = N_BANDS,
            min_rows: int = MIN_BAND_ROWS) -> BandCalibration:
        """Calibrate on customers the model did not learn from (see the module notes)."""
        pred = np.asarray(predicted, dtype=float)
        y = np.clip(np.asarray(actual, dtype=float), 0.0, None)
        keep = np.isfinite(pred) & (pred > 0) & np.isfinite(y)
        if not keep.any():
            raise ValueError("interval calibration: no customer with a positive, finite "
                             "predicted spend in the holdout")
        pred, y = pred[keep], y[keep]
        n = int(min(n_bands, max(1, pred.size // min_rows)))
        # "lower": edges are predicted values, so every band but maybe the last holds one
        edges = np.unique(np.quantile(pred, np.arange(1, n) / n, method="lower"))
        band = np.searchsorted(edges, pred, side="left")
        ratio = y / pred
        pooled = np.quantile(ratio, quantiles)
        ratios = np.array([np.quantile(ratio[band == b], quantiles) if (band == b).any()
                           else pooled for b in range(edges.size + 1)])
        sorted_ratios = tuple(np.sort(ratio[band == b] if (band == b).any() else ratio)
                              for b in range(edges.size + 1))
        return cls(edges, ratios, int(pred.size), sorted_ratios)

    def predict(self, predicted: Any) -> np.ndarray:
        """(n, len(quantiles)): the band's ratio quantiles times each prediction."""
        pred = np.clip(np.asarray(predicted, dtype=float), 0.0, None)
        band = np.searchsorted(self.edges, pred, side="left")
        return self.ratios[band] * pred[:, None]

    def cdf(self, predicted: Any, value: Any) -> tuple[np.ndarray, np.ndarray]:
        """(F(0), F(value)) per customer under their band's empirical distribution of
        actual / predicted (a prediction of 0 puts all mass at 0)."""
        pred = np.clip(np.asarray(predicted, dtype=float), 0.0, None)
        y = np.clip(np.asarray(value, dtype=float), 0.0, None)
        band = np.searchsorted(self.edges, pred, side="left")
        ratio = np.divide(y, pred, out=np.full(pred.shape, np.inf), where=pred > 0)
        at_zero, at_value = np.ones(pred.shape), np.ones(pred.shape)
        for b, sorted_ratio in enumerate(self.sorted_ratios):
            rows = (band == b) & (pred > 0)
            n = sorted_ratio.size
            at_zero[rows] = np.searchsorted(sorted_ratio, 0.0, side="right") / n
            at_value[rows] = np.searchsorted(sorted_ratio, ratio[rows], side="right") / n
        return at_zero, at_value


# --------------------------------------------------------------------------- either family


def interval_coverage(actual: Any, lower: Any, upper: Any) -> float:
    """Share of customers whose realised spend lies in [lower, upper] (ends included;
    negative spend counts as 0, so a 0 is inside [0, P90])."""
    y = np.clip(np.asarray(actual, dtype=float), 0.0, None)
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    if y.size == 0:
        raise ValueError("interval coverage of no customers is undefined")
    return float(np.mean((lower <= y) & (y <= upper)))


def pit_coverage(actual: Any, cdf_at_zero: Any, cdf_at_actual: Any, level: float = 0.8
                 ) -> float:
    """Share of customers whose realised spend lies in the central ``level`` of their
    predicted distribution by probability: 0.1 <= F(y) <= 0.9 for y > 0; a realised 0
    counts for the share of the atom [0, F(0)] inside [0.1, 0.9] (randomised PIT, so
    a calibrated model scores ``level`` in expectation, atom or not)."""
    lo, hi = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    y = np.clip(np.asarray(actual, dtype=float), 0.0, None)
    f0 = np.asarray(cdf_at_zero, dtype=float)
    fy = np.asarray(cdf_at_actual, dtype=float)
    atom = np.divide(np.clip(np.minimum(f0, hi) - lo, 0.0, None), f0,
                     out=np.zeros(f0.shape), where=f0 > 0)
    return float(np.mean(np.where(y == 0, atom, (fy >= lo) & (fy <= hi))))


def calibration_half(customer_ids: Any) -> np.ndarray:
    """True for the customers whose CRC-32 of ``customer_id`` is even: the calibration
    half of a holdout (stable across runs, row orders and processes, unlike hash())."""
    return np.array([zlib.crc32(str(c).encode()) % 2 == 0 for c in customer_ids], dtype=bool)


def distribution_source(model: Any) -> Any | None:
    """The object with ``predict_distribution`` behind a scoring model, if any (ZILN)."""
    inner = getattr(model, "model", model)
    unwrap = getattr(inner, "unwrap_python_model", None)
    if unwrap is not None:
        inner = unwrap()
    return inner if hasattr(inner, "predict_distribution") else None


@dataclass(frozen=True)
class SpendIntervals:
    """How a spend model's intervals are made: its own distribution, or a calibration."""

    method: str
    calibration: BandCalibration | None = None

    def quantiles(self, model: Any, x: Any, predicted: Any) -> np.ndarray:
        """(n, 3): P10, P50, P90 of each customer's spend (``predicted``: the model's)."""
        if self.calibration is not None:
            return self.calibration.predict(predicted)
        p, mu, sigma = distribution_source(model).predict_distribution(x)
        return ziln_quantiles(p, mu, sigma)


def fit_intervals(model: Any, holdout: Any) -> SpendIntervals:
    """The interval method for ``model`` (a :class:`clv.models.registry.ScoringModel`), calibrated
    on the calibration half of ``holdout`` (``eval`` training examples) when needed."""
    return _calibrated(model, holdout)[0]


def _calibrated(model: Any, holdout: Any) -> tuple[SpendIntervals, Any, np.ndarray | None]:
    """(the method, the calibration half, ``model``'s predictions on it); the half and its
    predictions are None for a method that needs none."""
    from clv.features import feature_matrix, model_columns

    if distribution_source(model) is not None:
        return SpendIntervals(ZILN_METHOD), None, None
    cal = holdout[calibration_half(holdout["customer_id"])]
    if cal.empty:
        raise ValueError("interval calibration: the holdout's calibration half is empty")
    pred = model.predict(feature_matrix(cal, columns=model_columns(cal)))
    return SpendIntervals(BAND_METHOD, BandCalibration.fit(
        pred, cal["spend_next"].to_numpy(dtype=float))), cal, pred


def holdout_coverage(model: Any, holdout: Any) -> dict[str, Any]:
    """Coverage of the 80 % interval on the measurement half of the holdout, and what the
    method itself expects (:data:`NOMINAL_METRIC`, see the module notes)."""
    from clv.features import feature_matrix, model_columns

    method, cal, cal_pred = _calibrated(model, holdout)  # each half predicted once
    measure = holdout[~calibration_half(holdout["customer_id"])]
    if measure.empty:
        raise ValueError("interval coverage: the holdout's measurement half is empty")
    x = feature_matrix(measure, columns=model_columns(measure))
    pred = model.predict(x)
    q = method.quantiles(model, x, pred)
    y = measure["spend_next"].to_numpy(dtype=float)
    if method.calibration is None:
        p, mu, sigma = distribution_source(model).predict_distribution(x)
        below = np.where(q[:, 0] > 0, ziln_cdf(q[:, 0], p, mu, sigma), 0.0)
        nominal = float(np.mean(ziln_cdf(q[:, 2], p, mu, sigma) - below))
        pit = pit_coverage(y, 1.0 - p, ziln_cdf(y, p, mu, sigma))
    else:
        cal_q = method.calibration.predict(cal_pred)
        nominal = interval_coverage(cal["spend_next"], cal_q[:, 0], cal_q[:, 2])
        pit = pit_coverage(y, *method.calibration.cdf(pred, y))
    return {COVERAGE_METRIC: interval_coverage(y, q[:, 0], q[:, 2]), NOMINAL_METRIC: nominal,
            PIT_METRIC: pit, "n_customers": int(len(measure)), "method": method.method}
