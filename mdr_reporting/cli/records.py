"""`mdr ingest`, `mdr generate` and `mdr lake compact|stats` (cli.md "Records")."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from mdr_reporting.catalog import Catalog
from mdr_reporting.cli.admin import open_catalog
from mdr_reporting.cli.common import fail, load, load_existing, settings_options
from mdr_reporting.domain.errors import MdrError
from mdr_reporting.generator import file_format, generate, write_records
from mdr_reporting.ingest import Ingestor, IngestResult, InvalidRecords, RawChunk, read_file
from mdr_reporting.ingest.readers import total_size
from mdr_reporting.lake import Lake, open_lake
from mdr_reporting.settings import Settings

__all__ = ["COMMANDS", "load_demo_records"]


class _RowsColumn(ProgressColumn):
    """Rows read so far and rows per second."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed = task.elapsed or 0.0
        rate = rows / elapsed if elapsed > 0 else 0.0
        return Text(f"{rows:,} rows  {rate:,.0f} rows/s", style="progress.data.speed")


def _open_lake(settings: Settings) -> Lake:
    try:
        return open_lake(settings.lake_url, settings)
    except (ValueError, OSError) as exc:
        fail(f"cannot open the lake at {settings.lake_url}: {exc}")
    raise AssertionError("unreachable")


def _check_file(path: str) -> None:
    try:
        file_format(path)
    except ValueError as exc:
        fail(str(exc))
    if not Path(path).is_file():
        fail(f"{path}: no such file")


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--create-accounts", is_flag=True, help="Create accounts the records name that do not exist."
)
@settings_options
def ingest(files: tuple[str, ...], create_accounts: bool, **flags: Any) -> None:
    """Load MDR files (.ndjson, .csv, .parquet, each optionally .gz) into the lake.

    Each file is atomic: a file with any invalid row is reported and nothing of it
    is stored.
    """
    for path in files:
        _check_file(path)
    settings = load(**flags)
    catalog = open_catalog(settings)
    ingestor = Ingestor(_open_lake(settings), catalog)
    console = Console(stderr=True)
    failed = 0
    try:
        for path in files:
            if not _ingest_one(ingestor, path, create_accounts, console):
                failed += 1
    finally:
        catalog.close()
    if failed:
        fail(f"{failed} of {len(files)} files had invalid records and were not stored", code=1)


def _ingest_one(ingestor: Ingestor, path: str, create_accounts: bool, console: Console) -> bool:
    try:
        result, seconds = _with_progress(
            console,
            Path(path).name,
            total_size(path),
            lambda on_chunk: ingestor.ingest(
                read_file(path), create_accounts=create_accounts, on_chunk=on_chunk
            ),
        )
    except InvalidRecords as bad:
        _report(path, bad)
        return False
    except MdrError as exc:
        fail(f"{path}: {exc.detail}")
    except EOFError:
        fail(f"{path}: cannot read: the file ends early (truncated?); nothing was stored")
    except (OSError, ValueError, zlib.error, pa.ArrowException) as exc:
        fail(f"{path}: cannot read: {exc}; nothing was stored")
    click.echo(
        f"{path}: {result.rows:,} rows in {seconds:.1f} s ({result.rows / max(seconds, 1e-9):,.0f}"
        f" rows/s); {result.stored:,} new versions stored (lake version {result.version})"
    )
    return True


def _with_progress(
    console: Console,
    label: str,
    total: int,
    work: Callable[[Callable[[RawChunk, int], None]], IngestResult],
) -> tuple[IngestResult, float]:
    """Run an ingest under a rich progress bar showing rows and rows/s."""
    started = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        _RowsColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(label, total=total, rows=0)
        rows = 0

        def advance(chunk: RawChunk, count: int) -> None:
            nonlocal rows
            rows += count
            progress.update(task, completed=chunk.consumed, rows=rows)

        result = work(advance)
        progress.update(task, completed=total, rows=rows)
    return result, time.perf_counter() - started


def load_demo_records(
    settings: Settings, catalog: Catalog, records: int, console: Console | None = None
) -> int:
    """Fill an empty lake with ``records`` generated MDRs of the last 30 days (accounts
    acct-01..acct-20 created), showing a progress bar; for ``mdr demo``. Returns the rows."""
    lake = _open_lake(settings)
    if lake.stats().rows or records <= 0:
        return 0
    table = generate(records, 20, 30, datetime.now(UTC).date() - timedelta(days=30), seed=1)
    step = 250_000
    chunks = (
        RawChunk(table.slice(i, step), i + 1, consumed=min(i + step, table.num_rows))
        for i in range(0, table.num_rows, step)
    )
    result, seconds = _with_progress(
        console or Console(stderr=True),
        "demo records",
        table.num_rows,
        lambda on_chunk: Ingestor(lake, catalog).ingest(
            chunks, create_accounts=True, on_chunk=on_chunk
        ),
    )
    messages = int(pc.count_distinct(table.column("id")).as_py())
    twice = table.num_rows - messages
    click.echo(
        f"generated {table.num_rows:,} demo records: {messages:,} messages, {twice:,} of them "
        f"twice (a 'sent' version, then the final one); the lake stored {result.stored:,} "
        f"versions in {seconds:.1f} s (of an id sent twice in one batch it keeps the latest)"
    )
    return result.rows


def _report(path: str, bad: InvalidRecords) -> None:
    click.echo(f"{path}: {bad.total} invalid values; nothing from this file was stored:", err=True)
    for problem in bad.problems:
        field = problem.field or "record"
        click.echo(f"  line {problem.line}: {field}: {problem.reason}", err=True)
    if bad.total > len(bad.problems):
        click.echo(f"  ... and {bad.total - len(bad.problems)} more", err=True)
    if any(p.field == "account_id" and p.reason.endswith("does not exist") for p in bad.problems):
        click.echo("  (ingest --create-accounts creates the accounts these records name)", err=True)


@click.command("generate")
@click.option("--records", type=click.IntRange(min=0), required=True, help="Rows to write.")
@click.option("--accounts", type=click.IntRange(min=1, max=9999), default=20, show_default=True)
@click.option("--days", type=click.IntRange(min=1, max=3660), default=30, show_default=True)
@click.option("--start", type=str, default=None, help="First UTC day (default: DAYS days ago).")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output file.")
@settings_options
def generate_command(
    records: int, accounts: int, days: int, start: str | None, seed: int, out: str, **flags: Any
) -> None:
    """Write realistic synthetic MDRs; the same arguments give the same bytes.

    It touches no local state: --data-dir and --config are accepted like everywhere.
    """
    del flags
    try:
        file_format(out)
    except ValueError as exc:
        fail(str(exc))
    if start is None:
        first = datetime.now(UTC).date() - timedelta(days=days)
    else:
        try:
            first = date.fromisoformat(start)
        except ValueError:
            fail(f"--start must be a date like 2026-01-31, got {start!r}")
    started = time.perf_counter()
    table = generate(records, accounts, days, first, seed)
    try:
        write_records(table, out)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    seconds = time.perf_counter() - started
    click.echo(
        f"wrote {table.num_rows:,} records for {accounts} accounts, {first} + {days} days, "
        f"to {out} in {seconds:.1f} s"
    )


@click.group()
def lake() -> None:
    """Lake maintenance and figures."""


@lake.command()
@settings_options
def compact(**flags: Any) -> None:
    """Merge each day's files into one, keeping the latest version of every message."""
    result = _open_lake(load(**flags)).compact()
    click.echo(f"compacted {result.days} days: {result.files_before} files -> {result.files_after}")


@lake.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def stats(as_json: bool, **flags: Any) -> None:
    """Files, rows, days and bytes, per UTC day and in total."""
    figures = _open_lake(load_existing(lake=True, **flags)).stats()
    if as_json:
        data = {
            "version": figures.version,
            "days": len(figures.days),
            "files": figures.files,
            "rows": figures.rows,
            "bytes": figures.bytes,
            "per_day": [
                {"day": d.day.isoformat(), "files": d.files, "rows": d.rows, "bytes": d.bytes}
                for d in figures.days
            ],
        }
        click.echo(json.dumps(data))
        return
    click.echo("day\tfiles\trows\tbytes")
    for day in figures.days:
        click.echo(f"{day.day}\t{day.files}\t{day.rows}\t{day.bytes}")
    click.echo(
        f"total: {len(figures.days)} days, {figures.files} files, {figures.rows} rows, "
        f"{figures.bytes} bytes (version {figures.version})"
    )


COMMANDS: list[click.Command] = [ingest, generate_command, lake]
