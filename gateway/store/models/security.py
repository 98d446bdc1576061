"""The dashboard's security state and its record: signed-in sessions, login failure counts, audit events.

Kept in the store because every dashboard worker shares it: a session ended or a failure counted by one
worker holds for all of them. No password and no session token is ever stored (only a token's SHA-256).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models.base import Base, BigId, utcnow
from gateway.store.models.vocab import SECURITY_EVENT_KINDS, one_of


class WebSession(Base):
    """One signed-in dashboard session; the cookie holds a random token whose hash is `token_hash`.

    Deleting the row ends the session everywhere (logout, idle or absolute timeout, a changed password).
    `stamp` fingerprints the account's password hash at login, so a replaced password ends old sessions.
    """

    __tablename__ = "web_sessions"
    __table_args__ = (Index(None, "username"), Index(None, "seen_at"))

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(48))
    stamp: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginFailures(Base):
    """Failed logins counted under one key (an account, or an account from one address) for the backoff."""

    __tablename__ = "login_failures"
    __table_args__ = (CheckConstraint("failures >= 1", name="failures"), Index(None, "last_failed_at"))

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int]
    last_failed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SecurityEvent(Base):
    """One line of the audit trail: a login, logout, throttle, account or credential change."""

    __tablename__ = "security_events"
    __table_args__ = (one_of("kind", SECURITY_EVENT_KINDS), Index(None, "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64))  # who: the account signed in, or the name tried
    address: Mapped[str] = mapped_column(String(64))  # the client's address, "" from the command line
    detail: Mapped[str] = mapped_column(String(200))
