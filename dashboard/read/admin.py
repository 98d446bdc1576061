"""What the coordinator's pages list: the region's names for the forms, dead letters, device credentials.

Read-only, like every read model: functions taking a session and returning plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashboard.read.links import shown_state
from gateway.store.models import BrokerCredential, Community, DeadLetter, Device, Good, Site

PAYLOAD_SHOWN = 400  # bytes of a dead letter's payload a page shows


@dataclass(frozen=True)
class DeadLetterRow:
    """A refused message: where and why, and the start of its payload as text."""

    received_at: datetime
    topic: str
    reason: str
    detail: str
    text: str  # the first PAYLOAD_SHOWN bytes, decoded leniently
    size: int  # the whole payload's length in bytes


@dataclass(frozen=True)
class CredentialState:
    """A device's broker account: active, or revoked and since when."""

    active: bool
    rotated_at: datetime
    revoked_at: datetime | None


def community_choices(session: Session) -> list[tuple[str, str]]:
    """(slug, name) of every community, by name: the forms' community lists."""
    return [
        (s, n) for s, n in session.execute(select(Community.slug, Community.name).order_by(Community.name))
    ]


def good_choices(session: Session) -> list[tuple[str, str]]:
    """(slug, name) of every good in the catalogue, by name."""
    return [(s, n) for s, n in session.execute(select(Good.slug, Good.name).order_by(Good.name))]


def dead_letter_reasons(session: Session) -> list[tuple[str, int]]:
    """(reason, how many) over every dead letter, by reason."""
    query = select(DeadLetter.reason, func.count()).group_by(DeadLetter.reason).order_by(DeadLetter.reason)
    return [(reason, int(count)) for reason, count in session.execute(query)]


def dead_letters(session: Session, limit: int, reason: str | None = None) -> list[DeadLetterRow]:
    """The newest `limit` dead letters, optionally of one reason."""
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if reason is not None:
        query = query.where(DeadLetter.reason == reason)
    return [
        DeadLetterRow(
            d.received_at,
            d.topic,
            d.reason,
            d.detail,
            d.payload[:PAYLOAD_SHOWN].decode("utf-8", errors="replace"),
            len(d.payload),
        )
        for d in session.scalars(query)
    ]


@dataclass(frozen=True)
class DeviceLine:
    """One device on the coordinator's devices page: where, what, its state and its broker account."""

    community: str
    site: str
    device: str
    kind: str
    state: str
    credential: CredentialState | None


def device_credentials(
    session: Session,
    community: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[DeviceLine]:
    """Every device (of a community slug, kind or shown state, when given) with its broker account, by
    community, site and device."""
    shown = shown_state()
    query = (
        select(Community.name, Site.slug, Device.slug, Device.kind, shown, BrokerCredential)
        .join(Site, Site.id == Device.site_id)
        .join(Community, Community.id == Site.community_id)
        .outerjoin(BrokerCredential, BrokerCredential.device_id == Device.id)
        .order_by(Community.name, Site.slug, Device.slug)
    )
    if community is not None:
        query = query.where(Community.slug == community)
    if kind is not None:
        query = query.where(Device.kind == kind)
    if state is not None:
        query = query.where(shown == state)
    return [
        DeviceLine(
            name,
            site,
            device,
            device_kind,
            device_state,
            CredentialState(c.active, c.rotated_at, c.revoked_at) if c else None,
        )
        for name, site, device, device_kind, device_state, c in session.execute(
            query.limit(limit).offset(offset)
        )
    ]


def device_count(
    session: Session, community: str | None = None, kind: str | None = None, state: str | None = None
) -> int:
    """How many devices the same filter matches."""
    query = (
        select(func.count(Device.id))
        .join(Site, Site.id == Device.site_id)
        .join(Community, Community.id == Site.community_id)
    )
    if community is not None:
        query = query.where(Community.slug == community)
    if kind is not None:
        query = query.where(Device.kind == kind)
    if state is not None:
        query = query.where(shown_state() == state)
    return int(session.scalar(query) or 0)
