"""Module names from before the stage folders, for model versions pickled under them.

MLflow pyfunc versions registered before the package was arranged by stage pickled
their classes by module path (``clv.ziln.ZilnPyfunc``, ``clv.btyd_models.BtydModel``,
``clv.uplift_pyfunc.UpliftPyfunc``). So that a registry's existing champions keep
loading, :func:`install` lets those old names import as the modules that now hold the
classes. Only names a pickle can hold are listed; code imports the new paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: old module -> its module now (only those whose classes were pickled into versions)
RENAMED = {
    "clv.ziln": "clv.models.ziln",
    "clv.btyd_models": "clv.models.btyd_pyfunc",
    "clv.btyd": "clv.models.btyd",
    "clv.uplift_pyfunc": "clv.decisions.uplift_pyfunc",
    "clv.effects": "clv.decisions.effects",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):  # noqa: D102
        if fullname in RENAMED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):  # noqa: D102
        return importlib.import_module(RENAMED[spec.name])

    def exec_module(self, module):  # noqa: D102
        """Nothing to run: the module is the new one, already imported."""


def install() -> None:
    """Add the alias finder once (it only answers the names in :data:`RENAMED`)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
