"""Every setting of the service in one declarative table.

Precedence: command-line flags, then ``MDR_*`` environment variables, then an
optional TOML config file (``--config`` / ``MDR_CONFIG``), then defaults.  An
unknown key or a bad value raises :class:`SettingsError`, whose message is one
line naming the setting and the reason.
"""

from __future__ import annotations

import dataclasses
import difflib
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
    "rotate_signing_secret",
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


def _secrets(value: Any) -> tuple[str, ...]:
    """A list of secrets: a TOML array, or one string of comma-separated secrets."""
    items = value if isinstance(value, list | tuple) else _str(value).split(",")
    found = tuple(_str(item).strip() for item in items if _str(item).strip())
    for item in found:
        if len(item) < 16:
            raise ValueError("every secret must be at least 16 characters")
    return found


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


def _ed25519_key(value: Any) -> str:
    """A webhook signing key, checked now so that a bad one stops start-up."""
    from mdr_reporting.webhooks.keys import parse_signing_key

    text = _str(value).strip()
    parse_signing_key(text)  # SigningKeyError is a ValueError: it names the problem
    return text


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
    Setting(
        "signing_old_secrets",
        _secrets,
        (),
        "retired signing secrets whose links stay valid until they expire (comma-separated)",
    ),
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
    Setting("log_format", _choice("text", "json"), "text", "log lines on stderr: text or json"),
    Setting(
        "metrics_auth",
        _choice("none", "admin"),
        "none",
        "who may read /metrics: anyone (none) or a key with the admin scope (admin)",
    ),
    Setting(
        "metrics_port",
        _int_range(0, 65535),
        None,
        "mdr worker: serve /metrics, /healthz and /readyz on this port (default: none)",
    ),
    Setting(
        "max_pending_per_account",
        _int_range(0, 10_000_000),
        1000,
        "Pending requests an account may have queued at once; past it a create is a 429 "
        "(0: no cap)",
    ),
    Setting("rate_limit_rps", _float_range(0, 1e6), 200.0, "API calls per second per key (0: off)"),
    Setting("rate_limit_burst", _int_range(1, 10_000_000), 2000, "API calls a key may burst"),
    Setting(
        "create_rate_limit_rps", _float_range(0, 1e6), 20.0, "report creates per second per key"
    ),
    Setting(
        "create_rate_limit_burst", _int_range(1, 10_000_000), 200, "report creates a key may burst"
    ),
    Setting(
        "ingest_rate_limit_rps", _float_range(0, 1e6), 50.0, "ingest batches per second per key"
    ),
    Setting(
        "ingest_rate_limit_burst", _int_range(1, 10_000_000), 500, "ingest batches a key may burst"
    ),
    Setting("s3_endpoint_url", _http_url, None, "S3 endpoint (MinIO, moto); default AWS"),
    Setting("s3_region", _str, None, "S3 region; default AWS_REGION or us-east-1"),
    Setting(
        "webhook_allow_private",
        _bool,
        False,
        "allow webhook_url targets on loopback, private and link-local addresses "
        "(development and tests only)",
    ),
    Setting(
        "webhook_signing_key",
        _ed25519_key,
        None,
        "Ed25519 private key signing webhooks (base64 of 32 bytes, or PEM); "
        "default: made once into the data folder",
    ),
    Setting("webhook_timeout_seconds", _float_range(0.1, 60), 10.0, "timeout of one webhook POST"),
    Setting(
        "webhook_retry_hours", _float_range(0, 720), 24.0, "hours a failing webhook is retried"
    ),
    Setting(
        "webhook_retry_base_seconds",
        _float_range(0.01, 3600),
        5.0,
        "wait before the first webhook retry; doubled each time, up to an hour, with jitter",
    ),
    Setting("webhook_senders", _int_range(1, 64), 4, "webhooks sent at once per worker process"),
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
    signing_old_secrets: tuple[str, ...]
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
    log_format: str
    metrics_auth: str
    max_pending_per_account: int
    rate_limit_rps: float
    rate_limit_burst: int
    create_rate_limit_rps: float
    create_rate_limit_burst: int
    ingest_rate_limit_rps: float
    ingest_rate_limit_burst: int
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    webhook_allow_private: bool = False
    webhook_signing_key: str | None = None
    webhook_timeout_seconds: float = 10.0
    webhook_retry_hours: float = 24.0
    webhook_retry_base_seconds: float = 5.0
    webhook_senders: int = 4
    metrics_port: int | None = None
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
            raise SettingsError(f"{key}: unknown setting{_closest(name, ENV_PREFIX)}")
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
                prefix = {"environment": ENV_PREFIX, "flag": "--"}.get(layer_name, "")
                raise SettingsError(f"{where}: unknown setting{_closest(name, prefix)}")
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


def _closest(name: str, prefix: str) -> str:
    """``; did you mean MDR_LOG_LEVEL?`` for the known setting nearest to ``name``."""
    found = difflib.get_close_matches(name, _BY_NAME, n=1, cutoff=0.6)
    if not found:
        return ""
    guess = found[0]
    if prefix == ENV_PREFIX:
        guess = ENV_PREFIX + guess.upper()
    elif prefix == "--":
        guess = "--" + guess.replace("_", "-")
    return f"; did you mean {guess}?"


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


SECRET_FILE = "signing.secret"  # noqa: S105 - a file name, not a secret
OLD_SECRETS_FILE = "signing.old-secrets"


def ensure_signing_secret(settings: Settings) -> Settings:
    """Give the embedded default a stable secret kept in the data folder (0600, never wider),
    and add the retired secrets of ``signing.old-secrets`` there to the setting's."""
    from mdr_reporting.owner_only import private_dir, write_new

    old = settings.signing_old_secrets + _read_secrets(settings.data_dir / OLD_SECRETS_FILE)
    if settings.signing_secret:
        return dataclasses.replace(settings, signing_old_secrets=old)
    path = settings.data_dir / SECRET_FILE
    if not path.exists():
        private_dir(settings.data_dir)
        write_new(path, secrets.token_urlsafe(48).encode())
    secret = path.read_text().strip()
    return dataclasses.replace(settings, signing_secret=secret, signing_old_secrets=old)


def rotate_signing_secret(data_dir: Path) -> None:
    """Retire the data folder's signing secret: it moves to ``signing.old-secrets`` (links
    it signed stay valid until they expire) and a new one takes its place."""
    from mdr_reporting.owner_only import FILE_MODE, write_new

    path = data_dir / SECRET_FILE
    if not path.exists():
        raise SettingsError(f"{path}: no signing secret to rotate")
    current = path.read_text().strip()
    old = data_dir / OLD_SECRETS_FILE
    fd = os.open(old, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    with os.fdopen(fd, "a") as handle:
        handle.write(current + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()
    write_new(path, secrets.token_urlsafe(48).encode())


def _read_secrets(path: Path) -> tuple[str, ...]:
    """One secret a line; blank lines and ``#`` comments are skipped."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return ()
    found = tuple(x.strip() for x in lines if x.strip() and not x.strip().startswith("#"))
    try:
        return _secrets(list(found))
    except ValueError as exc:
        raise SettingsError(f"{path}: {exc}") from None
