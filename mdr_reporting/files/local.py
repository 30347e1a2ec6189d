"""The file store on a local folder: write to a hidden temporary name, fsync, rename.

Folders are 0700 and files 0600 whatever the umask: reports are private data.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from mdr_reporting.files.base import FileStore, InvalidKey, StoredFile, check_key
from mdr_reporting.owner_only import FILE_MODE, private_dir

__all__ = ["LocalFileStore"]

_TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalFileStore(FileStore):
    """Files under ``root``; a rename within one folder is what makes ``put`` atomic."""

    def __init__(self, root: Path) -> None:
        self.root = root
        private_dir(self.root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, source: Path, *, filename: str | None = None) -> int:  # noqa: ARG002
        final = self.path(key)
        private_dir(final.parent)
        staging = final.with_name(f"{_TMP_PREFIX}{secrets.token_hex(8)}-{final.name}")
        try:
            try:
                os.rename(source, staging)  # same file system: no copy
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                shutil.copyfile(source, staging)
                source.unlink()
            os.chmod(staging, FILE_MODE)  # before any other user could open it by its name
            with staging.open("rb+") as handle:
                os.fsync(handle.fileno())
            size = staging.stat().st_size
            os.replace(staging, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
            raise
        _fsync_dir(final.parent)
        return size

    def copy(self, source_key: str, key: str, scratch: Path) -> int:
        """A hard link when the file system allows (no bytes copied; each name is deleted on
        its own), else a byte copy."""
        source = self.path(source_key)
        final = self.path(key)
        private_dir(final.parent)
        staging = final.with_name(f"{_TMP_PREFIX}{secrets.token_hex(8)}-{final.name}")
        try:
            os.link(source, staging)
        except FileNotFoundError:
            raise
        except OSError:  # no hard links here (another file system, a limit): copy the bytes
            return super().copy(source_key, key, scratch)
        try:
            size = staging.stat().st_size
            os.replace(staging, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
            raise
        _fsync_dir(final.parent)
        return size

    def open(self, key: str) -> tuple[BinaryIO, int]:
        handle = self.path(key).open("rb")
        return handle, os.fstat(handle.fileno()).st_size

    def delete(self, key: str) -> bool:
        path = self.path(key)
        # a put killed before its rename leaves its staging copy: it goes with the key
        for staging in path.parent.glob(f"{_TMP_PREFIX}*-{path.name}"):
            staging.unlink(missing_ok=True)
        try:
            path.unlink()
            existed = True
        except FileNotFoundError:
            existed = False
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only when empty: one folder per request
        return existed

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self) -> Iterator[StoredFile]:
        for folder, _dirs, names in os.walk(self.root):
            for name in names:
                if name.startswith(_TMP_PREFIX):
                    continue
                path = Path(folder) / name
                key = path.relative_to(self.root).as_posix()
                try:
                    check_key(key)
                    info = path.stat()
                except (InvalidKey, FileNotFoundError):
                    continue  # not a report file, or deleted while listing
                modified = datetime.fromtimestamp(info.st_mtime, UTC)
                yield StoredFile(key, modified, info.st_size)

    def remove_partials(self, older_than: datetime) -> int:
        """Staging files of a put killed before its rename (a killed worker's leftovers)."""
        cutoff = older_than.timestamp()
        removed = 0
        for path in self.root.glob(f"**/{_TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed
