"""The federation page of a node (/federation): its nodes and their links, who plans for the region, and the
shipments between communities that involve this node, which its coordinators accept or decline here.

Only on a node (404 elsewhere). Signed-in accounts of every role see it; only coordinators answer. A
coordinator's answer becomes this node's `answer` fact (signed and sent on by the federation agent), with the
coordinator's username as its `by`; the page never shows who answered.
"""

from __future__ import annotations

import logging
import threading

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from dashboard.read import federation as fed
from dashboard.web.auth import current_account, role_required
from dashboard.web.node import node_or_404
from dashboard.web.store import get_session, get_store
from gateway.federation.node_facts import answer
from gateway.store.models import FedFact, utcnow

log = logging.getLogger(__name__)
bp = Blueprint("federation", __name__, url_prefix="/federation")
MAX_ROWS = 300  # a long-lived federation's old plans: the newest first, this many
DECISIONS = {"accept": True, "decline": False}
# Check and write as one step: a double tap, or two coordinators at once, must write one answer, not two
# (every reader takes the first, but the planner's "still waiting" count would see two). In this process by
# this lock; across processes on PostgreSQL by the plan row's FOR UPDATE below.
_ANSWERING = threading.Lock()


@bp.before_request
def _only_on_a_node() -> None:
    node_or_404()


@bp.get("")
@role_required("viewer", "crew", "driver")
def index() -> Response:
    """The nodes, the planning role and the shipments (Accept / Decline for a coordinator)."""
    node = node_or_404()
    session = get_session()
    now = utcnow()
    states = fed.node_states(session, node.federation, node.name, now)
    rows = fed.shipments(session, node.name, node.communities)
    account = current_account()
    body = render_template(
        "federation.html",
        node=node,
        nodes=[(s, s.text(now)) for s in states],
        holder=fed.holder(session, node.federation, node.name, now),
        shipments=rows[:MAX_ROWS],
        more=len(rows) > MAX_ROWS,
        coordinator=account is not None and account.role == "coordinator",
        waiting=sum(r.status == fed.WAITING_FOR_US for r in rows),
    )
    response = make_response(body)
    response.headers["Cache-Control"] = "no-store"  # answers change it; a cached copy offers stale buttons
    return response


@bp.post("/answer")
@role_required("coordinator")
def answer_shipment() -> Response:
    """Accept or decline one shipment for this node's communities at its ends that have not answered.

    400: a ref or decision of the wrong shape; 404: no such shipment of a plan involving this node; 409: it
    was answered already, or a newer plan replaced it.
    """
    node = node_or_404()
    ref = request.form.get("ref", "")
    decision = request.form.get("decision", "")
    if not fed.is_ref(ref):
        abort(400, description="ref must name one shipment of a plan: origin/seq#id")
    if decision not in DECISIONS:
        abort(400, description="decision must be accept or decline")
    account = current_account()
    assert account is not None  # role_required
    origin, _, seq = ref.partition("#")[0].partition("/")
    with _ANSWERING, get_store().sessions.begin() as session:
        plan = select(FedFact.id).where(FedFact.origin == origin, FedFact.seq == int(seq)).with_for_update()
        session.execute(plan)
        found = next((r for r in fed.shipments(session, node.name, node.communities) if r.ref == ref), None)
        if found is None:
            abort(404, description="no shipment of that name in a plan involving this node")
        if found.status != fed.WAITING_FOR_US:
            abort(409, description=f"this shipment is {found.status}: it waits for no answer from this node")
        now = utcnow()
        for community in found.ours:
            answer(session, node.name, ref, community, DECISIONS[decision], account.username, now)
    said = "Accepted" if DECISIONS[decision] else "Declined"
    log.info("%s %s shipment %s for %s", account.username, said.lower(), ref, ", ".join(found.ours))
    flash(
        f"{said}: {found.quantity:g} {found.unit} {found.good_name}, {found.from_name} → {found.to_name}.",
        "ok",
    )
    return redirect(url_for("federation.index"))
