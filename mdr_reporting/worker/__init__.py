"""Worker part (see architecture.md)."""
