"""Every setting of the service in one declarative table.

Precedence: command-line flags, then ``MDR_*`` environment variables, then an
optional TOML config file (``--config`` / ``MDR_CONFIG``), then defaults.  An
unknown key or a bad value raises :class:`SettingsError`, whose message is one
line naming the setting and the reason.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = [
    "SETTINGS",
    "Setting",
    "Settings",
    "SettingsError",
    "ensure_signing_secret",
    "load_settings",
]

ENV_PREFIX = "MDR_"


class SettingsError(Exception):
    """A setting is unknown or has a bad value; the message names it."""


def _str(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError("expected a string")
    return str(value)


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected an integer, got {value!r}") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, got {number}")
        return number

    return parse


def _float_range(low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, got {number}")
        return number

    return parse


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def _url(*schemes: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _str(value).strip()
        scheme = urlparse(text).scheme.split("+")[0]
        if scheme not in schemes:
            raise ValueError(
                f"must be a {' or '.join(s + '://' for s in schemes)} URL, got {text!r}"
            )
        return text

    return parse


def _http_url(value: Any) -> str:
    text = _url("http", "https")(value).rstrip("/")
    if not urlparse(text).netloc:
        raise ValueError(f"must be an absolute http(s) URL, got {text!r}")
    return text


def _spark_conf(value: Any) -> tuple[tuple[str, str], ...]:
    """``spark.*`` settings passed to the Spark session: a TOML table, or a string of
    ``key=value`` pairs separated by ``;`` or new lines (values may hold spaces)."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, Mapping):
        pairs = [(str(k), _str(v)) for k, v in value.items()]
    else:
        pairs = []
        for item in _str(value).replace("\n", ";").split(";"):
            if not item.strip():
                continue
            key, sep, text = item.partition("=")
            if not sep:
                raise ValueError(f"expected key=value, got {item.strip()!r}")
            pairs.append((key.strip(), text.strip()))
    for key, _ in pairs:
        if not key.startswith("spark."):
            raise ValueError(f"keys must start with 'spark.', got {key!r}")
    return tuple(pairs)


def _log_level(value: Any) -> str:
    return _choice("debug", "info", "warning", "error")(value)


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str


# default None means: derived from data_dir (or another setting) in load_settings.
SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", _str, "./mdr-data", "folder holding everything on the embedded default"),
    Setting("catalog_url", _url("sqlite", "postgresql"), None, "catalog database URL"),
    Setting("lake_url", _url("file", "s3"), None, "record lake URL"),
    Setting("files_url", _url("file", "s3"), None, "report file store URL"),
    Setting("engine", _choice("duckdb", "spark", "auto"), "duckdb", "query engine"),
    Setting("spark_master", _str, "local[2]", "Spark master URL when engine is spark or auto"),
    Setting("spark_conf", _spark_conf, "", "extra Spark settings: 'spark.a=1;spark.b=x'"),
    Setting(
        "auto_spark_rows",
        _int_range(0, 10**12),
        20_000_000,
        "engine auto: reports over more lake rows than this go to Spark",
    ),
    Setting("signing_secret", _str, None, "secret for signed download links"),
    Setting("host", _str, "127.0.0.1", "listen address"),
    Setting("port", _int_range(0, 65535), 8000, "listen port"),
    Setting("public_url", _http_url, None, "base URL put in report links"),
    Setting("with_worker", _bool, None, "run the report worker inside serve"),
    Setting("worker_concurrency", _int_range(1, 64), 1, "reports built at once per worker"),
    Setting("lease_seconds", _float_range(1, 3600), 60.0, "job lease length"),
    Setting("max_attempts", _int_range(1, 100), 3, "build attempts before Failed"),
    Setting("link_ttl_seconds", _int_range(3600, 7 * 86400), 3 * 3600, "signed link lifetime"),
    Setting("report_retention_days", _int_range(1, 3650), 30, "days a report stays downloadable"),
    Setting("log_level", _log_level, "info", "log level"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    catalog_url: str
    lake_url: str
    files_url: str
    engine: str
    spark_master: str
    spark_conf: tuple[tuple[str, str], ...]
    auto_spark_rows: int
    signing_secret: str
    host: str
    port: int
    public_url: str
    with_worker: bool
    worker_concurrency: int
    lease_seconds: float
    max_attempts: int
    link_ttl_seconds: int
    report_retention_days: int
    log_level: str
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def embedded(self) -> bool:
        return self.catalog_url.startswith("sqlite")


def _from_config_file(path: str) -> dict[str, Any]:
    config = Path(path)
    try:
        with config.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config: file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config: {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"config: cannot read {path}: {exc.strerror}") from None
    section = data.get("mdr", data)
    if not isinstance(section, dict):
        raise SettingsError(f"config: {path}: [mdr] must be a table")
    return dict(section)


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting; raise SettingsError naming the first bad one."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ

    env: dict[str, str] = {}
    config_path = flags.pop("config", None) or environ.get(ENV_PREFIX + "CONFIG")
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in _BY_NAME:
            env[name] = value
        elif name.startswith("test_") or name in {"url", "api_key"}:
            continue  # read by the test suite and the HTTP client, not the service
        else:
            raise SettingsError(f"{key}: unknown setting")
    config = _from_config_file(str(config_path)) if config_path else {}

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer_name, layer in (("config file", config), ("environment", env), ("flag", flags)):
        for name, raw in layer.items():
            label = {
                "environment": ENV_PREFIX + name.upper(),
                "flag": "--" + name.replace("_", "-"),
            }
            where = label.get(layer_name, f"{name} (in {config_path})")
            setting = _BY_NAME.get(name)
            if setting is None:
                raise SettingsError(f"{where}: unknown setting")
            try:
                values[name] = setting.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{where}: {exc}") from None
            sources[name] = layer_name

    for setting in SETTINGS:
        if setting.name not in values and setting.default is not None:
            values[setting.name] = setting.parse(setting.default)

    data_dir = Path(values["data_dir"]).expanduser().resolve()
    values["data_dir"] = data_dir
    values.setdefault("catalog_url", f"sqlite:///{data_dir / 'catalog.db'}")
    values.setdefault("lake_url", (data_dir / "lake").as_uri())
    values.setdefault("files_url", (data_dir / "reports").as_uri())
    values.setdefault("public_url", f"http://{_url_host(values['host'])}:{values['port']}")
    values.setdefault("with_worker", values["catalog_url"].startswith("sqlite"))
    if "signing_secret" not in values:
        values["signing_secret"] = ""  # filled from the data folder by ensure_signing_secret
    elif len(values["signing_secret"]) < 16:
        raise SettingsError(f"{_where('signing_secret', sources)}: must be at least 16 characters")
    return Settings(**values, sources=sources)


def _where(name: str, sources: Mapping[str, str]) -> str:
    source = sources.get(name)
    if source == "environment":
        return ENV_PREFIX + name.upper()
    if source == "flag":
        return "--" + name.replace("_", "-")
    return name


def _url_host(host: str) -> str:
    if host in {"0.0.0.0", "::", ""}:  # noqa: S104 - mapping a wildcard bind to a usable link host
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def ensure_signing_secret(settings: Settings) -> Settings:
    """Give the embedded default a stable secret kept in the data folder."""
    if settings.signing_secret:
        return settings
    path = settings.data_dir / "signing.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        tmp.replace(path)
    secret = path.read_text().strip()
    return dataclasses.replace(settings, signing_secret=secret)
