"""`rhizome devices provision | rotate | revoke`: broker accounts from the store, then the broker's files.

The commands live in the gateway (they need the store) but sit under `rhizome devices`: the root's table
(gateway/process/cli.py) adds the commands of `accounts` to that group, so the devices package never
imports anything but the contract.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from gateway.process.context import PATH, pass_settings
from gateway.process.settings import Settings

ACTIONS = (
    ("provision", "give devices (member apps, gateways, bridges, services, nodes) broker credentials"),
    ("rotate", "replace the password of provisioned accounts; the old one stops working on reload"),
    ("revoke", "take accounts' credentials away; the broker refuses them after the reload"),
)


@click.group("accounts")
def accounts() -> None:
    """Broker accounts (its commands join `rhizome devices`)."""


def _account_command(action: str, text: str) -> click.Command:
    """The click command of one action; revoke takes neither --all nor --secrets-dir."""
    params: list[click.Parameter] = [
        click.Argument(["slugs"], nargs=-1, metavar="[DEVICE]..."),
        click.Option(["--member"], type=int, multiple=True, metavar="ID", help="a member's app"),
        click.Option(["--gateway"], multiple=True, metavar="NAME", help="a gateway account"),
        click.Option(
            ["--bridge"], multiple=True, metavar="COMMUNITY", help="the bridge of a community's own broker"
        ),
        click.Option(["--service"], multiple=True, metavar="NAME", help="a service with its own topics"),
        click.Option(["--node"], multiple=True, metavar="PEER", help="a peer node of the federation"),
    ]
    if action != "revoke":
        params += [
            click.Option(
                ["--all", "every"], is_flag=True, help="every device (provision: those without one)"
            ),
            click.Option(
                ["--secrets-dir"],
                type=PATH,
                metavar="DIR",
                help="write each password to DIR/<username>.password (mode 0600) instead of printing it",
            ),
        ]
    if action == "provision":
        params += [
            click.Option(["--all-members"], is_flag=True, help="every active member without one"),
            click.Option(
                ["--read"],
                multiple=True,
                metavar="PATTERN",
                help="a topic filter the --service may read (rhizome/... or $SYS/...); replaces its list",
            ),
            click.Option(
                ["--write"],
                multiple=True,
                metavar="PATTERN",
                help="a topic filter the --service may write (rhizome/...); replaces its list",
            ),
            click.Option(
                ["--this-node"],
                metavar="NAME",
                help="this node's name in the federation, for a new --node account",
            ),
        ]
    params += [
        click.Option(
            ["--broker-dir"],
            type=PATH,
            metavar="DIR",
            help="where rhizome.passwd and rhizome.acl go [RHIZOME_BROKER_DIR, <data dir>/broker]",
        ),
        click.Option(
            ["--reload-pid"],
            type=PATH,
            metavar="FILE",
            help="SIGHUP the broker whose pid is in FILE afterwards [RHIZOME_BROKER_PID_FILE, none]",
        ),
    ]

    @pass_settings
    def callback(settings: Settings, **options: Any) -> int:
        return run_accounts(settings, action, **options)

    details = (
        "Passwords are printed once (or written to --secrets-dir); the store keeps only hashes. The password "
        "and ACL files are always regenerated from the store. DEVICE: device slugs."
    )
    return click.Command(
        action,
        callback=callback,
        params=params,
        short_help=text,
        help=f"{text[:1].upper()}{text[1:]}. {details}",
    )


for _action, _text in ACTIONS:
    accounts.add_command(_account_command(_action, _text))


def run_accounts(
    settings: Settings,
    action: str,
    *,
    slugs: Sequence[str] = (),
    member: Sequence[int] = (),
    gateway: Sequence[str] = (),
    bridge: Sequence[str] = (),
    service: Sequence[str] = (),
    node: Sequence[str] = (),
    every: bool = False,
    all_members: bool = False,
    read: Sequence[str] = (),
    write: Sequence[str] = (),
    this_node: str | None = None,
    secrets_dir: Path | None = None,
    broker_dir: Path | None = None,
    reload_pid: Path | None = None,
) -> int:
    """Provision, rotate or revoke the named accounts (and those `every`/`all_members` stand for)."""
    from gateway.broker.accounts import Issued, provision, revoke, service_topics, username_of
    from gateway.broker.files import reload_broker, write_broker_files
    from gateway.store.db import make_engine, make_session_factory

    named = (slugs, member, gateway, bridge, service, node)
    if action != "provision" and not (any(named) or every or all_members):
        raise ValueError(
            f"{action}: name at least one device, --member, --gateway, --bridge, --service or --node"
        )
    if (read or write) and len(service) != 1:
        raise ValueError("--read and --write give the topics of exactly one --service")
    if this_node is not None and not node:
        raise ValueError("--this-node goes with --node PEER")
    topics = service_topics(read, write) if read or write else None
    acl_changed: list[str] = []
    broker_dir = broker_dir or settings.effective_broker_dir
    pid_file = reload_pid or settings.broker_pid_file
    issued: list[Issued] = []
    changed: list[str] = []
    engine = make_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine).begin() as session:
            selected = _selection(session, action, named, every, all_members)
            for kind, key in dict.fromkeys(selected):  # once each, in the order given
                if action == "revoke":
                    if revoke(session, kind, key):
                        changed.append(username_of(kind, key))
                    else:
                        print(f"{kind} {key}: no active credentials, nothing to revoke", file=sys.stderr)
                    continue
                given_topics = topics if kind == "service" else None
                given_node = this_node if kind == "node" else None
                fresh = provision(
                    session,
                    kind,
                    key,
                    rotate=action == "rotate",
                    topics=given_topics,
                    local_node=given_node,
                )
                if fresh is None and (given_topics is not None or given_node is not None):
                    acl_changed.append(username_of(kind, key))
                    print(f"{kind} {key}: already provisioned; its ACL was updated", file=sys.stderr)
                elif fresh is None:
                    print(f"{kind} {key}: already provisioned (use rotate to replace)", file=sys.stderr)
                else:
                    issued.append(fresh)
            if secrets_dir is not None and issued:
                _write_secrets(secrets_dir, issued)  # before the commit: a failure changes nothing
            files = write_broker_files(session, broker_dir)
    finally:
        engine.dispose()
    if issued and secrets_dir is None:
        print("# username password (shown once: the store keeps only a hash)")
        for item in issued:
            print(f"{item.username} {item.password}")
    elif issued:
        print(f"wrote {len(issued)} password files to {secrets_dir}", file=sys.stderr)
    if changed:
        print(f"revoked: {', '.join(changed)}", file=sys.stderr)
    print(f"{files.password_file}, {files.acl_file}: {files.accounts} active accounts", file=sys.stderr)
    if files.dropped:
        print(
            f"dropped {', '.join(files.dropped)}: not in the store (added with mosquitto_passwd?); "
            "give them accounts with --gateway, --bridge, --service or --node",
            file=sys.stderr,
        )
    if pid_file is not None:
        pid = reload_broker(pid_file)
        print(f"broker pid {pid} reloaded", file=sys.stderr)
    elif issued or changed or acl_changed or files.dropped:
        print("reload the broker to apply: kill -HUP <mosquitto pid> (or --reload-pid FILE)", file=sys.stderr)
    return 0


def _selection(
    session: Any,
    action: str,
    named: Sequence[Sequence[str | int]],
    every: bool,
    all_members: bool,
) -> list[tuple[Any, str | int]]:
    """The accounts named on the command line (devices, members, gateways, bridges, services, nodes)
    plus those --all / --all-members stand for."""
    from gateway.broker.accounts import provisioned_devices, unprovisioned_devices, unprovisioned_members

    kinds = ("device", "member", "gateway", "bridge", "service", "node")
    selected: list[tuple[Any, str | int]] = [
        (kind, key) for kind, keys in zip(kinds, named, strict=True) for key in keys
    ]
    if every:
        devices = provisioned_devices if action == "rotate" else unprovisioned_devices
        selected += [("device", s) for s in devices(session)]
    if all_members:
        selected += [("member", m) for m in unprovisioned_members(session)]
    return selected


def _write_secrets(directory: Path, issued: list[Any]) -> None:
    """One 0600 file per account holding just its password."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for item in issued:
        path = directory / f"{item.username}.password"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT; force it
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(item.password + "\n")
