"""What the hostile-input guards cost on the NDJSON fast path (issue 10).

    .venv/bin/python bench/ingest_guards.py [--records 200000] [--repeat 5]

Prints, for one block of generated NDJSON, the median time of the whole parse
(``parse_ndjson``) and of each guard it runs: the check that every line starts
with "{" (what keeps Arrow's reader from crashing) and the UTF-8 validation of
its output; and the exact path (orjson line by line) for comparison.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date

import pyarrow.json as pjson

from mdr_reporting.generator import generate, write_records
from mdr_reporting.ingest.readers import (
    _FAST_JSON_SCHEMA,
    JSON_BLOCK_BYTES,
    _fast_safe,
    _ndjson_exact,
    parse_ndjson,
)


def median_seconds(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    table = generate(args.records, 20, 2, date(2026, 3, 1), seed=1)
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/records.ndjson"
        write_records(table, path)
        with open(path, "rb") as handle:
            data = handle.read()
    arrow = pjson.read_json(
        io.BytesIO(data),
        read_options=pjson.ReadOptions(block_size=JSON_BLOCK_BYTES),
        parse_options=pjson.ParseOptions(
            explicit_schema=_FAST_JSON_SCHEMA, unexpected_field_behavior="error"
        ),
    )
    figures = {
        "parse_ndjson (fast path, guards included)": median_seconds(
            lambda: parse_ndjson(data), args.repeat
        ),
        "guard: every line starts with '{'": median_seconds(lambda: _fast_safe(data), args.repeat),
        "guard: UTF-8 validation of the result": median_seconds(
            lambda: arrow.validate(full=True), args.repeat
        ),
        "exact path (orjson per line), for comparison": median_seconds(
            lambda: _ndjson_exact(data, 1, len(data)), max(1, args.repeat // 2)
        ),
    }
    print(f"{args.records:,} records, {len(data) / 1e6:.1f} MB of NDJSON")
    for name, seconds in figures.items():
        print(f"{name:48s} {seconds * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
