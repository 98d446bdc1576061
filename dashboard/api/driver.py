"""A driver's actions as JSON (POST /api/routes/<id>/actions): what the route page's offline queue sends.

Every action (picked up, delivered, failed, accept, decline) carries a UUID its phone made when the driver
pressed the button; the store applies each id once (gateway.store.route_actions), so a queue sent again
after a lost answer gets the first answer back, marked replayed. An applied action is a 200; a refused one
keeps the status of its refusal (400 bad input, 404 no such stop, 409 a move the route no longer allows),
each with the store's message. Signed out is a 401 and a missing or stale CSRF header a 400, both before
anything is recorded, so the phone keeps the action and sends it again once its driver signs in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from flask import Blueprint, Response, abort, jsonify, request
from werkzeug.http import HTTP_STATUS_CODES

from dashboard.web.accounts import Account
from dashboard.web.auth import current_account
from dashboard.web.errors import status_of
from dashboard.web.store import get_session, get_store
from gateway.store import route_actions
from gateway.store.deliveries import MAX_REASON
from gateway.store.models import Route
from gateway.store.models.vocab import DRIVER_ACTION_KINDS, DriverActionKind

bp = Blueprint("api_driver", __name__, url_prefix="/api/routes")
FIELDS: Final = ("id", "kind", "stop", "quantity", "reason")


def _driver(route_id: int) -> Account:
    """The signed-in driver of the route (or a coordinator); 401, 403 or 404 otherwise."""
    account = current_account()
    if account is None:
        abort(401, description="sign in again to send this: it stays on your phone until then")
    if account.role not in ("driver", "coordinator"):
        abort(403, description="only the route's driver or a coordinator records its stops")
    route = get_session().get(Route, route_id)
    if route is None or (account.role != "coordinator" and route.member_id != account.member_id):
        abort(404, description="no such route among yours")
    return account


def _body() -> Mapping[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="send a JSON object (Content-Type: application/json)")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        abort(400, description=f"unknown field {unknown[0][:40]!r}; fields: {', '.join(FIELDS)}")
    return body


def _ask(route_id: int, account: Account, body: Mapping[str, Any]) -> route_actions.Ask:
    """The action from the body, each field checked (400 with the field's rule)."""
    action_id, kind, stop = body.get("id"), body.get("kind"), body.get("stop")
    quantity, reason = body.get("quantity"), body.get("reason", "")
    if not isinstance(action_id, str):
        abort(400, description="id must be the action's UUID, as a string")
    if kind not in DRIVER_ACTION_KINDS:
        abort(400, description=f"kind must be one of {', '.join(DRIVER_ACTION_KINDS)}")
    if stop is not None and (isinstance(stop, bool) or not isinstance(stop, int) or stop < 1):
        abort(400, description="stop must be the stop's id (a positive integer) or absent")
    if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int | float)):
        abort(400, description="quantity must be a number (what was loaded) or absent")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        abort(400, description=f"reason must be text of at most {MAX_REASON} characters")
    number = float(quantity) if quantity is not None else None
    # Ask checks the id's form, that stop actions name a stop, and that a quantity is above 0.
    return route_actions.Ask(
        action_id.lower(), route_id, DriverActionKind(kind), account.username, stop, number, reason
    )


@bp.post("/<id:route_id>/actions")
def act(route_id: int) -> tuple[Response, int]:
    """Apply one action of the route's driver, once per action id."""
    account = _driver(route_id)
    ask = _ask(route_id, account, _body())
    answer = route_actions.perform(get_store().sessions, ask)
    about = {"id": ask.id, "replayed": answer.replayed, "route_status": answer.route_status}
    if answer.refused is None:
        return jsonify(message=answer.message, **about), 200
    status = status_of(answer.refused(answer.message))
    body = jsonify(error=HTTP_STATUS_CODES[status], message=answer.message, status=status, **about)
    return body, status
