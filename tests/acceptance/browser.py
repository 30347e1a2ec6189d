"""What the console's browser tests share: Debian's Chromium, a real `mdr demo` server,
and optional screenshots for the README (``CONSOLE_SCREENSHOTS=docs/console``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.acceptance.helpers import MDR, free_port
from tests.conftest import REQUIRE_SERVICES

# Playwright cannot download its own browser here: it drives the distribution's Chromium.
CHROMIUM = Path(os.environ.get("MDR_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


def chromium_or_skip() -> Path:
    """The Chromium executable; missing is a failure under MDR_TEST_REQUIRE_SERVICES=1."""
    if CHROMIUM.exists() or shutil.which(str(CHROMIUM)):
        return CHROMIUM
    message = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Demo:
    url: str
    key: str
    data_dir: Path


@contextlib.contextmanager
def running_demo(tmp: Path, records: int) -> Iterator[Demo]:
    """`mdr demo --records N` on a free port: demo records, account acct-01 and its key."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    data_dir = tmp / "data"
    log_path = tmp / "demo.log"
    out_path = tmp / "demo.out"
    with log_path.open("w") as log, out_path.open("w") as out:
        server = subprocess.Popen(
            [*MDR, "demo", "--records", str(records), "--port", str(port), "--data-dir", data_dir],
            stdout=out,
            stderr=log,
            env=env,
        )
        try:
            deadline = time.monotonic() + 90
            key = ""
            while not key:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mdr demo did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
                for line in out_path.read_text().splitlines():
                    if line.startswith("demo key"):
                        key = line.split(": ", 1)[1].strip()
            url = f"http://127.0.0.1:{port}"
            assert f"web console: {url}/console" in out_path.read_text()
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
            yield Demo(url, key, data_dir)
        finally:
            server.terminate()
            server.wait(timeout=30)


def screenshot(page: object, name: str) -> None:
    """Saves the page as ``$CONSOLE_SCREENSHOTS/<name>.png`` when that variable is set."""
    if not SCREENSHOTS:
        return
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
