"""Temporary build folders that a killed build cannot leak for good.

Each build works in its own folder ``mdr-build-<pid>-<token>`` under the worker's
work folder, holding an exclusive ``flock`` on the ``.owner`` file inside for as
long as it builds. The kernel drops that lock when the process ends, however it
ends (SIGKILL included), so a folder whose lock can be taken belongs to no live
build and is removed: when a worker starts and by a periodic sweep. The lock, not
the pid in the name, decides (a pid is reused; a lock is not inherited by a
stranger). A folder is published by renaming it from a hidden ``.new`` name once
its lock is held, so the sweep never sees a live folder before it is locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import time
from pathlib import Path
from types import TracebackType

from mdr_reporting.owner_only import FILE_MODE, private_dir

__all__ = ["BUILD_PREFIX", "BuildFolder", "sweep_build_folders"]

log = logging.getLogger("mdr.worker")

BUILD_PREFIX = "mdr-build-"
_OWNER = ".owner"
_NEW_SUFFIX = ".new"
UNPUBLISHED_GRACE_SECONDS = 300  # a hidden folder older than this was never published
LEGACY_STALE_SECONDS = 3600  # files and engine folders of the layout before build folders


class BuildFolder:
    """A private folder for one build, locked while in use and removed on exit."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = private_dir(work_dir)
        name = f"{BUILD_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        staging = work_dir / f".{name}{_NEW_SUFFIX}"
        staging.mkdir(mode=0o700)
        self._fd = os.open(staging / _OWNER, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = work_dir / name
        os.rename(staging, self.path)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._fd)  # releases the lock, after the folder is gone

    def __enter__(self) -> BuildFolder:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()


def _unowned(folder: Path) -> int | None:
    """An fd holding ``folder``'s lock when no live build owns it, else None."""
    try:
        fd = os.open(folder / _OWNER, os.O_RDWR)
    except FileNotFoundError:
        return None  # published folders always have one: being removed right now
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def sweep_build_folders(work_dir: Path) -> int:
    """Remove the build folders (and leftovers) of builds that are no longer running.

    Returns how many entries were removed. Safe to run while builds run, in any
    number of processes sharing ``work_dir``.
    """
    if not work_dir.is_dir():
        return 0
    removed = 0
    now = time.time()
    for entry in work_dir.iterdir():
        name = entry.name
        try:
            if name.startswith(BUILD_PREFIX) and entry.is_dir():
                fd = _unowned(entry)
                if fd is None:
                    continue
                try:
                    shutil.rmtree(entry)
                finally:
                    os.close(fd)
            elif name.startswith("." + BUILD_PREFIX) and name.endswith(_NEW_SUFFIX):
                if entry.stat().st_mtime > now - UNPUBLISHED_GRACE_SECONDS:
                    continue
                shutil.rmtree(entry)
            elif name.startswith((BUILD_PREFIX, ".build-")):
                if entry.lstat().st_mtime > now - LEGACY_STALE_SECONDS:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            else:
                continue
        except OSError:
            log.warning("could not remove the stale build folder %s", entry, exc_info=True)
            continue
        removed += 1
    if removed:
        log.info("removed %d stale build folder(s) from %s", removed, work_dir)
    return removed
