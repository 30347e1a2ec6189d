"""Settings: precedence, defaults under ./mdr-data, and one clear line for every bad value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mdr_reporting.settings import SettingsError, ensure_signing_secret, load_settings


def test_defaults_live_under_mdr_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, environ={})
    data = tmp_path / "mdr-data"
    assert settings.data_dir == data
    assert settings.catalog_url == f"sqlite:///{data / 'catalog.db'}"
    assert settings.lake_url == (data / "lake").as_uri()
    assert settings.files_url == (data / "reports").as_uri()
    assert settings.engine == "duckdb" and settings.port == 8000 and settings.with_worker


def test_precedence_flag_over_env_over_config_over_default(tmp_path: Path) -> None:
    config = tmp_path / "mdr.toml"
    config.write_text('port = 7001\nhost = "127.0.0.2"\nlog_level = "debug"\n')
    env = {"MDR_CONFIG": str(config), "MDR_PORT": "7002", "MDR_HOST": "127.0.0.3"}
    settings = load_settings({"port": "7003"}, environ=env)
    assert settings.port == 7003  # flag
    assert settings.host == "127.0.0.3"  # environment
    assert settings.log_level == "debug"  # config file
    assert settings.engine == "duckdb"  # default


def test_config_file_may_use_an_mdr_table(tmp_path: Path) -> None:
    config = tmp_path / "mdr.toml"
    config.write_text('[mdr]\nengine = "spark"\n')
    assert load_settings({"config": str(config)}, environ={}).engine == "spark"


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({}, {"MDR_PORT": "eighty"}, "MDR_PORT: expected an integer, got 'eighty'"),
        ({}, {"MDR_PORT": "70000"}, "MDR_PORT: must be between 0 and 65535, got 70000"),
        ({"port": "x"}, {}, "--port: expected an integer"),
        ({}, {"MDR_ENGINE": "oracle"}, "MDR_ENGINE: must be one of duckdb, spark"),
        (
            {},
            {"MDR_CATALOG_URL": "mysql://x"},
            "MDR_CATALOG_URL: must be a sqlite:// or postgresql://",
        ),
        ({}, {"MDR_LAKE_URL": "/plain/path"}, "MDR_LAKE_URL: must be a file:// or s3:// URL"),
        ({}, {"MDR_WITH_WORKER": "perhaps"}, "MDR_WITH_WORKER: expected true or false"),
        ({}, {"MDR_SIGNING_SECRET": "short"}, "MDR_SIGNING_SECRET: must be at least 16 characters"),
        (
            {},
            {"MDR_PUBLIC_URL": "example.com"},
            "MDR_PUBLIC_URL: must be a http:// or https:// URL",
        ),
        ({}, {"MDR_LINK_TTL_SECONDS": "60"}, "MDR_LINK_TTL_SECONDS: must be between 3600"),
        ({}, {"MDR_COLOUR": "blue"}, "MDR_COLOUR: unknown setting"),
        (
            {"config": "/nonexistent/mdr.toml"},
            {},
            "config: file /nonexistent/mdr.toml does not exist",
        ),
    ],
)
def test_bad_settings_fail_with_one_line_naming_them(
    flags: dict[str, str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(flags, environ=env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "mdr.toml"
    config.write_text("prot = 8000\n")
    with pytest.raises(SettingsError, match=r"prot \(in .*mdr.toml\): unknown setting"):
        load_settings({"config": str(config)}, environ={})


def test_bad_value_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "mdr.toml"
    config.write_text('max_attempts = "many"\n')
    with pytest.raises(SettingsError, match=r"max_attempts \(in .*\): expected an integer"):
        load_settings({"config": str(config)}, environ={})


def test_config_file_that_is_not_toml(tmp_path: Path) -> None:
    config = tmp_path / "mdr.toml"
    config.write_text("port = = 1\n")
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings({"config": str(config)}, environ={})


def test_signing_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    first = ensure_signing_secret(settings).signing_secret
    second = ensure_signing_secret(settings).signing_secret
    assert len(first) >= 32 and first == second
    assert (tmp_path / "signing.secret").stat().st_mode & 0o077 == 0


def test_scaled_out_catalog_turns_the_embedded_worker_off() -> None:
    settings = load_settings({"catalog_url": "postgresql://db/mdr"}, environ={})
    assert settings.with_worker is False and not settings.embedded


@pytest.mark.parametrize(
    ("flags", "env", "config", "message"),
    [
        (
            {},
            {"MDR_LOG_LEVL": "debug"},
            "",
            "MDR_LOG_LEVL: unknown setting; did you mean MDR_LOG_LEVEL?",
        ),
        ({}, {"MDR_DATADIR": "x"}, "", "MDR_DATADIR: unknown setting; did you mean MDR_DATA_DIR?"),
        ({}, {}, "prot = 8000\n", "unknown setting; did you mean port?"),
        (
            {"worker_concurency": 2},
            {},
            "",
            "--worker-concurency: unknown setting; did you mean --worker-concurrency?",
        ),
        ({}, {"MDR_COLOUR": "blue"}, "", "MDR_COLOUR: unknown setting"),
    ],
)
def test_an_unknown_setting_suggests_the_closest_name(
    tmp_path: Path, flags: dict[str, Any], env: dict[str, str], config: str, message: str
) -> None:
    if config:
        (tmp_path / "mdr.toml").write_text(config)
        flags = {**flags, "config": str(tmp_path / "mdr.toml")}
    with pytest.raises(SettingsError) as caught:
        load_settings(flags, environ=env)
    assert str(caught.value).endswith(message)
