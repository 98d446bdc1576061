"""`rhizome devices ...`: the device side of Rhizome. Heavy imports (paho) happen inside the handlers."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)
PER_DEVICE_MAX: Final = 500  # above this many devices the default mode is multiplexed
DEFAULT_CONNECTIONS: Final = 4


class DeviceSettings(Protocol):
    """The attributes of gateway.process.settings.Settings this package reads (duck-typed: no import)."""

    mqtt_url: str | None
    mqtt_protocol: str
    mqtt_ca_file: str | None
    data_dir: Path


def register(commands: Any) -> None:
    """Add `rhizome devices simulate`."""
    sub = commands.add_parser("devices", help="device side: simulated sensor boxes publishing over MQTT")
    actions = sub.add_subparsers(title="devices commands", metavar="CMD")
    sim = actions.add_parser(
        "simulate",
        help="simulate a region's devices (pumps, soil, cold rooms, stock) against the broker",
        description="Publish plausible, seeded readings for every device of a region file. "
        "Stops cleanly on SIGINT/SIGTERM: every device publishes a retained clean offline.",
    )
    sim.add_argument("--region", type=Path, metavar="FILE", help="region file [bundled Puerto Rico sample]")
    sim.add_argument("--seed", type=int, default=1, help="random seed; same seed, same readings [1]")
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second [1]")
    sim.add_argument("--start", type=_iso_time, metavar="ISO", help="simulated clock start, UTC [now]")
    sim.add_argument("--duration", type=float, metavar="S", help="stop after S real seconds [until a signal]")
    sim.add_argument("--limit", type=int, metavar="N", help="only the first N devices")
    sim.add_argument("--community", metavar="SLUG", help="only this community's devices")
    sim.add_argument(
        "--mode",
        choices=("per-device", "multiplexed"),
        help=f"one connection per device, or a few shared ones [per-device up to {PER_DEVICE_MAX} devices]",
    )
    sim.add_argument(
        "--connections",
        type=int,
        default=DEFAULT_CONNECTIONS,
        help=f"multiplexed connections [{DEFAULT_CONNECTIONS}]",
    )
    sim.add_argument(
        "--state-dir", type=Path, metavar="DIR", help="seq/session files and the spool [<data dir>/devices]"
    )
    sim.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="fault scenario (rhizome-scenario/1 JSON, see docs/scenarios.md) [none]",
    )
    sim.add_argument(
        "--control",
        action="store_true",
        help="apply repairs and stock movements sent to rhizome/v1/sim/<device> (devices/control.py)",
    )
    sim.set_defaults(handler=simulate)
    base = actions.add_parser(
        "baseline",
        help="stock levels of a simulated week with no deliveries (offline, no broker)",
        description="Step every stock device of a region offline from the seed, as `simulate` would, with "
        "nobody moving goods, and write each one's hourly levels as JSON: the baseline the region week "
        "compares deliveries against.",
    )
    base.add_argument("--region", type=Path, metavar="FILE", help="region file [bundled Puerto Rico sample]")
    base.add_argument("--seed", type=int, default=1, help="random seed, as given to simulate [1]")
    base.add_argument(
        "--start", type=_iso_time, required=True, metavar="ISO", help="simulated clock start, UTC"
    )
    base.add_argument("--days", type=float, default=7.0, help="simulated days [7]")
    base.add_argument("--scenario", type=Path, metavar="FILE", help="fault scenario, as given to simulate")
    base.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write the JSON")
    base.set_defaults(handler=baseline)


def _iso_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so the run loop can stop cleanly instead of dying mid-publish."""
    stop = threading.Event()

    def _handler(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def simulate(settings: DeviceSettings, args: argparse.Namespace) -> int:
    """Handler of `rhizome devices simulate`."""
    from devices.control import ControlInbox
    from devices.fleet import Fleet, MultiplexedFleet, PerDeviceFleet
    from devices.regionfile import read_devices, sample_region_path, select
    from devices.scenario import load_scenario
    from devices.simulator import Simulator
    from gateway.contract.protocol import MqttTarget

    stop = stop_on_signals()
    if not settings.mqtt_url:
        raise ValueError("no MQTT broker configured: set RHIZOME_MQTT_URL or pass --mqtt")
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.duration is not None and not args.duration > 0:
        raise ValueError("--duration must be positive")
    target = MqttTarget.from_url(settings.mqtt_url, settings.mqtt_protocol, settings.mqtt_ca_file)
    scenario = load_scenario(args.scenario) if args.scenario else None
    region = args.region or sample_region_path()
    specs = select(read_devices(region), community=args.community, limit=args.limit)
    if not specs:
        raise ValueError(
            f"no devices in {region}" + (f" for community {args.community!r}" if args.community else "")
        )
    mode = args.mode or ("per-device" if len(specs) <= PER_DEVICE_MAX else "multiplexed")
    state_dir = args.state_dir or Path(settings.data_dir) / "devices"
    log.info("%s devices from %s, %s mode, state in %s", len(specs), region, mode, state_dir)
    fleet: Fleet
    if mode == "per-device":
        fleet = PerDeviceFleet(target, specs, state_dir)
    else:
        fleet = MultiplexedFleet(target, specs, state_dir, args.connections)
    control = ControlInbox(target) if args.control else None
    simulator = Simulator(
        specs,
        fleet,
        seed=args.seed,
        speed=args.speed,
        sim_start=args.start,
        scenario=scenario,
        control=control,
    )
    simulator.run(stop, args.duration)
    return 0


def baseline(_settings: DeviceSettings, args: argparse.Namespace) -> int:
    """Handler of `rhizome devices baseline`."""
    from devices.baseline import stock_levels, write
    from devices.regionfile import read_devices, sample_region_path
    from devices.scenario import load_scenario

    if not args.days > 0:
        raise ValueError("--days must be positive")
    specs = read_devices(args.region or sample_region_path())
    scenario = load_scenario(args.scenario) if args.scenario else None
    levels = stock_levels(specs, args.seed, args.start, args.days, scenario)
    write(args.out, levels)
    log.info(
        "baseline: %s stock devices over %s days written to %s", len(levels["devices"]), args.days, args.out
    )
    return 0
