"""The gateway's own commands: `rhizome gateway`, `db upgrade`, `region load`, `demo`.

Declarations only: each callback imports the service it runs, so listing the commands stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from gateway.process.context import PATH, POSITIVE_SECONDS, pass_settings
from gateway.process.settings import Settings


@click.command("gateway", short_help="run the gateway: store every reading, track device state")
@click.option("--shared", is_flag=True, help="join the shared subscription group (MQTT v5)")
@click.option("--group", metavar="GROUP", help="shared subscription group name [gateways]")
@click.option(
    "--client-id", metavar="CLIENT_ID", help="MQTT client id; unique per gateway process [rhizome-gateway]"
)
@click.option("--metrics-port", type=int, metavar="PORT", help="serve Prometheus /metrics on PORT [off]")
@click.option(
    "--metrics-host",
    metavar="ADDR",
    help="address /metrics listens on, e.g. 0.0.0.0 in a container [RHIZOME_METRICS_HOST, 127.0.0.1]",
)
@click.option(
    "--rules", type=PATH, metavar="FILE", help="fault rules file [gateway/ingest/faults/rules.toml]"
)
@click.option(
    "--ready-file", type=PATH, metavar="READY_FILE", help="touch this file once subscribed (for supervisors)"
)
@click.option(
    "--sweep-every",
    type=POSITIVE_SECONDS,
    default=5.0,
    metavar="S",
    help="seconds between checks for silent devices [5]",
)
@pass_settings
def gateway(
    settings: Settings,
    shared: bool,
    group: str | None,
    client_id: str | None,
    metrics_port: int | None,
    metrics_host: str | None,
    rules: Path | None,
    ready_file: Path | None,
    sweep_every: float,
) -> int:
    """Run the gateway: store every reading, track device state."""
    from gateway.ingest.service import GatewayService
    from gateway.ingest.writer import CONNECT_TIMEOUT_S
    from gateway.process.signals import stop_on_signals
    from gateway.store.db import make_engine

    settings = settings.with_overrides(
        gateway_group=group, gateway_client_id=client_id, metrics_host=metrics_host
    )
    engine = make_engine(settings.effective_database_url, connect_timeout_s=CONNECT_TIMEOUT_S)
    try:
        GatewayService(
            settings,
            engine,
            shared=shared,
            ready_file=ready_file,
            metrics_port=metrics_port,
            rules_file=rules,
            sweep_every_s=sweep_every,
        ).run(stop_on_signals())
    finally:
        engine.dispose()
    return 0


@click.group("db", short_help="database schema")
def db() -> None:
    """Database schema."""


@db.command("upgrade", short_help="migrate the database to the latest schema")
@click.option("--revision", default="head", metavar="REVISION", help="target revision [head]")
@pass_settings
def db_upgrade(settings: Settings, revision: str) -> int:
    """Migrate the database to the latest schema (or to --revision)."""
    from sqlalchemy.engine import make_url

    from gateway.store.db import make_engine
    from gateway.store.migrate import upgrade

    engine = make_engine(settings.effective_database_url)
    try:
        upgrade(engine, revision)
    finally:
        engine.dispose()
    shown = make_url(settings.effective_database_url).render_as_string(hide_password=True)
    print(f"database at {revision}: {shown}")
    return 0


@db.command("prune", short_help="delete readings older than a number of days")
@click.option(
    "--readings-older-than",
    "days",
    type=click.IntRange(min=1),
    required=True,
    metavar="DAYS",
    help="delete readings received more than DAYS days ago (each device's newest is kept)",
)
@pass_settings
def db_prune(settings: Settings, days: int) -> int:
    """Delete old readings: each device's newest is kept, and so are the stock ledger, device states and
    their history. Run it from cron or a timer, e.g. daily with --readings-older-than 90."""
    from datetime import timedelta

    from gateway.store.db import make_engine, make_session_factory
    from gateway.store.models import utcnow
    from gateway.store.retention import prune_readings

    engine = make_engine(settings.effective_database_url)
    before = utcnow() - timedelta(days=days)  # receipt times are real time, whatever the work clock
    try:
        gone = prune_readings(
            make_session_factory(engine),
            before,
            progress=lambda n: print(f"  {n} readings deleted so far", flush=True),
        )
    finally:
        engine.dispose()
    print(f"{gone} readings received before {before:%Y-%m-%d %H:%M} UTC deleted")
    return 0


@click.group("region", short_help="region data")
def region() -> None:
    """Region data."""


@region.command("load", short_help="load a region file (rhizome-region/1 JSON) into the store")
@click.argument("file", type=PATH)
@pass_settings
def region_load(settings: Settings, file: Path) -> int:
    """Load FILE, a region file (rhizome-region/1 JSON), into the store; FILE 'sample' is the bundled
    Puerto Rico region."""
    from gateway.store.db import make_engine, make_session_factory
    from gateway.store.region import load_region, read_region, sample_region_path

    path = sample_region_path() if str(file) == "sample" else file
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


@click.command("demo", short_help="run the whole system locally on embedded defaults")
@click.option("--region", type=PATH, metavar="REGION", help="region file [bundled Puerto Rico sample]")
@click.option("--port", type=int, metavar="PORT", help="dashboard port [8000, or a free one if taken]")
@click.option(
    "--speed", type=float, default=60.0, metavar="SPEED", help="simulated time per real second [60]"
)
@click.option(
    "--embedded-broker",
    type=click.Choice(("auto", "mosquitto", "amqtt")),
    default="auto",
    help="broker to start when no --mqtt is given [auto: mosquitto if installed, else amqtt]",
)
@click.option("--exit-after", type=float, metavar="S", help="stop cleanly after S seconds")
@click.option(
    "--first-fault",
    type=float,
    default=600.0,
    metavar="S",
    help="simulated seconds until the demo's pump fails; its cold room warms 300 s later [600]",
)
@pass_settings
def demo(
    settings: Settings,
    region: Path | None,
    port: int | None,
    speed: float,
    embedded_broker: Literal["auto", "mosquitto", "amqtt"],  # one of the click.Choice above
    exit_after: float | None,
    first_fault: float,
) -> int:
    """Run the whole system locally on embedded defaults: broker, gateway, devices, planner, dashboard."""
    from gateway.process.demo import run_demo

    return run_demo(
        settings,
        region=region,
        port=port,
        speed=speed,
        embedded_broker=embedded_broker,
        exit_after=exit_after,
        first_fault=first_fault,
    )
