"""The ingest rules shared by ``POST /ingest/mdrs`` and ``mdr ingest`` (api.md section 13).

A batch (or a file) is atomic: it is validated whole, its accounts are checked
(unknown: a row problem; not writable by the key: 403 for the whole batch), and
only then appended to the lake in one transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from mdr_reporting.catalog import Catalog
from mdr_reporting.domain.errors import Conflict, ErrorItem, Forbidden, InvalidInput
from mdr_reporting.domain.validation import MAX_PROBLEMS, RowProblem, validate_records
from mdr_reporting.ingest.readers import RawChunk
from mdr_reporting.lake import Lake, LakeConflict, LakeWriter
from mdr_reporting.observability.metrics import observe_ingest

__all__ = ["IngestResult", "Ingestor", "InvalidRecords"]

# A checked chunk: the RECORD_SCHEMA table, or None with its first problems and their count.
Prepared = tuple[pa.Table | None, list[RowProblem], int]


class InvalidRecords(InvalidInput):
    """Bad rows: the first 100 problems (line, field, reason) and how many there were."""

    code = "invalid_record"
    title = "Invalid record"

    def __init__(self, problems: Collection[RowProblem], total: int) -> None:
        first = sorted(problems)[:MAX_PROBLEMS]
        super().__init__(f"{total} problems in the records; nothing was stored")
        self.problems = first
        self.total = total
        self.items = [
            ErrorItem(
                self.code,
                self.title,
                f"line {p.line}: {p.field or 'record'}: {p.reason}",
                pointer=f"/{p.field}" if p.field else "",
            )
            for p in first
        ]


@dataclass(frozen=True)
class IngestResult:
    rows: int  # valid rows read
    stored: int  # rows that were new versions
    version: int  # lake version that holds them


class Ingestor:
    """Checks batches against the catalog and appends them to the lake."""

    def __init__(self, lake: Lake, catalog: Catalog) -> None:
        self.lake = lake
        self.catalog = catalog
        self._known: set[str] = set()

    def prepare(
        self,
        chunk: RawChunk,
        writable: Collection[str] | None = None,
        create_accounts: bool = False,
    ) -> Prepared:
        """Validate one chunk: the RECORD_SCHEMA table, or its problems and their count.

        ``writable`` is the accounts the caller may write (None: any existing one);
        a row of an existing account outside it raises Forbidden.
        """
        prior = dict(chunk.prior)
        unshown = 0
        if "account_id" in chunk.table.column_names and chunk.table.num_rows:
            unknown, unshown = self._accounts(chunk, writable, create_accounts)
            prior.update(unknown)
        checked = validate_records(
            chunk.table, line_of=chunk.line_of, prior=prior, unread=chunk.unread
        )
        return checked.table, list(checked.problems), checked.problem_count + unshown

    def _accounts(
        self, chunk: RawChunk, writable: Collection[str] | None, create: bool
    ) -> tuple[dict[tuple[int, str], str], int]:
        """Rows naming unknown accounts (the first 100, and how many more); Forbidden for
        a row of an existing account the caller may not write."""
        column = pc.cast(chunk.table.column("account_id"), pa.string())
        named = {a for a in pc.unique(column).to_pylist() if a}
        missing = named - self._known
        if missing:
            self._known |= self.catalog.existing_accounts(missing)
            missing -= self._known
        if missing and create:
            for account in sorted(missing):
                with contextlib.suppress(Conflict):  # created meanwhile by someone else
                    self.catalog.create_account(account, account_id=account)
                self._known.add(account)
            missing = set()
        if writable is not None:
            foreign = sorted((named - missing) - set(writable))
            if foreign:
                first = pc.index(column, foreign[0]).as_py()
                raise Forbidden(
                    f"line {chunk.line_of(first)}: this key may not write records of account "
                    f"{foreign[0]}"
                    + (f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""),
                    pointer="/account_id",
                )
        if not missing:
            return {}, 0
        mask = pc.fill_null(pc.is_in(column, value_set=pa.array(sorted(missing))), False)
        rows = pc.indices_nonzero(mask).slice(0, MAX_PROBLEMS).to_pylist()
        total = int(pc.sum(mask).as_py() or 0)
        names = column.take(pa.array(rows, pa.int64())).to_pylist() if rows else []
        problems = {
            (row, "account_id"): f"account {name} does not exist"
            for row, name in zip(rows, names, strict=True)
        }
        return problems, total - len(rows)

    def ingest_batch(self, chunk: RawChunk, writable: Collection[str] | None) -> IngestResult:
        """One HTTP batch: checked without the lake's lock, then appended atomically."""
        table, problems, count = self.prepare(chunk, writable)
        if table is None:
            observe_ingest(0, ok=False)
            raise InvalidRecords(problems, count)
        try:
            with self.lake.writer() as writer:
                stored = _add(writer, table, chunk)
                result = writer.commit()
        except InvalidRecords:
            observe_ingest(0, ok=False)
            raise
        observe_ingest(table.num_rows)
        return IngestResult(table.num_rows, stored, result.version)

    def ingest(
        self,
        chunks: Iterable[RawChunk],
        writable: Collection[str] | None = None,
        create_accounts: bool = False,
        on_chunk: Callable[[RawChunk, int], None] | None = None,
    ) -> IngestResult:
        """Store every chunk in one lake transaction, or nothing (raises InvalidRecords)."""
        problems: list[RowProblem] = []
        total = 0
        rows = 0
        with self.lake.writer() as writer:
            stored = 0
            for chunk, (table, found, count) in self._ahead(chunks, writable, create_accounts):
                if table is not None and not problems:
                    stored += _add(writer, table, chunk)
                    rows += table.num_rows
                elif table is None:
                    problems = sorted(problems + found)[:MAX_PROBLEMS]
                    total += count
                if on_chunk is not None:
                    on_chunk(chunk, chunk.table.num_rows)
            if problems:
                observe_ingest(0, ok=False)
                raise InvalidRecords(problems, total)
            result = writer.commit()
        observe_ingest(rows)
        return IngestResult(rows, stored, result.version)

    def _ahead(
        self, chunks: Iterable[RawChunk], writable: Collection[str] | None, create: bool
    ) -> Iterator[tuple[RawChunk, Prepared]]:
        """Chunks with their checks, the next chunk read and checked on another thread
        while the caller appends this one (pyarrow releases the GIL: two cores work)."""
        source = iter(chunks)

        def step() -> tuple[RawChunk, Prepared] | None:
            chunk = next(source, None)
            return None if chunk is None else (chunk, self.prepare(chunk, writable, create))

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdr-check") as pool:
            ahead = pool.submit(step)
            while (done := ahead.result()) is not None:
                ahead = pool.submit(step)
                yield done


def _add(writer: LakeWriter, table: pa.Table, chunk: RawChunk) -> int:
    try:
        return writer.add(table)
    except LakeConflict as conflict:
        problems = [RowProblem(chunk.line_of(row), name, why) for row, name, why in conflict.rows]
        raise InvalidRecords(problems, len(conflict.rows)) from None
