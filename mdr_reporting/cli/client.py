"""`mdr request ...`: the client side, talking HTTP to a running server (cli.md)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mdr_reporting.cli.common import fail

__all__ = ["request"]

V1 = "/reporting/mdr_requests"
STATUS = {1: "pending", 2: "complete", 3: "failed", 4: "expired"}
RECORD_TYPES = {"complete": 1, "incomplete": 2, "errors": 3, "error": 3, "1": 1, "2": 2, "3": 3}
MATCHES = ("contains", "starts_with", "ends_with")
WHOLE_ID = 36  # a request id is a UUID; anything shorter is taken as a prefix of one


class Client:
    """A thin HTTP client that turns every failure into one clear line."""

    def __init__(self, url: str, key: str | None) -> None:
        if not key:
            fail("no API key: pass --key or set MDR_API_KEY")
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def resolve(self, request_id: str) -> str:
        """The whole id for a unique prefix of one (a whole id is taken as it is)."""
        if len(request_id) >= WHOLE_ID or not request_id:
            return request_id
        found: list[str] = []
        page = 1
        while True:
            items = self.call("GET", V1, params={"page": page, "per_page": 1000})
            found += [i["id"] for i in items if str(i["id"]).startswith(request_id)]
            if len(items) < 1000 or len(found) > 1:
                break
            page += 1
        if not found:
            fail(f"no request id starts with {request_id!r} (mdr request list shows them)")
        if len(found) > 1:
            fail(
                f"{request_id!r} is the start of more than one request id "
                f"({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}): give more of it"
            )
        return found[0]

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach {self.url}: {exc}")
        if response.status_code >= 400:
            try:
                problems = response.json()["errors"]
                text = "; ".join(_problem(p) for p in problems)
            except (ValueError, KeyError, TypeError):
                text = response.text[:200]
            fail(f"{response.status_code}: {text}")
        return response.json()


def _problem(problem: dict[str, Any]) -> str:
    source = problem.get("source") or {}
    where = source.get("pointer") or source.get("parameter")
    return f"{where}: {problem['detail']}" if where else str(problem["detail"])


def _client_options(func: Any) -> Any:
    func = click.option("--key", envvar="MDR_API_KEY", default=None, help="API key (MDR_API_KEY).")(
        func
    )
    func = click.option(
        "--url",
        envvar="MDR_URL",
        default="http://127.0.0.1:8000",
        show_default=True,
        help="Server URL (MDR_URL).",
    )(func)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def _number_filter(field: str, spec: str) -> dict[str, str]:
    match, sep, value = spec.partition(":")
    if not sep or match not in MATCHES or not value:
        fail(f"--{field} takes MATCH:VALUE with MATCH one of {', '.join(MATCHES)}, got {spec!r}")
    return {"filter_type": "and", field: value, f"{field}_filter": match}


def _show(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(item, indent=2))
        return
    lines = []
    for name in (
        "id",
        "status",
        "report_name",
        "start_time",
        "end_time",
        "directions",
        "record_count",
        "size_bytes",
        "progress",
        "error",
        "report_url",
        "expires_at",
    ):
        value = item.get(name)
        if name == "status" and isinstance(value, int):
            value = STATUS.get(value, value)
        elif isinstance(value, list):  # words for people, not Python's list syntax
            value = ", ".join(str(v) for v in value)
        elif name == "progress" and isinstance(value, int | float):
            value = f"{value:.0%}"
        lines.append(f"{name:<13} {'' if value is None else value}")
    lines += [f"{'warning':<13} {warning}" for warning in item.get("warnings") or []]
    click.echo("\n".join(lines))  # plain lines: a link is never cut to the terminal width


@click.group()
def request() -> None:
    """Create, inspect and download reports on a running server."""


@request.command("create")
@click.option("--start", required=True, help="Start time, ISO 8601 (naive = in --timezone).")
@click.option("--end", default=None, help="End time, exclusive (default: now).")
@click.option("--timezone", default=None, help="IANA time zone (default UTC).")
@click.option("--direction", multiple=True, type=click.Choice(["inbound", "outbound"]))
@click.option("--record-type", multiple=True, help="complete, incomplete or errors (repeatable).")
@click.option("--connection", multiple=True, help="Connection id (repeatable).")
@click.option("--profile", multiple=True, help="Messaging profile id (repeatable).")
@click.option("--cli", "cli_filters", multiple=True, help="Sender filter MATCH:VALUE.")
@click.option("--cld", "cld_filters", multiple=True, help="Recipient filter MATCH:VALUE.")
@click.option("--tag", multiple=True, help="Tag; a record matches when it has any of them.")
@click.option("--format", "fmt", default=None, help="csv, csv.gz, jsonl.gz or parquet.")
@click.option("--include-body", is_flag=True, help="Add the message_body column.")
@click.option("--name", default=None, help="Report name.")
@click.option("--idempotency-key", default=None, help="Idempotency-Key header.")
@click.option("--wait", is_flag=True, help="Show progress until the report is finished.")
@click.option(
    "--download", "download_to", default=None, help="Save the file here (implies --wait)."
)
@_client_options
def create(
    start: str,
    end: str | None,
    timezone: str | None,
    direction: tuple[str, ...],
    record_type: tuple[str, ...],
    connection: tuple[str, ...],
    profile: tuple[str, ...],
    cli_filters: tuple[str, ...],
    cld_filters: tuple[str, ...],
    tag: tuple[str, ...],
    fmt: str | None,
    include_body: bool,
    name: str | None,
    idempotency_key: str | None,
    wait: bool,
    download_to: str | None,
    url: str,
    key: str | None,
    as_json: bool,
) -> None:
    """Create an MDR request."""
    body: dict[str, Any] = {"start_time": start}
    for field, value in (("end_time", end), ("timezone", timezone), ("format", fmt)):
        if value is not None:
            body[field] = value
    if name is not None:
        body["report_name"] = name
    if direction:
        body["directions"] = list(direction)
    if record_type:
        unknown = [r for r in record_type if r.lower() not in RECORD_TYPES]
        if unknown:
            fail(f"--record-type must be complete, incomplete or errors, got {unknown[0]!r}")
        body["record_types"] = sorted({RECORD_TYPES[r.lower()] for r in record_type})
    if connection:
        body["connections"] = list(connection)
    if profile:
        body["profiles"] = list(profile)
    filters: list[dict[str, Any]] = [_number_filter("cli", s) for s in cli_filters]
    filters += [_number_filter("cld", s) for s in cld_filters]
    if tag:
        filters.append({"filter_type": "and", "tags_list": list(tag)})
    if filters:
        body["filters"] = filters
    if include_body:
        body["include_message_body"] = True
    client = Client(url, key)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    item = client.call("POST", V1, json=body, headers=headers)
    if wait or download_to:
        item = _wait(client, item["id"])
    _show(item, as_json)
    if download_to:
        _download(item, Path(download_to))


def _wait(client: Client, request_id: str, poll: float = 0.3) -> dict[str, Any]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(f"building report {request_id}", total=1.0)
        while True:
            item: dict[str, Any] = client.call("GET", f"{V1}/{request_id}")
            bar.update(task, completed=float(item.get("progress") or 0.0))
            if item["status"] != 1:
                break
            time.sleep(poll)
    if item["status"] == 3:
        fail(f"report {request_id} failed: {item.get('error')}", code=1)
    if item["status"] == 4:
        fail(f"report {request_id} has expired", code=1)
    return item


def _download(item: dict[str, Any], path: Path) -> None:
    """Stream to PATH.part, resuming with a Range request, then rename into place."""
    link = item.get("report_url")
    if not isinstance(link, str) or not link:
        fail(f"report {item['id']} has no download link (status {STATUS.get(item['status'])})")
    partial = path.with_name(path.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        # An S3 file store answers the link with a redirect to a presigned GET (Range kept).
        with httpx.stream(
            "GET", link, headers=headers, timeout=60, follow_redirects=True
        ) as response:
            if response.status_code == 416:  # the part file is already whole
                partial.replace(path)
                return
            if response.status_code not in (200, 206):
                fail(f"download failed: {response.status_code} {response.read()[:200]!r}")
            if response.status_code == 200:
                have = 0
            total = have + int(response.headers.get("content-length", 0)) or None
            with (
                partial.open("ab" if have else "wb") as out,
                Progress(
                    TextColumn("[bold]downloading"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    transient=True,
                ) as bar,
            ):
                task = bar.add_task("download", total=total, completed=have)
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
                    bar.update(task, advance=len(chunk))
                out.flush()
                os.fsync(out.fileno())
    except httpx.HTTPError as exc:
        fail(f"download interrupted ({exc}); run the same command again to resume")
    partial.replace(path)
    click.echo(f"saved {path} ({path.stat().st_size} bytes)", err=True)


@request.command("get")
@click.argument("request_id")
@_client_options
def get(request_id: str, url: str, key: str | None, as_json: bool) -> None:
    """Show one request."""
    client = Client(url, key)
    _show(client.call("GET", f"{V1}/{client.resolve(request_id)}"), as_json)


@request.command("list")
@click.option("--page", default=1, show_default=True, type=int)
@click.option("--per-page", default=100, show_default=True, type=int)
@_client_options
def list_requests(page: int, per_page: int, url: str, key: str | None, as_json: bool) -> None:
    """List requests, newest first."""
    items = Client(url, key).call("GET", V1, params={"page": page, "per_page": per_page})
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    rows = [("id", "status", "created_at", "records", "report_name")]
    rows += [
        (
            item["id"],
            STATUS.get(item["status"], str(item["status"])),
            item["created_at"],
            "" if item.get("record_count") is None else str(item["record_count"]),
            item["report_name"],
        )
        for item in items
    ]
    # Plain aligned columns, never cut or wrapped to the terminal: ids stay whole to copy.
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4]
        )


@request.command("delete")
@click.argument("request_id")
@_client_options
def delete(request_id: str, url: str, key: str | None, as_json: bool) -> None:
    """Delete a request (cancels a build in progress)."""
    client = Client(url, key)
    item = client.call("DELETE", f"{V1}/{client.resolve(request_id)}")
    if as_json:
        click.echo(json.dumps(item, indent=2))
    else:
        click.echo(f"deleted {item['id']}")


@request.command("wait")
@click.argument("request_id")
@_client_options
def wait_for(request_id: str, url: str, key: str | None, as_json: bool) -> None:
    """Show progress until a request is finished."""
    client = Client(url, key)
    _show(_wait(client, client.resolve(request_id)), as_json)


@request.command("download")
@click.argument("request_id")
@click.argument("path", required=False)
@_client_options
def download(request_id: str, path: str | None, url: str, key: str | None, as_json: bool) -> None:
    """Download a finished report, resuming a broken download."""
    client = Client(url, key)
    request_id = client.resolve(request_id)
    item = client.call("GET", f"{V1}/{request_id}")
    if item["status"] != 2:
        fail(f"report {request_id} is {STATUS.get(item['status'])}, not complete")
    suffix = {"csv": ".csv", "csv.gz": ".csv.gz", "jsonl.gz": ".jsonl.gz", "parquet": ".parquet"}
    target = Path(path or f"{request_id}{suffix.get(item.get('format', 'csv'), '')}")
    _ = as_json
    _download(item, target)
