"""The Spark engine over an S3 lake: lake URLs as s3a:// URIs and the fs.s3a settings
derived from the service's own S3 settings (no Spark is started here)."""

from __future__ import annotations

import pytest

from mdr_reporting.engines.spark import DEFAULT_CONF, SparkEngine, s3a_conf, spark_path
from mdr_reporting.objectstore import S3Location

S3A = "spark.hadoop.fs.s3a."


@pytest.fixture(autouse=True)
def _no_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)


def test_lake_urls_become_s3a_uris_and_paths_stay() -> None:
    url = "s3://mdr-lake/prod/data/2026-03-01/part-0000000000001-abcdef.parquet"
    assert (
        spark_path(url) == "s3a://mdr-lake/prod/data/2026-03-01/part-0000000000001-abcdef.parquet"
    )
    assert spark_path("/var/lib/mdr/lake/data/2026-03-01/a.parquet") == (
        "/var/lib/mdr/lake/data/2026-03-01/a.parquet"
    )


def test_an_explicit_http_endpoint_gets_path_style_and_no_tls_and_static_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    location = S3Location("lake", "prod", "http://minio.internal:9000", "eu-west-1")
    assert s3a_conf(location, {}) == {
        S3A + "endpoint": "http://minio.internal:9000",
        S3A + "endpoint.region": "eu-west-1",
        S3A + "path.style.access": "true",
        S3A + "connection.ssl.enabled": "false",
        S3A + "access.key": "AKIDEXAMPLE",
        S3A + "secret.key": "s3cr3t",
        S3A + "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }


def test_aws_itself_needs_only_the_region_and_a_session_token_changes_the_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    assert s3a_conf(S3Location("lake", ""), {}) == {S3A + "endpoint.region": "ap-southeast-2"}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "tok")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.ap-southeast-2.amazonaws.com")
    conf = s3a_conf(S3Location("lake", ""), {})
    assert conf[S3A + "session.token"] == "tok"
    assert conf[S3A + "aws.credentials.provider"].endswith(".TemporaryAWSCredentialsProvider")
    assert conf[S3A + "endpoint"] == "https://s3.ap-southeast-2.amazonaws.com"
    assert conf[S3A + "connection.ssl.enabled"] == "true"


def test_what_the_deployment_sets_wins_and_any_credential_setting_keeps_ours_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    location = S3Location("lake", "prod", "http://127.0.0.1:9000")
    user = {
        S3A + "path.style.access": "false",
        S3A + "aws.credentials.provider": (
            "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
        ),
    }
    conf = s3a_conf(location, user)
    assert S3A + "path.style.access" not in conf
    assert not {k for k in conf if k.endswith((".access.key", ".secret.key", ".provider"))}
    engine = SparkEngine("spark://127.0.0.1:7077", user, s3=location)
    assert engine.conf[S3A + "path.style.access"] == "false"
    assert engine.conf[S3A + "endpoint"] == "http://127.0.0.1:9000"
    assert S3A + "secret.key" not in engine.conf
    assert engine.conf["spark.sql.session.timeZone"] == DEFAULT_CONF["spark.sql.session.timeZone"]


def test_a_local_lake_adds_no_s3a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    engine = SparkEngine("spark://127.0.0.1:7077", {"spark.executor.cores": "2"})
    assert not [k for k in engine.conf if k.startswith(S3A)]
