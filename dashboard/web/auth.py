"""Login, logout and roles: assembly viewers, crew, drivers and coordinators.

The map may be public read-only (PUBLIC_MAP); every other page needs an account with the right role, and a
coordinator may do everything. Sessions live in the store (websessions.py); failed logins slow further tries
of that account (ratelimit.py) and every login, failure and throttle is written to the audit trail.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from dashboard.web import websessions
from dashboard.web.accounts import USERNAME_RE, Account, AccountStore, authenticate
from dashboard.web.ratelimit import LoginThrottle
from dashboard.web.store import get_store
from gateway.store import audit
from gateway.store.models import utcnow

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
EXTENSION = "rhizome.accounts"
THROTTLE = "rhizome.login_throttle"
F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask, accounts: AccountStore) -> None:
    """Attach the account store and the login throttle; load the signed-in account before each request."""
    app.extensions[EXTENSION] = accounts
    app.extensions[THROTTLE] = LoginThrottle.from_config(
        app.config["LOGIN_MAX_FAILURES"],
        app.config["LOGIN_BACKOFF_S"],
        app.config["LOGIN_BACKOFF_MAX_S"],
        app.config["LOGIN_WINDOW_S"],
    )
    websessions.init_app(app)
    app.before_request(_load_account)
    app.jinja_env.globals["current_account"] = current_account
    app.register_blueprint(bp)


def _load_account() -> None:
    if request.endpoint == "static":
        g.account = None  # assets need no account: no store round trip for each of them
        return
    g.account = websessions.resume(current_app.extensions[EXTENSION])


def current_account() -> Account | None:
    """The signed-in account, if any."""
    return g.get("account")


def _deny() -> Response:
    if current_account() is None:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    abort(403, description="your account's role does not allow this page")


def role_required(*roles: str) -> Callable[[F], F]:
    """Allow signed-in accounts with one of `roles` (coordinators always); others are sent to log in."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            account = current_account()
            if account is None or (account.role not in roles and account.role != "coordinator"):
                return _deny()
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorate


def viewer_required(view: F) -> F:
    """Read-only pages: public when PUBLIC_MAP is set, otherwise any signed-in account."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_app.config["PUBLIC_MAP"] and current_account() is None:
            return _deny()
        return view(*args, **kwargs)

    return cast(F, wrapped)


def _has_control(text: str) -> bool:
    """C0 and C1 controls and DEL, which browsers drop from a URL; a space is kept (a browser encodes it)."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)


def _is_local_path(target: str) -> bool:
    """A path on this host: one leading slash (not two, not slash-backslash), no scheme, no host."""
    if not target.startswith("/") or target[1:2] in ("/", "\\"):
        return False
    parts = urlsplit(target)
    return not (parts.scheme or parts.netloc)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would let a phishing link borrow our login page. Browsers
    drop tabs and line breaks from a URL and read a backslash as a slash ("/\t/evil.example" goes to
    evil.example), so any control character or backslash refuses the target, as do a second leading slash,
    a scheme or a host, in the target as given and once percent-decoded ("/%2F/evil.example")."""
    if not target or "\\" in target or _has_control(target) or not _is_local_path(target):
        return url_for("map.index")
    decoded = "".join(c for c in unquote(target) if not _has_control(c))
    return target if _is_local_path(decoded) else url_for("map.index")


def _audit_name(username: str) -> str:
    """The name tried, for the audit trail; one that cannot be a username (often a password typed in the
    wrong box) is not recorded."""
    return username if USERNAME_RE.match(username) else "(not a username)"


def _too_many(next_url: str, wait: int) -> Response:
    page = render_template("login.html", next_url=next_url, error=f"Too many attempts: wait {wait} s.")
    return Response(page, 429, {"Retry-After": str(wait)}, mimetype="text/html")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    """The login form; a wrong password says so without telling which part was wrong."""
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next_url=next_url, error=None)
    username = request.form.get("username", "").strip().lower()[:64]
    password = request.form.get("password", "")[:1024]
    throttle: LoginThrottle = current_app.extensions[THROTTLE]
    address = websessions.client_address()
    with get_store().sessions.begin() as db:
        wait = throttle.retry_after(db, username, address, utcnow())
    if wait:
        log.warning("login of %r from %s refused for %s s: too many failures", username, address, wait)
        return _too_many(next_url, wait)
    accounts: AccountStore = current_app.extensions[EXTENSION]
    account = authenticate(accounts, username, password)
    if account is None:
        with get_store().sessions.begin() as db:
            throttled = throttle.failed(db, username, address, utcnow())
            known = "wrong password" if accounts.get(username) is not None else "no such account"
            audit.record(db, "login_failed", _audit_name(username), address=address, detail=known)
            for step in throttled:
                detail = f"{step.scope}: {step.failures} failures, next try in {step.wait_s} s"
                audit.record(db, "throttled", _audit_name(username), address=address, detail=detail)
        log.info("failed login for %r from %s", username, address)
        return render_template("login.html", next_url=next_url, error="Wrong username or password."), 401
    with get_store().sessions.begin() as db:
        throttle.succeeded(db, username, address)
    websessions.begin(account)
    log.info("%s signed in (%s)", account.username, account.role)
    return redirect(next_url)


@bp.post("/logout")
def logout() -> Response:
    """Sign out (a POST, so another site cannot sign people out with a link); the session ends everywhere."""
    websessions.end()
    return redirect(url_for("map.index"))
