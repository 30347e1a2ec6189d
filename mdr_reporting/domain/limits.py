"""Cost bounds on one report request, shared by validation and the OpenAPI schema.

A request within these bounds cannot hold a worker for long on a tiny window;
past them the create is a 400 that names the limit.  Both the domain's validation
and the published schema read these numbers, so they cannot drift apart.
"""

from __future__ import annotations

__all__ = [
    "MAX_BODY_DEPTH",
    "MAX_FILTERS",
    "MAX_ID_LENGTH",
    "MAX_LIST_ITEMS",
    "MAX_TAGS_PER_FILTER",
    "MAX_TEXT_LENGTH",
    "MAX_URL_LENGTH",
    "PLAIN_CHAR",
    "TEXT_PATTERN",
]

MAX_LIST_ITEMS = 1000
"""Most ids in one of ``connections``, ``profiles``, ``managed_accounts``."""

MAX_ID_LENGTH = 255
"""Longest id in those lists."""

MAX_FILTERS = 100
"""Most entries in ``filters``."""

MAX_TAGS_PER_FILTER = 100
"""Most tags in one filter's ``tags_list``."""

MAX_TEXT_LENGTH = 255
"""Longest filter literal (``cli``, ``cld``, a tag) and ``report_name``."""

MAX_URL_LENGTH = 2048
"""Longest ``webhook_url``."""

MAX_BODY_DEPTH = 32
"""Deepest nesting of a request body (a valid one nests 4: filters, a filter, tags_list)."""

PLAIN_CHAR = "[^\\u0000-\\u001f\\u007f]"
"""One character that is not a control character (a regular-expression class)."""

TEXT_PATTERN = f"^{PLAIN_CHAR}*$"
"""Every string of a request body (values and field names): no control character such
as NUL. A JSON Schema ``pattern`` (ECMA-262) and a Python regular expression alike."""
