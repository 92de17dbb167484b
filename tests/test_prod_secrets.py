"""Production secrets stay off command lines (#20); the profile's services are started
by tests/test_prod_profile.py, this checks the argv they are started with."""

from __future__ import annotations

from pathlib import Path

from clv.ops import prod


def test_the_mlflow_servers_database_password_is_not_on_its_command_line(tmp_path):
    env = prod.generate_env(pg_port=5999)
    password = env["CLV_MLFLOW_BACKEND_URI"].split("://", 1)[1].split("@")[0].split(":", 1)[1]
    assert len(password) >= 16
    argv, extra = prod.mlflow_server_command(env, "127.0.0.1", 5000, tmp_path,
                                                     Path(tmp_path / "auth.ini"))
    assert not [arg for arg in argv if password in arg]
    assert "--backend-store-uri" not in argv
    # mlflow server reads the option from this variable (click envvar)
    assert extra["MLFLOW_BACKEND_STORE_URI"] == env["CLV_MLFLOW_BACKEND_URI"]
