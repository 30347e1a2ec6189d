"""Assembling a report file from per-day part files, in day order, for every format.

An engine writes each day's rows to a part (CSV without header, JSON lines,
or Parquet); an :class:`Assembler` appends the parts in order.  Gzip members
concatenate into a valid gzip file, so ``csv.gz`` decompresses to exactly the
bytes of the ``csv`` and parts need no re-compression.
"""

from __future__ import annotations

import abc
import gzip
import os
import shutil
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from mdr_reporting.domain.records import MONEY, TIMESTAMP

__all__ = ["Assembler", "assembler_for", "report_arrow_schema"]

CSV_LINE_END = b"\r\n"


def report_arrow_schema(columns: tuple[str, ...]) -> pa.Schema:
    """The Parquet report's typed columns: UTC instants, exact decimals, tags as a list."""
    types = {
        "created_at": TIMESTAMP,
        "sent_at": TIMESTAMP,
        "completed_at": TIMESTAMP,
        "parts": pa.int32(),
        "tags": pa.list_(pa.string()),
        "rate": MONEY,
        "cost": MONEY,
        "media_size_bytes": pa.int64(),
    }
    return pa.schema([pa.field(name, types.get(name, pa.string())) for name in columns])


class Assembler(abc.ABC):
    """Builds the report at ``path`` from parts handed over in day order."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns

    @abc.abstractmethod
    def append(self, part: Path) -> None:
        """Add one day's part after the previous ones, then delete it."""

    adopts = False
    """Whether :meth:`adopt` can take a part that is the whole report."""

    def adopt(self, part: Path) -> None:
        """Take ``part``, written with the header, as the whole report (nothing appended)."""
        raise NotImplementedError

    @abc.abstractmethod
    def finish(self) -> None:
        """Complete and close the file.  It is a build's local file: the file store makes
        it durable when it takes it (the local store fsyncs it at ``put``, S3 uploads it),
        so it is not synced here as well."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file, also after an error."""


class _Concatenation(Assembler):
    """CSV, csv.gz and jsonl.gz: a header (for CSV) then the parts' bytes."""

    def __init__(
        self,
        path: Path,
        columns: tuple[str, ...],
        header: bytes,
        empty: bytes,
        *,
        adopts: bool = False,
    ) -> None:
        super().__init__(path, columns)
        self.output = path.open("wb")
        self.output.write(header)
        self.header = header
        self.empty = empty
        # Plain CSV: a part that DuckDB wrote with its header is the report as it stands.
        self.adopts = adopts

    def adopt(self, part: Path) -> None:
        if not self.adopts or self.output.tell() != len(self.header):
            raise ValueError("only a plain CSV report with nothing appended adopts a part")
        self.output.close()
        os.replace(part, self.path)
        self.output = self.path.open("ab")

    def append(self, part: Path) -> None:
        with part.open("rb") as source:
            self.output.flush()
            if not _copy_in_kernel(source, self.output):
                shutil.copyfileobj(source, self.output, 1 << 20)
        part.unlink()

    def finish(self) -> None:
        if self.output.tell() == 0:
            self.output.write(self.empty)
        self.output.close()

    def close(self) -> None:
        self.output.close()


def _copy_in_kernel(source: BinaryIO, target: BinaryIO) -> bool:
    """Append ``source`` to ``target`` without passing the bytes through Python (Linux
    ``copy_file_range``); False when the system cannot (``target``'s position unchanged)."""
    copy = getattr(os, "copy_file_range", None)
    if copy is None:
        return False
    size = os.fstat(source.fileno()).st_size
    start = target.tell()
    done = 0
    try:
        while done < size:
            moved = copy(source.fileno(), target.fileno(), size - done, done, start + done)
            if moved == 0:
                break
            done += moved
    except OSError:
        if done:
            raise
        return False
    if done != size:
        raise OSError(f"copied {done} of {size} bytes of a report part")
    target.seek(start + done)
    return True


class _ParquetMerge(Assembler):
    """Parquet: each part's row groups copied into one writer with the report schema."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        super().__init__(path, columns)
        self.schema = report_arrow_schema(columns)
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")

    def append(self, part: Path) -> None:
        source = pq.ParquetFile(part)
        for group in range(source.num_row_groups):
            table = source.read_row_group(group).select(list(self.columns))
            self.writer.write_table(table.cast(self.schema))
        source.close()
        part.unlink()

    def finish(self) -> None:
        self.writer.close()

    def close(self) -> None:
        self.writer.close()


def assembler_for(fmt: str, path: Path, columns: tuple[str, ...]) -> Assembler:
    header = ",".join(columns).encode() + CSV_LINE_END
    if fmt == "csv":
        return _Concatenation(path, columns, header, b"", adopts=True)
    if fmt == "csv.gz":
        return _Concatenation(path, columns, gzip.compress(header, mtime=0), b"")
    if fmt == "jsonl.gz":
        return _Concatenation(path, columns, b"", gzip.compress(b"", mtime=0))
    if fmt == "parquet":
        return _ParquetMerge(path, columns)
    raise ValueError(f"unknown report format {fmt!r}")
