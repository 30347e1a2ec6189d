"""Helpers of the crash matrix: seeded randomness, processes killed with SIGKILL, waits.

Every test takes its ``chance`` from :func:`seeded`: the seed is printed (pytest shows
it with a failure) and ``MDR_CRASH_SEED=N`` replays a run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def seeded(name: str) -> random.Random:
    seed = int(os.environ.get("MDR_CRASH_SEED") or random.SystemRandom().randrange(10**9))
    print(f"{name}: crash seed {seed} (replay with MDR_CRASH_SEED={seed})")
    return random.Random(seed)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the caller's MDR_* settings, with the repository importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class Processes:
    """Every process a test starts; each is killed and reaped when the test ends."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, command: list[str], **env: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=clean_env(**env), cwd=ROOT
            )
        self.started.append(process)
        return process

    def start_ready(
        self, name: str, module: str, preload: list[str], *args: str, **env: str
    ) -> subprocess.Popen[bytes]:
        """``python -m module args``, imported now and started by :func:`go`."""
        log = self.logs / f"{name}.log"
        command = [PYTHON, "-c", READY_THEN, str(log), module, ",".join(preload), *args]
        with log.open("ab") as errors:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=clean_env(**env),
                cwd=ROOT,
            )
        self.started.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()


@contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    started = Processes(logs)
    try:
        yield started
    finally:
        started.close()


# Runs ``python -m MODULE ARGS`` once told "go"; the imports (most of a start-up) happen
# while the test prepares the round, so a kill lands in the work and not in the imports.
# Output goes to the log file from "go" on, so no pipe fills up.
READY_THEN = """
import importlib, os, runpy, sys
log, module, preload, *args = sys.argv[1:]
for name in filter(None, preload.split(",")):
    importlib.import_module(name)
print("ready", flush=True)
if sys.stdin.readline() != "go\\n":
    sys.exit(0)
out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
os.dup2(out, 1)
os.dup2(out, 2)
sys.argv = [module, *args]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def go(process: subprocess.Popen[bytes]) -> None:
    """Wait for a :meth:`Processes.start_ready` process to be ready, then let it run."""
    assert process.stdin is not None and process.stdout is not None
    line = process.stdout.readline()
    assert line == b"ready\n", line
    process.stdin.write(b"go\n")
    process.stdin.flush()


def kill9(process: subprocess.Popen[bytes]) -> bool:
    """SIGKILL and reap; True when the process was still running (not finished before)."""
    alive = process.poll() is None
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    return alive


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
