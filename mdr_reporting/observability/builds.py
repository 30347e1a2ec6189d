"""One ``mdr.build`` line and the build metrics for every build that ends, whatever its end."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from mdr_reporting.observability.metrics import observe_build

if TYPE_CHECKING:
    from mdr_reporting.domain.requests import RequestState

__all__ = ["build_finished"]

log = logging.getLogger("mdr.build")

_FORMAT = (
    "build %s %s: accounts=%d days=%d rows=%d bytes=%d seconds=%.2f rows_per_s=%.0f "
    "attempt=%d engine=%s"
)


def build_finished(
    state: RequestState,
    outcome: str,
    seconds: float,
    *,
    rows: int = 0,
    size: int = 0,
    attempt: int = 1,
    engine: str | None = None,
) -> None:
    """Count the build under ``outcome`` (complete, failed, retried, cancelled, handed_back,
    storage_full) and log its line: the request, how much it covered and how fast it went."""
    observe_build(outcome, seconds, rows)
    spec = state.spec
    days = max(math.ceil((spec.end_time - spec.start_time).total_seconds() / 86400), 0)
    rate = rows / seconds if seconds > 0 else 0.0
    level = logging.INFO if outcome in {"complete", "cancelled", "handed_back"} else logging.WARNING
    log.log(
        level,
        _FORMAT,
        state.id,
        outcome,
        len(state.accounts),
        days,
        rows,
        size,
        seconds,
        rate,
        attempt,
        engine or "-",
        extra={
            "mdr": {
                "event": "build",
                "mdr_request": state.id,
                "outcome": outcome,
                "accounts": len(state.accounts),
                "days": days,
                "rows": rows,
                "bytes": size,
                "seconds": round(seconds, 3),
                "rows_per_s": round(rate),
                "attempt": attempt,
                "engine": engine,
            }
        },
    )
