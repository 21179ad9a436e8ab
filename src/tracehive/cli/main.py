"""The ``tracehive`` command. Each sub-command group lives in its own module and is added here."""

from __future__ import annotations

import click

from tracehive import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracehive")
def cli() -> None:
    """Self-hosted traces, logs, errors and metrics, wire-compatible with Honeycomb's clients."""


def _register() -> None:
    # Imported here so each module can import ``cli`` without a cycle.
    from tracehive.cli import keys, query, serve

    for module in (serve, keys, query):
        for command in module.COMMANDS:
            cli.add_command(command)


def main() -> None:
    _register()
    cli()
