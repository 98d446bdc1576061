"""`rhizome dashboard`: serve the regional map and the JSON API. Heavy imports wait for the handler."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from gateway.settings import Settings

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the `dashboard` subcommand."""
    parser = commands.add_parser("dashboard", help="serve the web dashboard: regional map and JSON API")
    parser.add_argument("--host", help="address to listen on [RHIZOME_DASHBOARD_HOST, 127.0.0.1]")
    parser.add_argument("--port", type=int, help="port, 0 for any free one [RHIZOME_DASHBOARD_PORT, 8000]")
    parser.set_defaults(handler=run_dashboard)


def run_dashboard(settings: Settings, args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM, then stop accepting, finish the requests in flight and exit 0."""
    from werkzeug.serving import make_server

    from dashboard.app import create_app
    from dashboard.store import get_store
    from gateway.cli import stop_on_signals

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
