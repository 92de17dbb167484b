"""Move a registry alias by hand: what an ML lead does to promote a model version.

    .venv/bin/python mlflow/promote.py clv_spend 3 "beats v2 on the Q3 backtest"
    .venv/bin/python mlflow/promote.py clv_churn 2 "why" challenger

Same as ``make promote MODEL=clv_spend VERSION=3 REASON=...``; who, when and why are kept
in the version's ``alias_set_*`` tags (its ``alias_decision`` stays). Or setting the alias in the
MLflow UI (Models -> clv_spend -> version -> Aliases). The next scoring run uses
the new champion and records its version on every output row.

This folder has no ``__init__.py`` on purpose: a package named ``mlflow`` at the
repository root would shadow the installed MLflow library.
"""

from __future__ import annotations

import sys

from clv.ops.cli import main

if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    alias = sys.argv[4] if len(sys.argv) == 5 else "champion"
    sys.exit(main(["promote", "--model", sys.argv[1], "--version", sys.argv[2],
                   "--reason", sys.argv[3], "--alias", alias]))
