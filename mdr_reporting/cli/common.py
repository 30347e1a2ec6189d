"""What every command shares: settings options and one-line errors."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import unquote, urlparse

import click
from sqlalchemy.engine import url as sa_url

from mdr_reporting.settings import Settings, SettingsError, ensure_signing_secret, load_settings

__all__ = [
    "configure_logging",
    "emit",
    "fail",
    "load",
    "load_existing",
    "one_line",
    "redact",
    "settings_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def settings_options(func: F) -> F:
    """Add --data-dir and --config, which every command touching local state takes."""

    @click.option(
        "--data-dir",
        "data_dir",
        type=str,
        default=None,
        help="Data folder (MDR_DATA_DIR; default ./mdr-data).",
    )
    @click.option(
        "--config", "config", type=str, default=None, help="TOML config file (MDR_CONFIG)."
    )
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def load(**flags: Any) -> Settings:
    """Settings from flags, environment, config file and defaults, or a one-line exit."""
    try:
        settings = load_settings(flags)
    except SettingsError as exc:
        fail(f"settings: {exc}")
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        fail(f"data folder {settings.data_dir}: not a directory")
    try:
        return ensure_signing_secret(settings)
    except OSError as exc:
        fail(f"data folder {settings.data_dir}: {one_line(exc)}")


def load_existing(*, catalog: bool = False, lake: bool = False, **flags: Any) -> Settings:
    """Settings for a read-only command: nothing is created. When the catalog (or lake)
    it reads is local and missing, exit with one line naming the folder it looked in."""
    try:
        settings = load_settings(flags)
    except SettingsError as exc:
        fail(f"settings: {exc}")
    data_dir = settings.data_dir
    where = "--data-dir DIR or set MDR_DATA_DIR"
    if data_dir.exists() and not data_dir.is_dir():
        fail(f"data folder {data_dir}: not a directory")
    paths = []
    if catalog and settings.catalog_url.startswith("sqlite:///"):
        paths.append(("catalog", Path(settings.catalog_url.removeprefix("sqlite:///"))))
    if lake and settings.lake_url.startswith("file://"):
        paths.append(("lake", Path(unquote(urlparse(settings.lake_url).path))))
    for what, path in paths:
        if path.exists():
            continue
        if path.is_relative_to(data_dir) and not data_dir.exists():
            fail(f"no data folder at {data_dir}: nothing to show (pass {where})")
        fail(f"no {what} at {path}: nothing to show (data folder {data_dir}; pass {where})")
    return settings  # no signing secret: a read-only command signs nothing


def one_line(exc: BaseException) -> str:
    """An error as one line: the driver's own message (not SQLAlchemy's wrapper), no hints."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, OSError) and cause.strerror:
        text = f"{cause.strerror}: {cause.filename}" if cause.filename else cause.strerror
    else:
        text = str(cause) or cause.__class__.__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def redact(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    try:
        return sa_url.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def emit(data: dict[str, Any], as_json: bool, text: str) -> None:
    click.echo(json.dumps(data) if as_json else text)


def configure_logging(settings: Settings) -> None:
    """Timestamped lines (text, or JSON with ``log_format = "json"``) on stderr at the
    settings' level, for the long-running commands; no line ever shows a key, a link
    signature or a signed query string."""
    from mdr_reporting.observability.logs import configure_logging as configure

    configure(settings.log_level, settings.log_format)
