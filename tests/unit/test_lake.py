"""The lake's rules (architecture.md "Lake"), each with a test that fails when it is broken."""

from __future__ import annotations

import os
import threading
from datetime import date
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mdr_reporting.domain.records import RECORD_SCHEMA
from mdr_reporting.lake import LakeConflict, open_lake
from mdr_reporting.lake import build as build_module
from mdr_reporting.lake import manifest as manifest_module
from mdr_reporting.lake.local import LocalLake
from mdr_reporting.lake.read import read_latest
from tests.records import record, table

DAY = date(2026, 3, 1)


def latest(lake: LocalLake) -> dict[str, dict[str, object]]:
    snapshot = lake.snapshot()
    try:
        rows = [r for day in snapshot.files for r in read_latest(snapshot.files[day]).to_pylist()]
    finally:
        lake.release(snapshot)
    by_id = {str(r["id"]): r for r in rows}
    assert len(by_id) == len(rows), "a reader saw two versions of one message"
    return by_id


def test_open_lake_by_url(tmp_path: Path) -> None:
    lake = open_lake((tmp_path / "lake").as_uri())
    assert isinstance(lake, LocalLake)
    with pytest.raises(ValueError, match="not supported"):
        open_lake("ftp://example.com/lake")


def test_append_is_visible_as_a_snapshot_of_day_files(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    result = lake.append(table([record(i) for i in range(5)]))
    assert result.rows == 5 and result.version == 1
    snapshot = lake.snapshot()
    assert list(snapshot.files) == [DAY]
    assert all(Path(p).is_absolute() and Path(p).exists() for p in snapshot.files[DAY])
    assert sorted(latest(lake)) == [f"msg-{i:06d}" for i in range(5)]
    assert lake.stats().rows == 5 and lake.stats().days[0].day == DAY


def test_an_aborted_transaction_leaves_nothing(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.append(table([record(0)]))

    def interrupted() -> None:
        with lake.writer() as writer:
            writer.add(table([record(1), record(2)]))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        interrupted()
    assert sorted(latest(lake)) == ["msg-000000"]
    assert len(list((tmp_path / "data").glob("*/*.parquet"))) == 1


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


def test_latest_version_wins_and_older_or_equal_changes_nothing(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
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
    stored = pq.read_table(files[0])
    assert stored.num_rows == 1 and stored.column("status")[0].as_py() == "delivered"


def test_within_a_batch_the_latest_version_wins_and_ties_keep_the_first(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    first = record(0, updated_at="2026-03-01T09:00:05+00:00", status="sent")
    later = dict(first, updated_at="2026-03-01T09:00:06+00:00", status="delivered")
    tie = dict(later, status="delivery_failed")
    assert lake.append(table([first, later, tie])).rows == 1
    assert latest(lake)["msg-000000"]["status"] == "delivered"


def test_a_new_version_may_not_move_an_id_to_another_account_or_time(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
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


def test_files_per_day_stay_bounded(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path, max_files_per_day=4)
    for i in range(12):
        lake.append(table([record(i * 10 + j) for j in range(10)]))
        assert all(d.files <= 4 for d in lake.stats().days)
    assert lake.stats().rows == 120 and len(latest(lake)) == 120
    result = lake.compact()
    assert result.files_after == 1 and lake.stats().rows == 120


def test_compaction_never_breaks_a_reader_holding_an_older_snapshot(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path, retire_grace_seconds=0)
    lake.append(table([record(0)]))
    lake.append(table([record(1)]))
    held = lake.snapshot()
    lake.compact()
    lake.compact()
    assert all(Path(p).exists() for p in held.files[DAY])
    assert read_latest(held.files[DAY]).num_rows == 2
    lake.release(held)
    lake.compact()
    assert not any(Path(p).exists() for p in held.files[DAY])
    assert len(latest(lake)) == 2


def test_retired_files_wait_out_the_grace_period_for_other_processes(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path, retire_grace_seconds=3600)
    lake.append(table([record(0)]))
    lake.append(table([record(1)]))
    before = lake.snapshot()
    lake.release(before)
    lake.compact()
    assert all(Path(p).exists() for p in before.files[DAY])


def test_rows_are_sorted_by_account_and_time_in_small_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_module, "ROW_GROUP_ROWS", 50)
    accounts = [f"acct-{n:02d}" for n in range(8)]
    rows = [record(i, account_id=accounts[(i * 5) % 8]) for i in range(400)]
    lake = LocalLake(tmp_path)
    lake.append(table(rows))
    (path,) = lake.snapshot().files[DAY]
    stored = pq.read_table(path)
    keys = list(
        zip(
            stored.column("account_id").to_pylist(),
            stored.column("created_at").to_pylist(),
            strict=True,
        )
    )
    assert keys == sorted(keys)
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups == 8
    account_column = RECORD_SCHEMA.get_field_index("account_id")
    spans = [
        (g.column(account_column).statistics.min, g.column(account_column).statistics.max)
        for g in (metadata.row_group(i) for i in range(metadata.num_row_groups))
    ]
    # Statistics let a reader of one account skip every other row group.
    assert sum(1 for low, high in spans if low <= "acct-03" <= high) == 1


def test_appends_from_many_threads_are_serialised(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
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
    assert pc.count_distinct(pq.read_table(lake.snapshot().files[DAY][0]).column("id")).as_py()


def test_one_transaction_checks_later_batches_against_earlier_ones(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    with lake.writer() as writer:
        writer.add(table([record(0, updated_at="2026-03-01T09:00:05Z")]))
        older = record(0, status="delivered", updated_at="2026-03-01T09:00:04Z")
        assert writer.add(table([older])) == 0  # not a newer version
        with pytest.raises(LakeConflict):
            writer.add(table([record(0, account_id="acct-z")]))
        writer.commit()
    assert latest(lake)["msg-000000"]["status"] == "sent"


def test_automatic_merges_reclaim_retired_files(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path, max_files_per_day=2, retire_grace_seconds=0)
    for i in range(6):
        lake.append(table([record(i)]))
    named = {Path(p) for files in lake.snapshot().files.values() for p in files}
    assert len(named) <= 2
    assert len(list((tmp_path / "data").glob("*/*.parquet"))) <= 3  # at most one just retired


def test_no_manifest_ever_names_more_files_per_day_than_the_bound(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path, max_files_per_day=4)
    with lake.writer() as writer:
        for i in range(10):  # ten files for one day in one transaction
            writer.add(table([record(i)]))
        result = writer.commit()
    assert result.version == 1  # one manifest version, already within the bound
    assert lake.stats().days[0].files <= 4 and len(latest(lake)) == 10
