"""Cost bounds on one report request, shared by validation and the OpenAPI schema.

A request within these bounds cannot hold a worker for long on a tiny window;
past them the create is a 400 that names the limit.  Both the domain's validation
and the published schema read these numbers, so they cannot drift apart.
"""

from __future__ import annotations

__all__ = [
    "MAX_FILTERS",
    "MAX_ID_LENGTH",
    "MAX_LIST_ITEMS",
    "MAX_TAGS_PER_FILTER",
    "MAX_TEXT_LENGTH",
    "MAX_URL_LENGTH",
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
