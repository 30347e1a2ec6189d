"""File name suffix and media type of each report format (api.md section 7)."""

from __future__ import annotations

from dataclasses import dataclass

from mdr_reporting.domain.enums import FORMATS

__all__ = ["FileFormat", "file_format"]


@dataclass(frozen=True)
class FileFormat:
    suffix: str
    media_type: str


_FORMATS = {
    "csv": FileFormat(".csv", "text/csv; charset=utf-8"),
    "csv.gz": FileFormat(".csv.gz", "application/gzip"),
    "jsonl.gz": FileFormat(".jsonl.gz", "application/gzip"),
    "parquet": FileFormat(".parquet", "application/vnd.apache.parquet"),
}
assert set(_FORMATS) == set(FORMATS)


def file_format(name: str) -> FileFormat:
    return _FORMATS[name]
