"""Buy-till-you-die baselines: purchase models (BG/NBD, Pareto/NBD, MBG/NBD) and
Gamma-Gamma (spend per purchase).

What an analyst would use instead of the ML models, implemented from the papers
(lifetimes / PyMC-Marketing do not install beside this stack's pinned NumPy and
pandas) and validated against the published CDNOW estimates in the tests. The three
purchase models share :class:`PurchaseModel`; :func:`fit_purchase_model` fits one by
family name (``"bgnbd"``, ``"pareto_nbd"``, ``"mbgnbd"``), and
:func:`btyd_spend_quantiles` gives per-customer predictive intervals of the spend by
simulating each model's posterior with the Gamma-Gamma one.

Inputs per customer, in any time unit (the tests use weeks, the pipeline days):
``x`` repeat purchases (purchase days after the first), ``t_x`` time of the last
purchase since the first, ``T`` age (time since the first purchase), ``m`` mean
spend per repeat purchase.

Submodules:

* :mod:`.bgnbd` — BG/NBD (Fader, Hardie & Lee 2005);
* :mod:`.pareto_nbd` — Pareto/NBD (Schmittlein, Morrison & Colombo 1987; FH 2005 note);
* :mod:`.mbgnbd` — MBG/NBD (Batislam, Denizel & Filiztekin 2007);
* :mod:`.gamma_gamma` — Gamma-Gamma spend per purchase (Fader & Hardie 2013);
* :mod:`.purchase` — any purchase model: the protocol, fitting by family, expected spend;
* :mod:`.simulation` — spend quantiles by posterior simulation (:data:`SIM_CELLS` there);
* :mod:`.baseline` — the baseline on the pipeline's features (:class:`BtydBaseline`);
* :mod:`.estimation` — input checks and the maximum-likelihood search they share.
"""

from clv.models.btyd.baseline import (
    MAX_FIT_CUSTOMERS,
    SAMPLE_SEED,
    BtydBaseline,
    rft_from_features,
)
from clv.models.btyd.bgnbd import BgNbd, bgnbd_log_likelihood, fit_bgnbd
from clv.models.btyd.gamma_gamma import GammaGamma, fit_gamma_gamma, gamma_gamma_log_likelihood
from clv.models.btyd.mbgnbd import MbgNbd, fit_mbgnbd, mbgnbd_log_likelihood
from clv.models.btyd.pareto_nbd import ParetoNbd, fit_pareto_nbd, pareto_nbd_log_likelihood
from clv.models.btyd.purchase import (
    DEFAULT_FAMILY,
    PURCHASE_FAMILIES,
    PurchaseModel,
    fit_purchase_model,
    predict_clv,
)
from clv.models.btyd.simulation import SIM_CELLS, btyd_spend_quantiles

__all__ = [
    "DEFAULT_FAMILY", "MAX_FIT_CUSTOMERS", "PURCHASE_FAMILIES", "SAMPLE_SEED", "SIM_CELLS",
    "BgNbd", "BtydBaseline", "GammaGamma", "MbgNbd", "ParetoNbd", "PurchaseModel",
    "bgnbd_log_likelihood", "btyd_spend_quantiles", "fit_bgnbd", "fit_gamma_gamma",
    "fit_mbgnbd", "fit_pareto_nbd", "fit_purchase_model", "gamma_gamma_log_likelihood",
    "mbgnbd_log_likelihood", "pareto_nbd_log_likelihood", "predict_clv", "rft_from_features",
]
