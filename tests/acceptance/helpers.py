"""Running the real `mdr` command line as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

MDR = [sys.executable, "-m", "mdr_reporting"]


def run_mdr(
    *args: str, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    full_env.update(env or {})
    return subprocess.run(
        [*MDR, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
