"""The security audit trail: logins, logouts, throttles, account and credential changes, newest first.

Callers record an event in the transaction of the change it describes, so a change rolled back leaves no
line behind. Never pass a password or a session token: an event names who, from where, and what, briefly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store.models import SecurityEvent, utcnow
from gateway.store.models.vocab import SECURITY_EVENT_KINDS

MAX_ACCOUNT: Final = 64
MAX_ADDRESS: Final = 64
MAX_DETAIL: Final = 200


@dataclass(frozen=True)
class Event:
    """One audit line as pages show it."""

    at: datetime
    kind: str
    account: str
    address: str
    detail: str


def record(
    session: Session,
    kind: str,
    account: str,
    *,
    address: str | None = None,
    detail: str = "",
    at: datetime | None = None,
) -> None:
    """Add one event; `address` is the client's (None from the command line). Long values are cut."""
    if kind not in SECURITY_EVENT_KINDS:
        raise ValueError(f"unknown security event kind {kind!r}")
    session.add(
        SecurityEvent(
            at=at or utcnow(),
            kind=kind,
            account=account[:MAX_ACCOUNT],
            address=(address or "")[:MAX_ADDRESS],
            detail=detail[:MAX_DETAIL],
        )
    )


def count(session: Session, kind: str | None = None) -> int:
    """How many events there are (of `kind`, when given)."""
    query = select(func.count()).select_from(SecurityEvent)
    if kind is not None:
        query = query.where(SecurityEvent.kind == kind)
    return session.scalar(query) or 0


def recent(session: Session, limit: int, offset: int = 0, kind: str | None = None) -> list[Event]:
    """Events newest first (ties by insertion order), `limit` of them after skipping `offset`."""
    query = select(SecurityEvent).order_by(SecurityEvent.at.desc(), SecurityEvent.id.desc())
    if kind is not None:
        query = query.where(SecurityEvent.kind == kind)
    rows = session.scalars(query.limit(limit).offset(offset))
    return [Event(r.at, r.kind, r.account, r.address, r.detail) for r in rows]
