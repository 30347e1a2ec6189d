"""Log lines on stderr: text by default, JSON lines with ``MDR_LOG_FORMAT=json``.

Every line goes through :mod:`mdr_reporting.logsafe` (keys, link signatures and signed
query strings become ``***``): the record factory scrubs each message, and the JSON
formatter scrubs the whole line once more, structured fields included.

Two loggers carry one line per event with fixed fields (``extra={"mdr": {...}}``):
``mdr.http`` (one per HTTP call) and ``mdr.build`` (one per report build).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from mdr_reporting.logsafe import install_log_redaction, redact

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "fields_of"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# loggers that print one line per migration step or per connection: quieter
_QUIET = ("alembic", "uvicorn.access", "httpx", "py4j")


def fields_of(record: logging.LogRecord) -> dict[str, Any] | None:
    """The structured fields of a line of ``mdr.http`` or ``mdr.build`` (None for others)."""
    fields = getattr(record, "mdr", None)
    return fields if isinstance(fields, dict) else None


class TextFormatter(logging.Formatter):
    """``2026-12-03 14:00:00,123 INFO mdr.http GET /reporting/mdr_requests 200 1.2 ms ...``"""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, then the
    line's structured fields and, on an error, the traceback as ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = record.created
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        line: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = fields_of(record)
        if fields:
            for name, value in fields.items():
                line.setdefault(name, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return redact(orjson.dumps(line, default=str).decode())


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """One handler on the root logger writing to stderr in ``fmt`` (``text`` or ``json``),
    replacing any earlier one of ours; uvicorn's own loggers propagate to it."""
    install_log_redaction()
    # No format of ours prints them: records skip looking them up (logging HOWTO,
    # "Optimization"), which is most of a record's cost besides writing it.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_mdr_handler", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._mdr_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
