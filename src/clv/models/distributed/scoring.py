"""The champions' predictions computed on the Spark executors (``mapInPandas``).

Works for every model family and over Spark Connect too (``mapInPandas`` is a plain
DataFrame operation). Each Python worker loads the two exact versions once from the
registry (:func:`clv.models.registry.load_version`: the signed-digest check included,
cached per process), so the executors must reach the MLflow store, its artifacts and
the signing key, as the warehouse: a tracking server or shared storage on a real
cluster. A batch's ``predict`` is row-wise for XGBoost and BTYD (same numbers as on
the driver) and batched for ZILN (TensorFlow: equal to float rounding).

What stays on the driver: the spend level anchor (a factor over the whole scored
population, :meth:`clv.models.registry.ScoringModel.apply_level_anchor`), the
intervals and ``p_alive`` (:mod:`clv.models.scoring`), which read the features there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from clv.config import Settings
from clv.data import warehouse
from clv.data.catalog import FEATURES
from clv.features import FEATURE_COLUMNS, SOURCE_INPUTS, feature_matrix, model_columns

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SPEND, CHURN = "spend", "churn"


def predict_on_executors(as_of_date: dt.date, spend: tuple[str, Any], churn: tuple[str, Any],
                         customer_ids: pd.Series, x: pd.DataFrame,
                         settings: Settings | None) -> tuple[np.ndarray, np.ndarray]:
    """(spend, churn probability) of the as-of date's customers, in ``customer_ids``'
    order, computed by the executors.

    Args:
        spend, churn: (version, :class:`~clv.models.registry.ScoringModel`) of each
            champion; the executors load the same versions.
        customer_ids, x: The driver's customers and their model inputs, for the spend
            anchor (a factor over everyone) and the order of the result.
    """
    from clv.data.spark import get_spark
    from clv.models import registry

    spark = get_spark("clv-score", settings)
    frame = warehouse.read_table(spark, FEATURES, as_of_date, settings)
    frame = frame.select("customer_id", *FEATURE_COLUMNS,
                         *[c for c in SOURCE_INPUTS if c in frame.columns])
    id_type = frame.schema["customer_id"].dataType.simpleString()
    versions = {SPEND: (spend[1].name, spend[0]), CHURN: (churn[1].name, churn[0])}
    out = frame.mapInPandas(_partition_predictor(versions, settings or _settings()),
                            schema=f"customer_id {id_type}, spend double, churn double")
    got = out.toPandas().set_index("customer_id").reindex(customer_ids.to_numpy())
    if got["spend"].isna().any() or got["churn"].isna().any():
        raise registry.RegistryError(
            f"{FEATURES} as_of_date={as_of_date}: the executors returned no prediction for "
            f"{int(got['spend'].isna().sum())} customer(s) the driver read")
    pred = spend[1].apply_level_anchor(x, got["spend"].to_numpy(dtype=float))
    return pred, got["churn"].to_numpy(dtype=float)


def _settings() -> Settings:
    from clv.config import load_settings

    return load_settings()


def _partition_predictor(versions: dict[str, tuple[str, str]], settings: Settings
                         ) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function each task runs: load both versions (once per Python worker) and
    predict each Arrow batch, without the spend anchor (the driver applies it)."""

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        from clv.models import registry

        models = {what: registry.load_version(name, version, settings, alias=registry.CHAMPION)
                  for what, (name, version) in versions.items()}
        for batch in batches:
            if batch.empty:
                continue
            x = feature_matrix(batch, columns=model_columns(batch))
            yield pd.DataFrame({
                "customer_id": batch["customer_id"].to_numpy(),
                SPEND: models[SPEND].predict(x, anchored=False),
                CHURN: models[CHURN].predict(x)})
    return predict
