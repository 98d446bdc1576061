"""Repair assignment: tiny named crews with known best choices, then the store round trip and the CLI."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gateway.contract.errors import InvalidInput, NotFound
from gateway.contract.topics import INTERNAL_EVENTS, community_alerts_topic, member_alerts_topic
from gateway.process.cli import main
from gateway.store.db import make_session_factory
from gateway.store.models import (
    Community,
    ContributedHours,
    Member,
    MemberSkill,
    OutboxMessage,
    RepairTask,
    Site,
    TaskEvent,
)
from gateway.store.tasks import decline as decline_task
from logistics.loaders.repairs import load_repair_input
from logistics.repairs import CrewMember, RepairInput, RepairJob, hours_until_available, solve_repairs
from logistics.service import assign_once, decline_and_replan
from tests.conftest import Store

TOWNS = {1: (18.20, -66.50), 2: (18.30, -66.50), 3: (18.60, -66.50)}  # 2 is 11 km from 1, 3 is 44 km


def member(
    id: int, town: int = 1, skills: tuple[str, ...] = ("pump-mechanic",), lat: float = 18.21, **kw: object
) -> CrewMember:
    return CrewMember(id, f"m{id}", town, lat, -66.50, frozenset(skills), **({"free_slots": 1} | kw))  # type: ignore[arg-type]


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
    tired = member(10, recent_hours={"maintenance": 18.0})
    rested = member(11, recent_hours={"maintenance": 2.0})
    plan = solve_repairs(RepairInput([task(1)], [tired, rested], TOWNS))
    (a,) = plan.assignments
    assert a.member_id == 11
    assert "pump-mechanic" in a.explanation and "km away" in a.explanation
    assert "2 h in maintenance" in a.explanation and "baseline 20 h/yr" in a.explanation


def test_nearer_member_wins_when_hours_are_equal() -> None:
    assert solve([task(1)], [member(10, lat=18.29), member(11, lat=18.21)]) == {1: 11}


def test_every_required_skill_must_be_covered() -> None:
    crew = [member(10, skills=("electrician",)), member(11, skills=("electrician", "solar"), lat=18.28)]
    assert solve([task(1, skills=("electrician", "solar"))], crew) == {1: 11}


def test_concurrency_cap_limits_each_member() -> None:
    plan = solve_repairs(RepairInput([task(1), task(2), task(3)], [member(10, free_slots=2)], TOWNS))
    assert len(plan.assignments) == 2 and len(plan.unassigned) == 1


def test_a_member_who_declined_is_not_asked_again() -> None:
    crew = [member(10, lat=18.20), member(11, lat=18.28)]
    assert solve([task(1, declined_by=frozenset({10}))], crew) == {1: 11}


def test_someone_free_now_beats_someone_free_tomorrow() -> None:
    crew = [member(10, lat=18.20, available_in_h=20.0), member(11, lat=18.22)]
    assert solve([task(1)], crew) == {1: 11}
    assert solve([task(1)], [member(10, available_in_h=None)]) == {}


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
        ([member(10, available_in_h=None)], "no qualified member is available soon"),
    ],
)
def test_unassignable_tasks_say_why(crew: list[CrewMember], reason: str) -> None:
    plan = solve_repairs(RepairInput([task(1)], crew, TOWNS))
    assert plan.unassigned[0].reason == reason
    declined = solve_repairs(RepairInput([task(1, declined_by=frozenset({10}))], [member(10)], TOWNS))
    assert "declined" in declined.unassigned[0].reason


def test_baseline_is_configurable_per_community() -> None:
    plan = solve_repairs(
        RepairInput(
            [task(1)],
            [member(10, recent_hours={"maintenance": 5})],
            TOWNS,
            baselines={1: {"maintenance": 40}},
        )
    )
    assert "baseline 40 h/yr" in plan.assignments[0].explanation
    with pytest.raises(ValueError, match="baseline"):
        RepairInput([], [], TOWNS, baselines={1: {"maintenance": 0}})


@pytest.mark.parametrize(
    "make",
    [
        lambda: RepairInput([task(1), task(1)], [], TOWNS),
        lambda: RepairInput([], [member(1), member(1)], TOWNS),
        lambda: RepairInput([task(1)], [member(1, town=9)], TOWNS),
        lambda: task(1, urgency=-1),
        lambda: member(1, free_slots=-1),
        lambda: RepairJob(1, "x", 1, 95.0, 0.0, frozenset()),
    ],
)
def test_bad_repair_input_is_rejected(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


MONDAY_10 = datetime(2026, 3, 2, 10, 0)  # a Monday


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        (None, 0.0),
        ([{"day": 0, "start": "08:00", "end": "12:00"}], 0.0),
        ([{"day": 0, "start": "14:00", "end": "18:00"}], 4.0),
        ([{"day": 1, "start": "08:00", "end": "12:00"}], 22.0),
        ([{"day": 4, "start": "08:00", "end": "12:00"}], None),
        ([], None),
    ],
)
def test_hours_until_available(windows: list[dict[str, object]] | None, expected: float | None) -> None:
    assert hours_until_available(windows, MONDAY_10, horizon_h=24) == expected


@pytest.mark.parametrize("window", [{"day": 7, "start": "08:00", "end": "12:00"}, {"day": 0, "start": "9"}])
def test_malformed_availability_is_rejected(window: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        hours_until_available([window], MONDAY_10, horizon_h=24)


# --- against the store ------------------------------------------------------------------------------------


def fill(session: Session) -> dict[str, int]:
    """Two towns 11 km apart; Ana (rested) and Beto (tired) in the first, a pump with an open task."""
    ids: dict[str, int] = {}
    for slug, (lat, lon) in [("lares", TOWNS[1]), ("utuado", TOWNS[2])]:
        town = Community(slug=slug, name=slug.title(), lat=lat, lon=lon)
        town.sites = [Site(slug="pump", name="Pump", kind="pump", lat=lat, lon=lon)]
        session.add(town)
        session.flush()
        ids[slug] = town.id
        ids[f"{slug}/pump"] = town.sites[0].id
    for name, hours in [("Ana", 2.0), ("Beto", 12.0)]:
        person = Member(name=name, community_id=ids["lares"], lat=18.21, lon=-66.5, is_crew=True)
        person.skills = [MemberSkill(skill="pump-mechanic")]
        session.add(person)
        session.flush()
        session.add(
            ContributedHours(
                member_id=person.id, sector="maintenance", period_start=date.today(), hours=hours
            )
        )
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
    sessions, ids = store
    with sessions.begin() as session:
        data = load_repair_input(session, baselines={"lares": {"maintenance": 30}})
        assert [t.required_skills for t in data.tasks] == [frozenset({"pump-mechanic"})]
        assert {m.name: m.recent_hours["maintenance"] for m in data.crew} == {"Ana": 2.0, "Beto": 12.0}
        assert all(m.free_slots == 2 and m.available_in_h == 0.0 for m in data.crew)
        assert data.baseline(ids["lares"], "maintenance") == 30
        with pytest.raises(ValueError, match="unknown communities"):
            load_repair_input(session, baselines={"atlantis": {"maintenance": 30}})


def test_assign_decline_reassign_then_escalate(store: Store) -> None:
    sessions, ids = store
    run = assign_once(sessions, time_limit_s=10)
    assert run.assigned == 1
    with sessions.begin() as session:
        row = session.get(RepairTask, ids["task"])
        assert row is not None and (row.status, row.assigned_member_id) == ("assigned", ids["Ana"])
        assert row.explanation is not None and "Ana: has pump-mechanic" in row.explanation
        assert events(session, ids["task"]) == [("assigned", ids["Ana"])]
        (alert,) = alerts(session, member_alerts_topic(ids["Ana"]))
        assert alert["event"] == "task_assigned" and alert["task"] == ids["task"] and alert["urgency"] == 3

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
            10 + i, town=rng.choice([1, 2, 3]), lat=rng.uniform(18.1, 18.7), free_slots=rng.choice([1, 2, 3])
        )
        for i in range(rng.randint(2, 6))
    ]
    tasks = [task(i, urgency=rng.choice([10, 60, 130])) for i in range(1, rng.randint(2, 5))]
    data = RepairInput(tasks, crew, TOWNS)
    fast = solve_repairs(data, time_limit_s=10)
    monkeypatch.setattr(repairs, "_each_its_cheapest", lambda pairs, slots: None)
    staged = solve_repairs(data, time_limit_s=10)

    def counts(plan: repairs.RepairPlan) -> dict[int, int]:
        urgency = {t.id: t.urgency for t in tasks}
        found: dict[int, int] = {}
        for a in plan.assignments:
            found[urgency[a.task_id]] = found.get(urgency[a.task_id], 0) + 1
        return found

    assert counts(fast) == counts(staged)
    assert fast.objective == pytest.approx(staged.objective, abs=1e-6)
