"""Server-side sessions for the dashboard: the signed cookie holds only a random token; the store says
whether it still stands for a signed-in account (gateway/store/web_sessions.py).

So logout ends exactly that session on every worker (a copied cookie is worth nothing afterwards), an idle
or too-old session ends, and an account re-added with a new password (or removed) is signed out everywhere
on its next request. Each sign-in, sign-out and ended session is written to the audit trail.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from flask import Flask, current_app, request, session

from dashboard.web.accounts import Account, AccountStore
from dashboard.web.store import get_store
from gateway.store import audit, web_sessions
from gateway.store.web_sessions import SessionLimits

log = logging.getLogger(__name__)
TOKEN = "sid"  # the cookie session's key for the token
LIMITS = "rhizome.session_limits"


def init_app(app: Flask) -> None:
    """Read the idle and maximum lifetimes from the app config."""
    app.extensions[LIMITS] = SessionLimits(
        idle=timedelta(seconds=app.config["SESSION_IDLE_S"]),
        maximum=timedelta(seconds=app.config["SESSION_MAX_S"]),
    )


def stamp(account: Account) -> str:
    """A fingerprint of the account's password hash: a new password (a new hash) ends older sessions."""
    return hashlib.sha256(account.password_hash.encode()).hexdigest()[:32]


def client_address() -> str:
    """The client's address: the peer, or the trusted proxy's X-Forwarded-For (see app.py's ProxyFix)."""
    return (request.remote_addr or "")[:64]


def begin(account: Account) -> None:
    """Sign `account` in: a fresh cookie session holding a new token, and a row for it in the store."""
    limits: SessionLimits = current_app.extensions[LIMITS]
    with get_store().sessions.begin() as db:
        web_sessions.prune(db, limits)
        token = web_sessions.open_session(db, account.username, stamp(account), client_address())
        audit.record(db, "login_ok", account.username, address=client_address(), detail=account.role)
    session.clear()  # a fresh session (and CSRF token) on every login
    session[TOKEN] = token
    session.permanent = True


def resume(accounts: AccountStore) -> Account | None:
    """The account this request's cookie is signed in as, None if none (or its session just ended)."""
    token = session.get(TOKEN)
    if not isinstance(token, str):
        return None
    found: dict[str, Account | None] = {}

    def stamp_of(username: str) -> str | None:
        found[username] = account = accounts.get(username)
        return stamp(account) if account is not None else None

    limits: SessionLimits = current_app.extensions[LIMITS]
    with get_store().sessions.begin() as db:
        resumed = web_sessions.resume(db, token, stamp_of, limits)
        if resumed.ended is not None:
            gone = next(iter(found), "?")
            audit.record(db, "session_ended", gone, address=client_address(), detail=resumed.ended)
            log.info("session of %s ended: %s", gone, resumed.ended)
    if resumed.username is None:
        session.pop(TOKEN, None)
        return None
    return found.get(resumed.username)


def end() -> None:
    """Sign out: the session's row goes, so its cookie (or any copy of it) signs nobody in again."""
    token = session.get(TOKEN)
    if isinstance(token, str):
        with get_store().sessions.begin() as db:
            username = web_sessions.end_session(db, token)
            if username is not None:
                audit.record(db, "logout", username, address=client_address())
    session.clear()
