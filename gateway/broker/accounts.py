"""Broker accounts in the store: provision, rotate and revoke. The only place a broker password is made.

A password is generated here, hashed at once in Mosquitto's own format and handed back to the caller to
show once; the store keeps only the hash, so the broker files can be regenerated without any password.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.broker.embedded import mosquitto_hash
from gateway.contract.topics import is_slug
from gateway.store import audit
from gateway.store.models import BrokerCredential, Community, Device, Member, utcnow

Kind = Literal["device", "member", "gateway", "bridge", "service", "node"]
PASSWORD_BYTES = 24  # 192 random bits: no dictionary or brute force applies, whatever the hash cost
MAX_PATTERNS = 32
MAX_PATTERN_LENGTH = 200
# A service may write only under the Rhizome tree; it may also read the broker's own $SYS tree (a metrics
# exporter). A bare `#` or `+/...` would reach every tree, so each pattern must name its root.
WRITE_ROOTS = ("rhizome/",)
READ_ROOTS = ("rhizome/", "$SYS/")


class ProvisionError(ValueError):
    """An account that cannot be provisioned, rotated or revoked as asked (unknown, or in the wrong state)."""


@dataclass(frozen=True)
class Issued:
    """A fresh password for one account: show it once, then forget it (the store has only its hash)."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Issued(username={self.username!r}, password=<hidden>)"  # keep it out of logs and tracebacks


@dataclass(frozen=True)
class ServiceTopics:
    """What a service account may read and write: MQTT topic filters, checked by `service_topics`."""

    reads: tuple[str, ...]
    writes: tuple[str, ...]


@dataclass(frozen=True)
class _Owner:
    username: str
    device: Device | None = None
    member_id: int | None = None
    community_id: int | None = None
    name: str | None = None


def username_of(kind: Kind, key: str | int) -> str:
    """The broker username of an account: a device's slug, else `<kind>.<key>` (`member.12`,
    `gateway.main`, `bridge.utuado` for a community's bridge, `service.metrics`, `node.<peer>`).

    Slugs cannot contain dots, so no two kinds ever collide.
    """
    if kind == "device":
        return str(key)
    if kind == "member":
        return f"member.{int(key)}"
    return f"{kind}.{key}"


def service_topics(reads: Sequence[str], writes: Sequence[str]) -> ServiceTopics:
    """Check a service's topic patterns; ProvisionError names the first one refused.

    Each must be a valid MQTT filter (`+` and `#` whole levels, `#` last) of printable ASCII without spaces
    (one ACL line each: nothing can be smuggled into the file), under `rhizome/` (reads also `$SYS/`).
    """
    if not reads and not writes:
        raise ProvisionError("a service account needs at least one --read or --write topic pattern")
    if len(reads) + len(writes) > MAX_PATTERNS:
        raise ProvisionError(f"at most {MAX_PATTERNS} topic patterns per service")
    for pattern in reads:
        _check_pattern(pattern, READ_ROOTS)
    for pattern in writes:
        _check_pattern(pattern, WRITE_ROOTS)
    return ServiceTopics(tuple(dict.fromkeys(reads)), tuple(dict.fromkeys(writes)))


def _check_pattern(pattern: str, roots: tuple[str, ...]) -> None:
    shown = repr(pattern[:80])
    if not 0 < len(pattern) <= MAX_PATTERN_LENGTH or not all("!" <= ch <= "~" for ch in pattern):
        raise ProvisionError(
            f"topic pattern {shown}: 1-{MAX_PATTERN_LENGTH} printable ASCII characters, no spaces"
        )
    if not pattern.startswith(roots):
        raise ProvisionError(f"topic pattern {shown} must start with {' or '.join(roots)}")
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if ("+" in level or "#" in level) and level not in ("+", "#"):
            raise ProvisionError(f"topic pattern {shown}: + and # must be whole levels")
        if level == "#" and i != len(levels) - 1:
            raise ProvisionError(f"topic pattern {shown}: # must be the last level")


def new_password() -> str:
    """A random URL-safe password (no ':' or newline, so it fits any MQTT URL and file)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _owner(session: Session, kind: Kind, key: str | int) -> _Owner:
    if kind == "device":
        device = session.scalar(select(Device).where(Device.slug == str(key)))
        if device is None:
            raise ProvisionError(f"no device {str(key)[:60]!r} in the store")
        return _Owner(username_of(kind, device.slug), device=device)
    if kind == "member":
        try:
            member_id = int(key)
        except ValueError:
            raise ProvisionError(f"member id must be a number, got {str(key)[:40]!r}") from None
        if session.get(Member, member_id) is None:
            raise ProvisionError(f"no member {member_id} in the store")
        return _Owner(username_of(kind, member_id), member_id=member_id)
    if kind == "bridge":
        community_id = session.scalar(select(Community.id).where(Community.slug == str(key)))
        if community_id is None:
            raise ProvisionError(f"no community {str(key)[:60]!r} in the store")
        return _Owner(username_of(kind, key), community_id=community_id)
    if kind in ("gateway", "service", "node"):
        if not is_slug(key):
            raise ProvisionError(f"{kind} name must be a slug (lowercase, digits, dashes), got {key!r}")
        return _Owner(username_of(kind, key), name=None if kind == "gateway" else str(key))
    raise ProvisionError(f"unknown account kind {kind!r}")


def _row(session: Session, username: str) -> BrokerCredential | None:
    return session.scalar(select(BrokerCredential).where(BrokerCredential.username == username))


def provision(
    session: Session,
    kind: Kind,
    key: str | int,
    *,
    rotate: bool = False,
    topics: ServiceTopics | None = None,
    local_node: str | None = None,
    actor: str = "command line",
    address: str | None = None,
) -> Issued | None:
    """Give an account a new password; None when it already has one and `rotate` is False.

    `rotate` replaces the password of an active account and refuses one that has none (provision it).
    The old password stops working when the broker reloads the regenerated files. A new service account
    needs its `topics`, a new node account `local_node` (this node's name); given for an existing one,
    they replace what it had, password or not (the ACL changes at the next reload). The change is written to
    the audit trail as done by `actor` (a dashboard account, from `address`), in the same transaction.
    """
    owner = _owner(session, kind, key)
    _check_binding(kind, owner, topics, local_node)
    row = _row(session, owner.username)
    if row is not None:
        _bind(row, topics, local_node)
    active = row is not None and row.active
    if rotate and not active:
        raise ProvisionError(f"{owner.username} has no active credentials to rotate: provision it")
    if active and not rotate:
        session.flush()
        return None
    password, now = new_password(), utcnow()
    if row is None:
        if kind == "service" and topics is None:
            raise ProvisionError(f"{owner.username}: a new service account needs its topic patterns")
        if kind == "node" and local_node is None:
            raise ProvisionError(f"{owner.username}: a new node account needs this node's name")
        row = BrokerCredential(
            username=owner.username,
            kind=kind,
            device_id=owner.device.id if owner.device else None,
            member_id=owner.member_id,
            community_id=owner.community_id,
            name=owner.name,
            created_at=now,
        )
        _bind(row, topics, local_node)
        session.add(row)
    row.password_hash, row.rotated_at, row.revoked_at = mosquitto_hash(password), now, None
    if owner.device is not None:
        owner.device.credential_ref = owner.username
    event = "credentials_rotated" if rotate else "credentials_provisioned"
    audit.record(session, event, actor, address=address, detail=f"broker account {owner.username}")
    session.flush()
    return Issued(owner.username, password)


def _check_binding(kind: Kind, owner: _Owner, topics: ServiceTopics | None, local_node: str | None) -> None:
    if topics is not None and kind != "service":
        raise ProvisionError(f"{owner.username}: only a service account takes topic patterns")
    if local_node is not None:
        if kind != "node":
            raise ProvisionError(f"{owner.username}: only a node account takes this node's name")
        if not is_slug(local_node):
            raise ProvisionError(f"this node's name must be a slug, got {local_node[:60]!r}")
        if local_node == owner.name:
            raise ProvisionError(f"{owner.username}: a peer cannot have this node's own name")


def _bind(row: BrokerCredential, topics: ServiceTopics | None, local_node: str | None) -> None:
    if topics is not None:
        row.reads, row.writes = list(topics.reads), list(topics.writes)
    if local_node is not None:
        row.local_node = local_node


def revoke(
    session: Session, kind: Kind, key: str | int, *, actor: str = "command line", address: str | None = None
) -> bool:
    """Take an account's password away (the row stays, for the record); False if it had none. Audited as
    `provision` is."""
    owner = _owner(session, kind, key)
    row = _row(session, owner.username)
    if row is None or not row.active:
        return False
    row.password_hash, row.revoked_at = None, utcnow()
    if owner.device is not None:
        owner.device.credential_ref = None
    audit.record(
        session, "credentials_revoked", actor, address=address, detail=f"broker account {owner.username}"
    )
    session.flush()
    return True


def unprovisioned_devices(session: Session) -> list[str]:
    """Slugs of devices without active credentials, for `provision --all`."""
    active = select(BrokerCredential.device_id).where(
        BrokerCredential.device_id.is_not(None), BrokerCredential.password_hash.is_not(None)
    )
    return list(session.scalars(select(Device.slug).where(Device.id.not_in(active)).order_by(Device.slug)))


def provisioned_devices(session: Session) -> list[str]:
    """Slugs of devices with active credentials, for `rotate --all`."""
    query = (
        select(Device.slug)
        .join(BrokerCredential, BrokerCredential.device_id == Device.id)
        .where(BrokerCredential.password_hash.is_not(None))
        .order_by(Device.slug)
    )
    return list(session.scalars(query))


def unprovisioned_members(session: Session) -> list[int]:
    """Ids of active members without active credentials, for `provision --all-members`."""
    active = select(BrokerCredential.member_id).where(
        BrokerCredential.member_id.is_not(None), BrokerCredential.password_hash.is_not(None)
    )
    query = select(Member.id).where(Member.active, Member.id.not_in(active)).order_by(Member.id)
    return list(session.scalars(query))
