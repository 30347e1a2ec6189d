"""Schemathesis over every operation of /openapi.json, against the real app with real data.

Shared by ``tests/integration/test_schemathesis.py`` (bounded, seeded, in ``make test``)
and ``bench/schemathesis_long.py`` (a longer run).  The app is the one ``mdr serve``
builds: SQLite catalog, Parquet lake, the DuckDB worker in background threads, signed
links.  Before the run it holds ingested records and a Complete report in every
format, so retrieval, deletion and downloads are reached with ids and links that exist.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import hypothesis.strategies as st
import orjson
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.engine import events

from mdr_reporting.api import create_app
from mdr_reporting.catalog import KeyScope
from mdr_reporting.cli.serve import build_services
from mdr_reporting.domain.enums import FORMATS, Direction
from mdr_reporting.domain.errors import InvalidInput
from mdr_reporting.domain.times import get_zone, parse_instant
from mdr_reporting.domain.validation import MAX_ID_LENGTH as MAX_RECORD_ID_LENGTH
from mdr_reporting.settings import ensure_signing_secret, load_settings
from mdr_reporting.usage import parse_create_body, parse_fetch_params
from mdr_reporting.webhooks.targets import check_new_webhook_url
from mdr_reporting.worker import Background, report_builder
from tests.records import ndjson, record

__all__ = ["LiveApp", "RunSummary", "live_app", "run_schemathesis"]

ACCOUNT = "acct-01"  # the account of the ingest example in /docs (the demo's)
V1 = "/reporting/mdr_requests"
DOWNLOAD = "/reports/{request_id}/download"
USAGE = "/v2/reports/mdr_usage_reports"


@dataclass
class LiveApp:
    """The app, a key of every scope on one account, and the ids and links that exist."""

    app: FastAPI
    keys: dict[KeyScope, str]
    request_ids: list[str]
    links: list[tuple[str, str, str, str]]  # (request_id, file, expires, sig) of Complete reports


@dataclass
class RunSummary:
    cases: int = 0
    elapsed: float = 0.0
    operations: set[str] = field(default_factory=set)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    phases: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)  # per operation and phase


def _wait_complete(client: TestClient, headers: dict[str, str], ids: list[str]) -> list[Any]:
    deadline = time.monotonic() + 60
    while True:
        views = [client.get(f"{V1}/{i}", headers=headers).json() for i in ids]
        if all(v["status"] == 2 for v in views):
            return views
        failed = [v for v in views if v["status"] not in (1, 2)]
        assert not failed, failed
        assert time.monotonic() < deadline, views
        time.sleep(0.05)


@contextmanager
def live_app(data_dir: Path, records: int = 200) -> Iterator[LiveApp]:
    """The app of ``mdr serve`` over ``data_dir``, with records and a Complete report per format."""
    settings = ensure_signing_secret(
        load_settings({"data_dir": str(data_dir), "log_level": "warning"}, environ={})
    )
    services = build_services(settings)
    catalog = services.catalog
    catalog.migrate()
    catalog.create_account("Schemathesis", account_id=ACCOUNT)
    keys = {scope: catalog.create_key(ACCOUNT, scope).secret for scope in KeyScope}
    app = create_app(services)
    background = Background(
        settings, catalog, services.files, report_builder(settings, services.lake)
    )
    background.start()
    if background.worker is not None:
        wake = background.worker.wake
        services.requests.on_created = lambda _state: wake()
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            now = datetime.now(UTC).replace(microsecond=0)
            start = now - timedelta(days=3)
            rows = [
                record(n, account_id=ACCOUNT, created_at=(start + timedelta(minutes=n)).isoformat())
                for n in range(records)
            ]
            for row in rows:
                row.pop("sent_at", None)
            ingest = client.post(
                "/ingest/mdrs",
                content=ndjson(rows),
                headers={
                    "Authorization": f"Bearer {keys[KeyScope.INGEST]}",
                    "Content-Type": "application/x-ndjson",
                },
            )
            assert ingest.status_code == 200, ingest.text
            reports = {"Authorization": f"Bearer {keys[KeyScope.REPORTS]}"}
            ids = []
            for fmt in FORMATS * 2:  # one set to get and delete, one to download
                body = {
                    "start_time": start.isoformat(),
                    "end_time": now.isoformat(),
                    "record_types": [1, 2, 3],
                    "format": fmt,
                }
                created = client.post(V1, json=body, headers=reports)
                assert created.status_code == 200, created.text
                ids.append(created.json()["id"])
            views = _wait_complete(client, reports, ids)
        links = []
        for view in views[len(FORMATS) :]:
            url = urlsplit(view["report_url"])
            query = parse_qs(url.query)
            links.append((view["id"], query["file"][0], query["expires"][0], query["sig"][0]))
        yield LiveApp(app, keys, ids[: len(FORMATS)], links)
    finally:
        background.stop()
        _wait_for_threads("mdr-")
        catalog.close()


def _wait_for_threads(prefix: str, timeout: float = 120.0) -> None:
    """Builds cancelled by the stop end at their next check; wait for them before teardown."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith(prefix):
            thread.join(max(deadline - time.monotonic(), 0.0))
            assert not thread.is_alive(), f"{thread.name} still runs after the worker stopped"


# Ingest gets schema-invalid bodies too (an NDJSON line `null`, `[]`, wrong types): the
# hardening of issue 10 item 1 makes each a 4xx.
INGEST_NEGATIVE = True


def _config(seed: int, max_examples: int) -> schemathesis.Config:
    ingest_mode = "all" if INGEST_NEGATIVE else "positive"
    return schemathesis.Config.from_dict(
        {
            "operations": [
                {"include-path": "/ingest/mdrs", "generation": {"mode": ingest_mode}},
            ],
            "seed": seed,
            "color": False,
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
            },
            "checks": {"enabled": True},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True},
            },
        }
    )


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_ctx: Any, value: Any) -> bytes:
    """The schema of an NDJSON body is that of its lines as an array: one object per line."""
    if isinstance(value, list):
        return b"".join(orjson.dumps(item) + b"\n" for item in value)
    return orjson.dumps(value)


# -- cross-field rules --------------------------------------------------------------------
# JSON Schema states every rule on one field; these few relate two fields or a field and
# the stored state, and the schema states them in words.  A positive case (one that the
# schema allows) is brought within them before it is sent; negative cases go as drawn.

_FIRST = "1970-01-01T00:00:00+23:59"  # the earliest instant the schema allows


def _instant(value: Any, zone: str | None) -> datetime | None:
    try:
        return parse_instant(value, get_zone(zone or "UTC"))
    except (ValueError, TypeError):
        return None


def _window(body: dict[str, Any], v1: bool) -> None:
    """end_time after start_time; on v1 a start without an end must be in the past."""
    zone = body.get("timezone")
    start, end = _instant(body.get("start_time"), zone), _instant(body.get("end_time"), zone)
    if start is None:
        return
    if end is None and v1:
        if start >= datetime.now(UTC):
            body["end_time"], body["start_time"] = body["start_time"], _FIRST
        return
    if end is not None and end < start:
        body["start_time"], body["end_time"] = body["end_time"], body["start_time"]
    elif end is not None and end == start:
        body["start_time"] = _FIRST


def _directions(body: dict[str, Any]) -> None:
    """call_types and directions, when both are given, name the same set."""
    names = body.get("directions") or []
    codes = body.get("call_types") or []
    named = {Direction[n.strip().upper()] for n in names}
    if named and codes and named != {Direction(c) for c in codes}:
        body["call_types"] = None


def _filter_order(body: dict[str, Any]) -> None:
    """The first filter is `and` and no `and` follows an `or`: ands first, in order."""
    filters = body.get("filters")
    if not filters:
        return
    ands = [f for f in filters if f["filter_type"].lower() == "and"]
    ors = [f for f in filters if f["filter_type"].lower() != "and"]
    if not ands:
        ors[0] = {**ors[0], "filter_type": "and"}
    body["filters"] = ands + ors


def _usage_window(values: Any, *, body: bool) -> None:
    """A usage report's end_date is not before its start_date (and within MAX_DAYS)."""
    if not isinstance(values, dict):
        return
    now = datetime.now(UTC)
    try:
        if body:
            parse_create_body(values, now)
        else:
            parse_fetch_params([(k, str(v)) for k, v in values.items()], now)
    except InvalidInput as exc:
        if any(item.detail.startswith(("end_date must not", "the window")) for item in exc.items):
            if values.get("end_date") is not None:
                values["start_date"] = values["end_date"]
            else:
                values["end_date"] = values["start_date"]


def _webhook_target(body: dict[str, Any]) -> None:
    """webhook_url's host is a public address (the SSRF guard; the schema says it in words)."""
    url = body.get("webhook_url")
    if not isinstance(url, str):
        return
    try:
        check_new_webhook_url(url, allow_private=False)
    except InvalidInput:
        body["webhook_url"] = "https://hooks.example/mdr"


def _records(body: list[Any], counter: Iterator[int]) -> None:
    """Ids unique in the run (a stored id may not change created_at), the test's account."""
    for row in body:
        row["id"] = f"{next(counter)}-{row['id']}"[:MAX_RECORD_ID_LENGTH]
        row["account_id"] = ACCOUNT


def _failure(recorder: Any, case_id: str, check: Any) -> str:
    """One failed check: what it says, how to send the case again, what the app answered."""
    info = check.failure_info
    failure = info.failure if info is not None else None
    interaction = recorder.interactions.get(case_id)
    node = recorder.cases.get(case_id)
    if interaction is None and node is not None:
        interaction = recorder.interactions.get(node.value.id)
    answer = ""
    if interaction is not None and interaction.response is not None:
        answer = f"{interaction.response.status_code} {interaction.response.content[:600]!r}"
    if not answer and node is not None:
        answer = f"(no response recorded) body={node.value.body!r}"[:4000]
    return (
        f"{recorder.label} {check.name}: {getattr(failure, 'title', '')}: "
        f"{getattr(failure, 'message', '')}\n{info.code_sample if info else ''}\n-> {answer}"
    )


def run_schemathesis(live: LiveApp, *, seed: int, max_examples: int) -> RunSummary:
    """Every phase and every check over every operation; returns what was sent and found."""
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", live.app, config=_config(seed, max_examples)
    )
    turn = itertools.count()
    ids = itertools.count()

    @schema.auth(refresh_interval=None)
    class Keys:
        """Each case gets a key of the scope its operation needs, or the admin key."""

        def get(self, case: Any, _ctx: Any) -> str:
            wanted = KeyScope.INGEST if case.path.startswith("/ingest") else KeyScope.REPORTS
            return live.keys[(wanted, KeyScope.ADMIN)[next(turn) % 2]]

        def set(self, case: Any, data: str, _ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    downloads = itertools.count()

    @schema.hook
    def map_case(_ctx: Any, case: Any) -> Any:
        positive = case.meta is None or not case.meta.generation.mode.is_negative
        if positive and case.path == f"{USAGE}/sync" and isinstance(case.query, dict):
            _usage_window(case.query, body=False)
        if positive and case.path == USAGE and case.method == "POST":
            _usage_window(case.body, body=True)
        if positive and case.path == DOWNLOAD and next(downloads) % 2 == 0:
            # every other download uses a live signed link (these reports are never deleted)
            request_id, file, expires, sig = live.links[next(downloads) % len(live.links)]
            case.path_parameters = {**(case.path_parameters or {}), "request_id": request_id}
            case.query = {**(case.query or {}), "file": file, "expires": expires, "sig": sig}
        if not positive or case.method != "POST":
            return case
        if case.path.startswith("/ingest") and isinstance(case.body, list):
            _records(case.body, ids)
        elif isinstance(case.body, dict):
            v1 = case.path == V1
            _window(case.body, v1)
            if v1:
                _directions(case.body)
            _filter_order(case.body)
            _webhook_target(case.body)
        return case

    real_ids = st.sampled_from(live.request_ids)

    @schema.hook
    def flatmap_path_parameters(_ctx: Any, path_parameters: dict[str, Any]) -> Any:
        """Half the ids drawn are of requests that exist (Complete, with files)."""
        if "request_id" not in (path_parameters or {}):
            return st.just(path_parameters)
        return st.one_of(
            st.just(path_parameters),
            real_ids.map(lambda i: {**path_parameters, "request_id": i}),
        )

    summary = RunSummary()
    started = time.monotonic()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            summary.phases[str(event.phase)] += 1
            summary.seconds[f"{event.phase} {event.recorder.label}"] += event.elapsed_time
            recorder = event.recorder
            summary.operations.add(recorder.label)
            summary.cases += len(recorder.cases)
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    summary.statuses[(recorder.label, interaction.response.status_code)] += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status == schemathesis.engine.Status.FAILURE:
                        summary.failures.append(_failure(recorder, case_id, check))
        elif isinstance(event, events.NonFatalError):
            summary.errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            summary.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            summary.failures.extend(f"after the run: {f}" for f in event.failures)
    summary.elapsed = time.monotonic() - started
    return summary
