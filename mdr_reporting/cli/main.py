"""The `mdr` entry point: one click group, a module per family of commands."""

from __future__ import annotations

import click

from mdr_reporting import __version__
from mdr_reporting.cli import admin, serve, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mdr")
def cli() -> None:
    """MDR reporting service: Message Detail Record reports over the carrier's API."""


cli.add_command(admin.admin)
cli.add_command(admin.migrate)
for command in serve.COMMANDS:
    cli.add_command(command)
cli.add_command(worker.worker)


def main() -> None:
    cli(prog_name="mdr")
