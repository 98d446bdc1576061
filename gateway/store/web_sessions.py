"""Signed-in dashboard sessions kept in the store, so that ending one ends it for every worker.

The browser's cookie carries a random token; the store keeps only its SHA-256, the account, a fingerprint
of the account's password hash and when the session began and was last used. A session ends when its row
goes: at logout, after `idle` without a request, `maximum` after it began, or once its account is gone or
has a new password (the fingerprint no longer matches).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from gateway.store.models import WebSession, utcnow

TOKEN_BYTES = 32


@dataclass(frozen=True)
class SessionLimits:
    """How long a session lives: `idle` since its last request, `maximum` since it began."""

    idle: timedelta
    maximum: timedelta

    def __post_init__(self) -> None:
        if self.idle <= timedelta(0) or self.maximum < self.idle:
            raise ValueError("session idle timeout must be > 0 and at most the maximum lifetime")

    @property
    def touch_every(self) -> timedelta:
        """How stale `seen_at` may get before a request writes it again (not a write per request)."""
        return min(timedelta(minutes=1), self.idle / 20)


@dataclass(frozen=True)
class Resumed:
    """What a token stands for: the account signed in, or None with why the session just ended."""

    username: str | None
    ended: str | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(
    session: Session, username: str, stamp: str, address: str | None, now: datetime | None = None
) -> str:
    """Start a session for `username`; the token returned goes in the cookie and nowhere else."""
    now = now or utcnow()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        WebSession(
            token_hash=_hash(token),
            username=username,
            stamp=stamp,
            address=(address or "")[:64],
            created_at=now,
            seen_at=now,
        )
    )
    return token


def resume(
    session: Session,
    token: str,
    stamp_of: Callable[[str], str | None],
    limits: SessionLimits,
    now: datetime | None = None,
) -> Resumed:
    """The account `token` is signed in as, ending the session if it is idle, too old or out of date.

    `stamp_of(username)` is the account's current fingerprint, None when the account no longer exists.
    """
    now = now or utcnow()
    row = session.get(WebSession, _hash(token))
    if row is None:
        return Resumed(None)
    stamp = stamp_of(row.username)
    ended = (
        "idle timeout"
        if now - row.seen_at > limits.idle
        else "maximum lifetime reached"
        if now - row.created_at > limits.maximum
        else "account removed"
        if stamp is None
        else "password changed"
        if stamp != row.stamp
        else None
    )
    if ended is not None:
        session.delete(row)
        return Resumed(None, ended)
    if now - row.seen_at > limits.touch_every:
        row.seen_at = now
    return Resumed(row.username)


def end_session(session: Session, token: str) -> str | None:
    """End the session of `token` (logout); the account it was signed in as, None if none was."""
    row = session.get(WebSession, _hash(token))
    if row is None:
        return None
    session.delete(row)
    return row.username


def end_sessions_of(session: Session, username: str) -> int:
    """End every session of `username` (its account was replaced or removed); how many there were."""
    result = session.execute(
        delete(WebSession).where(WebSession.username == username).execution_options(synchronize_session=False)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


def prune(session: Session, limits: SessionLimits, now: datetime | None = None) -> int:
    """Delete sessions that have timed out (the rows of browsers that never came back)."""
    now = now or utcnow()
    stale = or_(WebSession.seen_at < now - limits.idle, WebSession.created_at < now - limits.maximum)
    result = session.execute(delete(WebSession).where(stale).execution_options(synchronize_session=False))
    return result.rowcount or 0  # type: ignore[attr-defined]
