"""What a command's callback gets from the `rhizome` root: the process's Settings, and shared option types.

Settings are built on first use, after the command's own options are parsed, so `--help` works whatever
the environment holds; they are built once per process and kept on the root context.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import click

from gateway.process.settings import Settings, from_env
from gateway.process.signals import stop_on_signals

if TYPE_CHECKING:  # the store loads SQLAlchemy: imported when a command runs, not when --help lists it
    from sqlalchemy.orm import Session

P = ParamSpec("P")
R = TypeVar("R")
# The root's global options, by the Settings field each one overrides.
GLOBAL_OPTIONS = {
    "mqtt": "mqtt_url",
    "mqtt_protocol": "mqtt_protocol",
    "mqtt_password_file": "mqtt_password_file",
    "db": "database_url",
    "data_dir": "data_dir",
    "log_level": "log_level",
}


SETTINGS_KEY = "rhizome.settings"


class ProcessKit:
    """What the root puts on `ctx.obj` for every command: the process's Settings (built on first use) and
    its signal handling. devices/cli.py uses it duck-typed, so the devices package imports nothing of the
    gateway but the contract."""

    def __init__(self, ctx: click.Context) -> None:
        self._ctx = ctx

    def settings(self) -> Settings:
        return settings_of(self._ctx)

    def stop_on_signals(self) -> threading.Event:
        return stop_on_signals()


def settings_of(ctx: click.Context) -> Settings:
    """The process's Settings: the root's flags over RHIZOME_* variables; a bad value is a usage error."""
    root = ctx.find_root()
    cached = root.meta.get(SETTINGS_KEY)
    if isinstance(cached, Settings):
        return cached
    overrides = {field: root.params.get(option) for option, field in GLOBAL_OPTIONS.items()}
    try:
        settings = from_env(**overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc), ctx=root) from None
    root.meta[SETTINGS_KEY] = settings
    return settings


def pass_settings(command: Callable[Concatenate[Settings, P], R]) -> Callable[P, R]:
    """Decorator: call the command with the process's Settings as its first argument."""

    @functools.wraps(command)
    def with_settings(*args: P.args, **kwargs: P.kwargs) -> R:
        return command(settings_of(click.get_current_context()), *args, **kwargs)

    return with_settings


class PositiveSeconds(click.ParamType):
    """A finite number of seconds above zero (a period of 0 or NaN would spin or never fire)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = float(value)
        except ValueError:
            self.fail(f"not a number of seconds: {value!r}", param, ctx)
        if not (math.isfinite(seconds) and seconds > 0):
            self.fail(f"must be a positive number of seconds, got {value!r}", param, ctx)
        return seconds


class PathParam(click.ParamType):
    """A path taken as given: no existence or access check, so the handler meets a missing or unreadable
    file and reports it with the OS's own message (exit code 1), as for every other OSError."""

    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        return value if isinstance(value, Path) else Path(value)


POSITIVE_SECONDS = PositiveSeconds()
PATH = PathParam()


@contextmanager
def store_transaction(settings: Settings) -> Iterator[Session]:
    """One transaction on the configured store for a command; a refused input (any RhizomeError) becomes
    click's error: its message and exit status 1, nothing written."""
    from gateway.contract.errors import RhizomeError
    from gateway.store.db import make_engine, make_session_factory

    engine = make_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine).begin() as session:
            yield session
    except RhizomeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
