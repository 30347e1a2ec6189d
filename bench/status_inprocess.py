"""One status read without HTTP: the ASGI app of `mdr serve` called in a loop, CPU per call.

    .venv/bin/python bench/status_inprocess.py [--calls 3000] [--concurrency 1]
        [--surface v1|v2|both]
        [--pyinstrument out.html] [--workdir DIR]

Builds the services exactly as ``mdr serve`` does (``build_services``: SQLite catalog,
local files, link signer) in a fresh data folder, makes a parent account with a managed
child, a reports key of the parent and one request of the child marked Complete (the
most expensive answer: a signed ``report_url``), then calls the app's ASGI callable
directly (no socket, no uvicorn) ``--calls`` times per surface and prints the process
CPU per call. With ``--pyinstrument`` the lean path's loop of the first surface (the
FastAPI route's with ``--fastapi-only``) also runs under pyinstrument (installed by
hand, for profiling only) and its HTML report is written.

Both paths are timed in the same run: the lean status path (the default app) and the
FastAPI route alone (the app with the lean path switched off), so their ratio is
robust to a loaded machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from mdr_reporting.api import create_app
from mdr_reporting.catalog import KeyScope
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.cli.serve import build_services
from mdr_reporting.settings import load_settings

V1 = "/reporting/mdr_requests"
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"
BODY = {"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-02-08T00:00:00Z"}


async def call(
    app: Any, method: str, path: str, key: str, body: bytes = b""
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    out: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"], out["headers"] = message["status"], message["headers"]
        else:
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out["status"], out["headers"], out["body"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="calls in flight at once (asyncio.gather)"
    )
    parser.add_argument("--surface", choices=["v1", "v2", "both"], default="both")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mdr-bench-status-inprocess"))
    parser.add_argument("--pyinstrument", type=Path, default=None)
    parser.add_argument("--all-frames", action="store_true", help="pyinstrument: every frame")
    parser.add_argument("--fastapi-only", action="store_true", help="time only the FastAPI route")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    settings = load_settings(
        {
            "data_dir": str(args.workdir),
            "signing_secret": "bench-secret-0123456789",
            "rate_limit_rps": 1_000_000,
            "rate_limit_burst": 10_000_000,
            "log_level": "warning",
        },
        environ={},
    )
    services = build_services(settings)
    catalog = services.catalog
    catalog.create_account("Parent", account_id="parent")
    catalog.create_account("Child", account_id="child", parent_id="parent")
    key = catalog.create_key("parent", KeyScope.REPORTS).secret
    lean = create_app(services)
    plain = create_app(services, lean_status=False)

    async def run() -> None:
        body = json.dumps({**BODY, "managed_accounts": ["child"]}).encode()
        status, _, created = await call(lean, "POST", V1, key, body)
        assert status == 200, created
        request_id = json.loads(created)["id"]
        queue = JobQueue(
            catalog, lease=timedelta(minutes=1), max_attempts=3, retention=timedelta(days=1)
        )
        claim = queue.claim("bench")
        assert claim is not None
        assert claim.state.id == request_id
        file_key = f"{request_id}/r.csv"
        assert queue.complete(request_id, "bench", file_key=file_key, record_count=3, size_bytes=10)
        surfaces = ["v1", "v2"] if args.surface == "both" else [args.surface]
        apps = [("FastAPI route", plain)] + ([] if args.fastapi_only else [("lean path", lean)])
        profiler: Any = None
        for surface in surfaces:
            path = f"{V1 if surface == 'v1' else V2}/{request_id}"
            for name, app in apps:
                for _ in range(200):  # warm up
                    await call(app, "GET", path, key)
                if (
                    args.pyinstrument is not None
                    and profiler is None
                    and (app is lean or args.fastapi_only)
                ):
                    from pyinstrument import Profiler

                    profiler = Profiler(interval=0.0002, async_mode="disabled")
                    profiler.start()
                cpu = time.process_time()
                for _ in range(args.calls // args.concurrency):
                    answers = await asyncio.gather(
                        *(call(app, "GET", path, key) for _ in range(args.concurrency))
                    )
                    assert all(status == 200 for status, _, _ in answers)
                cpu = time.process_time() - cpu
                if profiler is not None and profiler.is_running:
                    profiler.stop()
                    args.pyinstrument.write_text(profiler.output_html())
                    print(profiler.output_text(color=False, show_all=args.all_frames))
                calls = args.calls // args.concurrency * args.concurrency
                print(f"{surface} {name}: {cpu * 1e6 / calls:.0f} us CPU per status read")

    asyncio.run(run())
    catalog.close()


if __name__ == "__main__":
    main()
