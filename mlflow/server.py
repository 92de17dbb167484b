"""The development MLflow server, configured as the pipeline expects (``make up``).

    .venv/bin/python mlflow/server.py [--host 127.0.0.1] [--port 5000] [--print]

Backend store and artifacts are the pipeline's own (``clv.config``): the SQLite registry
under ``.state/mlflow`` (the database holds runs, versions and aliases) and artifacts in
``CLV_MLFLOW_ARTIFACTS``, so the UI shows exactly what ``make run`` and the DAG logged.
The process becomes the server (``exec``): its pid is the server's, which ``make down``
stops. ``--print`` shows the command instead. The production server (basic auth,
PostgreSQL stores, proxied artifacts) is started by ``make up PROFILE=prod``
(``clv.ops.prod.mlflow_server``).

No ``__init__.py`` in this folder: a package named ``mlflow`` at the repository root
would shadow the installed library.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from clv.config import load_settings, private_dir


def server_command(host: str, port: int) -> list[str]:
    """argv of the development server over the pipeline's tracking store."""
    settings = load_settings()
    store = settings.mlflow_tracking_uri
    if not store.startswith("sqlite:///"):
        raise SystemExit(f"MLFLOW_TRACKING_URI={store!r} is a server already: nothing to start")
    private_dir(Path(store.removeprefix("sqlite:///")).parent)
    artifacts = private_dir(settings.mlflow_artifact_root)
    return [str(Path(sys.executable).parent / "mlflow"), "server", "--host", host,
            "--port", str(port), "--backend-store-uri", store,
            "--default-artifact-root", str(artifacts)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("MLFLOW_PORT", 5000)))
    p.add_argument("--print", action="store_true", help="print the command, start nothing")
    a = p.parse_args(argv)
    cmd = server_command(a.host, a.port)
    if a.print:
        print(shlex.join(cmd))
        return 0
    os.execv(cmd[0], cmd)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
