"""GET /api/federation: what the federation page shows, as JSON (no person's name: who answered is left out).

Only on a node (404 elsewhere), for signed-in accounts, as the page is.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, jsonify, request

from dashboard.read import federation as fed
from dashboard.web.auth import current_account
from dashboard.web.node import node_or_404
from dashboard.web.store import get_session
from gateway.store.models import utcnow

bp = Blueprint("api_federation", __name__, url_prefix="/api/federation")


@bp.get("")
def federation() -> Response:
    """The nodes with their link state, the planning role's holder, the shipments involving this node."""
    node = node_or_404()
    if current_account() is None:
        abort(401, description="sign in first: the federation's state is for accounts of this node")
    if request.args:
        abort(400, description="this address takes no query parameters")
    session = get_session()
    now = utcnow()
    nodes = [
        {
            "name": s.name,
            "me": s.me,
            "direct": s.direct,
            "link_up": s.link_up,
            "down": s.down,
            "down_for_s": None if s.down_for_s is None else round(s.down_for_s, 1),
            "last_heard_at": _iso(s.last_heard_at) if not s.me else None,
            "state": s.text(now),
            "communities": list(s.communities),
        }
        for s in fed.node_states(session, node.federation, node.name, now)
    ]
    rows = fed.shipments(session, node.name, node.communities)
    return jsonify(
        node=node.name,
        communities=list(node.communities),
        lease_s=node.federation.lease_s,
        holder=fed.holder(session, node.federation, node.name, now),
        nodes=nodes,
        shipments=[r.to_json() for r in rows],
        waiting_for_us=sum(r.status == fed.WAITING_FOR_US for r in rows),
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
