"""The ``qwatch`` command: a group whose commands load only when used, so
``qwatch check`` never pays for importing Textual.

``qwatch [TARGET...]`` with no command opens the dashboard.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from qwatch import __version__
from qwatch.adapters.base import ActionError, TargetError

COMMANDS = {
    "watch": "qwatch.cli_watch:watch",
    "check": "qwatch.cli_check:check",
    "demo": "qwatch.cli_demo:demo",
    "drain": "qwatch.cli_actions:drain",
    "purge": "qwatch.cli_actions:purge",
    "peek": "qwatch.cli_actions:peek",
    "restore": "qwatch.cli_actions:restore",
    "serve": "qwatch.cli_serve:serve",
}
"""Command name to ``module:attribute``."""

ERROR_EXIT = 3
"""Bad input or an unreadable target: "unknown" in monitoring terms, so a typo
in a cron job is never mistaken for a leak (2)."""


class LazyGroup(click.Group):
    """Loads a command's module on first use; unknown words become targets."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    def _load(self, name: str) -> click.Command | None:
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command: click.Command = getattr(module, attr)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = args[0] if args else None
        if first not in COMMANDS and first not in ("--help", "-h", "--version"):
            args = ["watch", *args]
        return super().parse_args(ctx, args)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="qwatch")
def cli() -> None:
    """Find job queues that only grow and are never read.

    Targets are URLs: redis://[:password@]host:6379/0, rediss://...,
    amqp://user:pass@host:5672/vhost, starling://host:22122. Settings come
    from flags, then QWATCH_* environment variables, then qwatch.toml (given
    with --config, else ./qwatch.toml, else the user config folder).
    """


def main(argv: list[str] | None = None) -> Any:
    """Entry point: every known failure is one line on stderr, never a traceback."""
    try:
        return cli.main(args=argv, prog_name="qwatch", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort as exc:
        # click turns Ctrl-C and end of input alike into Abort; 1 would read
        # as WARNING to a monitoring system, so neither exits with it.
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("qwatch: interrupted", err=True)
            sys.exit(130)
        click.echo("qwatch: no answer (end of input); nothing done", err=True)
        sys.exit(ERROR_EXIT)
    except click.ClickException as exc:
        click.echo(f"qwatch: {exc.format_message()}", err=True)
        sys.exit(ERROR_EXIT)
    except (TargetError, ActionError, ValueError, OSError) as exc:
        click.echo(f"qwatch: {exc}", err=True)
        sys.exit(ERROR_EXIT)
    except KeyboardInterrupt:
        click.echo("qwatch: interrupted", err=True)
        sys.exit(130)
