"""`rhizome dashboard`: serve the regional map and the JSON API. Heavy imports wait for the command.

The dashboard's own configuration (tiles, public map, accounts file, cookies) is read here, once, from
the environment (dashboard/web/config.py) and handed to the app factory with the process's Settings.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gateway.process.context import pass_settings
from gateway.process.settings import Settings

if TYPE_CHECKING:  # the web stack is imported by the commands only, so `rhizome --help` stays fast
    from dashboard.web.config import DashboardConfig

log = logging.getLogger(__name__)


@click.command("dashboard", short_help="serve the web dashboard: regional map and JSON API")
@click.option("--host", metavar="HOST", help="address to listen on [RHIZOME_DASHBOARD_HOST, 127.0.0.1]")
@click.option(
    "--port", type=int, metavar="PORT", help="port, 0 for any free one [RHIZOME_DASHBOARD_PORT, 8000]"
)
@pass_settings
def dashboard(settings: Settings, host: str | None, port: int | None) -> int:
    """Serve the web dashboard (regional map and JSON API) until SIGINT or SIGTERM."""
    return run_dashboard(settings, read_config(), host=host, port=port)


@click.command(
    "dashboard-account",
    short_help="add or replace a dashboard login (crew, driver, coordinator, viewer)",
)
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(("viewer", "crew", "driver", "coordinator")))
@click.option("--member", type=int, metavar="MEMBER", help="the member id a crew or driver account acts as")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input, not a prompt")
@pass_settings
def dashboard_account(
    settings: Settings, username: str, role: str, member: int | None, password_stdin: bool
) -> int:
    """Add or replace the dashboard login USERNAME (crew, driver, coordinator, viewer)."""
    path = read_config().accounts_path(settings.data_dir)
    return run_add_account(
        path,
        username,
        role,
        member,
        password_stdin=password_stdin,
        database_url=settings.effective_database_url,
    )


@click.command("dashboard-accounts", hidden=True)
@pass_settings
def dashboard_accounts(settings: Settings) -> int:
    """Add or replace several logins at once, read as JSON from standard input:
    `[{"username", "password", "role", "member"}, ...]`. This is how `rhizome demo` saves its sign-ins: one
    process saving them in turn, not one per account racing for the same file while the demo starts."""
    import json
    import sys

    path = read_config().accounts_path(settings.data_dir)
    wanted = json.loads(sys.stdin.read())
    keys = {"username", "password", "role"}
    if not isinstance(wanted, list) or not all(isinstance(e, dict) and keys <= e.keys() for e in wanted):
        raise ValueError("expected a JSON list of {username, password, role[, member]} on standard input")
    for entry in wanted:
        save_account(
            path,
            str(entry["username"]),
            str(entry["password"]),
            str(entry["role"]),
            entry.get("member"),
            database_url=settings.effective_database_url,
        )
    return 0


def read_config() -> DashboardConfig:
    """The dashboard's configuration, read from the environment once, as the command starts."""
    import os

    from dashboard.web.config import from_environ

    return from_environ(os.environ)


def run_add_account(
    path: Path,
    username: str,
    role: str,
    member: int | None = None,
    *,
    password_stdin: bool = False,
    database_url: str | None = None,
) -> int:
    """Hash the password and save the account in the accounts file `path`; with `database_url`, end the
    account's sessions and write the change to the store's audit trail."""
    import getpass
    import sys

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {username}: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the passwords differ")
    save_account(path, username, password, role, member, database_url=database_url)
    return 0


def save_account(
    path: Path,
    username: str,
    password: str,
    role: str,
    member: int | None = None,
    *,
    database_url: str | None = None,
) -> None:
    """Hash `password` and save the account in `path`; with `database_url`, audit it (see run_add_account)."""
    from dashboard.web.accounts import FileAccountStore, make_account

    account = make_account(username, password, role, member)
    accounts = FileAccountStore(path)
    replaced = accounts.get(account.username)
    accounts.put(account)
    log.info("account %s (%s) saved in %s", account.username, account.role, path)
    if database_url is not None:
        _audit_account(database_url, account.username, replaced is None, f"role {account.role}")


def _audit_account(database_url: str, username: str, added: bool, detail: str) -> None:
    """Record the change and end the account's sessions; the account is saved even if the store is down
    (its old sessions end anyway: their password fingerprint no longer matches)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.store import audit, web_sessions
    from gateway.store.db import make_engine, make_session_factory

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
        log.warning("account %s saved; no store at %s yet, so no audit line", username, url.database)
        return  # making an empty SQLite file here would only confuse `rhizome db upgrade` later
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine).begin() as session:
            ended = web_sessions.end_sessions_of(session, username)
            kind = "account_added" if added else "account_changed"
            audit.record(session, kind, username, detail=f"{detail}; {ended} sessions ended")
    except SQLAlchemyError as exc:
        log.warning("account %s saved, but not recorded in the audit trail (store: %s)", username, exc)
    finally:
        engine.dispose()


def run_dashboard(
    settings: Settings,
    config: DashboardConfig | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM, then stop accepting, finish the requests in flight and exit 0."""
    from werkzeug.serving import make_server

    from dashboard.web.app import create_app
    from dashboard.web.store import get_store
    from gateway.process import signals

    settings = settings.with_overrides(dashboard_host=host, dashboard_port=port)
    if not 0 <= settings.dashboard_port <= 65535:
        raise ValueError(f"port {settings.dashboard_port}: must be between 0 and 65535")
    app = create_app(settings, config)
    stop = signals.stop_on_signals()
    server = make_server(settings.dashboard_host, settings.dashboard_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-http", daemon=True)
    thread.start()
    host = settings.dashboard_host
    shown = f"[{host}]" if ":" in host else host
    log.info("dashboard serving at http://%s:%s/", shown, server.server_port)
    try:
        while not stop.wait(1.0):  # a timed wait lets the signal handler run promptly on every platform
            pass
    finally:
        server.shutdown()  # returns once serve_forever has left its loop
        thread.join(timeout=10)
        server.server_close()
        get_store(app).engine.dispose()
        log.info("dashboard stopped")
    return 0
