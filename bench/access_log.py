"""CPU cost per HTTP call of the access line and metrics (observability.http.AccessLog).

Runs a trivial ASGI app bare and wrapped in the middleware, with the text and the JSON
formatter writing to /dev/null, and prints microseconds of CPU per call for each.

    .venv/bin/python bench/access_log.py [--calls 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

from mdr_reporting.observability.http import AccessLog
from mdr_reporting.observability.logs import JsonFormatter, TextFormatter, configure_logging


class _Route:
    path = "/reporting/mdr_requests/{request_id}"


async def app(scope: dict[str, Any], _receive: Any, send: Any) -> None:
    scope["route"] = _Route()
    scope["path_params"] = {"request_id": "0b7e3c1e-0000-4000-8000-000000000000"}
    scope["mdr.account"] = "acct-01"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _send(_message: Any) -> None:
    return None


async def _receive() -> Any:
    return {"type": "http.request", "body": b""}


async def run(target: Any, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/reporting/mdr_requests/0b7e",
            "headers": [(b"authorization", b"Bearer mdr_x"), (b"accept", b"*/*")],
        }
        await target(scope, _receive, _send)
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50_000)
    calls = parser.parse_args().calls
    configure_logging("info")  # as the server sets logging up; its handler goes to /dev/null
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    bare = asyncio.run(run(app, calls))
    print(f"bare app:                 {bare:6.1f} us CPU per call")
    for name, formatter in (("text", TextFormatter()), ("json", JsonFormatter())):
        with open("/dev/null", "w") as sink:
            handler = logging.StreamHandler(sink)
            handler.setFormatter(formatter)
            root.addHandler(handler)
            wrapped = asyncio.run(run(AccessLog(app), calls))
            root.removeHandler(handler)
        print(f"with AccessLog ({name}):   {wrapped:6.1f} us (+{wrapped - bare:.1f} us per call)")
    logging.getLogger("mdr.http").setLevel(logging.WARNING)
    quiet = asyncio.run(run(AccessLog(app), calls))
    print(f"metrics only (no line):   {quiet:6.1f} us (+{quiet - bare:.1f} us per call)")


if __name__ == "__main__":
    main()
