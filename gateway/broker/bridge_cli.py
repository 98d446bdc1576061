"""`rhizome bridge config --community X`: print or write the community broker's mosquitto.conf."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.broker.bridge import (
    DEFAULT_QUEUE,
    BridgeCommunity,
    BridgeOptions,
    messages_per_hour,
    render_community_conf,
)
from gateway.contract.protocol import MqttTarget
from gateway.process.settings import Settings

if TYPE_CHECKING:  # the store is imported by the handler only, so `rhizome --help` stays fast
    from sqlalchemy.orm import Session

USERNAME_ENV = "RHIZOME_BRIDGE_USERNAME"
PASSWORD_ENV = "RHIZOME_BRIDGE_PASSWORD"


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `rhizome bridge config`."""
    bridge = commands.add_parser("bridge", help="community brokers bridged to the regional broker")
    sub = bridge.add_subparsers(title="bridge commands", metavar="CMD")
    conf = sub.add_parser(
        "config",
        help="print a complete mosquitto.conf for a community's own broker",
        description="Devices publish to their community's broker; it bridges to the regional broker and "
        "queues (bounded, on disk) while the uplink is down. The community must exist in the store (or in "
        f"--region FILE). Credentials: --credentials FILE (one line user:password), else {USERNAME_ENV} "
        f"and {PASSWORD_ENV}, else the --regional URL.",
    )
    conf.add_argument("--community", required=True, metavar="SLUG", help="the community this broker serves")
    conf.add_argument("--regional", required=True, metavar="URL", help="regional broker, mqtt[s]://host:port")
    conf.add_argument(
        "--credentials", type=Path, metavar="FILE", help="user:password for the regional broker"
    )
    conf.add_argument("--region", type=Path, metavar="FILE", help="look the community up in a region file")
    conf.add_argument(
        "--queue",
        type=int,
        default=DEFAULT_QUEUE,
        help=f"messages queued while the uplink is down [{DEFAULT_QUEUE}]",
    )
    conf.add_argument("--listener", default="1883", help="local listener: port [and address] [1883]")
    conf.add_argument("-o", "--output", type=Path, help="write here (mode 0600) instead of stdout")
    conf.set_defaults(handler=run_bridge_config)


def run_bridge_config(settings: Settings, args: argparse.Namespace) -> int:
    """Look the community up, read the credentials, render the config."""
    community = _community(settings, args.community, args.region)
    regional = regional_target(args.regional, args.credentials, os.environ)
    options = BridgeOptions(regional=regional, queue_messages=args.queue, listener=args.listener)
    text = render_community_conf(community, options)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a password
    os.fchmod(fd, 0o600)  # also when it existed with a wider mode
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {args.output} for {community.slug}", file=sys.stderr)
    return 0


def regional_target(url: str, credentials: Path | None, environ: Mapping[str, str]) -> MqttTarget:
    """The regional broker with the bridge's credentials: file, then environment, then URL."""
    target = MqttTarget.from_url(url)
    if credentials is not None:
        try:
            line = credentials.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ValueError(f"cannot read credentials from {credentials}: {exc}") from exc
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise ValueError(f"{credentials}: expected one line user:password")
        return replace(target, username=user, password=password)
    if environ.get(USERNAME_ENV) and environ.get(PASSWORD_ENV):
        return replace(target, username=environ[USERNAME_ENV], password=environ[PASSWORD_ENV])
    return target


def _community(settings: Settings, slug: str, region_file: Path | None) -> BridgeCommunity:
    if region_file is not None:
        from gateway.store.region import read_region

        return community_from_region(read_region(region_file), slug)
    from sqlalchemy.orm import Session

    from gateway.store.db import make_engine

    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            return community_from_store(session, slug)
    finally:
        engine.dispose()


def community_from_store(session: Session, slug: str) -> BridgeCommunity:
    """The community, its members and its devices' rate from the store; ValueError if unknown."""
    from sqlalchemy import select

    from gateway.store.models import Community, Device, Member, Site

    community = session.scalar(select(Community).where(Community.slug == slug))
    if community is None:
        known = session.scalars(select(Community.slug).order_by(Community.slug).limit(10)).all()
        raise ValueError(f"no community {slug!r} in the store (some known: {', '.join(known) or 'none'})")
    members = session.scalars(
        select(Member.id).where(Member.community_id == community.id).order_by(Member.id)
    )
    intervals = session.scalars(
        select(Device.expected_interval_s).join(Site).where(Site.community_id == community.id)
    ).all()
    return BridgeCommunity(community.slug, community.name, tuple(members), messages_per_hour(intervals))


def community_from_region(data: Mapping[str, Any], slug: str) -> BridgeCommunity:
    """The community from a region file (no member ids there); ValueError if unknown."""
    for spec in data["communities"]:
        if spec["slug"] == slug:
            devices = [d for site in spec.get("sites", []) for d in site.get("devices", [])]
            intervals = [d.get("interval_s", 60) for d in devices]
            return BridgeCommunity(slug, spec["name"], None, messages_per_hour(intervals))
    known = ", ".join(c["slug"] for c in data["communities"][:10])
    raise ValueError(f"no community {slug!r} in the region file (some known: {known})")
