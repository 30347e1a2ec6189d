"""Owner-only files and folders: what the service stores is readable by its user alone.

Records, reports, the catalog and the signing secrets are private data, so every
folder is created 0700 and every file 0600 whatever the umask the service was
started with. Processes of the ``mdr`` command also set their umask to 077 at start
(:func:`restrict_umask`), which covers files that libraries create (Parquet, SQLite
journals, DuckDB spill files); the helpers here enforce the modes explicitly where
this package creates a path itself, so in-process use is covered too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file", "restrict_umask", "write_new"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def restrict_umask() -> int:
    """Make everything this process creates from now on owner-only; returns the old umask."""
    return os.umask(0o077)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) 0700; an existing folder is left as it is."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=DIR_MODE)
            os.chmod(folder, DIR_MODE)  # mkdir's mode is masked by the umask
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    return path


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (before a library opens it)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def write_new(path: Path, data: bytes) -> bool:
    """Write ``path`` whole and 0600 from its first byte, unless it already exists.

    The bytes go to a fresh name opened ``O_CREAT | O_EXCL`` with mode 0600 (the
    umask can only narrow it), are fsynced, then linked into place, which fails
    when another process got there first. Returns whether this call wrote it.
    """
    staging = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(staging, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
