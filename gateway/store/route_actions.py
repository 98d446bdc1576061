"""A driver's actions, each applied at most once under the id their phone made for it.

A phone on a poor connection queues what its driver does (picked up, delivered, failed, accept, decline)
and sends the queue when it can; an answer lost on the way makes it send the same action again. So every
action carries a client-made UUID and `perform` records it in `driver_actions` in the same transaction that
applies it: a second send of that id finds the record and gets the first answer back (marked replayed),
whether it was applied or refused, and nothing moves twice. Two sends racing each other meet on the primary
key: the loser's insert fails and it answers from the winner's record.

A refusal (bad input, no such stop, a move the lifecycles refuse) is recorded too, with its message; the
same id sent again with *different* content after a refusal is a new try (the form was corrected), while
different content under an id that was applied is a Conflict.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.errors import Conflict, InvalidInput, NotFound, RhizomeError
from gateway.store import deliveries
from gateway.store.models import DriverAction, Good, Route, RouteStop, Shipment
from gateway.store.models.vocab import DriverActionKind, RouteStatus, StopAction

ACTION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STOP_KINDS: Final = (DriverActionKind.PICKED_UP, DriverActionKind.DELIVERED, DriverActionKind.FAILED)
# How a refusal is kept in driver_actions.refused, and the error a replay raises again.
REFUSALS: Final[Mapping[str, type[RhizomeError]]] = {
    "invalid": InvalidInput,
    "not_found": NotFound,
    "conflict": Conflict,
}
MAX_MESSAGE: Final = 600


@dataclass(frozen=True)
class Ask:
    """One action as the driver's page sent it; its form checked when made (InvalidInput)."""

    id: str
    route_id: int
    kind: DriverActionKind
    account: str
    stop_id: int | None = None
    quantity: float | None = None
    reason: str = ""
    asked: dict[str, Any] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not ACTION_ID.match(self.id):
            raise InvalidInput("the action id must be a UUID (8-4-4-4-12 lowercase hex digits)")
        if (self.stop_id is None) == (self.kind in STOP_KINDS):
            need = "needs the stop it is for" if self.stop_id is None else "is for the route, not a stop"
            raise InvalidInput(f"a {self.kind.replace('_', ' ')} action {need}")
        if self.quantity is not None and not math.isfinite(self.quantity):
            raise InvalidInput("the quantity must be a number")  # above 0 and at most the plan: the store
        object.__setattr__(self, "asked", {"quantity": self.quantity, "reason": self.reason})


@dataclass(frozen=True)
class Answer:
    """What became of an action: applied (`refused` None) or refused with that error, and whether this is
    the first answer given again for a re-sent id."""

    message: str
    refused: type[RhizomeError] | None = None
    replayed: bool = False
    route_status: str | None = None


def perform(sessions: sessionmaker[Session], ask: Ask) -> Answer:
    """Apply `ask` unless its id was seen, recording it (and its answer) once; see the module docstring.
    Raises NotFound (not recorded) if the route does not exist, Conflict if the id was applied to a
    different action."""
    with sessions.begin() as session:
        if session.get(Route, ask.route_id) is None:
            raise NotFound("no such route")
        earlier = _earlier(session, ask)
        if earlier is not None:
            return earlier
    try:
        with sessions.begin() as session:
            row = _row(ask, None, "")
            session.add(row)
            session.flush()  # a concurrent send of the same id waits here, then fails on the key
            row.message = _apply(session, ask)[:MAX_MESSAGE]
            route = session.get(Route, ask.route_id)
            answer = Answer(row.message, route_status=route.status if route is not None else None)
    except IntegrityError as exc:
        return _after_race(sessions, ask, exc)
    except (InvalidInput, NotFound, Conflict) as exc:
        return _refused(sessions, ask, exc)
    return answer


def _row(ask: Ask, refused: str | None, message: str) -> DriverAction:
    return DriverAction(
        id=ask.id,
        route_id=ask.route_id,
        stop_id=ask.stop_id,
        account=ask.account,
        kind=ask.kind.value,
        asked=ask.asked,
        refused=refused,
        message=message[:MAX_MESSAGE],
    )


def _same(row: DriverAction, ask: Ask) -> bool:
    return (row.route_id, row.stop_id, row.kind, row.account, row.asked) == (
        ask.route_id,
        ask.stop_id,
        ask.kind.value,
        ask.account,
        ask.asked,
    )


def _earlier(session: Session, ask: Ask) -> Answer | None:
    """The first answer to this id, if there is one to give again (None: apply it now)."""
    row = session.get(DriverAction, ask.id)
    if row is None:
        return None
    status = _route_status(session, row.route_id)
    if row.refused is None:
        if not _same(row, ask):
            raise Conflict("this action id was already used for another action: reload the page")
        return Answer(row.message, None, True, status)
    if not _same(row, ask):  # refused, then sent corrected under the same id: a new try
        session.delete(row)
        return None
    return Answer(row.message, REFUSALS[row.refused], True, status)


def _route_status(session: Session, route_id: int) -> str | None:
    route = session.get(Route, route_id)
    return route.status if route is not None else None


def _refused(sessions: sessionmaker[Session], ask: Ask, exc: RhizomeError) -> Answer:
    """Record the refusal so a re-send gets it again (unless a racing send recorded its own answer)."""
    kind = next(name for name, error in REFUSALS.items() if isinstance(exc, error))
    try:
        with sessions.begin() as session:
            session.add(_row(ask, kind, str(exc)))
            status = _route_status(session, ask.route_id)
    except IntegrityError as race:
        return _after_race(sessions, ask, race)
    return Answer(str(exc)[:MAX_MESSAGE], REFUSALS[kind], False, status)


def _after_race(sessions: sessionmaker[Session], ask: Ask, exc: IntegrityError) -> Answer:
    """Another send of the same id won: its answer. Without one the IntegrityError was not about the id."""
    with sessions.begin() as session:
        earlier = _earlier(session, ask)
    if earlier is None:
        raise exc
    return earlier


def _apply(session: Session, ask: Ask) -> str:
    """Do what was asked; the driver's sentence for it."""
    if ask.kind is DriverActionKind.ACCEPT:
        deliveries.accept_route(session, ask.route_id)
        return "Route accepted: it is yours. Thank you!"
    if ask.kind is DriverActionKind.DECLINE:
        route = session.get(Route, ask.route_id)
        given_back = route is not None and route.status == RouteStatus.ACCEPTED
        freed = len(deliveries.decline_route(session, ask.route_id, ask.reason))
        what = "given back" if given_back else "declined"
        return f"Route {what}; its {freed} shipment{'' if freed == 1 else 's'} go back to the planner."
    assert ask.stop_id is not None  # Ask checked it
    stop = session.get(RouteStop, ask.stop_id)
    if stop is None or stop.route_id != ask.route_id:
        raise NotFound("no such stop on this route")
    if ask.kind is DriverActionKind.FAILED:
        deliveries.record_stop(session, ask.route_id, stop.id, "failed", ask.reason)
        return "Failed delivery recorded; it will be re-planned."
    pickup = stop.action == StopAction.PICKUP
    if pickup != (ask.kind is DriverActionKind.PICKED_UP):
        other = "a pickup: record it as picked up" if pickup else "a drop-off: record it as delivered"
        raise Conflict(f"this stop is {other}")
    if pickup and ask.quantity is None:
        deliveries.check_recordable(session, ask.route_id, stop)  # a closed route answers that first
        planned = _planned(session, stop)
        raise InvalidInput(f"say how much you loaded{planned}: an empty box is not taken as the plan")
    deliveries.record_stop(session, ask.route_id, stop.id, "done", "", ask.quantity)
    return "Picked up." if pickup else "Delivered."


def _planned(session: Session, stop: RouteStop) -> str:
    """ " (planned: 20 kg)" for the stop's shipment, or nothing if it carries none."""
    shipment = session.get(Shipment, stop.shipment_id) if stop.shipment_id is not None else None
    good = session.get(Good, shipment.good_id) if shipment is not None else None
    if shipment is None or good is None:
        return ""
    return f" (planned: {shipment.quantity:g} {good.unit})"
