"""The `rhizome` command. Each package contributes its subcommands through the `rhizome.commands` entry
points, so the gateway never imports the packages built on top of it."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from gateway.process.settings import Settings, from_env

log = logging.getLogger(__name__)
Handler = Callable[[Settings, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rhizome` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level or "INFO",
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        settings = from_env(
            mqtt_url=args.mqtt,
            mqtt_protocol=args.mqtt_protocol,
            database_url=args.db,
            data_dir=args.data_dir,
            log_level=args.log_level,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return int(args.handler(settings, args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every installed package's subcommands."""
    parser = argparse.ArgumentParser(
        prog="rhizome",
        description="IoT logistics and inventory for networks of cooperating communities.",
    )
    parser.add_argument(
        "--mqtt", metavar="URL", help="broker URL, mqtt://user:pass@host:port [RHIZOME_MQTT_URL]"
    )
    parser.add_argument(
        "--mqtt-protocol", choices=("5", "3.1.1"), help="MQTT protocol version [RHIZOME_MQTT_PROTOCOL, 5]"
    )
    parser.add_argument("--db", metavar="URL", help="SQLAlchemy database URL [RHIZOME_DATABASE_URL]")
    parser.add_argument("--data-dir", type=Path, help="where embedded data lives [RHIZOME_DATA_DIR, ./var]")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="[INFO]")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for entry in sorted(entry_points(group="rhizome.commands"), key=lambda e: e.name):
        entry.load()(commands)
    return parser


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """The gateway's subcommands: gateway, db, region, bridge, demo, devices provision/rotate/revoke."""
    gw = commands.add_parser("gateway", help="run the gateway: store every reading, track device state")
    gw.add_argument("--shared", action="store_true", help="join the shared subscription group (MQTT v5)")
    gw.add_argument("--group", help="shared subscription group name [gateways]")
    gw.add_argument("--client-id", help="MQTT client id; unique per gateway process [rhizome-gateway]")
    gw.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus /metrics on 127.0.0.1:PORT [off]"
    )
    gw.add_argument(
        "--rules", type=Path, metavar="FILE", help="fault rules file [gateway/ingest/faults/rules.toml]"
    )
    gw.add_argument("--ready-file", type=Path, help="touch this file once subscribed (for supervisors)")
    gw.add_argument(
        "--sweep-every",
        type=_positive_seconds,
        default=5.0,
        metavar="S",
        help="seconds between checks for silent devices [5]",
    )
    gw.set_defaults(handler=_run_gateway)

    db = commands.add_parser("db", help="database schema").add_subparsers(title="db commands", metavar="CMD")
    up = db.add_parser("upgrade", help="migrate the database to the latest schema")
    up.add_argument("--revision", default="head", help="target revision [head]")
    up.set_defaults(handler=_db_upgrade)

    region = commands.add_parser("region", help="region data").add_subparsers(
        title="region commands", metavar="CMD"
    )
    load = region.add_parser("load", help="load a region file (rhizome-region/1 JSON) into the store")
    load.add_argument("file", type=Path, help="region file; 'sample' for the bundled Puerto Rico region")
    load.set_defaults(handler=_region_load)
    gen = region.add_parser("generate", help="write a synthetic region of any size (seeded)")
    gen.add_argument("--communities", type=int, required=True, help="number of communities")
    gen.add_argument("--seed", type=int, default=1, help="random seed [1]")
    gen.add_argument("--members", type=int, help="number of members [communities / 2]")
    gen.add_argument("-o", "--output", type=Path, help="output file [stdout]")
    gen.set_defaults(handler=_region_generate)

    from gateway.broker.accounts_cli import register as register_provision
    from gateway.broker.bridge_cli import register as register_bridge
    from gateway.process.demo import register as register_demo

    register_bridge(commands)
    register_demo(commands)
    register_provision(commands)  # `devices provision|rotate|revoke`: needs the store, so it lives here


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, for long-running commands that stop cleanly."""
    stop = threading.Event()

    def _handler(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _run_gateway(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.ingest.service import GatewayService
    from gateway.store.db import make_engine

    settings = settings.with_overrides(gateway_group=args.group, gateway_client_id=args.client_id)
    engine = make_engine(settings.effective_database_url)
    try:
        GatewayService(
            settings,
            engine,
            shared=args.shared,
            ready_file=args.ready_file,
            metrics_port=args.metrics_port,
            rules_file=args.rules,
            sweep_every_s=args.sweep_every,
        ).run(stop_on_signals())
    finally:
        engine.dispose()
    return 0


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.store.db import make_engine
    from gateway.store.migrate import upgrade

    engine = make_engine(settings.effective_database_url)
    try:
        upgrade(engine, args.revision)
    finally:
        engine.dispose()
    print(f"database at {args.revision}: {_safe_url(settings.effective_database_url)}")
    return 0


def _region_load(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.store.db import make_engine, make_session_factory
    from gateway.store.region import load_region, read_region, sample_region_path

    path = sample_region_path() if str(args.file) == "sample" else args.file
    data = read_region(path)
    engine = make_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine).begin() as session:
            summary = load_region(session, data)
    finally:
        engine.dispose()
    print(
        f"loaded {path.name}: {summary.communities} communities, {summary.sites} sites, "
        f"{summary.devices} devices, {summary.goods} goods, {summary.members} members"
    )
    return 0


def _region_generate(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from bench.synthetic.region import generate_region

    if args.communities < 1:
        raise ValueError("--communities must be at least 1")
    data = generate_region(args.communities, seed=args.seed, members=args.members)
    text = json.dumps(data, indent=1, ensure_ascii=False)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output}: {len(data['communities'])} communities", file=sys.stderr)
    else:
        print(text)
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
