"""Engines part (see architecture.md)."""
