"""The report lifecycle through the API in-process: worker, signed links, Range, expiry.

The app runs under httpx's ASGI transport; a real Worker (threads) builds with the
package's FakeBuilder, and one controllable clock drives the catalog, the links and
the lease, so link expiry and the 30-day retention are tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from mdr_reporting.api import Services, create_app
from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.files import FileStore, LinkSigner, LocalFileStore
from mdr_reporting.files.s3 import S3FileStore
from mdr_reporting.objectstore import S3Location
from mdr_reporting.settings import ensure_signing_secret, load_settings
from mdr_reporting.worker import Sweeper, Worker
from mdr_reporting.worker.testing import FakeBuilder, ManualClock

pytestmark = pytest.mark.anyio

ACCOUNT = "acct-01"
LINK_TTL = timedelta(hours=3)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Harness:
    clock: ManualClock
    catalog: Catalog
    queue: JobQueue
    files: FileStore
    sweeper: Sweeper
    client: httpx.AsyncClient
    auth: dict[str, str]
    public_url: str
    work_dir: Path
    workers: list[Worker]
    services: Services

    def start_worker(self, builder: FakeBuilder, **options: Any) -> Worker:
        settings: dict[str, Any] = {
            "poll_interval": 0.01,
            "heartbeat_interval": 0.02,
            "progress_interval": 0.0,
            "retry_after": timedelta(0),
            "work_dir": self.work_dir,
        }
        worker = Worker(self.queue, self.files, builder, **{**settings, **options})
        worker.start()
        self.workers.append(worker)
        return worker

    async def create(self, **body: Any) -> dict[str, Any]:
        now = self.clock()
        body.setdefault("start_time", (now - timedelta(days=3)).isoformat())
        body.setdefault("end_time", (now - timedelta(days=1)).isoformat())
        response = await self.client.post("/reporting/mdr_requests", json=body, headers=self.auth)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def get(self, request_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/reporting/mdr_requests/{request_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait(self, request_id: str, status: int, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.get(request_id)
            if view["status"] == status:
                return view
            assert time.monotonic() < deadline, f"still {view['status']}, wanted {status}: {view}"
            await anyio.sleep(0.01)

    async def fetch(self, url: str, **headers: str) -> httpx.Response:
        """Follow a report_url with no Authorization header (and an S3 store's redirect to
        its presigned GET, with the same headers)."""
        assert url.startswith(self.public_url + "/reports/")
        parts = urlsplit(url)
        response = await self.client.get(f"{parts.path}?{parts.query}", headers=headers)
        if isinstance(self.files, S3FileStore) and response.status_code == 307:
            target = response.headers["location"]
            assert target.startswith(self.files.location.endpoint_url or "")
            assert "X-Amz-Signature=" in target and "X-Amz-Expires=300" in target
            async with httpx.AsyncClient() as s3:
                return await s3.get(target, headers=headers)
        return response

    def state(self, request_id: str) -> Any:
        return self.catalog.get_request(request_id)

    def stored_files(self) -> list[str]:
        if isinstance(self.files, S3FileStore):
            return sorted(f.key for f in self.files.list())
        assert isinstance(self.files, LocalFileStore)
        return sorted(str(p) for p in self.files.root.rglob("*") if p.is_file())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def catalog(tmp_path: Path, clock: ManualClock) -> Iterator[Catalog]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}", clock=clock)
    catalog.migrate()
    catalog.create_account("Demo", account_id=ACCOUNT)
    yield catalog
    catalog.close()


@pytest.fixture(params=["local"])  # tests of the file store's part add "s3"
async def harness(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock, catalog: Catalog
) -> AsyncIterator[Harness]:
    settings = ensure_signing_secret(load_settings({"data_dir": str(tmp_path)}, environ={}))
    files: FileStore = LocalFileStore(tmp_path / "reports")
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        files = S3FileStore(S3Location(request.getfixturevalue("s3_bucket"), "reports", endpoint))
    links = LinkSigner(settings.signing_secret, settings.public_url, LINK_TTL, clock)
    services = Services(settings, catalog, clock=clock, files=files, links=links)
    queue = JobQueue(
        catalog, lease=timedelta(seconds=30), max_attempts=3, retention=timedelta(days=30)
    )
    key = catalog.create_key(ACCOUNT, KeyScope.REPORTS).secret
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://mdr.test") as client:
        harness = Harness(
            clock=clock,
            catalog=catalog,
            queue=queue,
            files=files,
            sweeper=Sweeper(queue, files),
            client=client,
            auth={"Authorization": f"Bearer {key}"},
            public_url=settings.public_url,
            work_dir=tmp_path / "work",
            workers=[],
            services=services,
        )
        try:
            yield harness
        finally:
            for worker in harness.workers:
                worker.stop()


def _assert_refused(response: httpx.Response, report: bytes) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["errors"][0]["code"] == "forbidden"
    assert report not in response.content


async def test_a_report_completes_and_downloads_without_authorization(harness: Harness) -> None:
    builder = FakeBuilder(rows=40)
    harness.start_worker(builder)
    created = await harness.create(report_name="weekly: outbound+inbound")
    assert created["status"] == 1
    assert created["report_url"] is None

    done = await harness.wait(created["id"], 2)
    state = harness.state(created["id"])
    expected = builder.render(state)
    assert done["record_count"] == 40
    assert done["size_bytes"] == len(expected)
    assert done["progress"] == 1.0
    assert done["error"] is None
    completed = state.completed_at
    assert done["expires_at"] == (completed + timedelta(days=30)).isoformat()

    response = await harness.fetch(done["report_url"])
    assert response.status_code == 200
    assert response.content == expected
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(expected))
    assert 'filename="weekly_outbound+inbound.csv"' in response.headers["content-disposition"]
    assert response.headers["content-disposition"].startswith("attachment;")

    v2 = await harness.client.get(
        f"/v2/legacy/reporting/batch_detail_records/messaging/{created['id']}",
        headers=harness.auth,
    )
    assert v2.json()["data"]["status"] == "COMPLETE"
    assert (await harness.fetch(v2.json()["data"]["report_url"])).content == expected
    assert not list(harness.work_dir.iterdir()), "no build file is left behind"


@pytest.mark.parametrize(
    ("fmt", "media_type", "suffix"),
    [("csv.gz", "application/gzip", ".csv.gz"), ("jsonl.gz", "application/gzip", ".jsonl.gz")],
)
async def test_other_formats_have_their_suffix_and_type(
    harness: Harness, fmt: str, media_type: str, suffix: str
) -> None:
    builder = FakeBuilder(rows=5)
    harness.start_worker(builder)
    created = await harness.create(format=fmt, report_name="r")
    done = await harness.wait(created["id"], 2)
    response = await harness.fetch(done["report_url"])
    assert response.content == builder.render(harness.state(created["id"]))
    assert response.headers["content-type"] == media_type
    assert f'filename="r{suffix}"' in response.headers["content-disposition"]


async def test_range_requests_resume_a_download(harness: Harness) -> None:
    builder = FakeBuilder(rows=30)
    harness.start_worker(builder)
    created = await harness.create()
    url = (await harness.wait(created["id"], 2))["report_url"]
    data = builder.render(harness.state(created["id"]))
    size = len(data)

    cases = [
        ("bytes=0-9", 0, 9),
        (f"bytes={size - 10}-", size - 10, size - 1),
        ("bytes=-7", size - 7, size - 1),
        (f"bytes=5-{size + 100}", 5, size - 1),
    ]
    for header, first, last in cases:
        response = await harness.fetch(url, Range=header)
        assert response.status_code == 206, header
        assert response.content == data[first : last + 1]
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert response.headers["content-length"] == str(last - first + 1)

    head, tail = data[:100], (await harness.fetch(url, Range="bytes=100-")).content
    assert head + tail == data

    refused = await harness.fetch(url, Range=f"bytes={size}-")
    assert refused.status_code == 416
    assert refused.headers["content-range"] == f"bytes */{size}"
    assert refused.json()["errors"][0]["code"] == "range_not_satisfiable"

    whole = await harness.fetch(url, Range="bytes=0-1,5-6")
    assert (whole.status_code, whole.content) == (200, data)

    parts = urlsplit(url)
    head = await harness.client.head(f"{parts.path}?{parts.query}", headers={"Range": "bytes=-5"})
    assert (head.status_code, head.content) == (206, b"")
    assert head.headers["content-range"] == f"bytes {size - 5}-{size - 1}/{size}"

    etag = whole.headers["etag"]
    matching = await harness.fetch(url, Range="bytes=0-1", **{"If-Range": etag})
    assert matching.status_code == 206
    stale = await harness.fetch(url, Range="bytes=0-1", **{"If-Range": '"another"'})
    assert (stale.status_code, stale.content) == (200, data)


@pytest.mark.parametrize("harness", ["s3"], indirect=True)
async def test_on_s3_the_link_redirects_to_a_presigned_get_that_serves_ranges(
    harness: Harness,
) -> None:
    builder = FakeBuilder(rows=30)
    harness.start_worker(builder)
    created = await harness.create()
    url = (await harness.wait(created["id"], 2))["report_url"]
    data = builder.render(harness.state(created["id"]))
    parts = urlsplit(url)
    redirect = await harness.client.get(f"{parts.path}?{parts.query}")
    assert redirect.status_code == 307 and redirect.content == b""
    whole = await harness.fetch(url)
    assert whole.content == data and whole.headers["content-type"] == "text/csv; charset=utf-8"
    resumed = await harness.fetch(url, Range="bytes=100-")
    assert resumed.status_code == 206 and data[:100] + resumed.content == data
    assert harness.stored_files() == [harness.state(created["id"]).file_key]


@pytest.mark.parametrize("harness", ["local", "s3"], indirect=True)
async def test_tampered_expired_and_foreign_links_get_403_and_no_bytes(
    harness: Harness,
) -> None:
    builder = FakeBuilder(rows=10)
    harness.start_worker(builder)
    first = await harness.create()
    second = await harness.create()
    url = (await harness.wait(first["id"], 2))["report_url"]
    other_url = (await harness.wait(second["id"], 2))["report_url"]
    data = builder.render(harness.state(first["id"]))
    assert (await harness.fetch(url)).content == data

    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&"))
    base = f"{harness.public_url}{parts.path}"
    sig, expires = query["sig"], int(query["expires"])
    tampered = [
        f"{base}?expires={expires}&sig={'A' if sig[0] != 'A' else 'B'}{sig[1:]}",
        f"{base}?expires={expires + 3600}&sig={sig}",
        f"{base}?expires={expires}",
        f"{base}?expires={'9' * 40}&sig={sig}",
        f"{base}?expires=%C2%B2&sig={sig}",  # a digit that is not ASCII ("²")
        f"{base}?expires={expires}&sig={sig * 4}",
        f"{base}?sig={sig}",
        base,
        # the signature of the second report on the path of the first, and the reverse
        f"{base}?{urlsplit(other_url).query}",
        f"{harness.public_url}{urlsplit(other_url).path}?{parts.query}",
    ]
    for link in tampered:
        _assert_refused(await harness.fetch(link), data)

    harness.clock.advance(LINK_TTL - timedelta(seconds=1))
    assert (await harness.fetch(url)).status_code == 200, "valid for the whole TTL"
    harness.clock.advance(timedelta(seconds=2))
    _assert_refused(await harness.fetch(url), data)

    fresh = (await harness.get(first["id"]))["report_url"]
    assert fresh != url
    assert (await harness.fetch(fresh)).content == data


@pytest.mark.parametrize("harness", ["local", "s3"], indirect=True)
async def test_a_deleted_report_link_is_refused_and_its_file_removed(harness: Harness) -> None:
    builder = FakeBuilder(rows=10)
    harness.start_worker(builder)
    created = await harness.create()
    url = (await harness.wait(created["id"], 2))["report_url"]
    data = builder.render(harness.state(created["id"]))
    assert len(harness.stored_files()) == 1

    deleted = await harness.client.delete(
        f"/reporting/mdr_requests/{created['id']}", headers=harness.auth
    )
    assert deleted.status_code == 200
    _assert_refused(await harness.fetch(url), data)
    assert harness.stored_files() == [], "the DELETE removed the file at once"
    assert harness.sweeper.sweep().purged == 1, "and the sweeper forgot its key"
    assert harness.sweeper.sweep().purged == 0


@pytest.mark.parametrize("harness", ["local", "s3"], indirect=True)
async def test_a_file_left_by_a_failed_delete_is_removed_by_the_sweeper(
    harness: Harness,
) -> None:
    harness.start_worker(FakeBuilder(rows=2))
    created = await harness.create()
    await harness.wait(created["id"], 2)
    harness.catalog.delete_request(created["id"])  # as if the DELETE died before the file
    assert len(harness.stored_files()) == 1
    assert harness.sweeper.sweep().purged == 1
    assert harness.stored_files() == []


async def test_a_create_wakes_an_idle_worker(harness: Harness) -> None:
    worker = harness.start_worker(FakeBuilder(rows=2), poll_interval=60)
    await anyio.sleep(0.05)  # the slot has polled once and now sleeps for a minute
    harness.services.requests.on_created = lambda _state: worker.wake()
    created = await harness.create()
    await harness.wait(created["id"], 2, timeout=5)


async def test_unicode_report_names_survive_in_the_download_name(harness: Harness) -> None:
    harness.start_worker(FakeBuilder(rows=2))
    created = await harness.create(report_name="Отчёт/mai 2024")
    response = await harness.fetch((await harness.wait(created["id"], 2))["report_url"])
    disposition = response.headers["content-disposition"]
    assert 'filename="______mai_2024.csv"' in disposition
    assert "filename*=UTF-8''%D0%9E%D1%82%D1%87%D1%91%D1%82_mai_2024.csv" in disposition


@pytest.mark.parametrize("harness", ["local", "s3"], indirect=True)
async def test_after_30_days_the_report_is_expired_and_its_file_gone(harness: Harness) -> None:
    builder = FakeBuilder(rows=10)
    harness.start_worker(builder)
    created = await harness.create()
    url = (await harness.wait(created["id"], 2))["report_url"]
    data = builder.render(harness.state(created["id"]))
    expires_at = harness.state(created["id"]).expires_at

    harness.clock.advance(timedelta(days=30) - timedelta(minutes=1))
    assert harness.sweeper.sweep().expired == 0
    assert (await harness.get(created["id"]))["status"] == 2

    harness.clock.advance(timedelta(minutes=1))
    assert harness.clock() == expires_at
    assert harness.sweeper.sweep().expired == 1
    view = await harness.get(created["id"])
    assert view["status"] == 4
    assert view["report_url"] is None
    assert harness.stored_files() == []
    _assert_refused(await harness.fetch(url), data)
    v2 = await harness.client.get(
        f"/v2/legacy/reporting/batch_detail_records/messaging/{created['id']}",
        headers=harness.auth,
    )
    assert (v2.json()["data"]["status"], v2.json()["data"]["report_url"]) == ("EXPIRED", None)


async def test_a_failing_build_is_retried_then_failed_with_the_reason(harness: Harness) -> None:
    builder = FakeBuilder(rows=3, fail_attempts=10, error="the lake is unreachable")
    harness.start_worker(builder)
    created = await harness.create()
    failed = await harness.wait(created["id"], 3)
    assert failed["error"].startswith("the report could not be built")  # no exception text
    assert failed["report_url"] is None
    assert builder.calls[created["id"]] == 3
    assert harness.state(created["id"]).attempts == 3
    assert harness.stored_files() == []


async def test_a_build_that_fails_once_succeeds_on_retry(harness: Harness) -> None:
    builder = FakeBuilder(rows=3, fail_attempts=1)
    harness.start_worker(builder)
    created = await harness.create()
    done = await harness.wait(created["id"], 2)
    assert builder.calls[created["id"]] == 2
    assert done["error"] is None
    assert (await harness.fetch(done["report_url"])).status_code == 200


@pytest.mark.parametrize("harness", ["local", "s3"], indirect=True)
async def test_delete_cancels_a_build_in_progress(harness: Harness) -> None:
    builder = FakeBuilder(rows=3, block=True)
    worker = harness.start_worker(builder)
    created = await harness.create()
    with anyio.fail_after(5):
        while not builder.started.is_set():
            await anyio.sleep(0.01)
    assert list(harness.work_dir.iterdir()), "the build has a partial file"
    deleted = await harness.client.delete(
        f"/reporting/mdr_requests/{created['id']}", headers=harness.auth
    )
    assert deleted.status_code == 200
    with anyio.fail_after(5):  # the heartbeat sees the delete; the builder stops
        while list(harness.work_dir.iterdir()):
            await anyio.sleep(0.01)
    assert harness.stored_files() == []
    assert builder.calls[created["id"]] == 1

    builder.block = False  # the worker is free for the next request
    following = await harness.create()
    await harness.wait(following["id"], 2)
    assert builder.calls[created["id"]] == 1, "a deleted request is never built again"
    assert worker.stopping is False


async def test_stopping_a_worker_hands_its_build_back(harness: Harness) -> None:
    builder = FakeBuilder(rows=3, block=True)
    worker = harness.start_worker(builder)
    created = await harness.create()
    with anyio.fail_after(5):
        while not builder.started.is_set():
            await anyio.sleep(0.01)
    await anyio.to_thread.run_sync(worker.stop)
    state = harness.state(created["id"])
    assert state.status == 1
    assert state.attempts == 0
    assert list(harness.work_dir.iterdir()) == []

    harness.start_worker(FakeBuilder(rows=3))  # a restarted worker takes it at once
    await harness.wait(created["id"], 2)


async def test_a_restarted_worker_picks_up_pending_and_lease_expired_requests(
    harness: Harness,
) -> None:
    waiting = await harness.create()
    orphaned = await harness.create()
    crashed = harness.queue.claim("crashed-worker")  # took a lease, then died
    assert crashed is not None
    held = crashed.state.id
    free = waiting["id"] if held == orphaned["id"] else orphaned["id"]

    builder = FakeBuilder(rows=4)
    harness.start_worker(builder)
    await harness.wait(free, 2)
    assert (await harness.get(held))["status"] == 1, "the dead worker's lease is still live"

    harness.clock.advance(timedelta(seconds=31))
    done = await harness.wait(held, 2)
    assert harness.state(held).attempts == 2
    response = await harness.fetch(done["report_url"])
    assert response.content == builder.render(harness.state(held))
