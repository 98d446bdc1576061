"""`rhizome bridge config --community X`: print or write the community broker's mosquitto.conf."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.broker.bridge import (
    DEFAULT_QUEUE,
    BridgeCommunity,
    BridgeOptions,
    messages_per_hour,
    render_community_conf,
)
from gateway.contract.target import MqttTarget
from gateway.process.context import PATH, pass_settings
from gateway.process.settings import Settings

if TYPE_CHECKING:  # the store is imported by the handler only, so `rhizome --help` stays fast
    from sqlalchemy.orm import Session

USERNAME_ENV = "RHIZOME_BRIDGE_USERNAME"  # Settings.bridge_username
PASSWORD_ENV = "RHIZOME_BRIDGE_PASSWORD"  # Settings.bridge_password


@click.group("bridge", short_help="community brokers bridged to the regional broker")
def bridge() -> None:
    """Community brokers bridged to the regional broker."""


@bridge.command(
    "config",
    short_help="print a complete mosquitto.conf for a community's own broker",
    help="Devices publish to their community's broker; it bridges to the regional broker and queues "
    "(bounded, on disk) while the uplink is down. The community must exist in the store (or in --region "
    f"FILE). Credentials: --credentials FILE (one line user:password), else {USERNAME_ENV} and "
    f"{PASSWORD_ENV}, else the --regional URL. The config names a password file and an ACL file for the "
    "community's devices: --broker-dir DIR writes both there from the store (each device confined to its own "
    "topics) and points the config at them.",
)
@click.option("--community", required=True, metavar="SLUG", help="the community this broker serves")
@click.option("--regional", required=True, metavar="URL", help="regional broker, mqtt[s]://host:port")
@click.option("--credentials", type=PATH, metavar="FILE", help="user:password for the regional broker")
@click.option("--region", type=PATH, metavar="FILE", help="look the community up in a region file")
@click.option(
    "--queue",
    type=int,
    default=DEFAULT_QUEUE,
    metavar="QUEUE",
    help=f"messages queued while the uplink is down [{DEFAULT_QUEUE}]",
)
@click.option(
    "--listener", default="1883", metavar="LISTENER", help="local listener: port [and address] [1883]"
)
@click.option("-o", "--output", type=PATH, metavar="OUTPUT", help="write here (mode 0600) instead of stdout")
@click.option(
    "--broker-dir",
    type=PATH,
    metavar="DIR",
    help="also write the community broker's rhizome.passwd and rhizome.acl here, from the store "
    "[not written; the config names /etc/mosquitto/rhizome.{passwd,acl}]",
)
@pass_settings
def run_bridge_config(
    settings: Settings,
    community: str,
    regional: str,
    credentials: Path | None,
    region: Path | None,
    queue: int,
    listener: str,
    output: Path | None,
    broker_dir: Path | None,
) -> int:
    """Look the community up, read the credentials, render the config (and the community's broker files)."""
    if broker_dir is not None and region is not None:
        raise ValueError("--broker-dir needs the store (device accounts live there), not --region")
    found = _community(settings, community, region)
    target = regional_target(regional, credentials, settings)
    options = BridgeOptions(regional=target, queue_messages=queue, listener=listener)
    if broker_dir is not None:
        files = _write_community_files(settings, found.slug, broker_dir)
        options = replace(options, password_file=str(files[0]), acl_file=str(files[1]))
    text = render_community_conf(found, options)
    if output is None:
        sys.stdout.write(text)
        return 0
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a password
    os.fchmod(fd, 0o600)  # also when it existed with a wider mode
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {output} for {found.slug}", file=sys.stderr)
    return 0


def _write_community_files(settings: Settings, slug: str, directory: Path) -> tuple[Path, Path]:
    """The community's device accounts from the store, as the community broker's password and ACL files."""
    from sqlalchemy.orm import Session

    from gateway.broker.files import community_files
    from gateway.store.db import make_engine

    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            files = community_files(session, slug, directory.resolve())
    finally:
        engine.dispose()
    wrote = f"wrote {files.password_file} and {files.acl_file}: {files.accounts} device accounts"
    print(wrote, file=sys.stderr)
    return files.password_file, files.acl_file


def regional_target(url: str, credentials: Path | None, settings: Settings) -> MqttTarget:
    """The regional broker with the bridge's credentials: file, then settings (environment), then URL."""
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
    if settings.bridge_username and settings.bridge_password:
        return replace(target, username=settings.bridge_username, password=settings.bridge_password)
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
