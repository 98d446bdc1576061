"""`rhizome dashboard`: serve the regional map and the JSON API. Heavy imports wait for the handler."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from gateway.process.settings import Settings

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the `dashboard` subcommand."""
    parser = commands.add_parser("dashboard", help="serve the web dashboard: regional map and JSON API")
    parser.add_argument("--host", help="address to listen on [RHIZOME_DASHBOARD_HOST, 127.0.0.1]")
    parser.add_argument("--port", type=int, help="port, 0 for any free one [RHIZOME_DASHBOARD_PORT, 8000]")
    parser.set_defaults(handler=run_dashboard)
    accounts = commands.add_parser(
        "dashboard-account", help="add or replace a dashboard login (crew, driver, coordinator, viewer)"
    )
    accounts.add_argument("username")
    accounts.add_argument("--role", required=True, choices=("viewer", "crew", "driver", "coordinator"))
    accounts.add_argument("--member", type=int, help="the member id a crew or driver account acts as")
    accounts.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input, not a prompt"
    )
    accounts.set_defaults(handler=run_add_account)


def run_add_account(settings: Settings, args: argparse.Namespace) -> int:
    """Hash the password and save the account in RHIZOME_ACCOUNTS_FILE (default: in the data dir)."""
    import getpass
    import os
    import sys
    from pathlib import Path

    from dashboard.web.accounts import FileAccountStore, make_account
    from dashboard.web.app import ACCOUNTS_FILE

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the passwords differ")
    account = make_account(args.username, password, args.role, args.member)
    path = Path(os.environ.get("RHIZOME_ACCOUNTS_FILE") or settings.data_dir / ACCOUNTS_FILE)
    FileAccountStore(path).put(account)
    log.info("account %s (%s) saved in %s", account.username, account.role, path)
    return 0


def run_dashboard(settings: Settings, args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM, then stop accepting, finish the requests in flight and exit 0."""
    from werkzeug.serving import make_server

    from dashboard.web.app import create_app
    from dashboard.web.store import get_store
    from gateway.process.cli import stop_on_signals

    settings = settings.with_overrides(dashboard_host=args.host, dashboard_port=args.port)
    if not 0 <= settings.dashboard_port <= 65535:
        raise ValueError(f"port {settings.dashboard_port}: must be between 0 and 65535")
    app = create_app(settings)
    stop = stop_on_signals()
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
