"""The Spark session behind ``engine: spark``.

By default a local session (``local[2]``: this machine's two cores, Spark UI off, quiet
logs) that reads the Parquet panel from the project folder. Java 17 or newer is required
(Spark 4); without it ``engine: spark`` stops with exit 5 and says how to fix it.

Pointing it at a real cluster (nothing in params.yaml changes; the environment decides):

* ``CLUSTER_IMPACT_SPARK_MASTER``: the master URL, e.g. ``spark://host:7077``, ``yarn``
  or ``k8s://https://api-server:6443`` (default ``local[2]``); or
* ``SPARK_REMOTE``: a Spark Connect endpoint, e.g. ``sc://spark-connect.example:15002``
  (PySpark 4 connects instead of starting a driver here);
* ``CLUSTER_IMPACT_SPARK_CONF``: extra settings as ``key=value`` pairs separated by ``;``,
  e.g. ``spark.executor.memory=8g;spark.executor.instances=20;spark.sql.shuffle.partitions=400``.

On a cluster the executors must be able to read the processed panel: keep the project (or
at least ``data/processed/``) on storage every node sees (HDFS, S3 via ``s3a://`` with the
hadoop-aws package in ``spark.jars.packages``, a shared NFS mount). Only small results
(cohorts x periods^2 numbers) come back to the driver, so the driver needs little memory.
"""

from __future__ import annotations

import os
import shutil

from models.errors import ConfigError

LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",  # two cores: few, larger partitions
    "spark.driver.memory": "2g",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def java_available() -> str | None:
    """Path of the java executable Spark would use, or None."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def _extra_conf() -> dict[str, str]:
    raw = os.environ.get("CLUSTER_IMPACT_SPARK_CONF", "")
    out = {}
    for part in filter(None, (x.strip() for x in raw.split(";"))):
        if "=" not in part:
            raise ConfigError(f"CLUSTER_IMPACT_SPARK_CONF: {part!r} is not key=value; separate settings with ';'")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def session():
    """The active Spark session, created on first use (see the module docstring)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - pyspark is a dependency
        raise ConfigError("engine: spark needs pyspark (a project dependency): run `uv sync --locked`") from exc
    remote = os.environ.get("SPARK_REMOTE")
    if not remote and java_available() is None:
        raise ConfigError(
            "engine: spark needs Java 17 or newer and none was found (neither JAVA_HOME nor `java` on PATH). "
            "Install a JDK (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME, "
            "point SPARK_REMOTE at a Spark Connect server, or use engine: duckdb."
        )
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName("cluster-impact")
    if remote:
        builder = builder.remote(remote)
    else:
        builder = builder.master(os.environ.get("CLUSTER_IMPACT_SPARK_MASTER", "local[2]"))
        for k, v in LOCAL_CONF.items():
            builder = builder.config(k, v)
    for k, v in _extra_conf().items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR") if not remote else None
    return spark
