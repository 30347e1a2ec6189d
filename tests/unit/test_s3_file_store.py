"""The S3 file store on moto in server mode: multipart, atomic puts, listing, presigned GETs."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from mdr_reporting.files import InvalidKey, open_file_store
from mdr_reporting.files.base import content_disposition
from mdr_reporting.files.s3 import MULTIPART_CHUNK, S3FileStore
from mdr_reporting.objectstore import S3Location
from mdr_reporting.settings import load_settings


@pytest.fixture
def store(s3_endpoint: str, s3_bucket: str) -> S3FileStore:
    return S3FileStore(S3Location(s3_bucket, "reports", s3_endpoint))


def _source(tmp_path: Path, data: bytes, name: str = "build.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_put_uploads_under_the_key_and_consumes_the_source(
    store: S3FileStore, tmp_path: Path
) -> None:
    source = _source(tmp_path, b"id,cli\r\n1,+1312\r\n")
    assert store.put("req-1/abc.csv", source) == 17
    assert not source.exists()
    assert store.exists("req-1/abc.csv")
    stream, size = store.open("req-1/abc.csv")
    with stream:
        assert size == 17
        stream.seek(8)
        assert stream.read() == b"1,+1312\r\n"
    assert [f.key for f in store.list()] == ["req-1/abc.csv"]


def test_a_large_report_goes_up_in_parts_and_comes_back_whole(
    store: S3FileStore, tmp_path: Path
) -> None:
    data = os.urandom(1024) * (MULTIPART_CHUNK // 1024 + 300)  # more than one part
    store.put("big/report.csv", _source(tmp_path, data))
    url = store.presigned_url("big/report.csv", timedelta(minutes=1))
    assert url is not None
    answer = httpx.get(url)
    assert answer.status_code == 200 and answer.content == data
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]


def test_a_failed_put_leaves_nothing_under_the_key(store: S3FileStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.put("r/f.csv", tmp_path / "missing.csv")
    assert not store.exists("r/f.csv")
    assert list(store.list()) == []


def test_delete_exists_and_list_with_times(store: S3FileStore, tmp_path: Path) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    store.put("r/a.csv", _source(tmp_path, b"a"))
    store.put("r/b.csv", _source(tmp_path, b"b"))
    listed = {f.key: f.modified for f in store.list()}
    assert sorted(listed) == ["r/a.csv", "r/b.csv"]
    assert all(
        before <= when <= datetime.now(UTC) + timedelta(seconds=5) for when in listed.values()
    )
    assert store.delete("r/a.csv")
    assert not store.exists("r/a.csv")
    assert not store.delete("r/a.csv")
    with pytest.raises(FileNotFoundError):
        store.open("r/a.csv")
    assert [f.key for f in store.list()] == ["r/b.csv"]


@pytest.mark.parametrize("key", ["../x.csv", "/etc/passwd", "a//b", "", ".hidden"])
def test_keys_are_checked(store: S3FileStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKey):
        store.put(key, _source(tmp_path, b"x"))
    with pytest.raises(InvalidKey):
        store.presigned_url(key, timedelta(minutes=1))


def test_the_store_is_chosen_by_url_and_an_unreachable_bucket_is_one_line(
    s3_endpoint: str, s3_bucket: str
) -> None:
    settings = load_settings(
        {"files_url": f"s3://{s3_bucket}/reports", "s3_endpoint_url": s3_endpoint}, environ={}
    )
    store = open_file_store(settings.files_url, settings)
    assert isinstance(store, S3FileStore)
    assert store.location == S3Location(s3_bucket, "reports", s3_endpoint)
    with pytest.raises(ValueError, match=r"bucket 'no-such-bucket'.*NoSuchBucket") as missing:
        open_file_store("s3://no-such-bucket/x", settings)
    assert "\n" not in str(missing.value)
    closed = load_settings({"s3_endpoint_url": "http://127.0.0.1:9"}, environ={})
    with pytest.raises(ValueError, match="not reachable") as refused:
        open_file_store(f"s3://{s3_bucket}/x", closed)
    assert "\n" not in str(refused.value)


def test_the_presigned_get_names_the_report_file_like_local_downloads(
    store: S3FileStore, tmp_path: Path
) -> None:
    name = "März report, v2.csv"
    store.put("req-2/abc.csv", _source(tmp_path, b"id\r\n1\r\n"), filename=name)
    url = store.presigned_url("req-2/abc.csv", timedelta(minutes=1))
    assert url is not None
    answer = httpx.get(url)
    assert answer.status_code == 200 and answer.content == b"id\r\n1\r\n"
    assert answer.headers["content-disposition"] == content_disposition(name)
    assert answer.headers["content-disposition"] == (
        'attachment; filename="M_rz report, v2.csv"; '
        "filename*=UTF-8''M%C3%A4rz%20report%2C%20v2.csv"
    )
    assert answer.headers["content-type"].startswith("text/csv")


def test_a_copy_is_made_in_the_bucket_and_outlives_the_original(
    store: S3FileStore, tmp_path: Path
) -> None:
    store.put("req-a/one.csv", _source(tmp_path, b"id\r\nm-1\r\n"))
    assert store.copy("req-a/one.csv", "req-b/two.csv", tmp_path) == 9
    assert store.delete("req-a/one.csv")
    handle, size = store.open("req-b/two.csv")
    with handle:
        assert (handle.read(), size) == (b"id\r\nm-1\r\n", 9)
    with pytest.raises(FileNotFoundError):
        store.copy("req-a/one.csv", "req-c/three.csv", tmp_path)
