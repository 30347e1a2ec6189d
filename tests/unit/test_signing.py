"""Signed links: bound to request, file and expiry; valid for the TTL, then refused."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.files import LinkSigner
from mdr_reporting.files.signing import LinkRejected, file_tag
from mdr_reporting.worker.testing import ManualClock

SECRET = "s" * 32
TTL = timedelta(hours=3)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def signer(clock: ManualClock) -> LinkSigner:
    return LinkSigner(SECRET, "https://mdr.example.com/", TTL, clock)


def test_a_link_verifies_until_it_expires(signer: LinkSigner, clock: ManualClock) -> None:
    link = signer.sign("req-1", "req-1/a.csv")
    assert link.expires >= (clock() + TTL).timestamp()
    assert link.file == file_tag("req-1/a.csv") and "req-1" not in link.file
    signer.verify("req-1", link.file, str(link.expires), link.signature)
    clock.advance(TTL - timedelta(seconds=1))
    signer.verify("req-1", link.file, str(link.expires), link.signature)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(LinkRejected, match="expired"):
        signer.verify("req-1", link.file, str(link.expires), link.signature)


def test_the_url_is_absolute_and_carries_expiry_and_signature(signer: LinkSigner) -> None:
    link = signer.sign("req-1", "req-1/a.csv")
    url = urlsplit(signer.url(link))
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        "mdr.example.com",
        "/reports/req-1/download",
    )
    assert parse_qs(url.query) == {
        "file": [link.file],
        "expires": [str(link.expires)],
        "sig": [link.signature],
    }


@pytest.mark.parametrize(
    ("request_id", "file_key", "expires_delta", "flip"),
    [
        ("req-2", "req-1/a.csv", 0, False),  # another request
        ("req-1", "req-1/b.csv", 0, False),  # another file of the same request
        ("req-1", "req-1/a.csv", 3600, False),  # a longer life than signed
        ("req-1", "req-1/a.csv", 0, True),  # a changed signature
    ],
)
def test_tampered_and_foreign_links_are_refused(
    signer: LinkSigner, request_id: str, file_key: str, expires_delta: int, flip: bool
) -> None:
    link = signer.sign("req-1", "req-1/a.csv")
    signature = link.signature
    if flip:
        signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(LinkRejected):
        signer.verify(request_id, file_tag(file_key), str(link.expires + expires_delta), signature)


@pytest.mark.parametrize("expires", ["", "abc", "-5", "1e9", "9" * 40])
def test_malformed_expiry_is_refused(signer: LinkSigner, expires: str) -> None:
    link = signer.sign("req-1", "k")
    with pytest.raises(LinkRejected):
        signer.verify("req-1", link.file, expires, link.signature)


def test_another_secret_does_not_verify(signer: LinkSigner, clock: ManualClock) -> None:
    other = LinkSigner("t" * 32, "https://mdr.example.com", TTL, clock)
    link = other.sign("req-1", "k")
    with pytest.raises(LinkRejected, match="signature"):
        signer.verify("req-1", link.file, str(link.expires), link.signature)


def test_report_url_only_for_complete_requests_and_fresh_each_time(
    signer: LinkSigner, clock: ManualClock
) -> None:
    from mdr_reporting.catalog import Catalog
    from mdr_reporting.worker.testing import make_request

    catalog = Catalog("sqlite://", clock=clock)
    catalog.migrate()
    state = make_request(catalog)
    assert signer.report_url(state) is None
    done = dataclasses.replace(state, status=RequestStatus.COMPLETE, file_key=f"{state.id}/x.csv")
    first = signer.report_url(done)
    assert first is not None
    assert first.startswith(f"https://mdr.example.com/reports/{state.id}/")
    clock.advance(5)
    assert signer.report_url(done) != first
    catalog.close()


def test_a_short_secret_is_refused(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="16"):
        LinkSigner("short", "http://x", TTL, clock)
