"""The production Airflow: its users' passwords and the environment of its processes."""

from __future__ import annotations

from pathlib import Path

from clv.ops.prod.env import _secret, _write_private


def write_airflow_passwords(env: dict[str, str], path: Path) -> Path:
    """The simple auth manager's password file, from the env file (0600, under .state)."""
    import json

    users = [u.split(":")[0] for u in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")]
    pws = {u: env.get(f"CLV_AIRFLOW_{u.upper()}_PASSWORD") or _secret(15) for u in users}
    return _write_private(path, json.dumps(pws) + "\n")


def airflow_env(env: dict[str, str], state: Path, host: str, port: int) -> dict[str, str]:
    """Airflow settings derived from the env file and where things run."""
    client_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(state / "airflow_passwords.json"),
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{client_host}:{port}/execution/",
    }


# --------------------------------------------------------------------------- local PostgreSQL
