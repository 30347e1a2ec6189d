"""A longer schemathesis run than the one in ``make test``: same app, data and checks.

    .venv/bin/python bench/schemathesis_long.py [--max-examples 300] [--seed N]

Runs every phase (examples, coverage, fuzzing, stateful) and every check over every
operation of /openapi.json against the app ``mdr serve`` builds, holding ingested
records and a Complete report per format (``tests/contract.py``).  Prints the cases
sent, the answers by status, the time, and every failure; exits 1 when any is found.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.contract

from tests.contract import live_app, run_schemathesis


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=300, help="per operation (fuzzing)")
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; seed {args.seed}, "
        f"max-examples {args.max_examples}"
    )
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="mdr-schemathesis-") as folder,
        live_app(Path(folder)) as live,
    ):
        summary = run_schemathesis(live, seed=args.seed, max_examples=args.max_examples)
    wall = time.monotonic() - started

    by_status: Counter[int] = Counter()
    for (_operation, status), count in summary.statuses.items():
        by_status[status] += count
    print(f"operations: {len(summary.operations)} (incl. the stateful scenarios)")
    print(f"cases: {summary.cases}")
    print("answers: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    print(f"phases: {dict(summary.phases)}")
    print(f"time: {summary.elapsed:.1f} s schemathesis, {wall:.1f} s with set-up")
    print(f"failures: {len(summary.failures)}, errors: {len(summary.errors)}")
    for problem in summary.errors + summary.failures:
        print("\n" + problem[:3000])
    return 1 if summary.failures or summary.errors else 0


if __name__ == "__main__":
    sys.exit(main())
