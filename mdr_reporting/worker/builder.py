"""What the worker needs from a report engine: build one request into a local file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mdr_reporting.domain.requests import RequestState

__all__ = ["BuildCancelled", "BuildResult", "ReportBuilder"]


class BuildCancelled(Exception):
    """Raised by a builder that saw ``cancelled()`` turn True; the worker then discards the file."""


@dataclass(frozen=True)
class BuildResult:
    record_count: int
    engine: str | None = None  # which engine built it, recorded on the request
    fingerprint: str | None = None  # what the file holds (worker/reuse.py), when known
    reused_from: str | None = None  # an equal Complete request: no file was built...
    reused_key: str | None = None  # ...the worker stores a copy of this one of its


class ReportBuilder(Protocol):
    """Writes the report file of ``request`` (api.md section 7) to ``out_path``.

    The format is ``request.spec.format``. ``progress`` takes 0.0..1.0 and may be
    called often (the worker throttles writes). ``cancelled`` turns True when the
    request was deleted, the lease was lost or the worker is stopping; the builder
    should then stop soon, raising :class:`BuildCancelled`. Any other exception is a
    failed attempt whose message becomes the request's ``error`` after the last try.
    Builders are called from several threads at once, one request per call.
    """

    def build(
        self,
        request: RequestState,
        out_path: Path,
        *,
        progress: Callable[[float], None],
        cancelled: Callable[[], bool],
    ) -> BuildResult: ...
