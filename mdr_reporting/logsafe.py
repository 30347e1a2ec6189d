"""Log lines never carry a secret: API keys, link signatures or signed query strings.

Installed once as the record factory, so every logger is covered, uvicorn's access
log (which prints each path with its query string) included. The operator still
sees the route and the request id; only the secret parts become ``***``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["install_log_redaction", "redact"]

_PATTERNS = (
    # the service's signed link, and presigned S3 URLs
    (
        re.compile(
            r"(?i)\b(sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token)"
            r"=[^&\s\"']+"
        ),
        r"\1=***",
    ),
    (re.compile(r"(?i)\b(bearer|token)\s+[^\s\"',]+"), r"\1 ***"),
    (re.compile(r"\bmdr_[A-Za-z0-9_-]{20,}"), "mdr_***"),  # an API key anywhere
)


# Words each pattern cannot match without (lower case but the key's prefix): a pattern
# runs only on a line that holds one of them, so a line without a secret costs a few
# substring tests (every HTTP call writes one).
_NEEDS = ((("sig", "x-amz"), True), (("bearer", "token"), True), (("mdr_",), False))


def redact(text: str) -> str:
    """``text`` with every secret replaced by ``***``."""
    lower = text.lower()
    for (pattern, replacement), (words, folded) in zip(_PATTERNS, _NEEDS, strict=True):
        haystack = lower if folded else text
        if any(word in haystack for word in words):
            text = pattern.sub(replacement, text)
    return text


def install_log_redaction() -> None:
    """Scrub every log record as it is made (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_mdr_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's to report, as before
            return record
        # the message is formatted once, here: formatters reuse it
        record.msg, record.args = redact(message), None
        return record

    factory._mdr_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
