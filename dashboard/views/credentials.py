"""Coordinator tool: device credentials for the broker. Provision, rotate or revoke them from the page.

The dashboard calls the gateway's provisioning module (never the reverse). A new password appears once,
in the response to the form that made it: it is not stored, flashed or put in the session cookie, and
the page is sent `no-store`. The broker files are regenerated from the store and the broker is told to
reload when RHIZOME_BROKER_PID_FILE is set.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, make_response, render_template, request

from dashboard.read import admin
from dashboard.read.links import SHOWN_STATES
from dashboard.web.auth import current_account, role_required
from dashboard.web.store import get_session, get_store
from dashboard.web.websessions import client_address
from gateway.broker.accounts import Issued, ProvisionError, provision, revoke
from gateway.broker.files import BrokerReloadError, reload_broker, write_broker_files
from gateway.contract.payloads import DEVICE_KINDS
from gateway.process.settings import Settings

log = logging.getLogger(__name__)
bp = Blueprint("credentials", __name__, url_prefix="/coordinator/devices")
ACTIONS = ("provision", "rotate", "revoke")
PER_PAGE = 100


@bp.get("")
@role_required("coordinator")
def index() -> Response:
    """Every device with the state of its broker credentials and the forms to change them."""
    return _page()


@bp.post("/<action>")
@role_required("coordinator")
def change(action: str) -> Response:
    """Provision, rotate or revoke one device's credentials, rewrite the broker files and reload it."""
    if action not in ACTIONS:
        abort(404, description=f"no action {action[:40]!r}")
    slug = request.form.get("device", "").strip()[:100]
    settings: Settings = current_app.config["RHIZOME_SETTINGS"]
    issued: Issued | None = None
    account = current_account()
    actor, address = (account.username if account else "?"), client_address()
    try:
        with get_store().sessions.begin() as session:
            if action == "revoke":
                if not revoke(session, "device", slug, actor=actor, address=address):
                    raise ProvisionError(f"{slug} has no active credentials to revoke")
            else:
                rotate = action == "rotate"
                issued = provision(session, "device", slug, rotate=rotate, actor=actor, address=address)
                if issued is None:
                    raise ProvisionError(f"{slug} already has credentials: rotate them to get a new password")
            files = write_broker_files(session, settings.effective_broker_dir)
    except ProvisionError as exc:
        return _page(error=str(exc), status=400)
    except OSError as exc:  # the store change is rolled back with the files unwritten
        log.error("broker files not written to %s: %s", settings.effective_broker_dir, exc)
        return _page(error=f"the broker files could not be written, nothing changed: {exc}", status=503)
    log.info("%s: %s credentials of device %s", actor, action, slug)
    notice = f"{slug}: {action} done; {files.accounts} accounts written to {files.password_file.parent}. "
    if settings.broker_pid_file is None:
        notice += "Reload the broker (kill -HUP its pid) to apply."
    else:
        try:
            notice += f"Broker (pid {reload_broker(settings.broker_pid_file)}) reloaded."
        except BrokerReloadError as exc:
            log.warning("broker not reloaded: %s", exc)
            notice += f"The broker was NOT reloaded ({exc}): reload it to apply."
    return _page(issued=issued, notice=notice)


def _filters() -> tuple[str | None, str | None, str | None, int]:
    """The devices list's filters from the query string (community slug, kind, shown state, page); 400 for
    a value none can be."""
    session = get_session()
    community = request.args.get("community") or None
    if community is not None and community not in dict(admin.community_choices(session)):
        abort(400, description="community must be one of the communities' slugs")
    kind = request.args.get("kind") or None
    if kind is not None and kind not in DEVICE_KINDS:
        abort(400, description=f"kind must be one of: {', '.join(DEVICE_KINDS)}")
    state = request.args.get("state") or None
    if state is not None and state not in SHOWN_STATES:
        abort(400, description=f"state must be one of: {', '.join(SHOWN_STATES)}")
    raw = request.args.get("page", "1")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and int(raw) >= 1):
        abort(400, description="page must be a whole number from 1")
    return community, kind, state, int(raw)


def _page(
    *, issued: Issued | None = None, notice: str | None = None, error: str | None = None, status: int = 200
) -> Response:
    session = get_session()
    community, kind, state, page = _filters() if request.method == "GET" else (None, None, None, 1)
    total = admin.device_count(session, community, kind, state)
    pages = max(1, -(-total // PER_PAGE))
    if page > pages:
        abort(400, description=f"there {'is 1 page' if pages == 1 else f'are {pages} pages'}")
    rows = admin.device_credentials(session, community, kind, state, PER_PAGE, (page - 1) * PER_PAGE)
    wanted = {"community": community, "kind": kind, "state": state}
    body = render_template(
        "credentials.html",
        rows=rows,
        issued=issued,
        notice=notice,
        error=error,
        total=total,
        page=page,
        pages=pages,
        wanted={k: v for k, v in wanted.items() if v},
        communities=admin.community_choices(session),
        kinds=DEVICE_KINDS,
        states=SHOWN_STATES,
    )
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"  # a page with a password must not be cached anywhere
    return response
