"""The lake across processes: kill -9 in the middle of an append, and concurrent writers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from mdr_reporting.lake.local import LocalLake
from mdr_reporting.lake.manifest import read_manifest
from tests.records import record, table

ROOT = Path(__file__).resolve().parents[2]
BATCH = 3000

WRITER = f"""
import os, sys, time
from mdr_reporting.lake.local import LocalLake
from tests.records import record, table

root, first, batches, hang = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lake = LocalLake(root)
for n in range(batches):
    if hang == "yes" and n == 1:
        def stuck(*args):
            print("committing", flush=True)
            time.sleep(600)
        os.replace = stuck  # the manifest rename never happens: killed right here
    start = first + n * {BATCH}
    lake.append(table([record(start + i, account_id=f"acct-{{i % 7}}") for i in range({BATCH})]))
    print("committed", n, flush=True)
"""


def writer(root: Path, first: int, batches: int, hang: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            str(root),
            str(first),
            str(batches),
            "yes" if hang else "no",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def consistent_rows(root: Path) -> int:
    """Check the lake as a fresh reader would, and count its rows."""
    manifest = read_manifest(root)
    rows = 0
    ids: set[str] = set()
    for entries in manifest.days.values():
        for entry in entries:
            stored = pq.read_table(root / entry.path)  # every named file exists and is whole
            assert stored.num_rows == entry.rows
            rows += stored.num_rows
            ids.update(stored.column("id").to_pylist())
    assert len(ids) == rows
    return rows


def test_kill_9_while_committing_leaves_the_previous_version(tmp_path: Path) -> None:
    child = writer(tmp_path, 0, 3, hang=True)
    assert child.stdout is not None
    assert child.stdout.readline().startswith("committed 0")
    assert child.stdout.readline().strip() == "committing"  # files written, rename pending
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert consistent_rows(tmp_path) == BATCH
    leftovers = set(tmp_path.glob("data/*/*.parquet"))
    assert len(leftovers) > 1  # the killed batch's files exist but no manifest names them

    lake = LocalLake(tmp_path, retire_grace_seconds=0)  # the dead writer's lock is gone
    lake.append(table([record(10**6)]))
    lake.compact()
    assert consistent_rows(tmp_path) == BATCH + 1
    named = {tmp_path / e.path for es in read_manifest(tmp_path).days.values() for e in es}
    assert set(tmp_path.glob("data/*/*.parquet")) == named


def test_kill_9_at_random_moments_never_shows_part_of_a_batch(tmp_path: Path) -> None:
    chance = random.Random(7)
    before = 0
    for _ in range(3):
        child = writer(tmp_path, before * 100, 50)  # fresh ids each round
        assert child.stdout is not None
        done = 0
        while done < 2:
            assert child.stdout.readline().startswith("committed")
            done += 1
        subprocess.run(["sleep", f"{chance.uniform(0.0, 0.4):.3f}"], check=True)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        rows = consistent_rows(tmp_path)
        assert rows % BATCH == 0 and rows >= before + done * BATCH
        before = rows


def test_two_processes_append_at_once(tmp_path: Path) -> None:
    children = [writer(tmp_path, n * 10**6, 4) for n in range(2)]
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0 and out.count("committed") == 4
    assert consistent_rows(tmp_path) == 8 * BATCH
