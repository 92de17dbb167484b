"""Zero-inflated lognormal (ZILN) spend and churn network (Keras 3 on TensorFlow).

One multi-task network per run (Wang, Liu & Miao 2019, "A deep probabilistic model
for customer lifetime value prediction", google/lifetime_value):

* inputs: the static features (:data:`clv.features.RFM_FEATURES`, signed log1p, then
  standardised on the learning customers, with a missing-value indicator for the
  inter-purchase gaps) and the per-period spend/order history
  (:func:`clv.features.period_columns`) as a sequence, oldest period first, encoded by
  a GRU;
* output: three numbers per customer, the logit of p = P(any purchase in the horizon),
  and mu, sigma of the lognormal spend of a buyer. Expected spend is
  ``p * exp(mu + sigma**2 / 2)``; churn probability is ``1 - p``.

The loss (:func:`ziln_loss`) is the negative log-likelihood of the zero-inflated
lognormal: the binary cross-entropy of "bought anything" plus, for buyers only, the
lognormal negative log-density of their spend. The purchase head is the churn
classifier, so one training yields both the ``clv_spend`` and the ``clv_churn``
model (the two registered versions share one network; see :mod:`clv.models.training`).

Reproducible: :func:`fit` seeds Python, NumPy and TensorFlow
(``keras.utils.set_random_seed``) and turns on TensorFlow's deterministic ops, so
the same data and seed give the same predictions. Early stopping watches the loss
on a seeded random validation share of the learning customers.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.config import N_PERIODS
from clv.features import RFM_FEATURES, period_columns
from clv.models.memo import LastResult, content_digest
from clv.models.sampling import sample_positions

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import pandas as pd

log = logging.getLogger(__name__)

#: Static inputs with possibly missing values (fewer than 2 / 3 purchase days).
_MAYBE_MISSING = ["mean_ipt_days", "std_ipt_days"]
#: The floor of sigma (as in google/lifetime_value: sqrt of Keras' epsilon).
SIGMA_FLOOR = float(np.sqrt(1e-7))
#: exp() of more than this is treated as this (no overflow on absurd inputs).
_MAX_LOG_SPEND = 30.0
MODEL_FILE = "ziln.keras"
PREPROCESSOR_FILE = "preprocessor.json"


@dataclass(frozen=True)
class ZilnConfig:
    """Architecture and training settings (all logged to MLflow)."""

    static_units: int = 64
    gru_units: int = 32
    hidden_units: int = 64
    # lr 3e-4 / batch 512 / patience 10: on CDNOW a smoother validation loss than
    # 1e-3 / 256 (which stopped at epoch 2), decile MAPE 0.102 vs 0.125, same Gini
    learning_rate: float = 3e-4
    batch_size: int = 512
    #: A larger learning sample takes larger batches, so that an epoch is at most about
    #: this many steps: the batch doubles from ``batch_size`` until it is, and the rate
    #: grows with the square root of the batch (:func:`step_settings`). At 10M orders
    #: (200,000 rows learnt from) 2,048 and 6e-4 fitted in 107 s instead of 150 s with
    #: the same holdout Gini (0.7059 vs 0.7057), decile MAPE 0.038 vs 0.036
    #: (``bench/bench_ziln_batch.py``); CDNOW's 18,856 rows keep 512. 0 = never scale.
    max_steps_per_epoch: int = 100
    max_epochs: int = 60
    patience: int = 10
    validation_share: float = 0.2
    seed: int = 42
    #: Clip static inputs to their learning range (see :attr:`Preprocessor.static_min`).
    clip_static: bool = False
    #: Learn from a seeded sample of at most this many customers. On 2 CPU cores an
    #: epoch costs ~1 s per 19,000 rows: 10M synthetic orders (2.6M customers) would
    #: take ~2 min per epoch without it. CDNOW (23,570) is far below; 0 = no cap.
    max_learn_rows: int = 250_000


# --------------------------------------------------------------------------- maths


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def ziln_parameters(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p, mu, sigma) from the network's three raw outputs per customer (numpy)."""
    logits = np.asarray(logits, dtype=float)
    p = 1.0 / (1.0 + np.exp(-logits[..., 0]))
    mu = logits[..., 1]
    sigma = np.maximum(_softplus(logits[..., 2]), SIGMA_FLOOR)
    return p, mu, sigma


def expected_value(logits: np.ndarray) -> np.ndarray:
    """Expected spend ``p * exp(mu + sigma^2 / 2)`` per customer (numpy)."""
    p, mu, sigma = ziln_parameters(logits)
    return p * np.exp(np.minimum(mu + 0.5 * sigma**2, _MAX_LOG_SPEND))


def ziln_loss(y_true: Any, logits: Any) -> Any:
    """Per-customer ZILN negative log-likelihood (Keras ops, any backend).

    ``y_true``: spend, shape (n,) or (n, 1), 0 for customers who did not buy.
    ``logits``: shape (n, 3) = (purchase logit, mu, raw sigma). Returns shape (n,):
    ``BCE(1[y > 0], logit) + 1[y > 0] * (log(y sigma sqrt(2 pi)) + (log y - mu)^2 / (2 sigma^2))``.
    """
    from keras import ops

    y = ops.reshape(ops.cast(y_true, logits.dtype), (-1,))
    positive = ops.cast(y > 0, logits.dtype)
    z, mu = logits[:, 0], logits[:, 1]
    sigma = ops.maximum(ops.softplus(logits[:, 2]), SIGMA_FLOOR)
    bce = ops.softplus(z) - positive * z  # stable BCE from a logit
    safe_y = positive * y + (1.0 - positive)  # log(1) = 0 where there is no purchase
    log_y = ops.log(safe_y)
    nll = (log_y + ops.log(sigma) + 0.5 * np.log(2.0 * np.pi)
           + ops.square(log_y - mu) / (2.0 * ops.square(sigma)))
    return bce + positive * nll


# --------------------------------------------------------------------------- inputs


@dataclass
class Preprocessor:
    """Feature scaling learnt on the learning customers (saved with the model)."""

    static_mean: list[float] = field(default_factory=list)
    static_std: list[float] = field(default_factory=list)
    seq_mean: list[float] = field(default_factory=list)
    seq_std: list[float] = field(default_factory=list)
    n_periods: int = N_PERIODS
    #: Range of each standardised static input on the learning customers; with
    #: ``clip`` inputs are clipped to it (no extrapolation). Out of time, tenure at the
    #: evaluation cutoff lies beyond any seen in learning. Measured, mixed: on the
    #: first 3,000 CDNOW customers (180-day pipeline setting) clipping took the
    #: aggregate error from +124% to +56%, but on full CDNOW's two rolling-origin
    #: cutoffs (bench/bench_models.py --backtest) from +1.1% / +16.8% to +17.2% /
    #: +33.4%, so it is off by default (:attr:`ZilnConfig.clip_static`).
    static_min: list[float] = field(default_factory=list)
    static_max: list[float] = field(default_factory=list)
    clip: bool = False

    @staticmethod
    def _raw(frame: pd.DataFrame, n_periods: int) -> tuple[np.ndarray, np.ndarray]:
        missing = [c for c in RFM_FEATURES + period_columns(n_periods) if c not in frame.columns]
        if missing:
            raise ValueError(f"feature column(s) missing from the input: {missing}")
        static = _signed_log1p(frame[RFM_FEATURES].to_numpy(dtype=float))
        flags = frame[_MAYBE_MISSING].isna().to_numpy(dtype=float)
        static = np.concatenate([static, flags], axis=1)
        cols = period_columns(n_periods)
        spend = frame[cols[:n_periods]].to_numpy(dtype=float)
        orders = frame[cols[n_periods:]].to_numpy(dtype=float)
        # period 1 is the most recent: reverse so the GRU reads oldest -> newest
        seq = np.stack([_signed_log1p(spend), np.log1p(np.maximum(orders, 0.0))], axis=-1)
        return static, seq[:, ::-1, :]

    @classmethod
    def fit(cls, frame: pd.DataFrame, n_periods: int = N_PERIODS,
            clip: bool = False) -> Preprocessor:
        static, seq = cls._raw(frame, n_periods)
        s_std = np.nanstd(static, axis=0)
        q_std = seq.reshape(-1, seq.shape[-1]).std(axis=0)
        prep = cls(np.nan_to_num(np.nanmean(static, axis=0)).tolist(),
                   np.where(s_std > 0, np.nan_to_num(s_std, nan=1.0), 1.0).tolist(),
                   seq.reshape(-1, seq.shape[-1]).mean(axis=0).tolist(),
                   np.where(q_std > 0, q_std, 1.0).tolist(), n_periods)
        scaled, _ = prep.transform(frame)
        prep.static_min = scaled.min(axis=0).astype(float).tolist()
        prep.static_max = scaled.max(axis=0).astype(float).tolist()
        prep.clip = clip
        return prep

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(static (n, 12), sequence (n, n_periods, 2)) as float32; NaN -> the mean (0);
        static inputs clipped to the learning range when ``clip``."""
        static, seq = self._raw(frame, self.n_periods)
        static = (static - np.array(self.static_mean)) / np.array(self.static_std)
        seq = (seq - np.array(self.seq_mean)) / np.array(self.seq_std)
        static = np.nan_to_num(static)
        if self.clip and self.static_min:
            static = np.clip(static, np.array(self.static_min), np.array(self.static_max))
        return (static.astype("float32"),
                np.ascontiguousarray(seq).astype("float32"))


# --------------------------------------------------------------------------- model


#: The last :meth:`ZilnModel.predict_logits` result (one entry), by (network digest,
#: inputs digest). ``evaluate`` at 10M orders ran the network 5 times over the holdout
#: (the spend and churn versions on all of it, the interval code 3 times on its
#: measurement half), 2 of them needed.
_LOGITS: LastResult[np.ndarray] = LastResult()


#: Prediction batch, and rows preprocessed per pass (49 batches).
PREDICT_BATCH = 4096
PREDICT_CHUNK_ROWS = 49 * PREDICT_BATCH


def learning_sample(frame: pd.DataFrame, spend: np.ndarray, config: ZilnConfig
                    ) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows :meth:`ZilnModel.fit` learns from: all, or a seeded sample of
    ``config.max_learn_rows`` (sorted positions)."""
    if not config.max_learn_rows or len(frame) <= config.max_learn_rows:
        return frame, np.asarray(spend)
    keep = sample_positions(len(frame), config.max_learn_rows, config.seed)
    log.info("ZILN learns from a seeded sample of %d of %d customers (max_learn_rows)",
             len(keep), len(frame))
    return frame.iloc[keep].reset_index(drop=True), np.asarray(spend)[keep]


def step_settings(config: ZilnConfig, n_rows: int) -> tuple[int, float]:
    """(batch size, learning rate) for learning from ``n_rows`` rows: ``config``'s, or
    past ``config.max_steps_per_epoch`` steps an epoch, the batch doubled until it is
    within them and the rate times the square root of the batch's growth."""
    batch = config.batch_size
    if config.max_steps_per_epoch:
        while -(-n_rows // batch) > config.max_steps_per_epoch:
            batch *= 2
    return batch, config.learning_rate * (batch / config.batch_size) ** 0.5


def tf_device() -> str:
    """``"GPU"`` when TensorFlow sees a usable GPU (and ``CLV_DEVICE`` is not ``cpu``)."""
    import tensorflow as tf

    if os.environ.get("CLV_DEVICE", "").strip().lower() == "cpu":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # already initialised: keep what TF has
            pass
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


def build_network(n_static: int, n_periods: int, config: ZilnConfig,
                  output_bias: np.ndarray | None = None) -> keras.Model:
    """Static MLP branch + GRU sequence branch -> shared layers -> 3 ZILN outputs."""
    import keras

    static_in = keras.Input(shape=(n_static,), name="static")
    seq_in = keras.Input(shape=(n_periods, 2), name="history")
    s = keras.layers.Dense(config.static_units, activation="relu", name="static_dense")(static_in)
    h = keras.layers.GRU(config.gru_units, name="history_gru")(seq_in)
    x = keras.layers.Concatenate(name="concat")([s, h])
    x = keras.layers.Dense(config.hidden_units, activation="relu", name="shared_1")(x)
    x = keras.layers.Dense(config.hidden_units // 2, activation="relu", name="shared_2")(x)
    bias = "zeros" if output_bias is None else keras.initializers.Constant(output_bias)
    out = keras.layers.Dense(3, name="ziln_logits", bias_initializer=bias)(x)
    return keras.Model(inputs=[static_in, seq_in], outputs=out, name="ziln_clv")


def _initial_bias(y: np.ndarray) -> np.ndarray:
    """Start at the marginal ZILN fit: logit of the buyer share, mean/std of log spend."""
    pos = y[y > 0]
    share = float(np.clip(pos.size / max(y.size, 1), 1e-3, 1 - 1e-3))
    if pos.size < 2:
        return np.array([np.log(share / (1 - share)), 0.0, 0.5])
    logs = np.log(pos)
    sd = max(float(logs.std()), 0.05)
    return np.array([np.log(share / (1 - share)), float(logs.mean()), np.log(np.expm1(sd))])


class ZilnModel:
    """A fitted ZILN network with its preprocessing: predicts spend and churn."""

    def __init__(self, network: keras.Model, preprocessor: Preprocessor,
                 config: ZilnConfig, history: dict[str, Any] | None = None,
                 spend_scale: float = 1.0):
        self.network = network
        self.preprocessor = preprocessor
        self.config = config
        self.history = history or {}
        #: Multiplies the expected value so the learning customers' total is matched
        #: (the lognormal mean exp(mu + sigma^2/2) is fitted in log space and runs low).
        self.spend_scale = spend_scale
        self._weights_digest: str | None = None  # see _digest (the weights never change)

    @classmethod
    def fit(cls, frame: pd.DataFrame, spend: np.ndarray,
            config: ZilnConfig | None = None, n_offered: int | None = None) -> ZilnModel:
        """Train on ``frame``'s features and each customer's ``spend`` over the horizon.

        Negative spend (returns) counts as no purchase. A seeded random
        ``validation_share`` of the rows drives early stopping (best weights kept).
        """
        import keras
        import tensorflow as tf

        config = config or ZilnConfig()
        n_offered = max(n_offered or 0, len(frame))  # a caller may pass the sample itself
        frame, spend = learning_sample(frame, spend, config)
        tf_device()
        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
        y = np.clip(np.asarray(spend, dtype=float), 0.0, None).astype("float32")
        prep = Preprocessor.fit(frame, clip=config.clip_static)
        static, seq = prep.transform(frame)
        rng = np.random.default_rng(config.seed)
        val = rng.random(len(y)) < config.validation_share
        if val.all() or not val.any():
            raise ValueError(f"need rows on both sides of the validation split, got {len(y)}")
        network = build_network(static.shape[1], prep.n_periods, config,
                                _initial_bias(y[~val]))
        batch_size, learning_rate = step_settings(config, int((~val).sum()))
        network.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=ziln_loss)
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                             restore_best_weights=True)
        hist = network.fit(
            [static[~val], seq[~val]], y[~val],
            validation_data=([static[val], seq[val]], y[val]),
            epochs=config.max_epochs, batch_size=batch_size, shuffle=True,
            callbacks=[stop], verbose=0,
        )
        losses = hist.history["val_loss"]
        history = {"epochs_run": len(losses), "best_epoch": int(np.argmin(losses)) + 1,
                   "best_val_loss": float(np.min(losses)),
                   "final_train_loss": float(hist.history["loss"][-1]),
                   "n_learn_rows": len(y), "n_offered_rows": n_offered,
                   "batch_size_used": batch_size, "learning_rate_used": learning_rate}
        model = cls(network, prep, config, history)
        total = float(model.predict_spend(frame).sum())
        if total > 0 and y.sum() > 0:
            model.spend_scale = float(y.sum()) / total
        model.history["spend_scale"] = model.spend_scale
        log.info("ZILN trained: %s", model.history)
        return model

    @property
    def device(self) -> str:
        """``"GPU"`` or ``"CPU"``: where TensorFlow placed the network's weights."""
        where = str(self.network.weights[0].value.device).upper()
        return "GPU" if "GPU" in where else "CPU"

    def predict_logits(self, frame: pd.DataFrame) -> np.ndarray:
        """The three raw outputs per customer, shape (n, 3).

        In chunks of :data:`PREDICT_CHUNK_ROWS` (a multiple of the batch, so the
        network sees the same batches as in one pass): preprocessing 2.57M
        customers at once held several float64 copies of their sequences.

        The last result is remembered by the network's and the inputs' content
        (:data:`_LOGITS`): the spend and the churn version of one network, and the
        interval code, predict the same customers one after another.
        """
        columns = list(dict.fromkeys(RFM_FEATURES + _MAYBE_MISSING
                                     + period_columns(self.preprocessor.n_periods)))
        inputs = content_digest((frame[c] for c in columns if c in frame.columns),
                                len(frame), columns)  # a missing column fails in transform
        return _LOGITS.get((self._digest(), inputs), lambda: self._predict_logits(frame))

    def _digest(self) -> str:
        """The network's weights, preprocessing and configuration, as one digest."""
        if self._weights_digest is None:
            self._weights_digest = content_digest(
                self.network.get_weights(), asdict(self.preprocessor), asdict(self.config))
        return self._weights_digest

    def _predict_logits(self, frame: pd.DataFrame) -> np.ndarray:
        parts = []
        for start in range(0, max(len(frame), 1), PREDICT_CHUNK_ROWS):
            static, seq = self.preprocessor.transform(
                frame.iloc[start:start + PREDICT_CHUNK_ROWS])
            out = self.network.predict([static, seq], batch_size=PREDICT_BATCH, verbose=0)
            parts.append(np.asarray(out, dtype=float))
        logits = np.concatenate(parts)
        logits.flags.writeable = False  # remembered and shared (_LOGITS): never changed
        return logits

    def predict_spend(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected spend over the horizon (times :attr:`spend_scale`)."""
        return self.spend_scale * expected_value(self.predict_logits(frame))

    def predict_churn(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of no purchase over the horizon (1 - p)."""
        return 1.0 - ziln_parameters(self.predict_logits(frame))[0]

    def predict_distribution(self, frame: pd.DataFrame
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p, mu, sigma) of each customer's zero-inflated lognormal spend over the horizon.

        ``mu`` includes log(:attr:`spend_scale`), so the distribution's mean
        ``p * exp(mu + sigma^2 / 2)`` is :meth:`predict_spend` (scaling a lognormal by a
        factor shifts its mu by the factor's log): its quantiles are the intervals.
        """
        p, mu, sigma = ziln_parameters(self.predict_logits(frame))
        return p, mu + np.log(self.spend_scale), sigma

    def predict_both(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(:meth:`predict_spend`, :meth:`predict_churn`) from one pass of the network."""
        logits = self.predict_logits(frame)
        return self.spend_scale * expected_value(logits), 1.0 - ziln_parameters(logits)[0]

    def save(self, folder: str | Path) -> Path:
        """Write the network (``.keras``) and preprocessing/config (JSON) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.network.save(folder / MODEL_FILE)
        (folder / PREPROCESSOR_FILE).write_text(json.dumps(
            {"preprocessor": asdict(self.preprocessor), "config": asdict(self.config),
             "history": self.history, "spend_scale": self.spend_scale}, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ZilnModel:
        import keras

        folder = Path(folder)
        meta = json.loads((folder / PREPROCESSOR_FILE).read_text())
        network = keras.models.load_model(folder / MODEL_FILE, compile=False)
        return cls(network, Preprocessor(**meta["preprocessor"]), ZilnConfig(**meta["config"]),
                   meta.get("history"), float(meta.get("spend_scale", 1.0)))


def fit_process_setup() -> None:
    """Import TensorFlow in a process that will fit beside the tasks' own process
    (:func:`fit_saved`) and leave it half the cores: on 2 cores, the fit's two
    thread pools beside the tasks' fits made both ~1.7x slower, while alone it is no
    faster on two threads than on one (docs/benchmarks.md). Thread counts change
    timing, never the weights (deterministic ops)."""
    import tensorflow as tf

    threads = max(1, (os.cpu_count() or 2) // 2)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras  # noqa: F401


def fit_saved(folder: str, frame: pd.DataFrame, spend: np.ndarray, config: ZilnConfig,
              n_offered: int) -> str:
    """:meth:`ZilnModel.fit`, saved into ``folder`` (returned): the fit run in a process
    of its own, whose network the caller loads (:meth:`ZilnModel.load`) with the same
    weights, so the same predictions."""
    return str(ZilnModel.fit(frame, spend, config, n_offered=n_offered).save(folder))


# --------------------------------------------------------------------------- MLflow


def _python_model_base() -> type:
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel


class ZilnPyfunc(_python_model_base()):
    """MLflow pyfunc wrapper: ``predict`` returns spend (``output="spend"``) or churn
    probability (``output="churn"``), one float per input row, like the XGBoost versions."""

    def __init__(self, output: str):
        if output not in ("spend", "churn"):
            raise ValueError(f"output must be 'spend' or 'churn', got {output!r}")
        self.output = output
        self._model: ZilnModel | None = None

    def load_context(self, context: Any) -> None:
        self._model = ZilnModel.load(context.artifacts["ziln"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        if self._model is None:
            self.load_context(context)
        if self.output == "spend":
            return self._model.predict_spend(model_input)
        return self._model.predict_churn(model_input)

    def predict_distribution(self, model_input: pd.DataFrame
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p, mu, sigma) per row: :meth:`ZilnModel.predict_distribution` (``predict`` is
        unchanged; interval code reaches this through ``unwrap_python_model()``)."""
        if self._model is None:
            raise ValueError("ZilnPyfunc: the model is not loaded (load it with "
                             "mlflow.pyfunc.load_model)")
        return self._model.predict_distribution(model_input)
