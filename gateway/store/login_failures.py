"""Failed logins counted per key in the store, so every dashboard worker sees the same count.

The keys and what a count means (how long to wait) are the dashboard's business (dashboard/web/ratelimit.py);
this module only counts atomically, forgets counts that have gone quiet, and clears a key.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.store.models import LoginFailures


def counts(session: Session, keys: Iterable[str], since: datetime) -> dict[str, tuple[int, datetime]]:
    """Failures and the time of the last one, for each of `keys` that failed since `since`."""
    query = select(LoginFailures).where(
        LoginFailures.key.in_(list(keys)), LoginFailures.last_failed_at >= since
    )
    return {r.key: (r.failures, r.last_failed_at) for r in session.scalars(query)}


def _bump(session: Session, key: str, now: datetime, since: datetime) -> bool:
    """One more failure on a live count (in one UPDATE, so concurrent workers never lose one)."""
    result = session.execute(
        update(LoginFailures)
        .where(LoginFailures.key == key, LoginFailures.last_failed_at >= since)
        .values(failures=LoginFailures.failures + 1, last_failed_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def add_failure(session: Session, key: str, now: datetime, since: datetime) -> int:
    """Count one failure against `key` (a count quiet since before `since` starts again); the new count."""
    if not _bump(session, key, now, since):
        stale = (LoginFailures.key == key) & (LoginFailures.last_failed_at < since)
        session.execute(delete(LoginFailures).where(stale).execution_options(synchronize_session=False))
        try:
            with session.begin_nested():
                session.add(LoginFailures(key=key, failures=1, last_failed_at=now))
        except IntegrityError:  # another worker started this count a moment ago
            _bump(session, key, now, since)
    return session.scalar(select(LoginFailures.failures).where(LoginFailures.key == key)) or 1


def clear(session: Session, key: str) -> None:
    """Forget `key`'s failures (its right password was given)."""
    session.execute(
        delete(LoginFailures).where(LoginFailures.key == key).execution_options(synchronize_session=False)
    )


def prune(session: Session, since: datetime) -> None:
    """Forget every count quiet since before `since` (keeps guessed names from piling up)."""
    session.execute(
        delete(LoginFailures)
        .where(LoginFailures.last_failed_at < since)
        .execution_options(synchronize_session=False)
    )
