"""The worker's glue: compile, snapshot, build, release; a vanished file means a fresh snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from test_engine_rules import DAY, ENGINE, lake, rec, request

from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.engines.base import SnapshotFileMissing
from mdr_reporting.engines.runner import build_request
from mdr_reporting.lake.base import Lake, Snapshot


class FakeLake:
    """Hands out the given snapshots in turn and counts releases."""

    def __init__(self, *snapshots: Snapshot) -> None:
        self.snapshots = list(snapshots)
        self.released: list[int] = []

    def snapshot(self) -> Snapshot:
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]

    def release(self, snapshot: Snapshot) -> None:
        self.released.append(snapshot.version)


def _state(**spec: Any) -> RequestState:
    now = datetime(2024, 4, 1, tzinfo=UTC)
    return RequestState(
        id="r1",
        account_id="acc",
        accounts=("acc",),
        spec=request(**spec),
        status=RequestStatus.PENDING,
        created_at=now,
        updated_at=now,
    )


def test_a_vanished_file_is_retried_on_a_fresh_snapshot(tmp_path: Path) -> None:
    good = lake(tmp_path, [rec("m1"), rec("m2", created_at=DAY + timedelta(hours=2))])
    stale = Snapshot(1, {DAY.date(): (str(tmp_path / "compacted-away.parquet"),)})
    fake = FakeLake(stale, Snapshot(2, good.files))
    seen: list[float] = []
    out = tmp_path / "r.csv"
    result = build_request(ENGINE, cast(Lake, fake), _state(), out, progress=seen.append)
    assert result.rows == 2
    assert fake.released == [1, 2]
    assert seen[-1] == 1.0
    assert out.read_bytes().count(b"\r\n") == 3


def test_it_gives_up_after_a_few_snapshots(tmp_path: Path) -> None:
    stale = Snapshot(7, {DAY.date(): (str(tmp_path / "gone.parquet"),)})
    fake = FakeLake(stale)
    with pytest.raises(SnapshotFileMissing):
        build_request(ENGINE, cast(Lake, fake), _state(), tmp_path / "r.csv")
    assert fake.released == [7, 7, 7]
    assert not (tmp_path / "r.csv").exists()
