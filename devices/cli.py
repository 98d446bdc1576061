"""`rhizome devices ...`: the device side of Rhizome. Heavy imports (paho) happen inside the commands.

This module is the package's one adapter to the `rhizome` command: it uses click, and takes the process's
Settings and signal handling from what the root puts on the click context (gateway/process/context.py
ProcessKit), duck-typed, so devices import nothing of the gateway but the contract.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

import click

from gateway.contract.target import MqttTarget

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
PATH: Final = click.Path(path_type=Path)


class Settings(Protocol):
    """The part of the process's Settings (gateway/process/settings.py) the device commands read."""

    @property
    def data_dir(self) -> Path: ...

    def mqtt(self) -> MqttTarget: ...


class Kit(Protocol):
    """What the `rhizome` root puts on the click context (gateway/process/context.py ProcessKit)."""

    def settings(self) -> Settings: ...

    def stop_on_signals(self) -> threading.Event: ...


def kit() -> Kit:
    """The root's kit; a clear error when the devices group runs without the `rhizome` root."""
    obj = click.get_current_context().find_root().obj
    if not hasattr(obj, "settings") or not hasattr(obj, "stop_on_signals"):
        raise click.UsageError("run the device commands through `rhizome devices ...`")
    return obj


def pass_settings(command: Callable[Concatenate[Settings, P], R]) -> Callable[P, R]:
    """Decorator: call the command with the process's Settings as its first argument."""

    @functools.wraps(command)
    def with_settings(*args: P.args, **kwargs: P.kwargs) -> R:
        return command(kit().settings(), *args, **kwargs)

    return with_settings


PER_DEVICE_MAX: Final = 500  # above this many devices the default mode is multiplexed
DEFAULT_CONNECTIONS: Final = 4


class IsoTime(click.ParamType):
    """An ISO 8601 time; one without a zone is UTC."""

    name = "iso"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"not an ISO time: {value!r}", param, ctx)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


ISO_TIME = IsoTime()


@click.group("devices", short_help="device side: simulated sensor boxes publishing over MQTT")
def devices() -> None:
    """Device side: simulated sensor boxes publishing over MQTT."""


@devices.command(
    "simulate",
    short_help="simulate a region's devices (pumps, soil, cold rooms, stock) against the broker",
)
@click.option("--region", type=PATH, metavar="FILE", help="region file [bundled Puerto Rico sample]")
@click.option("--seed", type=int, default=1, metavar="SEED", help="random seed; same seed, same readings [1]")
@click.option(
    "--speed", type=float, default=1.0, metavar="SPEED", help="simulated seconds per real second [1]"
)
@click.option("--start", type=ISO_TIME, metavar="ISO", help="simulated clock start, UTC [now]")
@click.option("--duration", type=float, metavar="S", help="stop after S real seconds [until a signal]")
@click.option("--limit", type=int, metavar="N", help="only the first N devices")
@click.option("--community", metavar="SLUG", help="only this community's devices")
@click.option(
    "--mode",
    type=click.Choice(("per-device", "multiplexed")),
    help=f"one connection per device, or a few shared ones [per-device up to {PER_DEVICE_MAX} devices]",
)
@click.option(
    "--connections",
    type=int,
    default=DEFAULT_CONNECTIONS,
    metavar="CONNECTIONS",
    help=f"multiplexed connections [{DEFAULT_CONNECTIONS}]",
)
@click.option(
    "--state-dir", type=PATH, metavar="DIR", help="seq/session files and the spool [<data dir>/devices]"
)
@click.option(
    "--scenario",
    type=PATH,
    metavar="FILE",
    help="fault scenario (rhizome-scenario/1 JSON, see docs/scenarios.md) [none]",
)
@click.option(
    "--control",
    is_flag=True,
    help="apply repairs and stock movements sent to rhizome/v1/sim/<device> (devices/control.py)",
)
@pass_settings
def simulate_command(settings: Settings, **options: Any) -> int:
    """Publish plausible, seeded readings for every device of a region file. Stops cleanly on
    SIGINT/SIGTERM: every device publishes a retained clean offline."""
    return simulate(settings, **options)


@devices.command(
    "baseline", short_help="stock levels of a simulated week with no deliveries (offline, no broker)"
)
@click.option("--region", type=PATH, metavar="FILE", help="region file [bundled Puerto Rico sample]")
@click.option("--seed", type=int, default=1, metavar="SEED", help="random seed, as given to simulate [1]")
@click.option("--start", type=ISO_TIME, required=True, metavar="ISO", help="simulated clock start, UTC")
@click.option("--days", type=float, default=7.0, metavar="DAYS", help="simulated days [7]")
@click.option("--scenario", type=PATH, metavar="FILE", help="fault scenario, as given to simulate")
@click.option("--out", type=PATH, required=True, metavar="FILE", help="where to write the JSON")
@pass_settings
def baseline_command(settings: Settings, **options: Any) -> int:
    """Step every stock device of a region offline from the seed, as `simulate` would, with nobody moving
    goods, and write each one's hourly levels as JSON: the baseline the region week compares deliveries
    against."""
    return baseline(**options)


def simulate(
    settings: Settings,
    *,
    region: Path | None = None,
    seed: int = 1,
    speed: float = 1.0,
    start: datetime | None = None,
    duration: float | None = None,
    limit: int | None = None,
    community: str | None = None,
    mode: str | None = None,
    connections: int = DEFAULT_CONNECTIONS,
    state_dir: Path | None = None,
    scenario: Path | None = None,
    control: bool = False,
) -> int:
    """Run the region's devices against the broker until a signal (or for `duration` real seconds)."""
    from devices.control import ControlInbox
    from devices.fleet import Fleet, MultiplexedFleet, PerDeviceFleet
    from devices.regionfile import read_devices, sample_region_path, select
    from devices.scenario import load_scenario
    from devices.simulator import Simulator

    stop = kit().stop_on_signals()
    target = settings.mqtt()  # ValueError when no broker is configured
    if limit is not None and limit < 1:
        raise ValueError("--limit must be at least 1")
    if duration is not None and not duration > 0:
        raise ValueError("--duration must be positive")
    faults = load_scenario(scenario) if scenario else None
    region = region or sample_region_path()
    specs = select(read_devices(region), community=community, limit=limit)
    if not specs:
        raise ValueError(f"no devices in {region}" + (f" for community {community!r}" if community else ""))
    mode = mode or ("per-device" if len(specs) <= PER_DEVICE_MAX else "multiplexed")
    state_dir = state_dir or settings.data_dir / "devices"
    log.info("%s devices from %s, %s mode, state in %s", len(specs), region, mode, state_dir)
    fleet: Fleet
    if mode == "per-device":
        fleet = PerDeviceFleet(target, specs, state_dir)
    else:
        fleet = MultiplexedFleet(target, specs, state_dir, connections)
    inbox = ControlInbox(target) if control else None
    simulator = Simulator(
        specs, fleet, seed=seed, speed=speed, sim_start=start, scenario=faults, control=inbox
    )
    simulator.run(stop, duration)
    return 0


def baseline(
    *,
    start: datetime,
    out: Path,
    region: Path | None = None,
    seed: int = 1,
    days: float = 7.0,
    scenario: Path | None = None,
) -> int:
    """Write the stock levels of `days` simulated days with nobody moving goods to `out`."""
    from devices.baseline import stock_levels, write
    from devices.regionfile import read_devices, sample_region_path
    from devices.scenario import load_scenario

    if not days > 0:
        raise ValueError("--days must be positive")
    specs = read_devices(region or sample_region_path())
    faults = load_scenario(scenario) if scenario else None
    levels = stock_levels(specs, seed, start, days, faults)
    write(out, levels)
    log.info("baseline: %s stock devices over %s days written to %s", len(levels["devices"]), days, out)
    return 0
