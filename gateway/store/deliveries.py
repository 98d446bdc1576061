"""The shipment and route lifecycles, each one table: what a driver's recorded stop or declined route does.

Picking up takes the shipment's goods out of the source site's stock; delivering puts them into the
destination's; both append a stock ledger entry with source "delivery" (gateway.store.stock). A failed
delivery keeps its reason, returns picked-up goods to the source site's stock, and tells the planner: each
recorded stop and each declined route writes an internal event in the same transaction, which wakes the
planner to re-plan at once. The router puts planned shipments on new routes (`put_on_route`), and may
supersede or withdraw a route its driver has not accepted; a superseded, withdrawn, declined or done route
refuses every action and moves no stock. The driver's hours follow in gateway.store.hours: offered when the
route is planned, reserved on accept, counted from the first pickup to the last stop, released on decline.
The allocation revises or cancels shipments still on no route (`revise_quantity`, `cancel_planned`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway.contract import clock
from gateway.contract.errors import Conflict, InvalidInput, NotFound
from gateway.contract.events import RouteChanged, ShipmentChanged
from gateway.store import declines, hours, stock
from gateway.store.models import Route, RouteStop, Shipment, utcnow
from gateway.store.models.vocab import RouteStatus, ShipmentStatus, StopAction, StopStatus, WorkKind
from gateway.store.outbox import enqueue_event

MAX_REASON: Final = 500


class ShipmentAction(StrEnum):
    """What can happen to a shipment once the allocation planned it."""

    ROUTE = "route"  # the router puts it on a new route
    UNROUTE = "unroute"  # its route was declined, withdrawn or superseded: planned again, on no route
    REVISE = "revise"  # the allocation changed its quantity while it was on no route
    CANCEL = "cancel"  # the allocation no longer needs it (on no route yet)
    PICK_UP = "pick_up"  # the driver loaded it (perhaps less than planned)
    DELIVER = "deliver"  # the driver dropped it off
    FAIL = "fail"  # the driver could not deliver it, with a reason


class RouteAction(StrEnum):
    """What can happen to a route once the router proposed it."""

    ACCEPT = "accept"  # the driver will drive it: the planner no longer revises it
    DECLINE = "decline"  # the driver cannot drive it (only before starting)
    RELEASE = "release"  # the driver gives back a route they had accepted, before starting it
    RECORD = "record"  # a stop was recorded and others are still pending
    FINISH = "finish"  # the last pending stop was recorded
    SUPERSEDE = "supersede"  # the planner replaced it by a revised route (only before it is accepted)
    WITHDRAW = "withdraw"  # the planner took it back (only before it is accepted)


SHIPMENT_TRANSITIONS: Final[Mapping[tuple[ShipmentStatus, ShipmentAction], ShipmentStatus]] = {
    (ShipmentStatus.PLANNED, ShipmentAction.ROUTE): ShipmentStatus.ASSIGNED,
    (ShipmentStatus.ASSIGNED, ShipmentAction.UNROUTE): ShipmentStatus.PLANNED,
    (ShipmentStatus.PLANNED, ShipmentAction.REVISE): ShipmentStatus.PLANNED,
    (ShipmentStatus.PLANNED, ShipmentAction.CANCEL): ShipmentStatus.CANCELLED,
    (ShipmentStatus.PLANNED, ShipmentAction.PICK_UP): ShipmentStatus.PICKED_UP,
    (ShipmentStatus.ASSIGNED, ShipmentAction.PICK_UP): ShipmentStatus.PICKED_UP,
    (ShipmentStatus.PICKED_UP, ShipmentAction.DELIVER): ShipmentStatus.DELIVERED,
    (ShipmentStatus.PLANNED, ShipmentAction.FAIL): ShipmentStatus.FAILED,
    (ShipmentStatus.ASSIGNED, ShipmentAction.FAIL): ShipmentStatus.FAILED,
    (ShipmentStatus.PICKED_UP, ShipmentAction.FAIL): ShipmentStatus.FAILED,
}
ROUTE_TRANSITIONS: Final[Mapping[tuple[RouteStatus, RouteAction], RouteStatus]] = {
    (RouteStatus.PROPOSED, RouteAction.ACCEPT): RouteStatus.ACCEPTED,
    (RouteStatus.PROPOSED, RouteAction.DECLINE): RouteStatus.DECLINED,
    (RouteStatus.ACCEPTED, RouteAction.RELEASE): RouteStatus.DECLINED,
    (RouteStatus.PROPOSED, RouteAction.SUPERSEDE): RouteStatus.SUPERSEDED,
    (RouteStatus.PROPOSED, RouteAction.WITHDRAW): RouteStatus.WITHDRAWN,
    (RouteStatus.PROPOSED, RouteAction.RECORD): RouteStatus.IN_PROGRESS,
    (RouteStatus.ACCEPTED, RouteAction.RECORD): RouteStatus.IN_PROGRESS,
    (RouteStatus.IN_PROGRESS, RouteAction.RECORD): RouteStatus.IN_PROGRESS,
    (RouteStatus.PROPOSED, RouteAction.FINISH): RouteStatus.DONE,
    (RouteStatus.ACCEPTED, RouteAction.FINISH): RouteStatus.DONE,
    (RouteStatus.IN_PROGRESS, RouteAction.FINISH): RouteStatus.DONE,
}
# Why a move the table does not allow is refused, for the driver ({status} is the current one, in words).
SHIPMENT_REFUSED: Final[Mapping[ShipmentAction, str]] = {
    ShipmentAction.ROUTE: "the shipment is {status}: it cannot be put on a route",
    ShipmentAction.UNROUTE: "the shipment is {status}: it is on no route to leave",
    ShipmentAction.REVISE: "the shipment is {status}: only a shipment on no route can be revised",
    ShipmentAction.CANCEL: "the shipment is {status}: only a shipment on no route can be cancelled",
    ShipmentAction.PICK_UP: "the shipment is {status}: it cannot be picked up",
    ShipmentAction.DELIVER: "pick the goods up first: the shipment has not been picked up",
    ShipmentAction.FAIL: "the shipment is {status}: its delivery cannot fail",
}
ROUTE_REFUSED: Final[Mapping[RouteAction, str]] = {
    RouteAction.ACCEPT: "this route is {status}: only a proposed route can be accepted",
    RouteAction.DECLINE: "this route is {status}: only a route not started can be declined",
    RouteAction.RELEASE: "this route is {status}: only an accepted route not started can be given back",
    RouteAction.RECORD: "this route is {status}: its stops can no longer be recorded",
    RouteAction.FINISH: "this route is {status}: its stops can no longer be recorded",
    RouteAction.SUPERSEDE: "this route is {status}: the planner revises only routes not yet accepted",
    RouteAction.WITHDRAW: "this route is {status}: the planner withdraws only routes not yet accepted",
}
# A route no action applies to any more, and why, in the driver's words (every action on it is a 409).
DEAD_ROUTE: Final[Mapping[RouteStatus, str]] = {
    RouteStatus.SUPERSEDED: "this route was replaced by a revised one{by}: open that one; nothing here moves",
    RouteStatus.WITHDRAWN: "the planner withdrew this route: nothing on it needs carrying any more",
    RouteStatus.DECLINED: "this route was declined: its shipments went back to the planner",
    RouteStatus.DONE: "this route is done: every stop is recorded",
}
OUTCOMES: Final = (StopStatus.DONE, StopStatus.FAILED)  # what a driver records for a pending stop


def shipment_move(shipment: Shipment, action: ShipmentAction) -> ShipmentStatus:
    """The shipment's status after `action`; Conflict if the table does not allow it from its status."""
    new = SHIPMENT_TRANSITIONS.get((ShipmentStatus(shipment.status), action))
    if new is None:
        raise Conflict(SHIPMENT_REFUSED[action].format(status=shipment.status.replace("_", " ")))
    return new


def route_move(route: Route, action: RouteAction, replaced_by: int | None = None) -> RouteStatus:
    """The route's status after `action`; Conflict if the table does not allow it from its status (for a
    dead route, the reason it is dead and, if superseded, which route replaced it)."""
    status = RouteStatus(route.status)
    new = ROUTE_TRANSITIONS.get((status, action))
    if new is not None:
        return new
    if status in DEAD_ROUTE and action not in (RouteAction.SUPERSEDE, RouteAction.WITHDRAW):
        by = f" (route {replaced_by})" if replaced_by is not None else ""
        raise Conflict(DEAD_ROUTE[status].format(by=by))
    raise Conflict(ROUTE_REFUSED[action].format(status=route.status.replace("_", " ")))


def replacement(session: Session, route: Route) -> int | None:
    """The route that stands for `route` now, if it was superseded: the end of its chain of revisions
    (a route revised three times points the driver at the live one, not the next dead one)."""
    current: Route | None = route
    seen: set[int] = set()
    while current is not None and current.status == RouteStatus.SUPERSEDED and current.id not in seen:
        seen.add(current.id)
        newer = session.scalar(select(func.max(Route.id)).where(Route.replaces_id == current.id))
        if newer is None:
            break
        current = session.get(Route, newer)
    return None if current is None or current.id == route.id else current.id


def move_route(session: Session, route: Route, action: RouteAction) -> RouteStatus:
    """`route_move`, naming the replacement when the route was superseded."""
    return route_move(route, action, replacement(session, route))


def put_on_route(session: Session, shipment_ids: Sequence[int], route_id: int) -> None:
    """The router's new route carries these planned shipments: one UPDATE for them all."""
    assigned = SHIPMENT_TRANSITIONS[ShipmentStatus.PLANNED, ShipmentAction.ROUTE]
    session.execute(
        update(Shipment).where(Shipment.id.in_(shipment_ids)).values(route_id=route_id, status=assigned.value)
    )


def revise_quantity(session: Session, shipment_id: int, quantity: float) -> Shipment:
    """The allocation changed what a shipment on no route carries (a whole number of units, > 0)."""
    shipment = session.get(Shipment, shipment_id)
    if shipment is None:
        raise NotFound(f"no shipment {shipment_id}")
    if not (math.isfinite(quantity) and quantity > 0):
        raise InvalidInput(f"a shipment carries more than 0, not {quantity!r}")
    shipment.status = shipment_move(shipment, ShipmentAction.REVISE).value
    shipment.quantity = quantity
    return shipment


def cancel_planned(session: Session, shipment_ids: Sequence[int], reason: str) -> list[int]:
    """The allocation no longer needs these shipments on no route: cancelled, with the reason. Returns the
    ids cancelled (one put on a route meanwhile is left alone)."""
    cancelled = []
    for shipment in session.scalars(select(Shipment).where(Shipment.id.in_(shipment_ids)).with_for_update()):
        if (ShipmentStatus(shipment.status), ShipmentAction.CANCEL) not in SHIPMENT_TRANSITIONS:
            continue
        shipment.status = shipment_move(shipment, ShipmentAction.CANCEL).value
        shipment.failure_reason = reason[:MAX_REASON]
        cancelled.append(shipment.id)
    return cancelled


def _reason(text: str, required: str | None) -> str:
    """A person's reason, stripped; InvalidInput with `required` if it is empty (and one is needed) and
    if it is longer than MAX_REASON."""
    text = text.strip()
    if required is not None and not text:
        raise InvalidInput(required)
    if len(text) > MAX_REASON:
        raise InvalidInput(f"the reason is longer than {MAX_REASON} characters")
    return text


def record_stop(
    session: Session,
    route_id: int,
    stop_id: int,
    outcome: str,
    reason: str = "",
    quantity: float | None = None,
) -> RouteStop:
    """Record `outcome` (done or failed) for a pending stop of the route.

    A pickup may take less than planned (`quantity`: what was there); the shipment then carries what was
    loaded, and the rest of the need waits for the next plan instead of the whole delivery failing.
    Raises NotFound, InvalidInput or Conflict (a move the shipment or route tables do not allow).
    """
    recorded = next((o for o in OUTCOMES if o.value == outcome), None)
    if recorded is None:
        raise NotFound(f"unknown outcome {outcome[:40]!r}: use done or failed")
    failed = recorded is StopStatus.FAILED
    why = "say why the delivery failed, so it can be re-planned sensibly"
    reason = _reason(reason, why if failed else None)
    if quantity is not None and not math.isfinite(quantity):
        raise InvalidInput("the quantity must be a number")
    stop, shipment = _pending_stop(session, route_id, stop_id)
    route, route_status = _route_after(session, route_id, stop)
    if shipment.route_id != route_id:
        raise Conflict("this shipment is no longer on this route: nothing was recorded")
    now, work_now = utcnow(), clock.now()
    if route.status in (RouteStatus.PROPOSED, RouteStatus.ACCEPTED):  # the first stop: the drive began
        hours.reserve(session, WorkKind.ROUTE, route_id)
        hours.start(session, WorkKind.ROUTE, route_id, work_now)
    if route_status is RouteStatus.DONE:
        hours.finish(session, WorkKind.ROUTE, route_id, work_now)
    if failed:
        _fail(session, stop, shipment, reason)
    elif stop.action == StopAction.PICKUP:
        _pick_up(session, stop, shipment, route_id, quantity)
    else:
        _deliver(session, stop, shipment, route_id)
    stop.status = recorded.value
    changed = ShipmentChanged(
        shipment_id=shipment.id,
        route_id=route_id,
        status=shipment.status,
        reason=reason if failed else "",
        at=now,
    )
    enqueue_event(session, changed)
    route.status = route_status.value
    return stop


def check_recordable(session: Session, route_id: int, stop: RouteStop) -> None:
    """Conflict if `record_stop` would refuse the stop for its state (recorded already, or a route that
    takes no more records), so a caller checking its own input first still answers the state first."""
    if stop.status != StopStatus.PENDING:
        raise Conflict(f"this stop is already recorded as {stop.status}")
    _route_after(session, route_id, stop)


def _pending_stop(session: Session, route_id: int, stop_id: int) -> tuple[RouteStop, Shipment]:
    """The route's stop, locked, if it is still pending, with the shipment it carries."""
    stop = session.scalar(
        select(RouteStop).where(RouteStop.id == stop_id, RouteStop.route_id == route_id).with_for_update()
    )
    if stop is None:
        raise NotFound("no such stop on this route")
    if stop.status != StopStatus.PENDING:
        raise Conflict(f"this stop is already recorded as {stop.status}")
    shipment = session.get(Shipment, stop.shipment_id) if stop.shipment_id is not None else None
    if shipment is None:
        raise InvalidInput("this stop carries no shipment")
    return stop, shipment


def _route_after(session: Session, route_id: int, stop: RouteStop) -> tuple[Route, RouteStatus]:
    """The route and its status once `stop` is recorded: done with it if no other stop is pending."""
    route = session.get(Route, route_id)
    assert route is not None  # the stop belongs to it
    pending = RouteStop.status == StopStatus.PENDING
    others = session.scalar(
        select(RouteStop.id).where(RouteStop.route_id == route_id, pending, RouteStop.id != stop.id).limit(1)
    )
    return route, move_route(session, route, RouteAction.RECORD if others is not None else RouteAction.FINISH)


def _fail(session: Session, stop: RouteStop, shipment: Shipment, reason: str) -> None:
    """A failed delivery: goods already loaded go back to the source site; the reason is kept."""
    if stop.action != StopAction.DELIVERY:
        raise InvalidInput("only a delivery can fail; skip a pickup by failing its delivery")
    new = shipment_move(shipment, ShipmentAction.FAIL)
    if shipment.status == ShipmentStatus.PICKED_UP:
        note = f"returned: {reason}"
        stock.move(session, shipment.from_site_id, shipment.good_id, shipment.quantity, note, shipment.id)
    shipment.status, shipment.failure_reason = new.value, reason


def _pick_up(
    session: Session, stop: RouteStop, shipment: Shipment, route_id: int, quantity: float | None
) -> None:
    """The driver loads the shipment, or the `quantity` of it the site still held."""
    new = shipment_move(shipment, ShipmentAction.PICK_UP)
    planned = shipment.quantity
    taken = planned if quantity is None else quantity
    if not 0 < taken <= planned:
        raise InvalidInput(f"pick up more than 0 and at most the planned {planned:g}")
    note = f"picked up (route {route_id})" if taken == planned else f"picked up {taken:g} of {planned:g}"
    held = stock.held(session, stop.site_id, shipment.good_id)
    if held < taken:
        raise Conflict(f"the site holds only {held:g} of this good, not {taken:g}: pick up what is there")
    shipment.quantity = taken
    stock.move(session, stop.site_id, shipment.good_id, -taken, note, shipment.id)
    shipment.status = new.value


def _deliver(session: Session, stop: RouteStop, shipment: Shipment, route_id: int) -> None:
    """The driver drops the loaded goods off at the destination."""
    new = shipment_move(shipment, ShipmentAction.DELIVER)
    note = f"delivered (route {route_id})"
    if shipment.fed_ref is None:  # another node books what reaches it, from the delivery fact this one sends
        stock.move(session, stop.site_id, shipment.good_id, shipment.quantity, note, shipment.id)
    shipment.status = new.value


def _locked_route(session: Session, route_id: int) -> Route:
    route = session.scalar(select(Route).where(Route.id == route_id).with_for_update())
    if route is None:
        raise NotFound("no such route")
    return route


def accept_route(session: Session, route_id: int) -> Route:
    """The driver will drive it: their hours are reserved and the planner no longer revises it."""
    route = _locked_route(session, route_id)
    route.status = move_route(session, route, RouteAction.ACCEPT).value
    hours.reserve(session, WorkKind.ROUTE, route_id)
    enqueue_event(session, RouteChanged(route_id=route_id, status=route.status, at=utcnow()))
    return route


def _unroute(session: Session, route_id: int, why: str) -> list[Shipment]:
    """The route's shipments not yet picked up go back to the planner: planned, on no route, `why` kept."""
    freed = list(
        session.scalars(
            select(Shipment).where(Shipment.route_id == route_id, Shipment.status == ShipmentStatus.ASSIGNED)
        )
    )
    for shipment in freed:
        shipment.status, shipment.route_id = shipment_move(shipment, ShipmentAction.UNROUTE).value, None
        shipment.failure_reason = why[:MAX_REASON]
    return freed


def decline_route(session: Session, route_id: int, reason: str) -> list[int]:
    """The driver cannot drive a route they have not started (proposed, or accepted and given back): it is
    declined, their hours released, and its shipments are free for the planner again (planned, no route,
    the reason kept if one was given: participation is voluntary, so none is required); the planner does
    not offer them the same lanes for DECLINE_DAYS. Returns the freed shipments' ids; Conflict if the route
    is under way, done, superseded, withdrawn or declined already."""
    reason = _reason(reason, None)
    route = _locked_route(session, route_id)
    action = RouteAction.RELEASE if route.status == RouteStatus.ACCEPTED else RouteAction.DECLINE
    declined = move_route(session, route, action)
    now = utcnow()
    freed = _unroute(session, route_id, f"route {route_id} declined" + (f": {reason}" if reason else ""))
    if route.member_id is not None:
        declines.record_route(session, route_id, route.member_id, freed, reason, clock.now())
    hours.release(session, WorkKind.ROUTE, route_id)
    route.status = declined.value
    enqueue_event(session, RouteChanged(route_id=route_id, status=route.status, at=now))
    return [s.id for s in freed]


def retire_route(session: Session, route_id: int, replaced_by: int | None = None) -> list[int]:
    """The planner takes back a route its driver has not accepted: superseded by `replaced_by` (a revised
    route, perhaps for the same driver) or withdrawn. Its shipments are planned again, the driver's
    offered hours released. Returns the freed shipments' ids; Conflict if the route is accepted or later."""
    route = _locked_route(session, route_id)
    action = RouteAction.SUPERSEDE if replaced_by is not None else RouteAction.WITHDRAW
    retired = route_move(route, action)
    why = f"route {route_id} revised" if replaced_by is not None else f"route {route_id} withdrawn"
    freed = _unroute(session, route_id, why)
    hours.release(session, WorkKind.ROUTE, route_id)
    route.status = retired.value
    enqueue_event(session, RouteChanged(route_id=route_id, status=route.status, at=utcnow()))
    return [s.id for s in freed]
