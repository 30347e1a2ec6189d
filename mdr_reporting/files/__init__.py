"""Files part (see architecture.md)."""
