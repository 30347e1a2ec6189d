"""`mdr serve` and `mdr demo`."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
