"""The planner against a store: loading input, saving plans with shipments and alerts, `rhizome plan`."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ColumnElement, Engine, func, select, update
from sqlalchemy.orm import Session

import logistics.service
from gateway.process.cli import main
from gateway.store.db import make_session_factory
from gateway.store.models import (
    Base,
    Community,
    DeliveryPlan,
    Good,
    Member,
    NeedLevel,
    OutboxMessage,
    Shipment,
    Site,
    Stock,
    StockLedgerEntry,
    Vehicle,
)
from gateway.store.models.vocab import ShipmentStatus
from gateway.store.region import load_region
from logistics.allocation import AllocationInput, AllocationPlan, PlannedShipment, solve_allocation
from logistics.common.errors import PlanningError
from logistics.loaders.allocation import load_allocation_input, save_plan, use_rates
from logistics.service import plan_once, run_loop
from tests.conftest import Store, tiny_region_data


def fill(session: Session) -> dict[str, int]:
    """Three communities with sites and one without; returns ids by name."""
    rice = Good(slug="rice", name="Rice", unit="kg", sector="food", essential=True)
    session.add(rice)
    towns = {}
    for slug, lat, sites in [
        ("giver", 18.20, ["farm", "storage"]),
        ("short-town", 18.25, ["clinic"]),
        ("other-short", 18.30, ["pump", "storage"]),
        ("siteless", 18.35, []),
    ]:
        town = Community(slug=slug, name=slug.title(), lat=lat, lon=-66.5)
        town.sites = [Site(slug=k, name=k, kind=k, lat=lat, lon=-66.5) for k in sites]
        session.add(town)
        towns[slug] = town
    session.flush()
    ids = {slug: t.id for slug, t in towns.items()} | {"rice": rice.id}
    ids |= {f"{slug}/{s.kind}": s.id for slug, t in towns.items() for s in t.sites}
    session.add_all(
        [
            Stock(site_id=ids["giver/farm"], good_id=rice.id, quantity=30),
            Stock(site_id=ids["giver/storage"], good_id=rice.id, quantity=50),
            Stock(site_id=ids["short-town/clinic"], good_id=rice.id, quantity=2),
            NeedLevel(community_id=ids["giver"], good_id=rice.id, minimum=10, target=20),
            NeedLevel(community_id=ids["short-town"], good_id=rice.id, minimum=10, target=30),
            NeedLevel(community_id=ids["other-short"], good_id=rice.id, minimum=10, target=40),
            NeedLevel(community_id=ids["siteless"], good_id=rice.id, minimum=10, target=40),
        ]
    )
    return ids


def add_ledger(
    session: Session, site: int, good: int, now: datetime, entries: list[tuple[float, float, str, float]]
) -> None:
    """Ledger entries (hours from `now`, delta, source, quantity after) for one site and good."""
    for hours_ago, delta, source, after in entries:
        session.add(
            StockLedgerEntry(
                site_id=site,
                good_id=good,
                delta=delta,
                quantity_after=after,
                reason=source,
                source=source,
                created_at=now + timedelta(hours=hours_ago),
            )
        )


def count(session: Session, model: type[Base], *where: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_load_sums_stock_over_sites_and_skips_siteless_communities(
    store: Store,
) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        data = load_allocation_input(session)
    assert [p.id for p in data.places] == [ids["giver"], ids["short-town"], ids["other-short"]]
    levels = {h.place_id: (h.stock, h.minimum, h.target) for h in data.holdings}
    assert levels == {
        ids["giver"]: (80, 10, 20),
        ids["short-town"]: (2, 10, 30),
        ids["other-short"]: (0, 10, 40),
    }
    assert [(g.slug, g.sector, g.essential) for g in data.goods] == [("rice", "food", True)]


def test_goods_on_their_way_count_where_they_go(store: Store) -> None:
    """On a route (assigned): promised, still in the source's stock; picked up: left it. Either way the
    destination counts them, so a re-plan does not promise the same rice twice."""
    sessions, ids = store
    with sessions.begin() as session:
        row = DeliveryPlan(status="proposed", solver_status="Optimal", objective=1.0)
        session.add(row)
        session.flush()
        for status, quantity in (("assigned", 20.0), ("picked_up", 5.0), ("planned", 7.0), ("failed", 9.0)):
            shipment = Shipment(
                plan_id=row.id,
                good_id=ids["rice"],
                from_site_id=ids["giver/storage"],
                to_site_id=ids["short-town/clinic"],
                quantity=quantity,
                status=status,
            )
            session.add(shipment)
    with sessions.begin() as session:
        data = load_allocation_input(session)
    levels = {h.place_id: h.stock for h in data.holdings}
    assert levels == {ids["giver"]: 80 - 20, ids["short-town"]: 2 + 20 + 5, ids["other-short"]: 0}
    plan = solve_allocation(data)
    to_short_town = sum(s.quantity for s in plan.shipments if s.to_place == ids["short-town"])
    assert to_short_town <= 30 - 27 + 1e-6  # at most what its target still lacks (28 on stock alone)
    assert sum(s.quantity for s in plan.shipments) <= 60 - 20 + 1e-6  # the giver's rice not yet promised


def test_save_writes_shipments_from_hubs_and_one_alert_per_receiver(
    store: Store,
) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        plan = solve_allocation(load_allocation_input(session))
        saved = save_plan(session, plan)
    plan_id = saved.plan_id
    assert (saved.created, saved.added, saved.unchanged) == (True, 2, False)
    # 60/68 of 28 and of 40 are 24.7 and 35.3 kg: whole kilograms, rounded down, 24/28 and 35/40 covered.
    assert plan.min_coverage == pytest.approx(24 / 28, abs=1e-6)
    with sessions.begin() as session:
        row = session.get_one(DeliveryPlan, plan_id)
        assert (row.status, row.solver_status) == ("proposed", "Optimal")
        assert row.summary["shipments"] == 2 and row.summary["min_coverage"] == pytest.approx(
            24 / 28, abs=1e-6
        )
        moves = {
            (s.from_site_id, s.to_site_id): s.quantity
            for s in session.scalars(select(Shipment).where(Shipment.plan_id == plan_id))
        }
        assert moves == {
            (ids["giver/storage"], ids["short-town/clinic"]): 24.0,
            (ids["giver/storage"], ids["other-short/storage"]): 35.0,
        }
        alerts = session.scalars(select(OutboxMessage).order_by(OutboxMessage.topic)).all()
        assert [(a.topic, a.qos) for a in alerts] == [
            ("rhizome/v1/alerts/other-short", 1),
            ("rhizome/v1/alerts/short-town", 1),
        ]
        body = json.loads(alerts[1].payload)
        assert (body["v"], body["event"], body["plan"], body["community"]) == (
            1,
            "shipments_planned",
            plan_id,
            "short-town",
        )
        assert [(s["good"], s["from"], s["change"]) for s in body["shipments"]] == [("rice", "giver", "new")]
        assert body["totals"]["rice"] == 24.0


def test_goods_are_picked_up_where_they_are_held(store: Store) -> None:
    """The harvest is on the farm, not in the hub: the shipment leaves from the farm."""
    sessions, ids = store
    with sessions.begin() as session:
        session.get_one(Stock, (ids["giver/farm"], ids["rice"])).quantity = 75
        session.get_one(Stock, (ids["giver/storage"], ids["rice"])).quantity = 5
        plan_id = save_plan(session, solve_allocation(load_allocation_input(session))).plan_id
    with sessions.begin() as session:
        sources = {
            s.from_site_id for s in session.scalars(select(Shipment).where(Shipment.plan_id == plan_id))
        }
        destinations = {s.to_site_id for s in session.scalars(select(Shipment))}
    assert sources == {ids["giver/farm"]}
    assert destinations == {ids["short-town/clinic"], ids["other-short/storage"]}  # hubs, or the only site


def test_a_community_about_to_fall_short_is_planned_for_ahead(store: Store) -> None:
    """12 held against a minimum of 10 is not short now, but at 5 a hour it is in an hour's time."""
    sessions, ids = store
    now = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
    site, rice = ids["other-short/storage"], ids["rice"]
    with sessions.begin() as session:
        session.add(Stock(site_id=site, good_id=rice, quantity=12))
        entries = [(-3.0, 0.0, "initial", 0.0), (-2.5, -100.0, "sensor", 0.0), (-2.0, 22.0, "sensor", 22.0)]
        entries += [(-1.0, -5.0, "sensor", 17.0)]
        entries += [(-0.5, -5.0, "sensor", 12.0), (-0.25, 4.0, "sensor", 16.0), (-0.1, -4.0, "sensor", 12.0)]
        add_ledger(session, site, rice, now, entries)
    with sessions.begin() as session:
        # Used 14 in the last two hours (the 100 before them is outside the window, the 4 that came in is
        # not use): 7 a hour.
        assert use_rates(session, 7200, now) == {(ids["other-short"], rice): pytest.approx(14 / 7200)}
        as_is = {h.place_id: h.stock for h in load_allocation_input(session, now=now).holdings}
        ahead = {h.place_id: h.stock for h in load_allocation_input(session, lead_s=3600, now=now).holdings}
        plan = solve_allocation(load_allocation_input(session, lead_s=3600, now=now))
    assert as_is[ids["other-short"]] == 12.0 and ahead[ids["other-short"]] == pytest.approx(5.0)
    assert ahead[ids["giver"]] == as_is[ids["giver"]], "no use reported, no change"
    assert (ids["other-short"], rice) in plan.coverage  # short in an hour: planned for now


def test_people_and_the_time_short_come_from_the_store(store: Store) -> None:
    """Short-town holds 2 of a minimum of 10: 12 until 30 hours ago, then 4, then 2. Short for 30 hours,
    not 5: the ledger is walked back to the change that took it below its minimum. Other-short has no
    ledger at all: 0 hours. People: the population, else what the sites serve."""
    sessions, ids = store
    now = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
    site, rice = ids["short-town/clinic"], ids["rice"]
    with sessions.begin() as session:
        entries = [(-50.0, 12.0, "sensor", 12.0), (-30.0, -8.0, "sensor", 4.0), (-5.0, -2.0, "sensor", 2.0)]
        add_ledger(session, site, rice, now, entries)
        session.get_one(Community, ids["giver"]).population = 2500
        session.get_one(Site, ids["other-short/pump"]).people_served = 300
        session.get_one(Site, ids["other-short/storage"]).people_served = 40
    with sessions.begin() as session:
        data = load_allocation_input(session, now=now)
    hours = {h.place_id: h.short_hours for h in data.holdings}
    assert hours == {ids["giver"]: 0.0, ids["short-town"]: pytest.approx(30.0), ids["other-short"]: 0.0}
    people = {p.id: p.people for p in data.places}
    assert people == {ids["giver"]: 2500, ids["short-town"]: 0, ids["other-short"]: 340}


def test_a_shipment_heavier_than_most_vehicles_goes_as_loads_they_can_carry(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        for capacity in (20, 30, 500):  # the median vehicle carries 30 kg
            driver = Member(name=f"D{capacity}", community_id=1, lat=18.2, lon=-66.5, is_driver=True)
            session.add(driver)
            session.flush()
            session.add(
                Vehicle(name="car", kind="car", capacity_kg=capacity, member_id=driver.id, community_id=1)
            )
        session.get_one(Good, ids["rice"]).weight_kg_per_unit = 0.5
        plan = solve_allocation(load_allocation_input(session))
        plan_id = save_plan(session, plan).plan_id
    with sessions.begin() as session:
        loads = sorted(
            (s.to_site_id, s.quantity)
            for s in session.scalars(select(Shipment).where(Shipment.plan_id == plan_id))
        )
    # 60 to give against shortages of 28 and 40: 24 units (12 kg) and 35 units (17.5 kg) both fit.
    assert [q for _, q in loads] == [24.0, 35.0]
    with sessions.begin() as session:
        session.get_one(Good, ids["rice"]).weight_kg_per_unit = 2.0
        saved = save_plan(session, solve_allocation(load_allocation_input(session)))
    # The same plan, its lanes split again: 24 units = 48 kg -> loads of 12 + 12 (15 units fit in 30 kg);
    # 35 units = 70 kg -> 12 + 12 + 11. Each stored shipment is revised to a load, the rest are added.
    assert (saved.plan_id, saved.revised, saved.added, saved.cancelled) == (plan_id, 2, 3, 0)
    with sessions.begin() as session:
        loads = sorted(
            (s.to_site_id, s.quantity)
            for s in session.scalars(select(Shipment).where(Shipment.plan_id == plan_id))
        )
    assert loads == [
        (ids["short-town/clinic"], 12.0),
        (ids["short-town/clinic"], 12.0),
        (ids["other-short/storage"], 11.0),
        (ids["other-short/storage"], 12.0),
        (ids["other-short/storage"], 12.0),
    ]


def rows(session: Session) -> dict[int, tuple[str, float, str | None]]:
    """Every shipment by destination site: status, quantity, reason."""
    return {
        s.to_site_id: (s.status, s.quantity, s.failure_reason)
        for s in session.scalars(select(Shipment).order_by(Shipment.id))
    }


def last_alert(session: Session) -> dict[str, Any]:
    """The newest outbox message's body."""
    newest = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(1)).one()
    body: dict[str, Any] = json.loads(newest.payload)
    return body


def test_re_plans_revise_the_one_plan_in_place_and_alert_only_for_changes(store: Store) -> None:
    sessions, ids = store
    clinic, hub = ids["short-town/clinic"], ids["other-short/storage"]
    first = plan_once(sessions)
    with sessions.begin() as session:
        session.get_one(Stock, (ids["giver/storage"], ids["rice"])).quantity = 100  # now enough for everyone
    # 28 and 40 wanted against 24 and 35 stored: 17% and 14% more, 4 and 5 kg: too little to tell.
    quiet = plan_once(sessions)
    assert quiet.plan.shipments and quiet.unchanged and quiet.plan_id == first.plan_id
    with sessions.begin() as session:
        assert count(session, OutboxMessage) == 2  # the first plan's two alerts, nothing since
        session.get_one(Stock, (clinic, ids["rice"])).quantity = 12  # short-town is above its minimum now
    cancelled = plan_once(sessions)
    with sessions.begin() as session:
        assert rows(session)[clinic] == (
            "cancelled",
            24.0,
            "no longer needed: short-town is not short of rice any more",
        )
        assert rows(session)[hub] == ("planned", 35.0, None)  # 40 wanted: still a small change
        body = last_alert(session)
        assert body["community"] == "short-town"
        assert [(i["change"], i["quantity"], i["was"]) for i in body["shipments"]] == [
            ("cancelled", 0.0, 24.0)
        ]
        assert count(session, OutboxMessage) == 3
        session.execute(
            update(NeedLevel).where(NeedLevel.community_id == ids["other-short"]).values(target=80)
        )
    revised = plan_once(sessions)
    with sessions.begin() as session:
        assert rows(session)[hub] == ("planned", 80.0, None)  # 80 wanted against 35: revised
        body = last_alert(session)
        assert body["community"] == "other-short" and body["totals"] == {"rice": 80.0}
        assert [(i["change"], i["quantity"], i["was"]) for i in body["shipments"]] == [
            ("revised", 80.0, 35.0)
        ]
        assert count(session, OutboxMessage) == 4
        assert {i: st for i, st in session.execute(select(DeliveryPlan.id, DeliveryPlan.status))} == {
            first.plan_id: "proposed"
        }
    assert [r.unchanged for r in (first, cancelled, revised)] == [False, False, False]
    assert {r.plan_id for r in (first, quiet, cancelled, revised)} == {first.plan_id}


@pytest.mark.parametrize(
    ("target", "written"),
    [(40, False), (48, False), (32, False), (51, True), (29, True), (200, True)],
    ids=["same", "20%-more", "20%-less", "27%-more", "27%-less", "five-fold"],
)
def test_a_need_changed_by_more_than_the_hysteresis_is_written(
    store: Store, target: int, written: bool
) -> None:
    """Other-short's 40 kg (enough rice for everyone): a target moved by up to 25 % keeps the shipment."""
    sessions, ids = store
    hub = ids["other-short/storage"]
    with sessions.begin() as session:
        session.get_one(Stock, (ids["giver/storage"], ids["rice"])).quantity = 300
    first = plan_once(sessions)
    with sessions.begin() as session:
        assert rows(session)[hub] == ("planned", 40.0, None)
        alerts = count(session, OutboxMessage)
        where = NeedLevel.community_id == ids["other-short"]
        session.execute(update(NeedLevel).where(where).values(target=target))
    again = plan_once(sessions)
    assert (again.plan_id, again.unchanged) == (first.plan_id, not written)
    with sessions.begin() as session:
        assert rows(session)[hub] == ("planned", float(target if written else 40), None)
        assert count(session, OutboxMessage) == alerts + written
        assert count(session, Shipment) == 2


def test_shipments_on_routes_are_left_alone(store: Store) -> None:
    """A shipment on a route counts as on its way; the re-plan neither changes nor cancels it."""
    sessions, ids = store
    first = plan_once(sessions)
    with sessions.begin() as session:
        clinic = ids["short-town/clinic"]
        on_route = session.scalars(select(Shipment).where(Shipment.to_site_id == clinic)).one()
        on_route.status = ShipmentStatus.ASSIGNED
        session.get_one(Stock, (clinic, ids["rice"])).quantity = 4  # with the 24 on their way: not short
    again = plan_once(sessions)
    assert again.unchanged and again.plan_id == first.plan_id
    with sessions.begin() as session:
        assert rows(session)[clinic] == ("assigned", 24.0, None)


def test_a_plan_for_a_siteless_community_is_refused_whole(store: Store) -> None:
    sessions, ids = store
    plan = AllocationPlan(
        shipments=(PlannedShipment(ids["giver"], ids["siteless"], ids["rice"], 5.0, 20.0),),
        coverage={(ids["siteless"], ids["rice"]): 0.125},
        min_coverage=0.125,
        status="Optimal",
        objective=1.0,
    )
    with pytest.raises(ValueError, match="without a site"), sessions.begin() as session:
        save_plan(session, plan)
    with sessions.begin() as session:
        assert (count(session, DeliveryPlan), count(session, Shipment), count(session, OutboxMessage)) == (
            0,
            0,
            0,
        )


def stop_after_runs(monkeypatch: pytest.MonkeyPatch, runs: int) -> threading.Event:
    """A stop that sets itself as the loop's `runs`-th planning run ends (failed or not): no signals."""
    stop, real, ended = threading.Event(), logistics.service.plan_once, []

    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return real(*args, **kwargs)
        finally:
            ended.append(1)
            if len(ended) >= runs:
                stop.set()

    monkeypatch.setattr(logistics.service, "plan_once", counted)
    return stop


def test_loop_plans_until_stopped(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions, _ = store
    stop = stop_after_runs(monkeypatch, 2)
    assert run_loop(sessions, interval_s=0.2, time_limit_s=10.0, stop=stop) == 2  # no broker: the timer
    with sessions.begin() as session:
        assert count(session, DeliveryPlan) == 1  # the second run found the same plan


def test_a_failed_run_is_logged_and_the_loop_goes_on(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sessions, _ = store
    real = logistics.service.solve_allocation
    outcomes = iter([PlanningError("fairness", "Stopped", "time limit"), None])

    def flaky(data: AllocationInput, time_limit_s: float = 30.0) -> AllocationPlan:
        if (error := next(outcomes)) is not None:
            raise error
        return real(data, time_limit_s)

    monkeypatch.setattr(logistics.service, "solve_allocation", flaky)
    stop = stop_after_runs(monkeypatch, 2)
    assert run_loop(sessions, interval_s=0.2, time_limit_s=10.0, stop=stop) == 1
    assert "planning run failed: fairness: solver status 'Stopped': time limit" in caplog.text
    with sessions.begin() as session:
        assert count(session, DeliveryPlan) == 1


def test_plan_command_on_a_migrated_store(
    engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with make_session_factory(engine).begin() as session:
        load_region(session, tiny_region_data())
    assert main(["--db", database_url, "plan", "--time-limit", "10"]) == 0
    out = capsys.readouterr().out
    assert "shipments     1 to 1 communities" in out and "min coverage  1.000" in out
    with make_session_factory(engine).begin() as session:
        loads = [s.quantity for s in session.scalars(select(Shipment))]
        # Utuado: 500 L held, short up to its 3,000 L target; the one 800-kg pickup carries it in 4 loads.
        assert loads == [625.0] * 4
        assert count(session, OutboxMessage, OutboxMessage.topic == "rhizome/v1/alerts/utuado") == 1


def test_plan_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--loop", "--interval", "--time-limit"))
