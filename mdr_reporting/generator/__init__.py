"""Realistic synthetic MDR traffic for demos, tests and benchmarks (seeded, deterministic)."""

from mdr_reporting.generator.output import file_format, write_records
from mdr_reporting.generator.traffic import account_ids, generate

__all__ = ["account_ids", "file_format", "generate", "write_records"]
