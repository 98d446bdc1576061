"""Repair assignment: tiny named crews with known best choices, then the store round trip and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gateway.contract.errors import InvalidInput, NotFound
from gateway.contract.topics import INTERNAL_EVENTS, community_alerts_topic, member_alerts_topic
from gateway.process.cli import main
from gateway.store import declines
from gateway.store import hours as ledger
from gateway.store.db import make_session_factory
from gateway.store.models import (
    Community,
    HoursEntry,
    Member,
    MemberSkill,
    OutboxMessage,
    RepairTask,
    Site,
    TaskEvent,
    utcnow,
)
from gateway.store.models.vocab import WorkKind
from gateway.store.tasks import decline as decline_task
from logistics.loaders.repairs import load_repair_input, save_repair_plan
from logistics.repairs import CrewMember, RepairInput, RepairJob, availability_intervals, solve_repairs
from logistics.service import assign_once, decline_and_replan
from tests.conftest import Store

TOWNS = {1: (18.20, -66.50), 2: (18.30, -66.50), 3: (18.60, -66.50)}  # 2 is 11 km from 1, 3 is 44 km


def member(
    id: int, town: int = 1, skills: tuple[str, ...] = ("pump-mechanic",), lat: float = 18.21, **kw: object
) -> CrewMember:
    return CrewMember(id, f"m{id}", town, lat, -66.50, frozenset(skills), **({"week_pledge_h": 2.0} | kw))  # type: ignore[arg-type]


def task(id: int, urgency: int = 1, skills: tuple[str, ...] = ("pump-mechanic",), **kw: object) -> RepairJob:
    return RepairJob(id, f"task {id}", 1, 18.20, -66.50, frozenset(skills), urgency=urgency, **kw)  # type: ignore[arg-type]


def solve(tasks: list[RepairJob], crew: list[CrewMember], **kw: object) -> dict[int, int]:
    plan = solve_repairs(RepairInput(tasks, crew, TOWNS, **kw), time_limit_s=10)  # type: ignore[arg-type]
    return {a.task_id: a.member_id for a in plan.assignments}


def test_critical_task_gets_the_only_free_mechanic_even_if_farther() -> None:
    far_critical = RepairJob(1, "pump dead", 1, 18.25, -66.50, frozenset({"pump-mechanic"}), urgency=5)
    plan = solve_repairs(RepairInput([far_critical, task(2, urgency=1)], [member(10)], TOWNS))
    assert {a.task_id: a.member_id for a in plan.assignments} == {1: 10}
    assert plan.unassigned[0].task_id == 2 and "busy" in plan.unassigned[0].reason


def test_work_rotates_to_whoever_gave_fewer_hours_lately() -> None:
    tired = member(10, year_load_h={"maintenance": 18.0})
    rested = member(11, year_load_h={"maintenance": 2.0})
    plan = solve_repairs(RepairInput([task(1)], [tired, rested], TOWNS))
    (a,) = plan.assignments
    assert a.member_id == 11
    assert "pump-mechanic" in a.explanation and "km away" in a.explanation
    assert "2.0 of 2 h this week" in a.explanation and "2 of 20 h in maintenance this year" in a.explanation


def test_nearer_member_wins_when_hours_are_equal() -> None:
    assert solve([task(1)], [member(10, lat=18.29), member(11, lat=18.21)]) == {1: 11}


def test_every_required_skill_must_be_covered() -> None:
    crew = [member(10, skills=("electrician",)), member(11, skills=("electrician", "solar"), lat=18.28)]
    assert solve([task(1, skills=("electrician", "solar"))], crew) == {1: 11}


def test_the_weekly_pledge_limits_each_member() -> None:
    plan = solve_repairs(RepairInput([task(1), task(2), task(3)], [member(10, week_pledge_h=5.0)], TOWNS))
    assert len(plan.assignments) == 2 and len(plan.unassigned) == 1
    first, second = plan.assignments  # back to back, never at once
    assert (first.starts_at_h, first.ends_at_h, second.starts_at_h, second.ends_at_h) == (0, 2, 2, 4)
    assert plan.max_load_ratio == pytest.approx(0.8)


def test_a_member_who_declined_is_not_asked_again() -> None:
    crew = [member(10, lat=18.20), member(11, lat=18.28)]
    assert solve([task(1, declined_by=frozenset({10}))], crew) == {1: 11}


def test_someone_free_now_beats_someone_free_tomorrow() -> None:
    crew = [member(10, lat=18.20, windows=((20.0, 30.0),)), member(11, lat=18.22)]
    assert solve([task(1)], crew) == {1: 11}
    assert solve([task(1)], [member(10, windows=())]) == {}


def test_nobody_local_escalates_to_the_nearest_neighbours() -> None:
    plan = solve_repairs(
        RepairInput([task(1)], [member(20, town=2, lat=18.30)], TOWNS, escalation_neighbours=1)
    )
    (a,) = plan.assignments
    assert a.member_id == 20 and a.escalated and "neighbouring community" in a.explanation
    # Town 3 is not among the single nearest neighbour, so its member is not asked.
    far = solve_repairs(
        RepairInput([task(1)], [member(30, town=3, lat=18.6)], TOWNS, escalation_neighbours=1)
    )
    assert far.assignments == ()
    assert far.unassigned[0].widened_to == (2,)
    assert far.unassigned[0].reason == "no crew member in the community or its neighbours"


def test_region_fallback_sends_the_nearest_qualified_member_from_afar() -> None:
    crew = [member(30, town=3, lat=18.6), member(31, town=3, lat=18.9)]
    data = RepairInput([task(1)], crew, TOWNS, escalation_neighbours=1, region_fallback=True)
    (a,) = solve_repairs(data).assignments
    assert a.member_id == 30 and a.escalated and "elsewhere in the region" in a.explanation
    nobody = RepairInput([task(1)], [member(30, town=3, skills=("plumbing",))], TOWNS, region_fallback=True)
    (u,) = solve_repairs(nobody).unassigned
    assert u.reason == "nobody in the region has every skill needed (pump-mechanic)"


@pytest.mark.parametrize(
    ("crew", "reason"),
    [
        ([member(10, skills=("plumbing",))], "nobody nearby has every skill needed (pump-mechanic)"),
        ([member(10, windows=())], "no qualified member is available soon"),
        (
            [member(10, windows=((3.0, 4.5),))],
            "no qualified member has 2 h free in one stretch in the next 24 h",
        ),
        ([member(10, week_load_h=1.0)], "no qualified member nearby has 2 h left of their weekly pledge"),
    ],
)
def test_unassignable_tasks_say_why(crew: list[CrewMember], reason: str) -> None:
    plan = solve_repairs(RepairInput([task(1)], crew, TOWNS))
    assert plan.unassigned[0].reason == reason
    declined = solve_repairs(RepairInput([task(1, declined_by=frozenset({10}))], [member(10)], TOWNS))
    assert "declined" in declined.unassigned[0].reason


def test_the_years_offer_per_sector_is_each_members_own() -> None:
    offer = {"maintenance": 40.0}
    plan = solve_repairs(
        RepairInput([task(1)], [member(10, year_offer_h=offer, year_load_h={"maintenance": 5})], TOWNS)
    )
    assert "5 of 40 h in maintenance this year" in plan.assignments[0].explanation
    (u,) = solve_repairs(RepairInput([task(1)], [member(10, year_offer_h={"food": 20.0})], TOWNS)).unassigned
    assert u.reason == "no qualified member nearby has 2 h left of their maintenance hours this year"


@pytest.mark.parametrize(
    "make",
    [
        lambda: RepairInput([task(1), task(1)], [], TOWNS),
        lambda: RepairInput([], [member(1), member(1)], TOWNS),
        lambda: RepairInput([task(1)], [member(1, town=9)], TOWNS),
        lambda: task(1, urgency=-1),
        lambda: member(1, week_pledge_h=-1),
        lambda: member(1, busy=((3.0, 1.0),)),
        lambda: task(1, hours=0.0),
        lambda: RepairJob(1, "x", 1, 95.0, 0.0, frozenset()),
    ],
)
def test_bad_repair_input_is_rejected(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("windows", "away", "expected"),
    [
        (None, None, ((0.0, 24.0),)),
        ([{"day": 0, "start": "08:00", "end": "12:00"}], None, ((0.0, 2.0),)),
        ([{"day": 0, "start": "14:00", "end": "18:00"}], None, ((4.0, 8.0),)),
        ([{"day": 1, "start": "08:00", "end": "12:00"}], None, ((22.0, 24.0),)),
        ([{"day": 4, "start": "08:00", "end": "12:00"}], None, ()),
        ([], None, ()),
        # Away on Monday: only Tuesday from midnight is left; away both days leaves nothing.
        (None, [{"from": "2026-03-02", "to": "2026-03-02"}], ((14.0, 24.0),)),
        (None, [{"from": "2026-02-20", "to": "2026-03-03"}], ()),
        # Sunday evening's window of the week after, within a week-long horizon.
        ([{"day": 6, "start": "20:00", "end": "22:00"}], None, ((154.0, 156.0),)),
    ],
)
def test_availability_intervals(
    windows: list[dict[str, object]] | None,
    away: list[dict[str, object]] | None,
    expected: tuple[tuple[float, float], ...],
) -> None:
    horizon = 168.0 if windows and windows[0]["day"] == 6 else 24.0
    assert availability_intervals(windows, away, MONDAY_10, horizon_h=horizon) == expected


@pytest.mark.parametrize(
    ("window", "away"),
    [
        ({"day": 7, "start": "08:00", "end": "12:00"}, None),
        ({"day": 0, "start": "9"}, None),
        ({"day": 0, "start": "08:00", "end": "12:00"}, {"from": "2026-03-05", "to": "2026-03-04"}),
        ({"day": 0, "start": "08:00", "end": "12:00"}, {"from": "soon"}),
    ],
)
def test_malformed_availability_is_rejected(
    window: dict[str, object], away: dict[str, object] | None
) -> None:
    with pytest.raises(ValueError):
        availability_intervals([window], [away] if away else None, MONDAY_10, horizon_h=24)


# --- against the store ------------------------------------------------------------------------------------


def fill(session: Session) -> dict[str, int]:
    """Two towns 11 km apart; Ana (rested) and Beto (tired) in the first, a pump with an open task.

    Their hours done count this week and this year: they start at the later of the week's and the year's
    start (never in the future)."""
    ids: dict[str, int] = {}
    for slug, (lat, lon) in [("lares", TOWNS[1]), ("utuado", TOWNS[2])]:
        town = Community(slug=slug, name=slug.title(), lat=lat, lon=lon)
        town.sites = [Site(slug="pump", name="Pump", kind="pump", lat=lat, lon=lon)]
        session.add(town)
        session.flush()
        ids[slug] = town.id
        ids[f"{slug}/pump"] = town.sites[0].id
    now = utcnow()
    done_at = max(ledger.week_start(now), ledger.year_start(now))
    for work_id, (name, pledge, hours) in enumerate([("Ana", 6.0, 2.0), ("Beto", 20.0, 12.0)], start=900):
        person = Member(
            name=name, community_id=ids["lares"], lat=18.21, lon=-66.5, is_crew=True, hours_per_week=pledge
        )
        person.skills = [MemberSkill(skill="pump-mechanic")]
        session.add(person)
        session.flush()
        end = done_at + timedelta(hours=hours)
        ledger.offer(session, person.id, WorkKind.REPAIR, work_id, "maintenance", hours, done_at, end)
        ledger.finish(session, WorkKind.REPAIR, work_id, end)
        ids[name] = person.id
    broken = RepairTask(
        site_id=ids["lares/pump"], title="Pump 1 dry run", urgency=3, required_skills=["pump-mechanic"]
    )
    session.add(broken)
    session.flush()
    ids["task"] = broken.id
    return ids


def alerts(session: Session, topic: str) -> list[dict[str, object]]:
    rows = session.scalars(select(OutboxMessage.payload).where(OutboxMessage.topic == topic)).all()
    return [json.loads(p) for p in rows]


def events(session: Session, task_id: int) -> list[tuple[str, int | None]]:
    rows = session.execute(select(TaskEvent.event, TaskEvent.member_id).where(TaskEvent.task_id == task_id))
    return [(e, m) for e, m in rows]


def test_loader_reads_tasks_crew_hours_and_declines(store: Store) -> None:
    sessions, _ids = store
    with sessions.begin() as session:
        data = load_repair_input(session, baselines={"lares": {"maintenance": 30}})
        assert [(t.required_skills, t.hours) for t in data.tasks] == [(frozenset({"pump-mechanic"}), 2.0)]
        assert {m.name: m.year_load_h["maintenance"] for m in data.crew} == {"Ana": 2.0, "Beto": 12.0}
        assert {m.name: (m.week_load_h, m.week_pledge_h) for m in data.crew} == {
            "Ana": (2.0, 6.0),
            "Beto": (12.0, 20.0),
        }
        assert all(m.windows == ((0.0, 24.0),) and m.busy == () for m in data.crew)
        # The community's baseline stands in for a split the member did not set.
        assert all(m.year_offer_h["maintenance"] == 30 for m in data.crew)
        with pytest.raises(ValueError, match="unknown communities"):
            load_repair_input(session, baselines={"atlantis": {"maintenance": 30}})


def test_loader_reads_offers_free_time_and_declines_that_still_hold(store: Store) -> None:
    """Ana's own split, preference, windows and away day; Beto's route ahead (busy, in `other`); only a
    decline of the last 7 days that was not withdrawn keeps the task from its decliner."""
    sessions, ids = store
    now = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)  # a Wednesday
    with sessions.begin() as session:
        ana = session.get(Member, ids["Ana"])
        assert ana is not None
        ana.sector_hours, ana.preferred_sectors = {"maintenance": 10, "food": 5}, ["maintenance"]
        ana.availability = [{"day": d, "start": "08:00", "end": "12:00"} for d in (2, 3)]
        ana.away = [{"from": "2026-03-05", "to": "2026-03-05"}]  # Thursday
        start = now + timedelta(hours=3)
        ledger.offer(
            session, ids["Beto"], WorkKind.ROUTE, 77, "water", 2.0, start, start + timedelta(hours=2)
        )
        declines.record_task(session, ids["task"], ids["Ana"], "away", at=now - timedelta(days=8))
        withdrawn = declines.record_task(session, ids["task"], ids["Ana"], "busy", at=now - timedelta(days=2))
        declines.record_task(session, ids["task"], ids["Beto"], "no parts", at=now - timedelta(days=1))
        session.flush()
        declines.ask_again(session, withdrawn.id, ids["Ana"], at=now - timedelta(days=1))
    with sessions.begin() as session:
        data = load_repair_input(session, now=now)
        (job,) = data.tasks
        assert job.declined_by == {ids["Beto"]}
        crew = {m.name: m for m in data.crew}
        assert crew["Ana"].year_offer_h == {"maintenance": 10.0, "food": 5.0}
        assert crew["Ana"].preferred_sectors == {"maintenance"}
        assert crew["Ana"].windows == ((0.0, 3.0),)  # Wednesday 9-12; Thursday morning she is away
        assert crew["Beto"].busy == ((3.0, 5.0),) and crew["Beto"].year_load_h["other"] == 2.0
        assert data.now == now and data.horizon_h == 24.0


def test_assign_decline_reassign_then_escalate(store: Store) -> None:
    sessions, ids = store
    run = assign_once(sessions, time_limit_s=10)
    assert run.assigned == 1
    with sessions.begin() as session:
        row = session.get(RepairTask, ids["task"])
        assert row is not None and (row.status, row.assigned_member_id) == ("assigned", ids["Ana"])
        assert row.explanation is not None and "Ana: has pump-mechanic" in row.explanation
        assert events(session, ids["task"]) == [("assigned", ids["Ana"])]
        # The ledger holds the offer over the interval the planner chose.
        (entry,) = session.scalars(select(HoursEntry).where(HoursEntry.work_id == ids["task"])).all()
        assert (entry.member_id, entry.state, entry.hours) == (ids["Ana"], "offered", 2.0)
        assert entry.ends_at - entry.starts_at == timedelta(hours=2)
        assert abs((entry.starts_at - utcnow()).total_seconds()) < 60
        (alert,) = alerts(session, member_alerts_topic(ids["Ana"]))
        assert alert["event"] == "task_assigned" and alert["task"] == ids["task"] and alert["urgency"] == 3
        site = session.get(Site, row.site_id)
        assert site is not None and alert["site"] == site.id  # the old field stays; the place is added
        assert (alert["site_name"], alert["lat"], alert["lon"]) == (site.name, site.lat, site.lon)
        assert alert["link"] == f"/crew#task-{ids['task']}"

    decline_and_replan(sessions, ids["task"], ids["Ana"], "away this week", time_limit_s=10)
    with sessions.begin() as session:
        row = session.get(RepairTask, ids["task"])
        assert row is not None and row.assigned_member_id == ids["Beto"]
        assert ("declined", ids["Ana"]) in events(session, ids["task"])
        assert len(alerts(session, member_alerts_topic(ids["Beto"]))) == 1

    run = decline_and_replan(sessions, ids["task"], ids["Beto"], "no parts", time_limit_s=10)
    assert run.escalated == 1
    with sessions.begin() as session:
        row = session.get(RepairTask, ids["task"])
        assert row is not None and (row.status, row.assigned_member_id) == ("escalated", None)
        assert events(session, ids["task"])[-1][0] == "escalated"
        (notice,) = alerts(session, community_alerts_topic("utuado"))
        assert notice["event"] == "task_escalated" and "declined" in str(notice["reason"])
    # A later run keeps trying but does not announce the escalation again.
    assert assign_once(sessions, time_limit_s=10).escalated == 0
    with sessions.begin() as session:
        published = select(func.count()).select_from(OutboxMessage)
        assert session.scalar(published.where(OutboxMessage.topic != INTERNAL_EVENTS)) == 3
        # ...and each of the five moves (assign, decline, assign, decline, escalate) told the other processes.
        assert session.scalar(published.where(OutboxMessage.topic == INTERNAL_EVENTS)) == 5


def test_declining_a_task_not_assigned_to_you_is_refused(store: Store) -> None:
    """The planner's decline is the crew page's: a task not yours is not found, and a reason is needed."""
    sessions, ids = store
    with pytest.raises(NotFound, match="no such task among yours"):
        decline_and_replan(sessions, ids["task"], ids["Beto"], "no parts")
    with pytest.raises(InvalidInput, match="say why you decline"):
        decline_and_replan(sessions, ids["task"], ids["Beto"])
    with sessions.begin() as session:
        assert events(session, ids["task"]) == []


def test_a_declined_task_is_open_again_and_a_long_reason_is_refused(store: Store) -> None:
    """Declining through the planner checks the reason like the crew page (at most 500 characters, not cut)
    and stamps the task's updated_at."""
    sessions, ids = store
    assign_once(sessions, time_limit_s=10)
    with sessions.begin() as session:
        before = session.get(RepairTask, ids["task"]).updated_at  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match="longer than 500"):
        decline_and_replan(sessions, ids["task"], ids["Ana"], "x" * 501, time_limit_s=10)
    with sessions.begin() as session:
        decline_task(session, ids["task"], ids["Ana"], "x" * 500)
    with sessions.begin() as session:
        row = session.get(RepairTask, ids["task"])
        assert row is not None and row.status == "open"
        assert (row.assigned_member_id, row.explanation) == (None, None)
        assert row.updated_at > before
        (reason,) = session.scalars(select(TaskEvent.reason).where(TaskEvent.event == "declined")).all()
        assert reason == "x" * 500


def test_plan_repairs_command(engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with make_session_factory(engine).begin() as session:
        ids = fill(session)
    assert main(["--db", database_url, "plan", "repairs", "--time-limit", "10"]) == 0
    out = capsys.readouterr().out
    assert "repairs: 1 assigned" in out and f"-> member {ids['Ana']}" in out


@pytest.mark.parametrize("seed", range(12))
def test_the_solver_free_shortcut_finds_the_staged_models_optimum(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random crews and tasks: when every task's cheapest member has room, the shortcut's plan assigns as
    many tasks at each urgency and costs as little as the solver's (which it skips)."""
    import random

    from logistics.repairs import solve as repairs

    rng = random.Random(seed)
    crew = [
        member(
            10 + i,
            town=rng.choice([1, 2, 3]),
            lat=rng.uniform(18.1, 18.7),
            week_pledge_h=rng.choice([2.0, 4.0, 6.0]),
            year_load_h={"maintenance": rng.choice([0.0, 5.0, 15.0])},
        )
        for i in range(rng.randint(2, 6))
    ]
    tasks = [task(i, urgency=rng.choice([10, 60, 130])) for i in range(1, rng.randint(2, 5))]
    data = RepairInput(tasks, crew, TOWNS)
    fast = solve_repairs(data, time_limit_s=10)
    monkeypatch.setattr(repairs, "_each_its_cheapest", lambda pairs, free: None)
    staged = solve_repairs(data, time_limit_s=10)

    def counts(plan: repairs.RepairPlan) -> dict[int, int]:
        urgency = {t.id: t.urgency for t in tasks}
        found: dict[int, int] = {}
        for a in plan.assignments:
            found[urgency[a.task_id]] = found.get(urgency[a.task_id], 0) + 1
        return found

    assert counts(fast) == counts(staged)
    assert fast.objective == pytest.approx(staged.objective, abs=1e-6)


def test_a_member_whose_hours_changed_while_planning_waits_for_the_next_run(store: Store) -> None:
    sessions, _ = store
    with sessions.begin() as session:
        data = load_repair_input(session)
    plan = solve_repairs(data, time_limit_s=10)
    assert plan.assignments
    chosen = plan.assignments[0]
    with sessions.begin() as session:  # the router, in its own thread, offers them a route meanwhile
        start = utcnow()
        ledger.offer(
            session, chosen.member_id, WorkKind.ROUTE, 77, "food", 1.0, start, start + timedelta(hours=1)
        )
    loaded = {m.id: m.week_load_h for m in data.crew}
    with sessions.begin() as session:
        assigned, _ = save_repair_plan(session, plan, loaded)
        task = session.get(RepairTask, chosen.task_id)
        assert task is not None and task.assigned_member_id != chosen.member_id
        assert assigned == len([a for a in plan.assignments if a.member_id != chosen.member_id])
    rerun = assign_once(sessions, time_limit_s=10)  # the next run sees the route and plans around it
    assert chosen.task_id in {a.task_id for a in rerun.plan.assignments} | {
        u.task_id for u in rerun.plan.unassigned
    }
