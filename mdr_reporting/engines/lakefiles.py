"""What engines read from the lake files' Parquet metadata, before reading any data."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow.parquet as pq

from mdr_reporting.domain.records import FOLDED_COLUMNS

__all__ = ["FOLD_FUNCTION", "has_folded_numbers", "metadata_rows"]

FOLD_FUNCTION = "mdr_fold_number"
"""The name engines register the domain's ``fold_numbers`` under, for files without
the folded columns (written before the lake stored them; ``mdr lake compact`` adds them)."""


def has_folded_numbers(files: Iterable[str]) -> bool:
    """Whether every file holds ``cli_folded`` and ``cld_folded``."""
    wanted = set(FOLDED_COLUMNS.values())
    return all(wanted <= set(pq.read_schema(path).names) for path in files)


def metadata_rows(files: Iterable[str]) -> int:
    """The rows the files hold, from their footers (no data read)."""
    return sum(pq.read_metadata(path).num_rows for path in files)
