"""The lake's manifest: which Parquet files make up each day, replaced atomically.

A batch becomes visible only when a new manifest names its files: the manifest
is written to a temporary file, fsynced, renamed over the old one and the folder
fsynced, so a reader (or a crash at any instant) sees the old list or the new one,
never a mix.  Data files that no manifest names are invisible leftovers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import orjson

from mdr_reporting.owner_only import private_file

__all__ = ["FileEntry", "Manifest", "Retired", "fsync_dir", "read_manifest", "write_manifest"]

FORMAT = 1
MANIFEST_NAME = "_manifest.json"


@dataclass(frozen=True)
class FileEntry:
    """One data file, its path relative to the lake root."""

    path: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class Retired:
    """A file compaction replaced: kept until no reader can still hold it."""

    path: str
    version: int
    at: float


@dataclass(frozen=True)
class Manifest:
    version: int = 0
    days: dict[date, tuple[FileEntry, ...]] = field(default_factory=dict)
    retired: tuple[Retired, ...] = ()

    def with_days(self, days: dict[date, tuple[FileEntry, ...]]) -> Manifest:
        return replace(self, version=self.version + 1, days=days)

    def to_json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "version": self.version,
            "days": {
                day.isoformat(): [entry.__dict__ for entry in entries]
                for day, entries in sorted(self.days.items())
            },
            "retired": [entry.__dict__ for entry in self.retired],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Manifest:
        if data.get("format") != FORMAT:
            raise ValueError(f"unsupported lake manifest format {data.get('format')!r}")
        days_data = data.get("days")
        retired_data = data.get("retired")
        version = data.get("version")
        if not (isinstance(days_data, dict) and isinstance(retired_data, list)):
            raise ValueError("lake manifest is malformed")
        if not isinstance(version, int):
            raise ValueError("lake manifest has no version")
        days = {
            date.fromisoformat(day): tuple(FileEntry(**entry) for entry in entries)
            for day, entries in days_data.items()
        }
        return cls(version, days, tuple(Retired(**entry) for entry in retired_data))


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` survive a power cut."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_manifest(root: Path) -> Manifest:
    try:
        text = (root / MANIFEST_NAME).read_text()
    except FileNotFoundError:
        return Manifest()
    return Manifest.from_json(orjson.loads(text))


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Write temp, fsync, rename over the old manifest, fsync the folder."""
    target = root / MANIFEST_NAME
    temporary = root / f"{MANIFEST_NAME}.{manifest.version}.tmp"
    try:
        temporary.unlink(missing_ok=True)
        private_file(temporary)  # 0600 whatever the umask
        with temporary.open("r+b") as handle:
            handle.write(orjson.dumps(manifest.to_json()))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError:
        temporary.unlink(missing_ok=True)  # e.g. a full disk: leave no partial manifest
        raise
    fsync_dir(root)
