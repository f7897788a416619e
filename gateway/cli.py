"""The `encompass-gateway` command line: thin wrappers over the operations."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    """Encompass Gateway: police domestic-abuse notifications to the right school."""


def main() -> None:
    cli()
