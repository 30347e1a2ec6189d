"""The lake's rules (architecture.md "Lake"), each with a test that fails when it is broken.

Every rule runs on each lake: local, and S3 (moto) with its manifest in a SQLite and,
when configured, a PostgreSQL catalog.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import obstore
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.domain.records import LAKE_SCHEMA, RECORD_SCHEMA
from mdr_reporting.lake import Lake, LakeConflict, Snapshot, open_lake
from mdr_reporting.lake import build as build_module
from mdr_reporting.lake import manifest as manifest_module
from mdr_reporting.lake.build import LAYOUT_KEY, LAYOUT_VALUE
from mdr_reporting.lake.local import LocalLake
from mdr_reporting.lake.read import read_latest
from mdr_reporting.lake.s3 import S3Lake
from mdr_reporting.objectstore import S3Location
from mdr_reporting.settings import load_settings
from tests.conftest import CATALOG_BACKENDS, postgres_schema_url
from tests.records import BASE, record, table

DAY = date(2026, 3, 1)


@dataclass
class Kind:
    """Makes lakes of one kind and looks at their stored files from outside."""

    name: str
    root: Path
    location: S3Location | None = None
    catalog_url: str = ""
    made: list[Lake] = field(default_factory=list)

    def __call__(self, **options: Any) -> Any:
        if self.location is None:
            lake: Lake = LocalLake(self.root, **options)
        else:
            options.setdefault("sweep_age_seconds", 0)
            lake = S3Lake(self.location, self.catalog_url, **options)
        self.made.append(lake)
        return lake

    def exists(self, path: str) -> bool:
        if self.location is None:
            return Path(path).exists()
        try:
            obstore.head(self.made[0].store, self.location.key(path))  # type: ignore[attr-defined]
        except FileNotFoundError:
            return False
        return True

    def stored(self) -> set[str]:
        """Every data file there is, named by a manifest or not."""
        if self.location is None:
            return {str(p) for p in (self.root / "data").glob("*/*.parquet")}
        store = self.made[0].store  # type: ignore[attr-defined]
        return {
            self.location.url(meta["path"])
            for chunk in obstore.list(store, "data/")
            for meta in chunk
        }

    def read(self, path: str) -> pa.Table:
        if self.location is None:
            return pq.read_table(path)
        lake: S3Lake = self.made[0]  # type: ignore[assignment]
        return lake._read_table(self.location.key(path))


KINDS = ["local", *(f"s3-{backend}" for backend in CATALOG_BACKENDS)]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kind]:
    yield from _kind(request, tmp_path)


@pytest.fixture(params=KINDS[1:])
def s3_kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kind]:
    yield from _kind(request, tmp_path)


def _kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kind]:
    if request.param == "local":
        yield Kind("local", tmp_path)
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    urls = (
        iter([f"sqlite:///{tmp_path / 'catalog.db'}"])
        if request.param == "s3-sqlite"
        else postgres_schema_url()
    )
    catalog_url = next(urls)
    catalog = Catalog(catalog_url)
    catalog.migrate()
    catalog.close()
    made = Kind(request.param, tmp_path, S3Location(bucket, "lake", endpoint), catalog_url)
    yield made
    for lake in made.made:
        lake.close()  # type: ignore[attr-defined]
    next(urls, None)  # drops the PostgreSQL schema


def latest(lake: Lake) -> dict[str, dict[str, object]]:
    snapshot = lake.snapshot()
    try:
        rows = [r for day in snapshot.files for r in _read_day(snapshot, day).to_pylist()]
    finally:
        lake.release(snapshot)
    by_id = {str(r["id"]): r for r in rows}
    assert len(by_id) == len(rows), "a reader saw two versions of one message"
    return by_id


def _read_day(snapshot: Snapshot, day: date) -> pa.Table:
    with (
        tempfile.TemporaryDirectory() as folder,
        snapshot.local_day(day, Path(folder) / "day") as files,
    ):
        return read_latest(files)


def test_open_lake_by_url(tmp_path: Path) -> None:
    lake = open_lake((tmp_path / "lake").as_uri())
    assert isinstance(lake, LocalLake)
    with pytest.raises(ValueError, match="not supported"):
        open_lake("ftp://example.com/lake")


def test_open_lake_on_s3_by_url(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    settings = load_settings(
        {
            "data_dir": str(tmp_path),
            "lake_url": f"s3://{s3_bucket}/lake",
            "s3_endpoint_url": s3_endpoint,
        },
        environ={},
    )
    with pytest.raises(ValueError, match=r"no lake tables \(run `mdr migrate`\)"):
        open_lake(settings.lake_url, settings)
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    catalog.close()
    lake = open_lake(settings.lake_url, settings)
    assert isinstance(lake, S3Lake) and lake.location == S3Location(s3_bucket, "lake", s3_endpoint)
    lake.close()
    with pytest.raises(ValueError, match=r"'missing-bucket'.*NoSuchBucket"):
        open_lake("s3://missing-bucket/lake", settings)


def test_append_is_visible_as_a_snapshot_of_day_files(kind: Kind) -> None:
    lake = kind()
    result = lake.append(table([record(i) for i in range(5)]))
    assert result.rows == 5 and result.version == 1
    snapshot = lake.snapshot()
    assert list(snapshot.files) == [DAY]
    assert all(kind.exists(p) for p in snapshot.files[DAY])
    assert sorted(latest(lake)) == [f"msg-{i:06d}" for i in range(5)]
    assert lake.stats().rows == 5 and lake.stats().days[0].day == DAY


def test_an_aborted_transaction_leaves_nothing(kind: Kind) -> None:
    lake = kind()
    lake.append(table([record(0)]))

    def interrupted() -> None:
        with lake.writer() as writer:
            writer.add(table([record(1), record(2)]))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        interrupted()
    assert sorted(latest(lake)) == ["msg-000000"]
    assert len(kind.stored()) == 1


def test_a_crash_before_the_manifest_rename_hides_the_whole_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = LocalLake(tmp_path, retire_grace_seconds=0)
    lake.append(table([record(0)]))

    def crash(*_args: object) -> None:
        raise OSError("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr(manifest_module.os, "replace", crash)
        with pytest.raises(OSError, match="disk gone"):
            lake.append(table([record(i) for i in range(1, 50)]))
    assert sorted(latest(lake)) == ["msg-000000"]  # data files were written, never named
    assert lake.append(table([record(i) for i in range(1, 50)])).rows == 49  # not "seen"
    lake.compact()  # also removes the unnamed leftovers
    named = {Path(p) for files in lake.snapshot().files.values() for p in files}
    assert set((tmp_path / "data").glob("*/*.parquet")) == named


def test_s3_a_failed_commit_hides_the_whole_batch_and_deletes_its_uploads(
    s3_kind: Kind, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = s3_kind(retire_grace_seconds=0)
    lake.append(table([record(0)]))

    def crash(*_args: object) -> None:
        raise OSError("catalog gone")

    with monkeypatch.context() as patch:
        patch.setattr(S3Lake, "_add_rows", crash)
        with pytest.raises(OSError, match="catalog gone"):
            lake.append(table([record(i) for i in range(1, 50)]))
    assert sorted(latest(lake)) == ["msg-000000"]
    assert len(s3_kind.stored()) == 1  # the batch's upload was deleted
    assert lake.append(table([record(i) for i in range(1, 50)])).rows == 49  # not "seen"
    obstore.put(lake.store, "data/2026-03-01/part-0-crashed.parquet", b"left by a dead append")
    lake.compact()  # sweeps objects no manifest row names
    named = {p for files in lake.snapshot().files.values() for p in files}
    assert s3_kind.stored() == named


def test_s3_two_lakes_commit_the_same_ids_at_once_and_one_version_is_stored(
    s3_kind: Kind,
) -> None:
    """Two processes' writers check a batch before either commits: the second commit
    checks again inside its lock and drops what became stale."""
    first, second = s3_kind(), s3_kind()
    first.append(table([record(0)]))
    newer = [record(i, status="delivered", updated_at="2026-03-01T10:00:00Z") for i in range(3)]
    with first.writer() as one, second.writer() as two:
        assert one.add(table(newer)) == 3
        assert two.add(table(newer)) == 3
        one.commit()
        result = two.commit()
    assert result.rows == 0
    assert sorted(latest(first)) == ["msg-000000", "msg-000001", "msg-000002"]
    assert first.stats().rows == 4  # the first version of msg 0, then three new versions
    with first.writer() as one, second.writer() as two:
        one.add(table([record(7)]))
        two.add(table([record(7, account_id="acct-z")]))
        one.commit()
        with pytest.raises(LakeConflict):
            two.commit()
    assert latest(second)["msg-000007"]["account_id"] == "acct-a"


def test_append_fsyncs_data_folders_and_manifest_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    lake = LocalLake(tmp_path / "lake")
    monkeypatch.setattr(os, "fsync", fsync)
    lake.append(table([record(0)]))
    root = (tmp_path / "lake").resolve()
    data_file = next(root.glob("data/*/*.parquet"))
    assert str(data_file) in synced
    assert str(data_file.parent) in synced  # the new file's directory entry
    assert any(".tmp" in path for path in synced)  # the manifest before its rename
    assert synced[-1] == str(root)  # the rename itself, last
    assert synced.index(str(data_file)) < synced.index(str(root))


def test_latest_version_wins_and_older_or_equal_changes_nothing(kind: Kind) -> None:
    lake = kind()
    sent = record(0, updated_at="2026-03-01T09:00:05+00:00")
    delivered = dict(sent, status="delivered", updated_at="2026-03-01T09:00:09+00:00")
    lake.append(table([sent]))
    lake.append(table([delivered]))
    assert latest(lake)["msg-000000"]["status"] == "delivered"

    stale = dict(sent, status="delivery_failed", updated_at="2026-03-01T09:00:07+00:00")
    same_time = dict(delivered, status="delivery_unconfirmed")
    assert lake.append(table([stale])).rows == 0
    assert lake.append(table([same_time])).rows == 0
    assert latest(lake)["msg-000000"]["status"] == "delivered"

    lake.compact()
    files = lake.snapshot().files[DAY]
    assert len(files) == 1
    stored = kind.read(files[0])
    assert stored.num_rows == 1 and stored.column("status")[0].as_py() == "delivered"


def test_within_a_batch_the_latest_version_wins_and_ties_keep_the_first(kind: Kind) -> None:
    lake = kind()
    first = record(0, updated_at="2026-03-01T09:00:05+00:00", status="sent")
    later = dict(first, updated_at="2026-03-01T09:00:06+00:00", status="delivered")
    tie = dict(later, status="delivery_failed")
    assert lake.append(table([first, later, tie])).rows == 1
    assert latest(lake)["msg-000000"]["status"] == "delivered"


def test_a_new_version_may_not_move_an_id_to_another_account_or_time(kind: Kind) -> None:
    lake = kind()
    lake.append(table([record(0), record(1)]))
    moved = record(1, account_id="acct-b", status="delivered", updated_at="2026-03-01T10:00:00Z")
    later = record(0, created_at="2026-03-01T11:00:00Z", status="delivered")
    with pytest.raises(LakeConflict) as caught:
        lake.append(table([record(2), moved, later]))
    assert sorted((row, name) for row, name, _ in caught.value.rows) == [
        (1, "account_id"),
        (2, "created_at"),
    ]
    assert sorted(latest(lake)) == ["msg-000000", "msg-000001"]  # nothing of the batch


def test_files_per_day_stay_bounded(kind: Kind) -> None:
    lake = kind(max_files_per_day=4)
    for i in range(12):
        lake.append(table([record(i * 10 + j) for j in range(10)]))
        assert all(d.files <= 4 for d in lake.stats().days)
    assert lake.stats().rows == 120 and len(latest(lake)) == 120
    result = lake.compact()
    assert result.files_after == 1 and lake.stats().rows == 120


def test_compaction_never_breaks_a_reader_holding_an_older_snapshot(kind: Kind) -> None:
    lake = kind(retire_grace_seconds=0)
    lake.append(table([record(0)]))
    lake.append(table([record(1)]))
    held = lake.snapshot()
    lake.compact()
    lake.compact()
    assert all(kind.exists(p) for p in held.files[DAY])
    assert _read_day(held, DAY).num_rows == 2
    lake.release(held)
    lake.compact()
    assert not any(kind.exists(p) for p in held.files[DAY])
    assert len(latest(lake)) == 2


def test_retired_files_wait_out_the_grace_period_for_other_processes(kind: Kind) -> None:
    lake = kind(retire_grace_seconds=3600)
    lake.append(table([record(0)]))
    lake.append(table([record(1)]))
    before = lake.snapshot()
    lake.release(before)
    lake.compact()
    assert all(kind.exists(p) for p in before.files[DAY])


def test_rows_are_sorted_by_account_and_time_in_small_row_groups(
    kind: Kind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_module, "ROW_GROUP_ROWS", 50)
    accounts = [f"acct-{n:02d}" for n in range(8)]
    rows = [record(i, account_id=accounts[(i * 5) % 8]) for i in range(400)]
    lake = kind()
    lake.append(table(rows))
    (path,) = lake.snapshot().files[DAY]
    stored = kind.read(path)
    keys = list(
        zip(
            stored.column("account_id").to_pylist(),
            stored.column("created_at").to_pylist(),
            strict=True,
        )
    )
    assert keys == sorted(keys)
    with lake.snapshot().local_day(DAY, tmp_path / "copy") as (local,):
        metadata = pq.ParquetFile(local).metadata
    assert metadata.num_row_groups == 8
    account_column = RECORD_SCHEMA.get_field_index("account_id")
    spans = [
        (g.column(account_column).statistics.min, g.column(account_column).statistics.max)
        for g in (metadata.row_group(i) for i in range(metadata.num_row_groups))
    ]
    # Statistics let a reader of one account skip every other row group.
    assert sum(1 for low, high in spans if low <= "acct-03" <= high) == 1


def test_files_state_their_layout_and_order_ties_on_time_by_id(kind: Kind) -> None:
    """Every file the lake writes (appends and merges) holds each id once, sorted by
    (account_id, created_at, id in byte order), and says so in its metadata: the
    DuckDB engine then skips the latest-version pass and, for one account, the sort."""
    ids = ["b", "B", "a", "é", "msg-10", "msg-2", "_x", "%y", "z"]
    same_time = BASE.isoformat()
    rows = [
        record(n, id=f"{ids[n % len(ids)]}-{n // len(ids)}", created_at=same_time)
        for n in range(40)
    ]
    lake = kind(max_files_per_day=2)
    lake.append(table(rows[:20]))
    lake.append(table(rows[10:30]))  # the same ids again: equal updated_at, nothing stored
    later = [dict(r, updated_at=(BASE + timedelta(hours=1)).isoformat()) for r in rows[25:40]]
    lake.append(table(later))  # past the bound: merged into one file
    files = lake.snapshot().files[DAY]
    for path in files:
        stored = kind.read(path)
        keys = list(
            zip(
                stored.column("account_id").to_pylist(),
                stored.column("created_at").to_pylist(),
                (i.encode() for i in stored.column("id").to_pylist()),
                strict=True,
            )
        )
        assert keys == sorted(keys)
        assert len({k[2] for k in keys}) == len(keys)
        assert (stored.schema.metadata or {}).get(LAYOUT_KEY) == LAYOUT_VALUE
    assert len(latest(lake)) == 40


def test_appends_from_many_threads_are_serialised(kind: Kind) -> None:
    lake = kind()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for batch in range(5):
                start = worker * 1000 + batch * 10
                lake.append(table([record(start + j) for j in range(10)]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert lake.stats().version >= 20 and len(latest(lake)) == 200
    assert pc.count_distinct(kind.read(lake.snapshot().files[DAY][0]).column("id")).as_py()


def test_one_transaction_checks_later_batches_against_earlier_ones(kind: Kind) -> None:
    lake = kind()
    with lake.writer() as writer:
        writer.add(table([record(0, updated_at="2026-03-01T09:00:05Z")]))
        older = record(0, status="delivered", updated_at="2026-03-01T09:00:04Z")
        assert writer.add(table([older])) == 0  # not a newer version
        with pytest.raises(LakeConflict):
            writer.add(table([record(0, account_id="acct-z")]))
        writer.commit()
    assert latest(lake)["msg-000000"]["status"] == "sent"


def test_automatic_merges_reclaim_retired_files(kind: Kind) -> None:
    lake = kind(max_files_per_day=2, retire_grace_seconds=0)
    for i in range(6):
        lake.append(table([record(i)]))
    named = {p for files in lake.snapshot().files.values() for p in files}
    assert len(named) <= 2
    assert len(kind.stored()) <= 3  # at most one just retired


def test_no_manifest_ever_names_more_files_per_day_than_the_bound(kind: Kind) -> None:
    lake = kind(max_files_per_day=4)
    with lake.writer() as writer:
        for i in range(10):  # ten files for one day in one transaction
            writer.add(table([record(i)]))
        result = writer.commit()
    assert result.version == 1  # one manifest version, already within the bound
    assert lake.stats().days[0].files <= 4 and len(latest(lake)) == 10


def test_files_carry_folded_numbers_and_compaction_adds_them_to_older_files(
    tmp_path: Path,
) -> None:
    """Appends write the domain's folding of cli/cld; a file written before the lake stored
    it (RECORD_SCHEMA only) gets the columns when ``compact()`` rewrites its day."""
    lake = LocalLake(tmp_path)
    lake.append(table([record(0, cli="+ΟΔΟΣ", cld="İSTANBUL")]))
    (path,) = lake.snapshot().files[DAY]
    stored = pq.read_table(path)
    assert stored.schema.equals(LAKE_SCHEMA)
    assert stored.column("cli_folded").to_pylist() == ["οδος"]
    assert stored.column("cld_folded").to_pylist() == ["i\u0307stanbul"]

    pq.write_table(stored.select(RECORD_SCHEMA.names), path)  # as an older build wrote it
    assert lake.compact().days == 1
    (merged,) = lake.snapshot().files[DAY]
    assert pq.read_table(merged).select(LAKE_SCHEMA.names).equals(stored)


def test_s3_merges_run_after_the_commit_and_keep_days_under_the_bound(
    s3_kind: Kind,
) -> None:
    """An append commits without merging while its day is under the bound; a background
    merger then keeps the day at most 3/4 full and reclaims what it replaced."""
    lake = s3_kind(max_files_per_day=8, retire_grace_seconds=0)
    for i in range(20):
        lake.append(table([record(i)]))
        assert all(d.files <= 8 for d in lake.stats().days)
    assert lake.settle(timeout=120)
    assert lake.stats().days[0].files <= 6
    named = {p for files in lake.snapshot().files.values() for p in files}
    assert s3_kind.stored() == named  # replaced files are gone, nothing else is there
    assert sorted(latest(lake)) == [f"msg-{i:06d}" for i in range(20)]
    inline = s3_kind(max_files_per_day=8, retire_grace_seconds=0, background_merges=False)
    for i in range(100, 108):
        inline.append(table([record(i)]))
        assert inline.stats().days[0].files <= 6  # merged in the appending call
