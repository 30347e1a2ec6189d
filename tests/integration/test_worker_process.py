"""`mdr serve`'s report worker in its own process: restarted when it dies, gone with the server.

Real processes: the child is spawned as `mdr serve` spawns it, killed with SIGKILL, and
its server (a parent process) is killed with SIGKILL too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mdr_reporting.cli import worker_process
from mdr_reporting.cli.worker_process import WorkerProcess
from mdr_reporting.settings import Settings, load_settings


def _settings(tmp_path: Path) -> Settings:
    return load_settings(
        {"data_dir": str(tmp_path / "data"), "signing_secret": "test-secret-0123456789"},
        environ={},
    )


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_killed_worker_process_is_restarted_and_stop_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_process, "RESTART_PAUSE", 0.1)
    child = WorkerProcess(_settings(tmp_path))
    child.start()
    try:
        first = child.pid
        assert first is not None and _alive(first)
        child.wake()
        os.kill(first, signal.SIGKILL)
        assert _wait(lambda: child.pid not in (None, first), 30), "not restarted"
        second = child.pid
        assert second is not None and _alive(second)
        child.wake()  # the new child's pipe
    finally:
        child.stop()
    assert not _alive(second)
    assert not _alive(first)


_SERVER = """
import sys, time
from mdr_reporting.cli.worker_process import WorkerProcess
from mdr_reporting.settings import load_settings
settings = load_settings(
    {"data_dir": sys.argv[1], "signing_secret": "test-secret-0123456789"}, environ={}
)
if __name__ == "__main__":
    child = WorkerProcess(settings)
    child.start()
    print(child.pid, flush=True)
    time.sleep(600)
"""


def test_the_worker_process_ends_when_its_server_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(_SERVER)
    server = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        assert _alive(child)
        time.sleep(1.0)  # let it get going
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        assert _wait(lambda: not _alive(child), 45), "the worker outlived its server"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()
