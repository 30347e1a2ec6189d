"""Command line: the `mdr` entry point and its commands (cli.md)."""
