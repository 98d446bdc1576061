"""`rhizome devices provision | rotate | revoke`: broker accounts from the store, then the broker's files.

The commands live in the gateway (they need the store) but sit under `rhizome devices`, added to that
group from here, so the devices package never imports anything but the contract.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gateway.process.settings import Settings


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add provision, rotate and revoke to the `devices` group (creating the group if it is absent)."""
    devices = commands.choices.get("devices") or commands.add_parser("devices", help="device side")
    actions = next((a for a in devices._actions if isinstance(a, argparse._SubParsersAction)), None)
    if actions is None:
        actions = devices.add_subparsers(title="devices commands", metavar="CMD")
    specs = (
        ("provision", "give devices (and member apps, the gateway) broker credentials; write broker files"),
        ("rotate", "replace the password of provisioned accounts; the old one stops working on reload"),
        ("revoke", "take accounts' credentials away; the broker refuses them after the reload"),
    )
    for name, text in specs:
        sub = actions.add_parser(
            name,
            help=text,
            description=text + ". Passwords are printed once (or written to --secrets-dir); the store keeps "
            "only hashes. The password and ACL files are always regenerated from the store.",
        )
        sub.add_argument("slugs", nargs="*", metavar="DEVICE", help="device slugs")
        sub.add_argument(
            "--member", type=int, action="append", default=[], metavar="ID", help="a member's app"
        )
        sub.add_argument("--gateway", action="append", default=[], metavar="NAME", help="a gateway account")
        if name != "revoke":
            sub.add_argument("--all", action="store_true", help="every device (provision: those without one)")
            sub.add_argument(
                "--secrets-dir",
                type=Path,
                metavar="DIR",
                help="write each password to DIR/<username>.password (mode 0600) instead of printing it",
            )
        if name == "provision":
            sub.add_argument("--all-members", action="store_true", help="every active member without one")
        sub.add_argument(
            "--broker-dir",
            type=Path,
            metavar="DIR",
            help="where rhizome.passwd and rhizome.acl go [RHIZOME_BROKER_DIR, <data dir>/broker]",
        )
        sub.add_argument(
            "--reload-pid",
            type=Path,
            metavar="FILE",
            help="SIGHUP the broker whose pid is in FILE afterwards [RHIZOME_BROKER_PID_FILE, none]",
        )
        sub.set_defaults(handler=_run, action=name)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.broker.accounts import Issued, provision, revoke, username_of
    from gateway.broker.files import reload_broker, write_broker_files
    from gateway.store.db import make_engine, make_session_factory

    action: str = args.action
    secrets_dir: Path | None = getattr(args, "secrets_dir", None)
    every = getattr(args, "all", False) or getattr(args, "all_members", False)
    if action != "provision" and not (args.slugs or args.member or args.gateway or every):
        raise ValueError(f"{action}: name at least one device, --member or --gateway")
    broker_dir = args.broker_dir or settings.effective_broker_dir
    pid_file = args.reload_pid or settings.broker_pid_file
    issued: list[Issued] = []
    changed: list[str] = []
    engine = make_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine).begin() as session:
            selected = _selection(session, args)
            for kind, key in dict.fromkeys(selected):  # once each, in the order given
                if action == "revoke":
                    if revoke(session, kind, key):
                        changed.append(username_of(kind, key))
                    else:
                        print(f"{kind} {key}: no active credentials, nothing to revoke", file=sys.stderr)
                    continue
                fresh = provision(session, kind, key, rotate=action == "rotate")
                if fresh is None:
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
    if pid_file is not None:
        pid = reload_broker(pid_file)
        print(f"broker pid {pid} reloaded", file=sys.stderr)
    elif issued or changed:
        print("reload the broker to apply: kill -HUP <mosquitto pid> (or --reload-pid FILE)", file=sys.stderr)
    return 0


def _selection(session: Any, args: argparse.Namespace) -> list[tuple[Any, str | int]]:
    """The accounts named on the command line plus those --all / --all-members stand for."""
    from gateway.broker.accounts import provisioned_devices, unprovisioned_devices, unprovisioned_members

    selected: list[tuple[Any, str | int]] = [("device", s) for s in args.slugs]
    selected += [("member", m) for m in args.member] + [("gateway", g) for g in args.gateway]
    if getattr(args, "all", False):
        every = provisioned_devices if args.action == "rotate" else unprovisioned_devices
        selected += [("device", s) for s in every(session)]
    if getattr(args, "all_members", False):
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
