"""The `rhizome` command: one click group whose commands are named in COMMANDS and imported on first use.

The table names each command by "module:attr", so the gateway never imports the packages built on top of
it (logistics, dashboard, devices), and `rhizome devices ...` loads neither Flask nor pandas nor PuLP.
`python -m gateway.process.cli` is the same command (the demo and the tests start children that way).
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from gateway.contract.errors import RhizomeError
from gateway.process.context import PATH, ProcessKit

log = logging.getLogger(__name__)

# Every command of `rhizome`, in the order `rhizome --help` lists them. The first "module:attr" is the
# command; any further ones are groups whose commands join it: `devices provision|rotate|revoke` need the
# store, so they live in the gateway yet sit under `rhizome devices`.
COMMANDS: Mapping[str, tuple[str, ...]] = {
    "gateway": ("gateway.process.commands:gateway",),
    "db": ("gateway.process.commands:db",),
    "region": ("gateway.process.commands:region",),
    "bridge": ("gateway.broker.bridge_cli:bridge",),
    "demo": ("gateway.process.commands:demo",),
    "node": ("gateway.federation.node_cli:node",),
    "devices": ("devices.cli:devices", "gateway.broker.accounts_cli:accounts"),
    "board": ("gateway.process.board_cli:board",),
    "goals": ("gateway.process.goals_cli:goals",),
    "plan": ("logistics.cli:plan",),
    "dashboard": ("dashboard.cli:dashboard",),
    "dashboard-account": ("dashboard.cli:dashboard_account",),
    "dashboard-accounts": ("dashboard.cli:dashboard_accounts",),
}
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """A group whose commands are imported when first named (or listed by --help), not at startup."""

    def __init__(self, *args: Any, lazy: Mapping[str, tuple[str, ...]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(dict.fromkeys([*self.lazy, *self.commands]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(compose(self.lazy[cmd_name]), cmd_name)
        return self.commands.get(cmd_name)


def compose(specs: Sequence[str]) -> click.Command:
    """The command named by specs[0], with the commands of the groups named by specs[1:] added to it."""
    command = load(specs[0])
    for spec in specs[1:]:
        extra = load(spec)
        if not isinstance(command, click.Group) or not isinstance(extra, click.Group):
            raise TypeError(f"{spec}: only a group's commands can join another group")
        for name, sub in extra.commands.items():
            command.add_command(sub, name)
    return command


def load(spec: str) -> click.Command:
    """Import "module:attr" and check that it is a click command."""
    module, _, attr = spec.partition(":")
    command = getattr(importlib.import_module(module), attr)
    if not isinstance(command, click.Command):
        raise TypeError(f"{spec} is not a click command")
    return command


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings=CONTEXT,
    help="IoT logistics and inventory for networks of cooperating communities.",
)
@click.option(
    "--mqtt",
    metavar="URL",
    help="broker URL, mqtts://user@host:8883 or mqtt://user:pass@host:port [RHIZOME_MQTT_URL]",
)
@click.option(
    "--mqtt-password-file",
    type=PATH,
    metavar="FILE",
    help="the broker password's file, kept out of the URL and `ps` [RHIZOME_MQTT_PASSWORD_FILE]; or set "
    "RHIZOME_MQTT_PASSWORD",
)
@click.option(
    "--mqtt-protocol",
    type=click.Choice(("5", "3.1.1")),
    help="MQTT protocol version [RHIZOME_MQTT_PROTOCOL, 5]",
)
@click.option("--db", metavar="URL", help="SQLAlchemy database URL [RHIZOME_DATABASE_URL]")
@click.option(
    "--data-dir", type=PATH, metavar="DATA_DIR", help="where embedded data lives [RHIZOME_DATA_DIR, ./var]"
)
@click.option("--log-level", type=click.Choice(("DEBUG", "INFO", "WARNING", "ERROR")), help="[INFO]")
@click.pass_context
def cli(
    ctx: click.Context,
    mqtt: str | None,
    mqtt_protocol: str | None,
    mqtt_password_file: Path | None,
    db: str | None,
    data_dir: Path | None,
    log_level: str | None,
) -> None:
    """Configure logging; the command reads its Settings from these options (gateway.process.context)."""
    logging.basicConfig(
        level=log_level or "INFO",
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    ctx.obj = ProcessKit(ctx)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `rhizome`; return the command's exit code: 1 for a refused input or an OS error (logged), 130
    for Ctrl-C. --help and usage errors (a bad flag or setting: exit 2) leave by SystemExit."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with cli.make_context("rhizome", args) as ctx:
            return int(cli.invoke(ctx) or 0)
    except click.exceptions.Exit as exc:  # --help
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.NoArgsIsHelpError as exc:  # a group without its command: help, as asked, exit 2
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:  # usage: message and usage line on stderr
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        return 130
    except (RhizomeError, ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1


def parse(argv: Sequence[str]) -> click.Context:
    """The context of the command `argv` names, every option parsed and nothing run, for checking command
    lines (the deploy files, the tests) without starting anything; raises click.UsageError as `main` would."""
    ctx = cli.make_context("rhizome", list(argv))
    while isinstance(ctx.command, click.Group):
        # click 8 keeps the subcommand's name apart from ctx.args; click 9 will keep it in ctx.args.
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            break  # a group that runs on its own, e.g. `rhizome plan`
        name, command, rest = ctx.command.resolve_command(ctx, rest)
        assert name is not None and command is not None  # resolve_command raises for an unknown name
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx


if __name__ == "__main__":
    sys.exit(main())
