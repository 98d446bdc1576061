"""A short region week through the real processes (gateway, planner, dashboard, simulator as subprocesses):
three scripted faults in a seven-community slice of the sample region are detected, tasked, alerted to a
crew member, repaired by the simulated crew through the dashboard and confirmed by the readings; stored
readings equal sent ones; the report is written with both plots. Real broker and database in CI."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from bench.week import measure
from bench.week.cli import JSON_KEYS, run_and_report
from bench.week.report import board_section
from bench.week.runner import WeekConfig
from bench.week.timescale import MIN_STORE_INTERVAL_S, scaled_rules, store_region
from dashboard.web.accounts import MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.store import get_store
from gateway.process.settings import Settings
from gateway.store import board, deliveries, hours
from gateway.store.db import make_engine, make_session_factory
from gateway.store.models import (
    BoardTask,
    Community,
    DeliveryPlan,
    HoursEntry,
    Member,
    Route,
    RouteStop,
    Shipment,
    Site,
    Stock,
    TaskShift,
    TaskSlot,
)
from gateway.store.models.vocab import BOARD_SECTORS, WorkKind
from gateway.store.region import load_region, read_region, sample_region_path
from gateway.store.sample_board import post_sample_tasks, set_sample_goals
from logistics.service import route_once
from tests.conftest import ShippedBroker, tiny_region_data

COMMUNITIES = {"utuado", "adjuntas", "lares", "jayuya", "ponce", "humacao", "yauco"}
EVENTS = [
    {"at": "1h", "device": "utuado-pump-1-pump", "event": "pump_failure"},
    {"at": "2h", "device": "humacao-hub-cold", "event": "cold_room_failure"},
    {"at": "3h", "device": "adjuntas-pump-2-pump", "event": "dry_run"},
]


def small_region() -> dict[str, object]:
    region = read_region(sample_region_path())
    region["communities"] = [c for c in region["communities"] if c["slug"] in COMMUNITIES]
    region["members"] = [m for m in region["members"] if m["community"] in COMMUNITIES]
    return region


def test_rules_and_intervals_are_scaled_by_the_speed() -> None:
    text = scaled_rules(600.0)
    assert "for_s = 0.1\n" in text and "per_min = 180.0" in text  # pump_failure 60 s; warming 0.3/min
    region = store_region(small_region(), 600.0)
    intervals = {
        d["interval_s"] for c in region["communities"] for s in c["sites"] for d in s.get("devices", [])
    }
    # 60-300 simulated s is under a real second: the floor keeps stale detection sane.
    assert intervals == {MIN_STORE_INTERVAL_S}


def test_hours_are_measured_from_the_ledger_each_person_once(sqlite_engine: Engine) -> None:
    """Ana is crew and driver (one person, one pledge of 4 h): a repair that took 5 simulated hours and a
    route offered for 3 put her at twice her pledge. Bea's 6 h in each of two weeks keep within her 10 a
    week; Cid's released route counts nothing. The ledger runs on the work clock, simulated in the week."""
    data = tiny_region_data()
    ana = data["members"][0]
    data["members"] += [
        {**ana, "name": "Bea", "roles": ["crew"], "hours_per_week": 10, "vehicle": None},
        {**ana, "name": "Cid", "roles": ["driver"], "hours_per_week": 0, "vehicle": None},
    ]
    t0 = datetime(2025, 6, 2, 4, tzinfo=UTC)  # the week's simulated Monday
    clock = measure.Clock(t0, speed=100.0, days=14.0)
    sessions = make_session_factory(sqlite_engine)
    with sessions.begin() as session:
        load_region(session, data)
        ids = {m.name: m.id for m in session.scalars(select(Member))}
        at, later = t0 + timedelta(minutes=1), t0 + timedelta(minutes=2)
        hours.offer(session, ids["Ana"], WorkKind.REPAIR, 1, "maintenance", 2.0, at, later)
        hours.start(session, WorkKind.REPAIR, 1, at)
        hours.finish(session, WorkKind.REPAIR, 1, at + timedelta(hours=5))
        hours.offer(session, ids["Ana"], WorkKind.ROUTE, 1, "food", 3.0, at, later)
        hours.offer(session, ids["Bea"], WorkKind.REPAIR, 2, "maintenance", 6.0, at, later)
        hours.reserve(session, WorkKind.REPAIR, 2)
        week = timedelta(days=7)
        hours.offer(session, ids["Bea"], WorkKind.REPAIR, 3, "maintenance", 6.0, at + week, later + week)
        hours.offer(session, ids["Cid"], WorkKind.ROUTE, 2, "food", 1.0, at, later)
        hours.release(session, WorkKind.ROUTE, 2)
        plan = DeliveryPlan()
        session.add(plan)
        session.flush()
        route = Route(plan_id=plan.id, member_id=ids["Ana"], status="accepted", distance_km=42.0)
        idle = Route(plan_id=plan.id, member_id=ids["Cid"], status="declined", distance_km=99.0)
        session.add_all([route, idle])
        session.flush()
        site = session.scalars(select(Site)).first()
        assert site is not None
        session.add_all(
            [
                RouteStop(route_id=route.id, position=0, site_id=site.id, action="pickup", status="done"),
                RouteStop(route_id=idle.id, position=0, site_id=site.id, action="pickup", status="pending"),
            ]
        )
    with sessions() as session:
        vol = measure.volunteering(session, clock)
        cov = {"essential_coverage": 0.5, "baseline_coverage": 0.1, "met_share_with_planner": 0.2}
        cov |= {"shortage_days_baseline": 6, "shortage_days_covered": 3}
        msg: dict[str, object] = {"stored_equals_sent": True, "readings_sent": 1, "readings_stored": 1}
        msg |= {"outbox_rows": 0, "outbox_published": 0, "dead_letters": {}}
        figures = measure.summarise([], cov, vol, msg, session)
    assert vol["hours_given"] == pytest.approx(5.0) and vol["hours_load"] == pytest.approx(20.0)
    assert vol["hours_pledged"] == 28.0  # two weeks of Ana's 4 (once, not as crew and as driver) + Bea's 10
    assert vol["members_over_pledge"] == 1 and vol["max_load_ratio"] == 2.0
    assert vol["members_over_pledge_planned"] == 1  # planned: 2 + 3 h against 4
    assert [o["name"] for o in vol["over_pledge"]] == ["Ana"]
    assert vol["load_gini"] == pytest.approx(0.125)  # over the period: Ana 8 / (2 x 4), Bea 12 / (2 x 10)
    assert vol["by_roles"]["crew+driver"] == {"members": 1, "pledged_h": 8.0, "load_h": 8.0, "given_h": 5.0}
    assert vol["by_sector"]["maintenance"]["hours"] == pytest.approx(5.0)
    assert vol["entries_by_state"] == {"done": 1, "offered": 2, "released": 1, "reserved": 1}
    assert vol["km_driven"] == 42.0 and figures["km_per_covered_day"] == 14.0
    assert set(JSON_KEYS) <= set(figures) | {"wall_s"}


def _first_place(session: Session, sector: str, position: int) -> tuple[int, int]:
    """(shift id, slot id) of the first shift of the sector's task in the first community, slot `position`."""
    first = session.scalars(select(Community.id).order_by(Community.id)).first()
    task = session.scalars(
        select(BoardTask).where(BoardTask.sector == sector, BoardTask.community_id == first)
    ).one()
    shift = session.scalars(
        select(TaskShift).where(TaskShift.task_id == task.id).order_by(TaskShift.starts_at)
    ).first()
    slot = session.scalars(
        select(TaskSlot).where(TaskSlot.task_id == task.id, TaskSlot.position == position)
    ).one()
    assert shift is not None
    return shift.id, slot.id


def test_a_job_that_ran_long_counts_its_planned_hours_against_the_planners() -> None:
    def entry(state: str, hours: float, actual: float | None) -> HoursEntry:
        return HoursEntry(state=state, hours=hours, actual_hours=actual)

    assert measure.answered_hours(entry("done", 2.0, 5.0)) == 2.0  # ran long: the person's, not planned
    assert measure.entry_hours(entry("done", 2.0, 5.0)) == 5.0
    assert measure.answered_hours(entry("done", 2.0, 0.5)) == 0.5  # ran short: the time was offered again
    assert measure.answered_hours(entry("reserved", 2.0, None)) == 2.0


def test_the_board_is_measured_by_sector_with_the_goals(sqlite_engine: Engine) -> None:
    """The sample board in the tiny region's two communities (two tasks a sector), over a two-day run from
    Monday 2 June 04:00. Ana accepts a suggested food place (3 h, done on Tuesday) and then works 5 h on a
    repair that week: 8 h against her 4. Bea declines a suggestion and takes a governance place (2 h) unasked;
    Cid never answers his, which lapses; Cid is told of an urgent place."""
    data = tiny_region_data()
    ana = data["members"][0]
    data["members"] += [
        {**ana, "name": "Bea", "roles": ["crew"], "hours_per_week": 10, "vehicle": None},
        {**ana, "name": "Cid", "roles": ["crew"], "hours_per_week": 6, "vehicle": None},
    ]
    t0 = datetime(2025, 6, 2, 4, tzinfo=UTC)
    clock = measure.Clock(t0, speed=100.0, days=2.0, start=t0)
    sessions = make_session_factory(sqlite_engine)
    with sessions.begin() as session:
        load_region(session, data)
        assert post_sample_tasks(session, t0) == 12 and set_sample_goals(session, t0) == 12
        ids = {m.name: m.id for m in session.scalars(select(Member))}
        now = t0 + timedelta(hours=1)
        signups = {
            member: board.suggest(session, *_first_place(session, sector, 2), ids[member], "near", now=now).id
            for member, sector in (("Ana", "food"), ("Bea", "education"), ("Cid", "health"))
        }  # newcomer places; the food pickup is on Tuesday 3 June, 9-12
        board.accept(session, signups["Ana"], ids["Ana"], now=now)
        board.decline(session, signups["Bea"], ids["Bea"], now=now)
        board.take(session, ids["Bea"], *_first_place(session, "governance", 1), now=now)
        urgent_shift, urgent_slot = _first_place(session, "maintenance", 3)
        shift, slot = session.get_one(TaskShift, urgent_shift), session.get_one(TaskSlot, urgent_slot)
        board.alert_urgent(
            session, shift, slot, session.get_one(BoardTask, shift.task_id), [ids["Cid"]], now=now
        )
        hours.offer(
            session, ids["Ana"], WorkKind.REPAIR, 1, "maintenance", 2.0, now, now + timedelta(hours=2)
        )
        hours.start(session, WorkKind.REPAIR, 1, now)
        hours.finish(session, WorkKind.REPAIR, 1, now + timedelta(hours=5))
        assert board.lapse_unanswered(session, t0 + timedelta(hours=26)) == 1  # Cid's, a day old
        assert board.finish_past(session, t0 + timedelta(hours=33)) == 1  # Tuesday's food shift: Ana's
    with sessions() as session:
        brd = measure.board(session, clock)
        figures = measure.summarise([], _cov(), measure.volunteering(session, clock), _msg(), session, brd)
    assert brd["tasks"] == 12 and brd["tasks_by_sector"] == {s: 2 for s in BOARD_SECTORS}
    # Shifts from Monday 04:00 to the Wednesday after next, 04:00 (two days, then the week ahead), two
    # communities each: food Tuesdays 3 and 10 (3 places), education 4 and 6 (2), governance 5 (2), the
    # garden 7 (3), the one-off health check (2) and solar retrofit (4) once each.
    assert brd["places"] == 2 * (2 * 3 + 2 * 2 + 2 + 3 + 2 + 4) == 42
    assert brd["places_in_run"] == 2 * 3  # Tuesday's food pickups
    assert (brd["filled"], brd["filled_in_run"], brd["places_done"]) == (2, 1, 1)
    assert brd["filled_share"] == round(2 / 42, 4)
    assert (brd["suggested"], brd["accepted"], brd["declined"], brd["lapsed"]) == (3, 1, 1, 1)
    assert (brd["waiting"], brd["taken_unasked"], brd["urgent_alerts"], brd["urgent_shifts"]) == (0, 1, 1, 1)
    assert brd["hours_given"] == 3.0 and brd["hours_held"] == 2.0  # Ana's food done; Bea's governance
    # Ana: 3 + 2 > 4 as planned (the repair planned for 2 h took 5: that is hers, not the planners')
    assert brd["members_with_board_work"] == 2 and brd["members_over_pledge"] == 1
    assert brd["members_worked_past_pledge"] == 1  # 3 + 5 > 4
    assert brd["by_sector"]["food"] == {
        "tasks": 2,
        "places": 12,
        "filled": 1,
        "places_in_run": 6,
        "filled_in_run": 1,
    }
    progress = {row["sector"]: row for row in brd["progress"]}
    assert set(BOARD_SECTORS) <= set(progress)
    achieved = {(s, g["kind"]): g["achieved"] for s, row in progress.items() for g in row["goals"]}
    assert achieved[("food", "hours")] == 3.0 and achieved[("food", "slots")] == 1.0
    assert achieved[("governance", "hours")] == 2.0 and achieved[("governance", "slots")] == 1.0
    assert achieved[("maintenance", "hours")] == 5.0 and achieved[("health", "slots")] == 0.0
    assert progress["education"]["sentence"] == "Education: 0% of this month's goals met"
    assert figures["board_places"] == 42 and figures["board_accepted"] == 1 and figures["board_declined"] == 1
    assert figures["sectors_with_goals"] == len(progress)
    assert figures["sector_progress"]["education"] == 0
    text = board_section(brd)
    assert "## Task board and sector goals" in text and "| hours, the region | 60 | 3 | **no** | |" in text
    assert not {"Ana", "Bea", "Cid"} & set(re.findall(r"\w+", text))  # sums, never a name


def _cov() -> dict[str, object]:
    return {
        "essential_coverage": None,
        "baseline_coverage": None,
        "met_share_with_planner": None,
        "shortage_days_baseline": 0,
        "shortage_days_covered": 0,
    }


def _msg() -> dict[str, object]:
    return {
        "stored_equals_sent": True,
        "readings_sent": 0,
        "readings_stored": 0,
        "outbox_rows": 0,
        "outbox_published": 0,
        "dead_letters": {},
    }


@pytest.mark.network
@pytest.mark.slow
def test_a_short_week_closes_every_scripted_fault_through_the_real_chain(
    shipped_mosquitto: ShippedBroker, database_url: str, tmp_path: Path
) -> None:
    # A Mosquitto with the project's config: the machine's one drops QoS 1 messages past 1,000 queued, and
    # at 2,400x a gateway slowed by the other lanes falls that far behind (every fault went unconfirmed).
    region_file = tmp_path / "region.json"
    region_file.write_text(json.dumps(small_region()))
    for event in EVENTS:  # the slice holds every device the scenario names
        assert event["device"] in region_file.read_text()
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"format": "rhizome-scenario/1", "events": EVENTS}))
    settings = Settings(
        mqtt_url=shipped_mosquitto.url, mqtt_protocol="5", database_url=database_url, data_dir=tmp_path
    )
    config = WeekConfig(
        scenario=scenario,
        region=region_file,
        days=0.75,
        speed=2400.0,
        seed=3,
        plan_every_h=4.0,
        # Declines are measured by the week, not here; some drivers answer after their route's start has
        # passed, so the planner revises routes (their old versions must then refuse every action).
        behaviour={"decline_p": 0.0, "no_show_p": 0.0, "driver_wait_min": (60.0, 240.0)},
    )
    report = tmp_path / "report" / "week.md"
    figures = run_and_report(settings, config, report)

    assert figures["faults"] == 3
    assert (
        figures["faults_detected"] == 3 and figures["faults_tasked"] == 3 and figures["faults_alerted"] == 3
    )
    assert figures["faults_repaired"] == 3 and figures["faults_confirmed"] == 3
    assert figures["tasks_closed_unconfirmed"] == 0
    assert figures["stored_equals_sent"] is True and figures["readings_stored"] > 0
    assert figures["outbox_unpublished"] == 0
    assert 0 < figures["fault_to_alert_median_s"] < 30  # real seconds; generous on a loaded machine
    assert figures["essential_coverage"] is None or 0 <= figures["essential_coverage"] <= 1
    assert figures["members_over_sector_offer"] == 0  # the planners keep within what people offered
    assert figures["hours_pledged"] > 0 and figures["max_load_ratio"] is not None
    # The board beside repairs and deliveries: the sample tasks in every sector, places filled through the
    # store's checks (the simulated members answer the matcher), nobody past their pledge, the month's goals.
    assert figures["board_sectors_posted"] == len(BOARD_SECTORS) and figures["board_places"] > 0
    assert figures["board_suggested"] > 0 and figures["board_filled"] > 0
    assert figures["board_members_over_pledge"] == 0
    assert set(BOARD_SECTORS) <= set(figures["sector_progress"])
    assert figures["sectors_with_goals"] >= len(BOARD_SECTORS)
    text = report.read_text()
    assert "## Task board and sector goals" in text and "Food: " in text
    assert "| 3 | adjuntas-pump-2-pump | dry_run |" in text
    for png in ("week_downtime.png", "week_shortage.png"):
        assert (report.parent / png).stat().st_size > 5000 and f"]({png})" in text
    plans_people_can_follow(database_url)


def plans_people_can_follow(database_url: str) -> None:
    """What the demo's processes left after 18 simulated hours with people acting (issue 13): every
    driver's open routes within their pledge, a few open routes each at most, whole shipments, one current
    plan; and a route the planner took back refuses an action (409) and moves no stock."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            pledge = dict(session.execute(select(Member.id, Member.hours_per_week)).all())
            # The work still ahead of people (offered or accepted, not yet done), per person and week.
            week: dict[tuple[int, datetime], float] = defaultdict(float)
            for entry in session.scalars(select(HoursEntry).where(HoursEntry.state.in_(hours.OPEN))):
                week[entry.member_id, hours.week_start(entry.starts_at)] += entry.hours
            over = {k: h for k, h in week.items() if h > pledge[k[0]] + 1e-6}
            assert not over, f"open work over the weekly pledge: {over}"
            assert session.scalar(select(func.count()).select_from(HoursEntry)), "nobody was asked for work"
            open_routes = Counter(
                session.scalars(
                    select(Route.member_id).where(Route.status.in_(("proposed", "accepted", "in_progress")))
                )
            )
            assert max(open_routes.values(), default=0) <= 3, open_routes
            quantities = session.scalars(select(Shipment.quantity)).all()
            assert quantities and all(q >= 1 and q == int(q) for q in quantities)
            current = session.scalars(select(DeliveryPlan.id).where(DeliveryPlan.status == "proposed")).all()
            assert len(current) == 1
        dead = _a_route_taken_back(sessions)
        with sessions() as session:
            stop = session.scalars(
                select(RouteStop).where(RouteStop.route_id == dead).order_by(RouteStop.position)
            ).first()
            assert stop is not None
            before = sorted(session.execute(select(Stock.site_id, Stock.good_id, Stock.quantity)).all())
        coordinator = make_account("coord", "a long test password", "coordinator")
        app = create_app(
            Settings(database_url=database_url),
            test_config={"TESTING": True},
            accounts=MemoryAccountStore([coordinator]),
        )
        client = app.test_client()

        def token(path: str) -> str:
            found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
            assert found is not None, path
            return found.group(1)

        login = {"username": "coord", "password": "a long test password", "csrf_token": token("/login")}
        assert client.post("/login", data=login).status_code == 302
        page = f"/routes/{dead}"
        answer = client.post(f"{page}/stops/{stop.id}/done", data={"csrf_token": token(page)})
        assert answer.status_code == 409, answer.get_data(as_text=True)[:500]
        with sessions() as session:
            after = sorted(session.execute(select(Stock.site_id, Stock.good_id, Stock.quantity)).all())
        assert after == before
        get_store(app).engine.dispose()
    finally:
        engine.dispose()


def _a_route_taken_back(sessions: sessionmaker[Session]) -> int:
    """A route the planner superseded or withdrew during the run; if none was, one it takes back now: a
    proposed route whose driver let its start pass is revised by the next routing run."""
    with sessions() as session:
        dead = session.scalar(select(Route.id).where(Route.status.in_(("superseded", "withdrawn"))).limit(1))
    if dead is not None:
        return dead
    with sessions.begin() as session:
        lapsed = session.scalars(select(Route).where(Route.status == "proposed").order_by(Route.id)).first()
        if lapsed is None:  # every route was answered: a declined one refuses every action as well
            declined = session.scalar(select(Route.id).where(Route.status == "declined").limit(1))
            if declined is not None:
                return declined
            # Every driver answered yes (the short week may plan only a route or two): a driver gives an
            # accepted route back before starting it, or, with none, a finished route refuses actions too.
            accepted = session.scalar(select(Route.id).where(Route.status == "accepted").order_by(Route.id))
            if accepted is not None:
                deliveries.decline_route(session, accepted, "")
                return accepted
            done = session.scalar(select(Route.id).where(Route.status == "done").order_by(Route.id))
            statuses = Counter(session.scalars(select(Route.status)))
            assert done is not None, f"no route revised, withdrawn, declined, proposed or done: {statuses}"
            return done
        assert lapsed.starts_at is not None
        lapsed.starts_at = lapsed.starts_at - timedelta(days=2)  # as if its driver never answered
        lapsed_id = lapsed.id
    route_once(sessions, time_limit_s=5.0)
    with sessions() as session:
        route = session.get_one(Route, lapsed_id)
        assert route.status in ("superseded", "withdrawn"), route.status
    return lapsed_id
