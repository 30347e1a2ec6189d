"""Crash matrix (c): `mdr lake compact` killed with SIGKILL at random moments.

Each round appends fresh ids and newer versions of older ones, builds a report,
then runs the compaction and kills it. After every kill the lake, read as a fresh
process would, names only whole files, holds every record once (no id version
twice, none lost, the latest version of each id as written) and gives a report
byte-identical to the one before the compaction.
"""

from __future__ import annotations

import random
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.engines.duckdb import DuckDBEngine
from mdr_reporting.lake.local import LocalLake
from mdr_reporting.lake.manifest import read_manifest
from tests.integration.crash import PYTHON, ROOT, clean_env, kill9, seeded
from tests.records import BASE, record, table

KILLS = 10
APPENDS = 3
NEW_IDS = 200
NEW_VERSIONS = 100
DAYS = 4

# The command line, imported while the test appends; it compacts when told "go", so a
# kill lands in the compaction itself.
COMPACT = """
import sys
from mdr_reporting.cli.main import cli
import mdr_reporting.cli.records
print("ready", flush=True)
sys.stdin.readline()
cli(["lake", "compact", "--data-dir", sys.argv[1]], prog_name="mdr")
"""


class Model:
    """What the lake must hold: for each id, its latest updated_at and status."""

    def __init__(self, chance: random.Random) -> None:
        self.chance = chance
        self.latest: dict[str, tuple[datetime, str]] = {}
        self.next_number = 0
        self.numbers: list[int] = []

    def batch(self, version_time: datetime) -> list[dict[str, object]]:
        rows = []
        older = list(self.numbers)  # new versions only of ids stored by earlier batches
        for _ in range(NEW_IDS):
            number = self.chance.randrange(DAYS * 86_400 * 1000) * 1000 + self.next_number % 1000
            self.next_number += 1
            rows.append(self._row(number, version_time, "sent"))
            self.numbers.append(number)
        for number in self.chance.sample(older, min(NEW_VERSIONS, len(older))):
            rows.append(
                self._row(number, version_time, self.chance.choice(["delivered", "failed"]))
            )
        return rows

    def _row(self, number: int, version_time: datetime, status: str) -> dict[str, object]:
        created = BASE + timedelta(microseconds=number)
        row = record(
            0,
            id=f"m{number}",
            created_at=created.isoformat(),
            sent_at=None,
            updated_at=version_time.isoformat(),
            status=status if status != "failed" else "delivery_failed",
        )
        self.latest[str(row["id"])] = (version_time, str(row["status"]))
        return row


def _check_lake(root: Path, model: Model, when: str) -> int:
    manifest = read_manifest(root)
    seen: set[tuple[str, object]] = set()
    latest: dict[str, tuple[datetime, str]] = {}
    files = 0
    for entries in manifest.days.values():
        for entry in entries:
            stored = pq.read_table(root / entry.path, columns=["id", "updated_at", "status"])
            assert stored.num_rows == entry.rows, f"{when}: {entry.path} is not whole"
            files += 1
            for row in stored.to_pylist():
                version = (row["id"], row["updated_at"])
                assert version not in seen, f"{when}: {version} is stored twice"
                seen.add(version)
                held = latest.get(row["id"])
                if held is None or row["updated_at"] > held[0]:
                    latest[row["id"]] = (row["updated_at"], row["status"])
    assert latest == model.latest, f"{when}: records lost or changed"
    return files


ENGINE = DuckDBEngine()


def _report(lake: LocalLake, out: Path) -> bytes:
    request = ReportRequest(
        start_time=BASE - timedelta(days=1),
        end_time=BASE + timedelta(days=DAYS + 1),
        timezone="America/Chicago",
        directions=tuple(Direction),
        record_types=tuple(RecordType),
    )
    snapshot = lake.snapshot()
    try:
        ENGINE.build(compile_query(request, ["acct-a"]), snapshot, out)
    finally:
        lake.release(snapshot)
    data = out.read_bytes()
    out.unlink()
    return data


def test_kill_9_during_compaction_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    chance = seeded("compaction crash")
    data = tmp_path / "data"
    root = data / "lake"
    lake = LocalLake(root)
    model = Model(chance)
    clock = datetime(2026, 3, 10, tzinfo=UTC)
    mid_way = 0
    longest_wait = 0.8  # it takes about 0.7 s on a quiet machine
    kill = 0
    # at least KILLS kills, and more (up to 3x) until 3 landed while it was compacting
    while kill < KILLS or (mid_way < 3 and kill < 3 * KILLS):
        compactor = subprocess.Popen(
            [PYTHON, "-c", COMPACT, str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            cwd=ROOT,
        )
        try:
            for _ in range(APPENDS):
                clock += timedelta(seconds=1)
                lake.append(table(model.batch(clock)))
            before = _report(lake, tmp_path / "report.csv")
            files_before = sum(len(e) for e in read_manifest(root).days.values())
            assert compactor.stdin is not None and compactor.stdout is not None
            assert compactor.stdout.readline() == b"ready\n"
            compactor.stdin.write(b"go\n")
            compactor.stdin.flush()
            time.sleep(chance.uniform(0.0, longest_wait))
            if kill9(compactor):
                mid_way += 1
            else:  # it finished first (a faster machine or a smaller lake): aim earlier
                longest_wait = max(longest_wait / 2, 0.02)
        finally:
            if compactor.poll() is None:
                compactor.kill()
            compactor.wait()
            for pipe in (compactor.stdin, compactor.stdout):
                if pipe is not None:
                    pipe.close()

        lake = LocalLake(root)  # a fresh process's view: no cached index
        files_after = _check_lake(root, model, f"after kill {kill}")
        assert files_after <= files_before
        assert _report(lake, tmp_path / "report.csv") == before, f"report changed, kill {kill}"
        kill += 1

    assert lake.compact().files_after == DAYS + 1
    _check_lake(root, model, "after a full compaction")
    assert mid_way >= 3, f"only {mid_way} of {kill} kills landed mid-compaction"
    print(f"{mid_way} of {kill} kills landed while compacting; {len(model.latest)} ids")
