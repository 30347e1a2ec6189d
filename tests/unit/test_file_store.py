"""The local file store: atomic puts, safe keys, reads that survive a delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdr_reporting.files import InvalidKey, LocalFileStore, open_file_store


@pytest.fixture
def store(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "reports")


def _source(tmp_path: Path, data: bytes, name: str = "build.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_put_moves_the_file_under_its_key_and_leaves_no_temporary(
    store: LocalFileStore, tmp_path: Path
) -> None:
    source = _source(tmp_path, b"id,cli\r\n1,+1312\r\n")
    assert store.put("req-1/abc.csv", source) == 17
    assert not source.exists()
    assert store.exists("req-1/abc.csv")
    stream, size = store.open("req-1/abc.csv")
    with stream:
        assert (size, stream.read()) == (17, b"id,cli\r\n1,+1312\r\n")
    assert [p.name for p in (store.root / "req-1").iterdir()] == ["abc.csv"]


def test_put_replaces_atomically_and_an_open_reader_keeps_its_bytes(
    store: LocalFileStore, tmp_path: Path
) -> None:
    store.put("r/f.csv", _source(tmp_path, b"first"))
    stream, _ = store.open("r/f.csv")
    store.put("r/f.csv", _source(tmp_path, b"second version"))
    assert store.delete("r/f.csv")
    with stream:
        assert stream.read() == b"first"


def test_delete_and_exists(store: LocalFileStore, tmp_path: Path) -> None:
    store.put("r/f.csv", _source(tmp_path, b"x"))
    assert store.delete("r/f.csv")
    assert not store.exists("r/f.csv")
    assert not store.delete("r/f.csv")
    assert not (store.root / "r").exists(), "the request's empty folder goes too"
    with pytest.raises(FileNotFoundError):
        store.open("r/f.csv")


@pytest.mark.parametrize(
    "key", ["../x.csv", "/etc/passwd", "a/../../b", "a//b", "", ".hidden", "a\\b"]
)
def test_keys_cannot_escape_the_folder(store: LocalFileStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKey):
        store.put(key, _source(tmp_path, b"x"))
    with pytest.raises(InvalidKey):
        store.open(key)


def test_a_failed_put_leaves_nothing_behind(store: LocalFileStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.put("r/f.csv", tmp_path / "missing.csv")
    assert not store.exists("r/f.csv")
    assert list((store.root / "r").iterdir()) == []


def test_the_store_is_chosen_by_url(tmp_path: Path) -> None:
    store = open_file_store((tmp_path / "files").as_uri())
    assert isinstance(store, LocalFileStore)
    assert store.root == tmp_path / "files"
    with pytest.raises(ValueError, match="file://"):
        open_file_store("ftp://host/reports")


def test_a_worker_removes_stale_build_files_of_dead_workers(tmp_path: Path) -> None:
    import os
    import time
    from datetime import timedelta

    from mdr_reporting.catalog import Catalog
    from mdr_reporting.catalog.jobs import JobQueue
    from mdr_reporting.worker import Worker
    from mdr_reporting.worker.testing import FakeBuilder

    work = tmp_path / "work"
    work.mkdir()
    stale, live, other = work / "mdr-build-a.csv", work / "mdr-build-b.csv", work / "notes.txt"
    for path in (stale, live, other):
        path.write_text("x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    catalog.migrate()
    queue = JobQueue(
        catalog, lease=timedelta(seconds=5), max_attempts=3, retention=timedelta(days=30)
    )
    worker = Worker(queue, LocalFileStore(tmp_path / "r"), FakeBuilder(), work_dir=work)
    worker.start()
    worker.stop()
    catalog.close()
    assert sorted(p.name for p in work.iterdir()) == ["mdr-build-b.csv", "notes.txt"]


def test_a_copy_is_a_file_of_its_own_that_outlives_the_original(
    store: LocalFileStore, tmp_path: Path
) -> None:
    store.put("req-a/one.csv", _source(tmp_path, b"id\r\nm-1\r\n"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert store.copy("req-a/one.csv", "req-b/two.csv", scratch) == 9
    assert store.path("req-b/two.csv").stat().st_ino == store.path("req-a/one.csv").stat().st_ino
    assert store.delete("req-a/one.csv")
    handle, size = store.open("req-b/two.csv")
    with handle:
        assert (handle.read(), size) == (b"id\r\nm-1\r\n", 9)
    assert store.delete("req-b/two.csv")
    assert not store.delete("req-b/two.csv")  # one file, deleted once per key
    assert list(store.list()) == [] and list(scratch.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        store.copy("req-a/one.csv", "req-c/three.csv", scratch)
