"""Hardening of dashboard sessions and logins (issue #17, Security 5, 6, 11): sessions end at logout, after an
idle timeout and when the password changes, on every worker; failed logins back off softly per account and
address, counted in the store; proxy headers count only when trusted; security events are audited and
shown to coordinators only."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update

from dashboard.cli import run_add_account
from dashboard.web.accounts import Account, FileAccountStore, MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.config import DashboardConfig
from dashboard.web.store import get_store
from gateway.broker.accounts import provision, revoke
from gateway.process.settings import Settings
from gateway.store import audit
from gateway.store.db import make_session_factory
from gateway.store.models import RepairTask, SecurityEvent, WebSession, utcnow
from tests.test_dashboard_pages import PASSWORD, ids  # noqa: F401  (ids: the fixture of a tiny region)

KEY = "k" * 16 + "e" * 16 + "y" * 16  # one key for every "worker", so a cookie from one is valid on another
NEW_PASSWORD = "a brand new long secret"
PUMP = "utuado-pump-1-pump"


@pytest.fixture(scope="module")
def password_hash() -> str:
    return make_account("someone", PASSWORD, "viewer").password_hash


@pytest.fixture
def accounts(ids: dict[str, int], password_hash: str) -> MemoryAccountStore:  # noqa: F811
    roles = [("ana", "crew", ids["member"]), ("coord", "coordinator", None), ("viewer", "viewer", None)]
    return MemoryAccountStore([Account(n, password_hash, r, m) for n, r, m in roles])


MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(database_url: str, tmp_path: Path, accounts: MemoryAccountStore) -> Iterator[MakeApp]:
    """Dashboards ("workers") on the one store; keyword arguments go to DashboardConfig."""
    apps: list[Flask] = []

    def make(store: Any = None, **config: Any) -> Flask:
        settings = Settings(database_url=database_url, secret_key=KEY, data_dir=tmp_path)
        app = create_app(
            settings, DashboardConfig(**config), store or accounts, test_config={"TESTING": True}
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        get_store(app).engine.dispose()


def token(client: FlaskClient, path: str = "/login", **request: Any) -> str:
    found = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get(path, **request).get_data(as_text=True)
    )
    assert found is not None, path
    return found.group(1)


def login(client: FlaskClient, user: str, password: str = PASSWORD, **request: Any) -> Any:
    """Sign in through the real form; `request` (environ_overrides, headers) shapes where it comes from."""
    data = {"username": user, "password": password, "csrf_token": token(client, **request)}
    return client.post("/login", data=data, **request)


def from_addr(address: str) -> dict[str, Any]:
    return {"environ_overrides": {"REMOTE_ADDR": address}}


def events(app: Flask, kind: str | None = None) -> list[audit.Event]:
    with get_store(app).sessions() as session:
        return audit.recent(session, 1000, kind=kind)


def copy_cookie(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of `client`'s session cookie (as a thief would)."""
    cookie = client.get_cookie("rhizome_session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("rhizome_session", cookie.value)
    return thief


# --- Security 5: sessions are revocable and time out ---


def test_a_cookie_copied_before_logout_opens_nothing_after_it(
    make_app: MakeApp,
    ids: dict[str, int],  # noqa: F811
) -> None:
    app = make_app()
    ana = app.test_client()
    assert login(ana, "ana").status_code == 302
    thief = copy_cookie(app, ana)
    assert thief.get("/crew").status_code == 200  # the copy works while the session lasts
    csrf = token(thief, "/crew")
    ana.post("/logout", data={"csrf_token": token(ana, "/crew")})

    assert thief.get("/crew").status_code == 302 and "/login" in thief.get("/crew").location
    action = thief.post(f"/crew/tasks/{ids['task']}/accept", data={"csrf_token": csrf})
    assert action.status_code == 302 and "/login" in action.location
    with get_store(app).sessions() as session:
        task = session.get(RepairTask, ids["task"])
        assert task is not None and task.status == "assigned"  # the crew action did not happen
        assert session.scalars(select(WebSession)).all() == []
    assert [e.account for e in events(app, "logout")] == ["ana"]


def test_a_new_password_ends_the_accounts_sessions(
    make_app: MakeApp,
    accounts: MemoryAccountStore,
    ids: dict[str, int],  # noqa: F811
) -> None:
    app = make_app()
    ana = app.test_client()
    login(ana, "ana")
    assert ana.get("/crew").status_code == 200
    accounts.put(make_account("ana", NEW_PASSWORD, "crew", ids["member"]))  # re-added, as by the command
    assert ana.get("/crew").status_code == 302
    assert [e.detail for e in events(app, "session_ended")] == ["password changed"]
    assert login(ana, "ana", NEW_PASSWORD).status_code == 302 and ana.get("/crew").status_code == 200


def test_the_account_command_ends_sessions_and_is_audited(
    make_app: MakeApp,
    ids: dict[str, int],  # noqa: F811
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "accounts.json"
    FileAccountStore(path).put(make_account("ana", PASSWORD, "crew", ids["member"]))
    app = make_app(FileAccountStore(path))
    ana = app.test_client()
    login(ana, "ana")
    assert ana.get("/crew").status_code == 200
    monkeypatch.setattr(sys, "stdin", io.StringIO(NEW_PASSWORD + "\n"))
    run_add_account(path, "ana", "crew", ids["member"], password_stdin=True, database_url=database_url)
    assert ana.get("/crew").status_code == 302
    changed = events(app, "account_changed")
    assert [(e.account, e.detail) for e in changed] == [("ana", "role crew; 1 sessions ended")]
    monkeypatch.setattr(sys, "stdin", io.StringIO(NEW_PASSWORD + "\n"))
    run_add_account(path, "luz", "viewer", password_stdin=True, database_url=database_url)
    assert [e.account for e in events(app, "account_added")] == ["luz"]


@pytest.mark.parametrize(
    ("column", "age", "reason"),
    [("seen_at", timedelta(hours=2), "idle timeout"), ("created_at", timedelta(days=8), "maximum lifetime")],
)
def test_an_idle_or_old_session_ends(
    make_app: MakeApp,
    ids: dict[str, int],  # noqa: F811
    column: str,
    age: timedelta,
    reason: str,
) -> None:
    app = make_app(session_idle_s=3600)  # one hour idle; seven days at most (the default)
    ana = app.test_client()
    login(ana, "ana")
    assert ana.get("/crew").status_code == 200
    with get_store(app).sessions.begin() as session:
        session.execute(update(WebSession).values({column: utcnow() - age}))
    assert ana.get("/crew").status_code == 302
    assert [e.detail for e in events(app, "session_ended")] == [
        reason + ("" if column == "seen_at" else " reached")
    ]


def test_a_session_in_use_stays_and_config_is_checked(make_app: MakeApp) -> None:
    app = make_app(session_idle_s=3600)
    ana = app.test_client()
    login(ana, "ana")
    with get_store(app).sessions.begin() as session:  # 50 minutes idle: not yet
        session.execute(update(WebSession).values(seen_at=utcnow() - timedelta(minutes=50)))
    assert ana.get("/crew").status_code == 200
    with get_store(app).sessions() as session:  # and that request counts as use
        seen = session.scalars(select(WebSession.seen_at)).one()
        assert utcnow() - seen < timedelta(minutes=1)
    with pytest.raises(ValueError, match="RHIZOME_SESSION_IDLE_S"):
        DashboardConfig(session_idle_s=10, session_max_s=5)


# --- Security 6: soft, shared backoff; proxy headers only when trusted; an HTML 429 ---


def test_wrong_passwords_lock_out_neither_another_address_nor_another_user(make_app: MakeApp) -> None:
    app = make_app(login_backoff_s=60)  # 5 free failures per account and address, then 60 s, 120 s...
    attacker = app.test_client()
    for _ in range(5):
        assert login(attacker, "ana", "wrong password!", **from_addr("198.51.100.7")).status_code == 401
    assert login(attacker, "ana", **from_addr("198.51.100.7")).status_code == 429  # that pair waits

    assert login(app.test_client(), "ana", **from_addr("203.0.113.5")).status_code == 302
    assert login(app.test_client(), "coord", **from_addr("198.51.100.7")).status_code == 302
    throttled = events(app, "throttled")
    assert [(e.account, e.address) for e in throttled] == [("ana", "198.51.100.7")]
    assert throttled[0].detail == "account from this address: 5 failures, next try in 60 s"


def test_the_backoff_is_shared_by_workers_and_grows(make_app: MakeApp) -> None:
    first, second = (make_app(login_max_failures=3, login_backoff_s=30) for _ in range(2))  # two workers
    for _ in range(3):
        assert login(first.test_client(), "ana", "wrong password!").status_code == 401
    refused = login(second.test_client(), "ana")
    assert refused.status_code == 429 and 25 <= int(refused.headers["Retry-After"]) <= 30
    with get_store(first).sessions.begin() as session:  # the wait is over: one more failure doubles it
        session.execute(update_failures(utcnow() - timedelta(seconds=31)))
    assert login(second.test_client(), "ana", "wrong password!").status_code == 401
    assert 55 <= int(login(first.test_client(), "ana").headers["Retry-After"]) <= 60


def update_failures(at: Any) -> Any:
    from gateway.store.models import LoginFailures

    return update(LoginFailures).values(last_failed_at=at)


def test_a_session_made_on_one_worker_ends_on_all(make_app: MakeApp) -> None:
    first, second = make_app(), make_app()
    ana = first.test_client()
    login(ana, "ana")
    other = copy_cookie(second, ana)  # the next request lands on the other worker
    assert other.get("/crew").status_code == 200
    other.post("/logout", data={"csrf_token": token(other, "/crew")})
    assert ana.get("/crew").status_code == 302


def test_proxy_headers_count_only_when_the_proxy_is_trusted(make_app: MakeApp) -> None:
    direct = make_app(login_max_failures=3)
    for fake in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):  # a client rotating a header it made up
        response = login(direct.test_client(), "ana", "wrong password!", headers={"X-Forwarded-For": fake})
        assert response.status_code == 401
    refused = login(direct.test_client(), "ana", headers={"X-Forwarded-For": "192.0.2.4"})
    assert refused.status_code == 429
    assert {e.address for e in events(direct, "login_failed")} == {"127.0.0.1"}

    with get_store(direct).sessions.begin() as session:
        session.execute(update_failures(utcnow() - timedelta(days=2)))  # forgotten
    proxied = make_app(login_max_failures=3, trusted_proxies=1)
    for _ in range(3):
        response = login(
            proxied.test_client(), "coord", "wrong password!", headers={"X-Forwarded-For": "192.0.2.9"}
        )
        assert response.status_code == 401
    assert login(proxied.test_client(), "coord", headers={"X-Forwarded-For": "192.0.2.10"}).status_code == 302
    assert login(proxied.test_client(), "coord", headers={"X-Forwarded-For": "192.0.2.9"}).status_code == 429
    coord = [e.address for e in events(proxied, "login_failed") if e.account == "coord"]
    assert coord == ["192.0.2.9"] * 3
    assert [e.address for e in events(proxied, "login_ok")] == ["192.0.2.10"]


def test_the_429_is_an_html_page_with_retry_after(make_app: MakeApp) -> None:
    app = make_app(login_max_failures=1, login_backoff_s=30)
    client = app.test_client()
    login(client, "ana", "wrong password!")
    refused = login(client, "ana")
    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert 29 <= int(refused.headers["Retry-After"]) <= 30
    page = refused.get_data(as_text=True)
    assert page.lstrip().lower().startswith("<!doctype html") and "Too many attempts: wait" in page
    assert 'name="csrf_token"' in page  # the form is there to try again


# --- Security 11: the audit trail ---


def test_security_events_are_recorded_and_shown_to_coordinators_only(
    make_app: MakeApp, engine: Engine, tmp_path: Path
) -> None:
    app = make_app(login_max_failures=1)
    visitor = app.test_client()
    login(visitor, "<script>alert(1)</script>", "wrong password!")  # never a username: not recorded as one
    login(visitor, "ana", "wrong password!")
    ana = app.test_client()
    login(ana, "ana", **from_addr("203.0.113.5"))
    ana.post("/logout", data={"csrf_token": token(ana, "/crew")}, **from_addr("203.0.113.5"))
    with make_session_factory(engine).begin() as session:
        provision(session, "device", PUMP, actor="coord", address="203.0.113.6")
        provision(session, "device", PUMP, rotate=True)
        revoke(session, "device", PUMP)
        audit.record(session, "account_removed", "old", detail="<b>gone</b>")

    kinds = [e.kind for e in events(app)]  # newest first
    assert kinds == [
        "account_removed",
        "credentials_revoked",
        "credentials_rotated",
        "credentials_provisioned",
        "logout",
        "login_ok",
        "throttled",
        "login_failed",
        "throttled",
        "login_failed",
    ]
    failed = events(app, "login_failed")
    assert [(e.account, e.detail) for e in failed] == [
        ("ana", "wrong password"),
        ("(not a username)", "no such account"),
    ]
    assert [(e.account, e.address) for e in events(app, "login_ok")] == [("ana", "203.0.113.5")]
    provisioned = events(app, "credentials_provisioned")[0]
    assert (provisioned.account, provisioned.address, provisioned.detail) == (
        "coord",
        "203.0.113.6",
        f"broker account {PUMP}",
    )
    assert events(app, "credentials_rotated")[0].account == "command line"

    with get_store(app).sessions() as session:  # no password, in any column of any event
        rows = session.scalars(select(SecurityEvent)).all()
        assert rows and not any(PASSWORD in str(vars(r)) or "wrong password!" in str(vars(r)) for r in rows)

    coord = app.test_client()
    login(coord, "coord")
    assert 'href="/coordinator/audit"' in coord.get("/coordinator").get_data(as_text=True)
    page = coord.get("/coordinator/audit")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert "&lt;b&gt;gone&lt;/b&gt;" in html and "<b>gone</b>" not in html and "<script>alert" not in html
    assert (
        html.index("account_removed</td>")
        < html.index("credentials_revoked</td>")
        < html.index("203.0.113.5")
    )
    only = coord.get("/coordinator/audit?kind=logout").get_data(as_text=True)
    assert "logout</td><td>ana</td><td>203.0.113.5" in only and "credentials_revoked</td>" not in only

    for user, status in (("ana", 403), ("viewer", 403), (None, 302)):
        client = app.test_client()
        if user:
            assert login(client, user, **from_addr("203.0.113.50")).status_code == 302
        assert client.get("/coordinator/audit").status_code == status, user


def test_the_audit_page_is_paged_and_refuses_bad_arguments(make_app: MakeApp) -> None:
    app = make_app()
    start = utcnow() - timedelta(hours=1)
    with get_store(app).sessions.begin() as session:
        for n in range(60):
            audit.record(session, "account_changed", f"user{n:02d}", at=start + timedelta(seconds=n))
    coord = app.test_client()
    login(coord, "coord")
    first = coord.get("/coordinator/audit").get_data(as_text=True)  # coord's login_ok, user59 ... user11
    assert "login_ok</td><td>coord" in first and "user59" in first and "user11" in first
    assert "user10" not in first and "Page 1 of 2" in first
    second = coord.get("/coordinator/audit?page=2").get_data(as_text=True)
    assert "user10" in second and "user00" in second and "user11" not in second and "Page 2 of 2" in second
    for query, status in (("page=3", 404), ("page=0", 400), ("page=x", 400), ("kind=nope", 400)):
        assert coord.get(f"/coordinator/audit?{query}").status_code == status, query


def test_credential_changes_on_the_dashboard_are_audited(make_app: MakeApp) -> None:
    app = make_app()
    coord = app.test_client()
    login(coord, "coord", **from_addr("203.0.113.8"))
    data = {"device": PUMP, "csrf_token": token(coord, "/coordinator/devices")}
    response = coord.post("/coordinator/devices/provision", data=data, **from_addr("203.0.113.8"))
    assert response.status_code == 200, response.get_data(as_text=True)
    change = events(app, "credentials_provisioned")
    assert [(e.account, e.address, e.detail) for e in change] == [
        ("coord", "203.0.113.8", f"broker account {PUMP}")
    ]


def test_session_and_proxy_settings_from_the_environment() -> None:
    from dashboard.web.config import from_environ

    environ = {
        "RHIZOME_TRUSTED_PROXIES": "1",
        "RHIZOME_SESSION_IDLE_S": "600",
        "RHIZOME_SESSION_MAX_S": "86400",
    }
    config = from_environ(environ)
    assert (config.trusted_proxies, config.session_idle_s, config.session_max_s) == (1, 600.0, 86400.0)
    assert config.flask_config()["PERMANENT_SESSION_LIFETIME"] == 86400  # the cookie lives as long as allowed
    assert DashboardConfig().trusted_proxies == 0 and DashboardConfig().session_idle_s == 8 * 3600
    for bad, match in (("x", "whole number"), ("-1", "between 0 and 5")):
        with pytest.raises(ValueError, match=match):
            from_environ({"RHIZOME_TRUSTED_PROXIES": bad})
