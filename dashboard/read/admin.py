"""What the coordinator's pages list: the region's names for the forms, dead letters, device credentials.

Read-only, like every read model: functions taking a session and returning plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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


def device_credentials(session: Session) -> list[tuple[str, str, str, CredentialState | None]]:
    """(community name, site slug, device slug, its broker account or None) for every device."""
    query = (
        select(Community.name, Site.slug, Device.slug, BrokerCredential)
        .join(Site, Site.id == Device.site_id)
        .join(Community, Community.id == Site.community_id)
        .outerjoin(BrokerCredential, BrokerCredential.device_id == Device.id)
        .order_by(Community.name, Site.slug, Device.slug)
    )
    return [
        (community, site, device, CredentialState(c.active, c.rotated_at, c.revoked_at) if c else None)
        for community, site, device, c in session.execute(query)
    ]
