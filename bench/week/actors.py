"""Simulated crews and drivers: they hear their alerts and route notices over MQTT, act through the dashboard
like people do, and tell the simulator what their hands did (a repair, goods loaded or unloaded).

Times are simulated (travel from distance, a plausible repair time) and turned into real waits by the speed.
Some members decline, some accept and never come (a coordinator then declines for them), some drivers decline
a route or give an accepted one back; every choice is drawn from a generator seeded per task or route, so a
rerun behaves alike. Drivers accept a route before driving it and drive only the stops it held when they
accepted; a route the planner revised or withdrew before they answered (its status is no longer `proposed`,
or a `route_updated` / `route_withdrawn` notice said so) is left alone.

The open task board: a member the matcher suggested for a place answers after the same while, no with
`decline_p`, yes otherwise; one told of an urgent place takes it with `urgent_take_p`; and every six
simulated hours a `browse_p` share of the members with a weekly pledge look at the board and take one free
place near them that fits what they offered. All of it through gateway.store.board, which enforces the
pledge and the offer, on the work clock.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import paho.mqtt.client as mqtt
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bench.week.webclient import DashboardClient, DashboardError
from gateway.contract.client import connect, make_client
from gateway.contract.clock import WorkClock
from gateway.contract.errors import Conflict, NotFound
from gateway.contract.target import MqttTarget
from gateway.contract.topics import QOS, ROOT, sim_control_topic
from gateway.store import board
from gateway.store.models import (
    BoardTask,
    Device,
    Fault,
    Good,
    Member,
    MemberSkill,
    RepairTask,
    Route,
    RouteStop,
    Shipment,
    Site,
    SlotSignup,
    Stock,
    TaskShift,
    TaskSlot,
)
from gateway.store.models.vocab import RouteStatus, SignupState
from logistics.common.geo import haversine_km
from logistics.loaders.tasks import OpenPlace, open_places

log = logging.getLogger(__name__)
ROAD_FACTOR: Final = 1.35  # road km per straight-line km in the mountains
# Hours on site by the fault the task came from (low, high): uniform between them.
REPAIR_HOURS: Final = {
    "pump_failure": (1.5, 4.0),
    "motor_overcurrent": (2.0, 5.0),
    "cold_chain_breach": (1.5, 3.0),
    "cold_room_warming": (1.5, 3.0),
    "sensor_stuck": (0.5, 1.5),
    "pump_silent": (0.5, 2.0),
    "cold_room_silent": (0.5, 2.0),
}
DEFAULT_REPAIR_HOURS: Final = (1.0, 3.0)
BOARD_ALERTS: Final = ("task_suggested", "slot_urgent")  # the board alerts people answer
BROWSE_EVERY_H: Final = 6.0  # simulated hours between two looks at the board by the members who browse it
BROWSE_KM: Final = 25.0  # a browsing member takes a place at most this far (straight line) from home
BROWSE_TRIES: Final = 5  # of those, the nearest places a browsing member looks at closely


@dataclass(frozen=True)
class Behaviour:
    """How the simulated people behave, in simulated time."""

    speed: float
    seed: int = 1
    decline_p: float = 0.10
    no_show_p: float = 0.07
    no_show_after_h: float = 4.0  # a coordinator declines for a member who has not arrived by then
    respond_min: tuple[float, float] = (5.0, 30.0)
    crew_kmh: float = 35.0
    driver_kmh: float = 40.0
    driver_no_show_p: float = 0.08  # routes the driver declines (after the usual wait) instead of driving
    driver_release_p: float = 0.03  # routes the driver accepts, then gives back before leaving
    driver_wait_min: tuple[float, float] = (15.0, 90.0)  # from the notice to their answer
    driver_prep_min: float = 10.0  # from accepting (or the end of their last trip) to leaving
    stop_min: float = 10.0
    failed_delivery_p: float = 0.03
    urgent_take_p: float = 0.5  # members told of an urgent board place who take it
    browse_p: float = 0.03  # share of the members with a pledge who take a place from the board each look


@dataclass(frozen=True)
class Receipt:
    """One message heard on a member's topic, with the time it arrived."""

    at: datetime
    topic: str
    body: dict[str, Any]


@dataclass
class Tally:
    """What the simulated people did (for the log; the report counts from the store)."""

    accepted: int = 0
    declined: int = 0
    no_shows: int = 0
    fixed: int = 0
    refused: int = 0  # actions the dashboard refused (the task closed or moved meanwhile), empty pickups
    short_pickups: int = 0  # pickups that loaded less than planned (the source had less by then)
    routes_accepted: int = 0
    routes_driven: int = 0
    routes_skipped: int = 0  # declined by the driver, or nothing left to drive when they set off
    routes_released: int = 0
    routes_ignored: int = 0  # revised or withdrawn by the planner before the driver answered
    stops: int = 0
    failed_stops: int = 0
    board_accepted: int = 0  # suggestions of a board place accepted
    board_declined: int = 0  # ... declined
    board_taken: int = 0  # board places taken unasked: urgent ones and ones found browsing


@dataclass
class People:
    """Crews and drivers of the region, driven by their MQTT topics and a clock of due actions."""

    target: MqttTarget
    sessions: sessionmaker[Session]
    web: DashboardClient
    behaviour: Behaviour
    receipts: list[Receipt] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    work_clock: WorkClock | None = None  # people's time (simulated); drivers set off when a route starts

    def __post_init__(self) -> None:
        self._inbox: queue.SimpleQueue[Receipt] = queue.SimpleQueue()
        self._heap: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()
        self._free_at: dict[int, float] = {}  # member id -> monotonic time they are free again
        self._not_loaded: set[int] = set()  # shipments whose pickup the dashboard refused
        self._loaded: dict[int, float] = {}  # shipment id -> what was loaded (less than planned when short)
        self._dropped: set[int] = set()  # routes the planner revised or withdrew (its notices said so)
        self._accepted: dict[int, frozenset[int]] = {}  # route id -> the stops it held when accepted
        self._driving_until: dict[int, float] = {}  # member id -> monotonic time their current trip ends
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="week-people", daemon=True)
        self.client = make_client(self.target, f"rhizome-week-people-{self.behaviour.seed}")
        self.client.on_connect = lambda client, *_: client.subscribe(
            [(f"{ROOT}/members/+/alerts", QOS), (f"{ROOT}/members/+/routes", QOS)]
        )
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: self.subscribed.set()

    def start(self) -> None:
        """Connect, subscribe, and start acting."""
        connect(self.client, self.target)
        self.client.loop_start()
        if not self.subscribed.wait(30):
            raise OSError("the simulated crews could not subscribe to their topics")
        # The first look at the board comes BROWSE_EVERY_H after the work clock's start.
        lead = max(0.0, self.work_clock.real_start - time.time()) if self.work_clock is not None else 0.0
        self._later(BROWSE_EVERY_H * 3600, lambda: self._browse(1), time.monotonic() + lead)
        self._thread.start()

    def stop(self) -> None:
        """Stop acting and disconnect; actions not yet due are dropped."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        at = datetime.now(UTC)
        try:
            body = json.loads(message.payload)
        except ValueError:
            body = {}
        receipt = Receipt(at, message.topic, body if isinstance(body, dict) else {})
        self.receipts.append(receipt)
        self._inbox.put(receipt)

    def _later(self, sim_s: float, action: Callable[[], object], after: float | None = None) -> float:
        due = (after if after is not None else time.monotonic()) + sim_s / self.behaviour.speed
        heapq.heappush(self._heap, (due, next(self._order), action))
        return due

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                receipt = self._inbox.get(timeout=0.02)
            except queue.Empty:
                receipt = None
            if receipt is not None:
                self._guard(functools.partial(self._heard, receipt))
            while self._heap and self._heap[0][0] <= time.monotonic() and not self._stop.is_set():
                _, _, action = heapq.heappop(self._heap)
                self._guard(action)

    def _guard(self, action: Callable[[], object]) -> None:
        try:
            action()
        except DashboardError as exc:
            self.tally.refused += 1
            log.info("dashboard refused: %s", exc)
        except (OSError, ValueError) as exc:  # one person's trouble never stops the others
            log.warning("simulated person failed: %s", exc)
        except SQLAlchemyError as exc:  # a store call that lost a race (a lock, a place taken meanwhile)
            self.tally.refused += 1
            log.warning("simulated person's store call failed: %s", exc)

    def _heard(self, receipt: Receipt) -> None:
        member_id = int(receipt.topic.split("/")[3])
        event = receipt.body.get("event")
        if receipt.topic.endswith("/alerts") and event == "task_assigned":
            self._task(member_id, int(receipt.body["task"]), _planned(receipt.body.get("starts_at")))
        elif receipt.topic.endswith("/alerts") and receipt.body.get("type") in BOARD_ALERTS:
            self._board_alert(member_id, receipt.body)
        elif receipt.topic.endswith("/routes"):
            self._route_notice(member_id, event, receipt.body)

    def _route_notice(self, member_id: int, event: Any, body: dict[str, Any]) -> None:
        """A new route is an offer to answer, a revised one replaces the old, a withdrawn one is gone."""
        if event == "route_planned":
            self._route(member_id, int(body["route"]))
        elif event == "route_updated":
            if body.get("replaces") is not None:
                self._dropped.add(int(body["replaces"]))
            self._route(member_id, int(body["route"]))
        elif event == "route_withdrawn":
            self._dropped.add(int(body["route"]))

    # Crews ---------------------------------------------------------------------------------------------

    def _task(self, member_id: int, task_id: int, starts_at: datetime | None = None) -> None:
        """Answer a task: decline, or accept and go at the planned time (`starts_at`), repair, mark fixed."""
        b = self.behaviour
        rng = random.Random(f"{b.seed}/task/{task_id}/{member_id}")
        with self.sessions() as session:
            member = session.get(Member, member_id)
            task = session.get(RepairTask, task_id)
            if member is None or task is None:
                return
            site = session.get(Site, task.site_id)
            fault = session.get(Fault, task.fault_id) if task.fault_id is not None else None
            device = session.get(Device, fault.device_id) if fault is not None else None
            assert site is not None
            distance = haversine_km(member.lat, member.lon, site.lat, site.lon) * ROAD_FACTOR
            kind, slug = (fault.kind if fault else ""), (device.slug if device else None)
        respond_s = rng.uniform(*b.respond_min) * 60
        roll = rng.random()
        if roll < b.decline_p:
            self._later(
                respond_s, lambda: self._decline(member_id, task_id, "busy with the harvest this week")
            )
            return
        accepted_at = self._later(respond_s, lambda: self._act(member_id, task_id, "accept"))
        if roll < b.decline_p + b.no_show_p:
            reason = (
                f"no-show: not on site {b.no_show_after_h:g} h after accepting (declined by a coordinator)"
            )
            self._later(
                b.no_show_after_h * 3600, lambda: self._no_show(member_id, task_id, reason), accepted_at
            )
            return
        # Not before the planned start: the planner fitted it into their free time and their pledge.
        planned = time.monotonic() + self._until(starts_at)
        leave = max(accepted_at, self._free_at.get(member_id, 0.0), planned)
        travel_s = (distance / b.crew_kmh) * 3600 + 600  # plus ten minutes to get the tools together
        arrive = self._later(travel_s, lambda: self._act(member_id, task_id, "start"), leave)
        low, high = REPAIR_HOURS.get(kind, DEFAULT_REPAIR_HOURS)
        done = self._later(
            rng.uniform(low, high) * 3600, lambda: self._fixed(member_id, task_id, slug), arrive
        )
        self._free_at[member_id] = done

    def _act(self, member_id: int, task_id: int, action: str) -> None:
        self.web.task_action(member_id, task_id, action)
        if action == "accept":
            self.tally.accepted += 1

    def _decline(self, member_id: int, task_id: int, reason: str) -> None:
        self.web.task_action(member_id, task_id, "decline", reason)
        self.tally.declined += 1

    def _no_show(self, member_id: int, task_id: int, reason: str) -> None:
        self.web.task_action(member_id, task_id, "decline", reason)
        self.tally.no_shows += 1

    def _fixed(self, member_id: int, task_id: int, device: str | None) -> None:
        self.web.task_action(member_id, task_id, "fixed")
        self.tally.fixed += 1
        if device is not None:  # the crew's hands: the simulated device is repaired now
            self.client.publish(sim_control_topic(device), json.dumps({"action": "repair"}), qos=QOS)

    # The task board ------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        """People's time: the work clock (simulated in the week)."""
        return self.work_clock.now() if self.work_clock is not None else datetime.now(UTC)

    def _board_alert(self, member_id: int, body: dict[str, Any]) -> None:
        """A suggestion is answered after a while (no with decline_p); an urgent place is taken with
        urgent_take_p. Other board alerts (a change, a cancellation) need nothing of them."""
        kind, shift_id, slot_id = body.get("type"), body.get("shift_id"), body.get("slot_id")
        if not isinstance(shift_id, int) or not isinstance(slot_id, int):
            return
        b = self.behaviour
        rng = random.Random(f"{b.seed}/board/{kind}/{shift_id}/{slot_id}/{member_id}")
        respond_s = rng.uniform(*b.respond_min) * 60
        roll = rng.random()
        if kind == "task_suggested":
            yes = roll >= b.decline_p
            self._later(respond_s, lambda: self._board_answer(member_id, shift_id, slot_id, yes))
        elif kind == "slot_urgent" and roll < b.urgent_take_p:
            self._later(respond_s, lambda: self._board_take(member_id, shift_id, slot_id, "urgent"))

    def _board_answer(self, member_id: int, shift_id: int, slot_id: int, yes: bool) -> None:
        """Accept or decline the suggestion of this place, if it still waits for their answer."""
        now = self._now()
        try:
            with self.sessions.begin() as session:
                signup_id = session.scalar(
                    select(SlotSignup.id).where(
                        SlotSignup.member_id == member_id,
                        SlotSignup.shift_id == shift_id,
                        SlotSignup.slot_id == slot_id,
                        SlotSignup.state == SignupState.SUGGESTED,
                    )
                )
                if signup_id is not None:
                    if yes:
                        board.accept(session, signup_id, member_id, now=now)
                    else:
                        board.decline(session, signup_id, member_id, now=now)
        except (Conflict, NotFound) as exc:
            self.tally.refused += 1
            log.info("member %s could not answer place %s/%s: %s", member_id, shift_id, slot_id, exc)
            return
        if signup_id is None:  # lapsed, or someone else took the place meanwhile
            self.tally.refused += 1
            log.info("the suggestion of place %s/%s to member %s is gone", shift_id, slot_id, member_id)
        elif yes:
            self.tally.board_accepted += 1
        else:
            self.tally.board_declined += 1

    def _board_take(self, member_id: int, shift_id: int, slot_id: int, why: str) -> bool:
        """Take the place unasked; False (counted refused) when it was gone or no longer fits them."""
        try:
            with self.sessions.begin() as session:
                board.take(session, member_id, shift_id, slot_id, now=self._now())
        except (Conflict, NotFound) as exc:
            self.tally.refused += 1
            log.info("member %s could not take place %s/%s (%s): %s", member_id, shift_id, slot_id, why, exc)
            return False
        self.tally.board_taken += 1
        log.info("member %s took board place %s/%s (%s)", member_id, shift_id, slot_id, why)
        return True

    def _browse(self, tick: int) -> None:
        """A look at the board: a browse_p share of the members with a pledge each take the nearest free
        place within BROWSE_KM that fits them (the store's why_not has nothing against it), starting within
        a week; the next look is BROWSE_EVERY_H later."""
        self._later(BROWSE_EVERY_H * 3600, lambda: self._browse(tick + 1))
        b = self.behaviour
        if b.browse_p <= 0:
            return
        rng = random.Random(f"{b.seed}/browse/{tick}")
        now = self._now()
        with self.sessions() as session:
            places = open_places(session, now)
            members = session.execute(
                select(Member.id, Member.lat, Member.lon)
                .where(Member.active.is_(True), Member.hours_per_week > 0)
                .order_by(Member.id)
            ).all()
            skills: dict[int, set[str]] = {}
            for member_id, skill in session.execute(select(MemberSkill.member_id, MemberSkill.skill)):
                skills.setdefault(member_id, set()).add(skill)
        browsing = [m for m in members if rng.random() < b.browse_p]
        gone: set[tuple[int, int]] = set()  # places taken in this look
        for member_id, lat, lon in browsing if places else ():
            near = sorted(
                (km, p.shift_id, p.slot_id, p)
                for p in places
                if (km := haversine_km(lat, lon, p.lat, p.lon)) <= BROWSE_KM
                and (p.shift_id, p.slot_id) not in gone
                and member_id not in p.excluded
                and (p.skill is None or p.skill in skills.get(member_id, set()))
            )
            for *_, place in near[:BROWSE_TRIES]:
                if self._fits(member_id, place, now):
                    if self._board_take(member_id, place.shift_id, place.slot_id, "browsing"):
                        gone.add((place.shift_id, place.slot_id))
                    break

    def _fits(self, member_id: int, place: OpenPlace, now: datetime) -> bool:
        """Whether the store has nothing against this member taking the place now."""
        with self.sessions() as session:
            member = session.get(Member, member_id)
            shift, slot = session.get(TaskShift, place.shift_id), session.get(TaskSlot, place.slot_id)
            task = session.get(BoardTask, place.task_id)
            if member is None or shift is None or slot is None or task is None:
                return False
            return board.why_not(session, member, shift, slot, task, now=now) is None

    # Drivers -------------------------------------------------------------------------------------------

    def _route(self, member_id: int, route_id: int) -> None:
        """Answer a route offer after a while: decline it, or accept it (then drive it, or give it back)."""
        b = self.behaviour
        rng = random.Random(f"{b.seed}/route/{route_id}")
        wait_s = rng.uniform(*b.driver_wait_min) * 60
        roll = rng.random()
        if roll < b.driver_no_show_p:
            self._later(wait_s, lambda: self._decline_route(member_id, route_id))
            return
        release = roll < b.driver_no_show_p + b.driver_release_p
        self._later(wait_s, lambda: self._accept_route(member_id, route_id, rng, release))

    def _status(self, route_id: int) -> str | None:
        with self.sessions() as session:
            route = session.get(Route, route_id)
            return route.status if route is not None else None

    def _still_offered(self, route_id: int) -> bool:
        """Whether the route is still a proposal to answer; a revised or withdrawn one is left alone."""
        if route_id not in self._dropped and self._status(route_id) == RouteStatus.PROPOSED:
            return True
        self.tally.routes_ignored += 1
        log.info("route %s is no longer proposed (%s): left alone", route_id, self._status(route_id))
        return False

    def _decline_route(self, member_id: int, route_id: int) -> None:
        if not self._still_offered(route_id):
            return
        log.info("driver %s cannot drive route %s: declines it", member_id, route_id)
        self.web.decline_route(route_id, "cannot drive this week")
        self.tally.routes_skipped += 1

    def _accept_route(self, member_id: int, route_id: int, rng: random.Random, release: bool) -> None:
        """Accept the route as it stands now, then set off when free (or give it back before leaving)."""
        if not self._still_offered(route_id):
            return
        try:
            self.web.accept_route(route_id)
        except DashboardError as exc:
            if exc.status != 409:
                raise
            self.tally.routes_ignored += 1  # revised or withdrawn between our look and the answer
            log.info("route %s could not be accepted any more: %s", route_id, exc)
            return
        self.tally.routes_accepted += 1
        with self.sessions() as session:
            stops = session.scalars(
                select(RouteStop.id).where(RouteStop.route_id == route_id, RouteStop.status == "pending")
            )
            self._accepted[route_id] = frozenset(stops)
            route = session.get(Route, route_id)
            starts_at = route.starts_at if route is not None else None
        b = self.behaviour
        now = time.monotonic()
        prep = b.driver_prep_min * 60 / b.speed
        if release:
            self._later(0.0, lambda: self._release_route(route_id), now + prep)
            return
        leave = max(now, self._free_at.get(member_id, now)) + prep
        leave = max(leave, now + self._until(starts_at))  # not before the planned start
        due = self._later(0.0, lambda: self._drive(member_id, route_id, rng), leave)
        self._free_at[member_id] = due  # updated with the whole trip when it starts

    def _until(self, at: datetime | None) -> float:
        """Real seconds until `at` on the work clock (0 when past, or with no clock or time given)."""
        if at is None or self.work_clock is None:
            return 0.0
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        return max(0.0, (at - self.work_clock.now()).total_seconds() / self.behaviour.speed)

    def _release_route(self, route_id: int) -> None:
        if self._status(route_id) != RouteStatus.ACCEPTED:
            return
        self.web.release_route(route_id, "the pickup broke down: cannot drive it after all")
        self.tally.routes_released += 1

    def _drive(self, member_id: int, route_id: int, rng: random.Random) -> None:
        """Drive the accepted route: its stops still pending of those it held when accepted, each scheduled
        after the leg that leads to it. A route taken away meanwhile (declined for them) is not driven; one
        due while the driver is still out on another waits until they are back."""
        back = self._driving_until.get(member_id, 0.0)
        if back > time.monotonic():
            self._later(
                self.behaviour.driver_prep_min * 60, lambda: self._drive(member_id, route_id, rng), back
            )
            return
        accepted = self._accepted.pop(route_id, frozenset())
        with self.sessions() as session:
            member = session.get(Member, member_id)
            route = session.get(Route, route_id)
            rows = session.execute(
                select(RouteStop, Site, Shipment, Good.slug)
                .join(Site, RouteStop.site_id == Site.id)
                .join(Shipment, RouteStop.shipment_id == Shipment.id)
                .join(Good, Shipment.good_id == Good.id)
                .where(RouteStop.route_id == route_id, RouteStop.status == "pending")
                .where(RouteStop.id.in_(accepted))
                .order_by(RouteStop.position)
            ).all()
            if route is None or route.status != RouteStatus.ACCEPTED:
                rows = []
            stock_devices = dict(
                session.execute(select(Device.site_id, Device.slug).where(Device.kind == "stock")).all()
            )
            if member is None or not rows:
                self.tally.routes_skipped += 1
                return  # taken away meanwhile (the driver left, the route was declined for them)
            here = (member.lat, member.lon)
            stops: list[tuple[int, int, str, str | None, str, float, float]] = []
            for stop, site, shipment, good in rows:
                leg_km = haversine_km(*here, site.lat, site.lon) * ROAD_FACTOR  # from the last stop
                here = (site.lat, site.lon)
                stops.append(
                    (
                        stop.id,
                        shipment.id,
                        stop.action,
                        stock_devices.get(site.id),
                        good,
                        shipment.quantity,
                        leg_km,
                    )
                )
        self.tally.routes_driven += 1
        due = time.monotonic()
        for stop_id, shipment_id, action, device, good, quantity, leg_km in stops:
            sim_s = leg_km / self.behaviour.driver_kmh * 3600 + self.behaviour.stop_min * 60
            fail = action == "delivery" and rng.random() < self.behaviour.failed_delivery_p
            due = self._later(
                sim_s,
                self._stop_action(route_id, stop_id, shipment_id, action, device, good, quantity, fail),
                due,
            )
        self._free_at[member_id] = self._driving_until[member_id] = due

    def _stop_action(
        self,
        route_id: int,
        stop_id: int,
        shipment_id: int,
        action: str,
        device: str | None,
        good: str,
        qty: float,
        fail: bool,
    ) -> Callable[[], None]:
        """The driver's action at one stop, bound now (a lambda in the loop would see the last stop)."""
        return lambda: self._stop_at(route_id, stop_id, shipment_id, action, device, good, qty, fail)

    def _loadable(self, shipment_id: int, planned: float) -> float | None:
        """What the source site holds of the shipment's good, up to `planned`, in whole units; None if
        nothing (under one unit) is there."""
        with self.sessions() as session:
            shipment = session.get(Shipment, shipment_id)
            stock = session.get(Stock, (shipment.from_site_id, shipment.good_id)) if shipment else None
            held = stock.quantity if stock else 0.0
        if held >= planned:
            return planned
        return float(math.floor(held)) if held >= 1 else None

    def _stop_at(
        self,
        route_id: int,
        stop_id: int,
        shipment_id: int,
        action: str,
        device: str | None,
        good: str,
        qty: float,
        fail: bool,
    ) -> None:
        if action == "delivery" and shipment_id in self._not_loaded:
            fail, reason = True, "the goods were not there to pick up"
        else:
            reason = "nobody at the hub to receive the goods"
        if fail:
            self.tally.failed_stops += 1
            self._loaded.pop(shipment_id, None)
            self.web.stop_outcome(route_id, stop_id, "failed", reason)
            return
        loaded = None
        if action == "pickup":
            loaded = self._loadable(shipment_id, qty)  # the driver loads what is there, up to the plan
            if loaded is None:
                self._not_loaded.add(shipment_id)  # its delivery is then recorded as failed, with the reason
                self.tally.refused += 1
                return
            self._loaded[shipment_id] = loaded
        try:
            self.web.stop_outcome(route_id, stop_id, "done", quantity=loaded)  # "Loaded" is required
        except DashboardError:
            if action == "pickup":
                self._not_loaded.add(shipment_id)
                self._loaded.pop(shipment_id, None)
            raise
        self.tally.stops += 1
        if loaded is not None and loaded < qty:
            self.tally.short_pickups += 1
        if device is not None:  # the stock box counts what was loaded or unloaded
            delta = self._loaded.pop(shipment_id, qty) if action == "delivery" else -(loaded or qty)
            body = {"action": "receive", "goods": {good: delta}}
            self.client.publish(sim_control_topic(device), json.dumps(body), qos=QOS)


def _planned(text: Any) -> datetime | None:
    """A planned time from a notice (ISO 8601), or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
