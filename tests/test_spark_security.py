"""Spark's authentication and encryption are on in the production profile and on a
cluster given a secret (issue #20: the driver accepted unauthenticated connections), and
the secret never appears on a command line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clv.data import spark as clv_spark

AUTH = {"spark.authenticate": "true", "spark.network.crypto.enabled": "true",
        "spark.io.encryption.enabled": "true"}
STANDALONE = "spark://10.0.0.5:7077"


@pytest.fixture
def no_secret(monkeypatch, clv_home):
    for var in (*clv_spark.AUTH_SECRET_VARS, "CLV_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return clv_home


def test_production_profile_switches_authentication_and_encryption_on(no_secret, monkeypatch):
    assert clv_spark.security_conf("local[2]") == {}  # the embedded default is unchanged
    monkeypatch.setenv("CLV_PROFILE", "prod")
    assert clv_spark.security_conf("local[2]") == AUTH  # local: Spark makes the secret
    assert clv_spark.security_conf("yarn") == AUTH
    with pytest.raises(ValueError, match="CLV_SPARK_AUTH_SECRET or CLV_SPARK_AUTH_SECRET_FILE"):
        clv_spark.security_conf(STANDALONE)


def test_a_cluster_secret_travels_in_a_private_file_not_the_command_line(no_secret,
                                                                         monkeypatch):
    monkeypatch.setenv("CLV_SPARK_MASTER", STANDALONE)
    argv = clv_spark.connect_server_command(15002)
    assert "spark.authenticate=true" not in argv  # no secret, dev profile: stays open
    secret_file = no_secret.home / "secret"
    secret_file.write_text("s3cr3t-for-the-cluster\n")
    monkeypatch.setenv("CLV_SPARK_AUTH_SECRET_FILE", str(secret_file))
    argv = clv_spark.connect_server_command(15002)
    for key, value in AUTH.items():
        assert f"{key}={value}" in argv
    assert not any("s3cr3t" in arg for arg in argv)
    props = Path(argv[argv.index("--properties-file") + 1])
    assert props.read_text() == "spark.authenticate.secret s3cr3t-for-the-cluster\n"
    assert oct(stat.S_IMODE(props.stat().st_mode)) == "0o600"


CHECK = """
from clv.data.spark import get_spark
spark = get_spark("auth-check")
conf = spark.sparkContext.getConf()
print("AUTH", conf.get("spark.authenticate"), conf.get("spark.network.crypto.enabled"),
      conf.get("spark.io.encryption.enabled"))
rows = spark.range(1000).selectExpr("id % 7 as k").groupBy("k").count().toPandas()
print("SHUFFLED", int(rows["count"].sum()))
"""


def test_a_local_driver_runs_with_authentication_and_encryption_on(no_secret):
    env = {**os.environ, "CLV_PROFILE": "prod", "CLV_SPARK_MASTER": "local[1]",
           "CLV_SPARK_DRIVER_MEMORY": "512m", "CLV_HOME": str(no_secret.home)}
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "AUTH true true true" in out.stdout
    assert "SHUFFLED 1000" in out.stdout  # a shuffle through encrypted local files
