"""The `mdr` entry point: one click group whose commands are imported only when run.

Lazy loading keeps `mdr request ...` (HTTP only) from importing the catalog, the
API framework and the engines, so every command starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from mdr_reporting import __version__

__all__ = ["cli", "main"]

# command name -> "module:attribute"
COMMANDS = {
    "admin": "mdr_reporting.cli.admin:admin",
    "demo": "mdr_reporting.cli.serve:demo",
    "generate": "mdr_reporting.cli.records:generate_command",
    "ingest": "mdr_reporting.cli.records:ingest",
    "lake": "mdr_reporting.cli.records:lake",
    "migrate": "mdr_reporting.cli.admin:migrate",
    "request": "mdr_reporting.cli.client:request",
    "serve": "mdr_reporting.cli.serve:serve",
    "worker": "mdr_reporting.cli.worker:worker",
}


class LazyGroup(click.Group):
    """A group that imports a command's module the first time the command is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command: Any = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mdr")
def cli() -> None:
    """MDR reporting service: Message Detail Record reports over the carrier's API."""


def main() -> None:
    from mdr_reporting.owner_only import restrict_umask

    restrict_umask()  # records, reports, the catalog and secrets: owner-only, whatever umask
    cli(prog_name="mdr")
