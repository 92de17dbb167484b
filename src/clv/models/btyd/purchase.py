"""Any purchase model: what BG/NBD, Pareto/NBD and MBG/NBD share, fitting one by family
name, and the expected spend of a purchase model with Gamma-Gamma."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from clv.models.btyd.bgnbd import fit_bgnbd
from clv.models.btyd.mbgnbd import fit_mbgnbd
from clv.models.btyd.pareto_nbd import fit_pareto_nbd

if TYPE_CHECKING:  # pragma: no cover
    from clv.models.btyd.gamma_gamma import GammaGamma


class PurchaseModel(Protocol):
    """What BG/NBD, Pareto/NBD and MBG/NBD fits share: callers use any of them alike."""

    @property
    def log_likelihood(self) -> float: ...

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray: ...

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray,
                           T: np.ndarray) -> np.ndarray: ...

    def p_no_purchase(self, t: float, x: np.ndarray, t_x: np.ndarray,
                      T: np.ndarray) -> np.ndarray: ...

    def sample_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                         n_sims: int, rng: np.random.Generator) -> np.ndarray: ...


#: family name -> maximum-likelihood fitter on (x, t_x, T)
PURCHASE_FAMILIES = {"bgnbd": fit_bgnbd, "pareto_nbd": fit_pareto_nbd, "mbgnbd": fit_mbgnbd}
DEFAULT_FAMILY = "bgnbd"


def fit_purchase_model(family: str, x: np.ndarray, t_x: np.ndarray,
                       T: np.ndarray) -> PurchaseModel:
    """Fit the purchase model ``family`` (one of :data:`PURCHASE_FAMILIES`) on (x, t_x, T)."""
    if family not in PURCHASE_FAMILIES:
        raise ValueError(f"unknown BTYD purchase family {family!r}; "
                         f"expected one of {sorted(PURCHASE_FAMILIES)}")
    return PURCHASE_FAMILIES[family](x, t_x, T)


def predict_clv(bg: PurchaseModel, gg: GammaGamma, horizon: float, x: np.ndarray,
                t_x: np.ndarray, T: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Expected spend over the next ``horizon``: E[purchases] x E[spend per purchase]."""
    return bg.expected_purchases(horizon, x, t_x, T) * gg.expected_spend(x, m)
