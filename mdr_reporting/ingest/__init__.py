"""Records in: reading batches and files, checking them, and appending them to the lake."""

from mdr_reporting.ingest.readers import RawChunk, parse_json_array, parse_ndjson, read_file
from mdr_reporting.ingest.service import Ingestor, IngestResult, InvalidRecords

__all__ = [
    "IngestResult",
    "Ingestor",
    "InvalidRecords",
    "RawChunk",
    "parse_json_array",
    "parse_ndjson",
    "read_file",
]
