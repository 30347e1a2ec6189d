"""Lake appends of 10k-row batches into a 2-day lake: the cost of the identity checks.

    .venv/bin/python bench/lake_append.py [--records 400000] [--batch 10000]

Each append checks its ids against the day they fall on and, since issue 10, the
day before and after (a version whose created_at moved across midnight). Run it on
two checkouts to compare them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date

from mdr_reporting.domain.validation import validate_records
from mdr_reporting.generator import generate
from mdr_reporting.lake.local import LocalLake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    table = validate_records(generate(args.records, 5, 2, date(2026, 3, 1), seed=3)).table
    assert table is not None
    with tempfile.TemporaryDirectory() as folder:
        lake = LocalLake(folder)
        started = time.perf_counter()
        for first in range(0, table.num_rows, args.batch):
            lake.append(table.slice(first, args.batch))
        seconds = time.perf_counter() - started
    batches = -(-table.num_rows // args.batch)
    rate = table.num_rows / seconds
    print(f"{batches} appends of {args.batch:,} rows: {seconds:.2f} s ({rate:,.0f} rows/s)")


if __name__ == "__main__":
    main()
