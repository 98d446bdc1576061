"""Monthly sector goals: every value is checked when set, a goal is set once per place, sector, month and
kind, and progress is counted from the hours ledger and the board by the work's community, collectively (sums
by sector and community, never a person's); `rhizome goals` sets, lists and removes them from a shell."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dashboard.read import progress
from gateway.contract.errors import InvalidInput, NotFound
from gateway.process.cli import cli
from gateway.store import board, goals, hours
from gateway.store.db import make_session_factory
from gateway.store.models import (
    Community,
    Good,
    Member,
    NeedLevel,
    RepairTask,
    SectorGoal,
    Site,
    TaskShift,
    TaskSlot,
)
from gateway.store.models.vocab import WorkKind
from gateway.store.region import load_region
from gateway.store.sample_board import SAMPLE_GOALS, set_sample_goals
from tests.conftest import Store, tiny_region_data

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # a Monday in December 2026
NAMES = ("Ana", "Bo Benítez", "Cy Cordero")


def fill(session: Session) -> dict[str, int]:
    """The tiny region (Ana lives in Utuado), Bo and Cy of Jayuya, and Utuado's minimum of 100 kg of rice
    (it holds 200: met); Utuado's water is short (500 of 1000), Jayuya's is not."""
    load_region(session, tiny_region_data())
    community = dict(session.execute(select(Community.slug, Community.id)).all())
    for name in NAMES[1:]:
        session.add(
            Member(name=name, community_id=community["jayuya"], lat=18.22, lon=-66.59, hours_per_week=10)
        )
    rice = session.scalar(select(Good.id).where(Good.slug == "rice"))
    assert rice is not None
    session.add(NeedLevel(community_id=community["utuado"], good_id=rice, minimum=100, target=300))
    session.flush()
    people = dict(session.execute(select(Member.name, Member.id)).all())
    return {
        "utuado": community["utuado"],
        "jayuya": community["jayuya"],
        "ana": people["Ana"],
        "bo": people["Bo Benítez"],
        "cy": people["Cy Cordero"],
    }


def task(session: Session, community: str, sector: str, day: str, start: int, end: int, places: int) -> Any:
    """A one-off board task and its (shift id, slot ids)."""
    raw = {
        "title": f"{sector} work in {community}",
        "sector": sector,
        "community": community,
        "starts_at": f"{day}T{start:02d}:00:00Z",
        "ends_at": f"{day}T{end:02d}:00:00Z",
        "slots": [{}] * places,
    }
    posted = board.post(session, board.parse_draft(raw), member_id=None, account="guild", now=NOW)
    shift = session.scalar(select(TaskShift).where(TaskShift.task_id == posted.id))
    assert shift is not None
    slots = session.execute(
        select(TaskSlot.id).where(TaskSlot.task_id == posted.id).order_by(TaskSlot.position)
    ).scalars()
    return shift, list(slots)


def work(session: Session, ids: dict[str, int]) -> None:
    """December's work, and some that must not count:

    - a food task in Utuado (3 h): Ana and Bo (of Jayuya) take a place and the shift ends (done); Cy is
      only suggested the third place (and it lapses): 6 h and 2 places in Utuado food;
    - a food task in Jayuya (2 h) Cy takes: 2 h and 1 place in Jayuya food;
    - Cy's accepted delivery route, 1.5 h of food: her home, Jayuya; Bo's route only asked (offered) and
      Ana's released count nothing;
    - Bo's accepted repair at Utuado's pump, 2 h of water work (which counts as other): Utuado other;
    - an education task in January Ana takes: not December's.
    """
    shift, (first, second, third) = task(session, "utuado", "food", "2026-12-08", 9, 12, 3)
    board.take(session, ids["ana"], shift.id, first, now=NOW)
    board.take(session, ids["bo"], shift.id, second, now=NOW)
    board.suggest(session, shift.id, third, ids["cy"], "near", now=NOW)
    jayuya_shift, (place,) = task(session, "jayuya", "food", "2026-12-09", 9, 11, 1)
    board.take(session, ids["cy"], jayuya_shift.id, place, now=NOW)
    january, (later,) = task(session, "utuado", "education", "2027-01-05", 9, 11, 1)
    board.take(session, ids["ana"], january.id, later, now=NOW)
    at = datetime(2026, 12, 11, 8, 0, tzinfo=UTC)
    hours.offer(session, ids["cy"], WorkKind.ROUTE, 701, "food", 1.5, at, at)
    hours.reserve(session, WorkKind.ROUTE, 701)
    hours.offer(session, ids["bo"], WorkKind.ROUTE, 702, "food", 4.0, at, at)
    hours.offer(session, ids["ana"], WorkKind.ROUTE, 703, "food", 1.0, at, at)
    hours.release(session, WorkKind.ROUTE, 703)
    pump = session.scalar(select(Site.id).where(Site.slug == "pump-1"))
    assert pump is not None
    repair = RepairTask(site_id=pump, title="Pump 1 dry", status="accepted", assigned_member_id=ids["bo"])
    session.add(repair)
    session.flush()
    hours.offer(session, ids["bo"], WorkKind.REPAIR, repair.id, "water", 2.0, at, at)
    hours.reserve(session, WorkKind.REPAIR, repair.id)
    assert board.finish_past(session, datetime(2026, 12, 8, 13, 0, tzinfo=UTC)) == 2


def goal(
    session: Session, community: int | None, sector: str, kind: str, target: Any, month: str = "2026-12"
) -> Any:
    return goals.set_goal(
        session, community_id=community, sector=sector, month=month, kind=kind, target=target, set_by="coord"
    )


# --- setting goals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sector": "water"}, "sector must be one of food, education"),
        ({"sector": None}, "sector must be one of"),
        ({"month": "2026-13"}, "month from 01 to 12"),
        ({"month": "26-12"}, "month must be YYYY-MM"),
        ({"month": "2026-12-01"}, "month must be YYYY-MM"),
        ({"month": "1999-12"}, "years 2000 to 2999"),
        ({"kind": "people"}, "kind must be one of hours, slots"),
        ({"target": 0}, "above 0"),
        ({"target": -3}, "above 0"),
        ({"target": "nan"}, "above 0"),
        ({"target": float("inf")}, "above 0"),
        ({"target": "lots"}, "target must be a number"),
        ({"target": True}, "target must be a number"),
        ({"target": None}, "target must be a number"),
        ({"target": 1e9}, "at most 100,000 hours"),
        ({"kind": "slots", "target": 2.5}, "whole number of places"),
        ({"community_id": 424242}, "no community with id 424242"),
        ({"set_by": 7}, "set_by must be text"),
    ],
)
def test_a_bad_goal_is_refused_with_the_field_named(
    store: Store, changes: dict[str, Any], message: str
) -> None:
    sessions, _ = store
    fields: dict[str, Any] = {
        "community_id": None,
        "sector": "food",
        "month": "2026-12",
        "kind": "hours",
        "target": 10,
        "set_by": "coord",
    }
    with sessions.begin() as session:
        with pytest.raises(InvalidInput, match=message):
            goals.set_goal(session, **(fields | changes))
        assert session.scalar(select(SectorGoal.id)) is None


def test_a_goal_is_set_once_per_place_sector_month_and_kind(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        region = goal(session, None, "food", "hours", "40")
        again = goal(session, None, "Food", "hours", "55,5")  # the region has no row to be unique on
        assert again.id == region.id and again.target == 55.5
        utuado = goal(session, ids["utuado"], "food", "hours", 20)
        slots = goal(session, ids["utuado"], "food", "slots", 6)
        january = goal(session, ids["utuado"], "food", "hours", 20, month="2027-01")
        assert len({region.id, utuado.id, slots.id, january.id}) == 4
        assert session.scalars(select(SectorGoal.id)).all().__len__() == 4


def test_goals_are_listed_by_month_and_place_and_removed(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        health = goal(session, ids["jayuya"], "health", "slots", 3)
        food_region = goal(session, None, "food", "slots", 10)
        food_utuado = goal(session, ids["utuado"], "food", "hours", 20)
        food_hours = goal(session, None, "food", "hours", 30)
        goal(session, None, "food", "hours", 5, month="2027-01")
        listed = [g.id for g in goals.goals_for(session, "2026-12")]
        assert listed == [food_hours.id, food_region.id, food_utuado.id, health.id]
        assert [g.id for g in goals.goals_for(session, "2026-12", None)] == [food_hours.id, food_region.id]
        assert [g.id for g in goals.goals_for(session, "2026-12", ids["jayuya"])] == [health.id]
        with pytest.raises(InvalidInput, match="YYYY-MM"):
            goals.goals_for(session, "December")
        removed = goals.remove_goal(session, health.id)
        assert (removed.sector, removed.month) == ("health", "2026-12")
        assert session.get(SectorGoal, health.id) is None
        with pytest.raises(NotFound, match="no goal"):
            goals.remove_goal(session, health.id)


def test_months_and_places_are_parsed(store: Store) -> None:
    sessions, ids = store
    assert goals.parse_month(" 2026-12 ") == "2026-12"
    assert goals.month_of(NOW) == "2026-12"
    assert goals.month_bounds("2026-12") == (NOW.replace(day=1, hour=0), datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput, match="YYYY-MM"):
        goals.parse_month(202612)
    with sessions.begin() as session:
        assert goals.community_id_of(session, "utuado") == ids["utuado"]
        assert goals.community_id_of(session, "region") is None and goals.community_id_of(session, "") is None
        with pytest.raises(InvalidInput, match="no community 'atlantis'"):
            goals.community_id_of(session, "atlantis")


# --- progress --------------------------------------------------------------------------------------------


def test_hours_and_places_count_by_the_works_community(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        work(session, ids)
        start, end = goals.month_bounds("2026-12")
        assert progress.month_hours(session, start, end) == {
            ("food", ids["utuado"]): 6.0,  # Bo lives in Jayuya; the task is Utuado's
            ("food", ids["jayuya"]): 3.5,  # Cy's place there and her route (her home)
            ("other", ids["utuado"]): 2.0,  # the repair at Utuado's pump, water work
        }
        assert progress.month_slots(session, start, end) == {
            ("food", ids["utuado"]): 2.0,
            ("food", ids["jayuya"]): 1.0,
        }
        january = goals.month_bounds("2027-01")
        assert progress.month_slots(session, *january) == {("education", ids["utuado"]): 1.0}


def test_a_sectors_percent_is_goals_met_of_goals_set(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        work(session, ids)
        food_region = goal(session, None, "food", "hours", 9.5)  # 9.5 of 9.5: met
        food_utuado = goal(session, ids["utuado"], "food", "hours", 8)  # 6 of 8
        goal(session, ids["jayuya"], "food", "slots", 1)  # met
        goal(session, None, "food", "slots", 4)  # 3 of 4
        goal(session, ids["utuado"], "other", "hours", 2)  # met
        goal(session, None, "education", "hours", 5)  # nothing yet this month
        goal(session, ids["utuado"], "education", "slots", 1, month="2027-01")  # next month's
        by_sector = {p.sector: p for p in progress.sector_progress(session, now=NOW)}
        assert list(by_sector) == ["food", "education", "other", "water"]
        food = by_sector["food"]
        # Utuado's rice minimum is held; two of the four work goals are reached
        assert (food.stock_goals, food.stock_met, len(food.work), food.goals, food.met) == (1, 1, 4, 5, 3)
        assert food.sentence == "Food: 60% of this month's goals met"
        assert food.detail == "1 of 1 need minimums held; 2 of 4 work goals reached; 0 deliveries this month"
        assert by_sector["education"].sentence == "Education: 0% of this month's goals met"
        assert by_sector["other"].percent == 100
        assert (by_sector["water"].goals, by_sector["water"].percent) == (2, 50)  # stock goals only
        region, utuado = (next(g for g in food.work if g.id == x.id) for x in (food_region, food_utuado))
        assert (region.community, region.community_name, region.met, region.percent) == (
            None,
            "the region",
            True,
            100,
        )
        assert (utuado.community, utuado.achieved, utuado.fraction, utuado.percent) == (
            "utuado",
            6.0,
            0.75,
            75,
        )
        assert utuado.sentence == "Food, Utuado: 6 of 8 hours"
        everything = progress.sector_progress(session, now=NOW, every_sector=True)
        assert [p.sector for p in everything] == list(progress.SECTORS)
        assert next(p for p in everything if p.sector == "health").sentence == "Health: no goals set"


def test_a_communitys_progress_counts_its_own_goals_and_stock(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        work(session, ids)
        goal(session, None, "food", "hours", 1)  # the region's: not on Utuado's page
        goal(session, ids["utuado"], "food", "hours", 8)
        goal(session, ids["utuado"], "other", "hours", 2)
        goal(session, ids["jayuya"], "other", "hours", 1)
        mine = {p.sector: p for p in progress.sector_progress(session, now=NOW, community_id=ids["utuado"])}
        assert {s: (p.goals, p.met) for s, p in mine.items()} == {
            "food": (2, 1),
            "other": (1, 1),
            "water": (1, 0),
        }
        assert mine["food"].sentence == "Food: 50% of this month's goals met"
        # the map passes the communities it loaded; the counts are the same
        from dashboard.read import queries

        loaded = queries.community_summaries(session)
        same = progress.sector_progress(session, loaded, now=NOW, community_id=ids["utuado"])
        assert [(p.sector, p.goals, p.met) for p in same] == [(s, p.goals, p.met) for s, p in mine.items()]


def test_progress_names_nobody(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        work(session, ids)
        goal(session, ids["utuado"], "food", "hours", 8)
        goal(session, None, "food", "slots", 4)
        shown = repr(progress.sector_progress(session, now=NOW, every_sector=True))
        assert not [name for name in NAMES if name in shown]
        assert "member" not in shown


def test_the_sample_goals_are_set_once_and_keep_a_coordinators_change(store: Store) -> None:
    sessions, _ = store
    with sessions.begin() as session:
        assert set_sample_goals(session, NOW) == 2 * len(SAMPLE_GOALS) == 12
        food = next(
            g for g in goals.goals_for(session, "2026-12", None) if (g.sector, g.kind) == ("food", "hours")
        )
        food.target = 75.0
        assert set_sample_goals(session, NOW) == 0
        assert {(g.sector, g.kind) for g in goals.goals_for(session, "2026-12", None)} == {
            (s, k) for s in SAMPLE_GOALS for k in ("hours", "slots")
        }
        assert session.get(SectorGoal, food.id).target == 75.0  # type: ignore[union-attr]


# --- the command -----------------------------------------------------------------------------------------


@pytest.fixture
def db_url(sqlite_engine: Engine) -> str:
    """A migrated SQLite file with the tiny region, as `rhizome --db` takes it."""
    with make_session_factory(sqlite_engine).begin() as session:
        load_region(session, tiny_region_data())
    return sqlite_engine.url.render_as_string(hide_password=False)


def rhizome(db_url: str, *words: str) -> Any:
    return CliRunner().invoke(cli, ["--db", db_url, "goals", *words])


def test_the_command_sets_lists_and_removes_goals(db_url: str, sqlite_engine: Engine) -> None:
    made = rhizome(
        db_url, "set", "food", "hours", "40", "--community", "utuado", "--month", "2026-12", "--by", "luz"
    )
    assert made.exit_code == 0, made.output
    assert "2026-12 utuado food: 40 hours" in made.output
    assert rhizome(db_url, "set", "health", "slots", "6", "--month", "2026-12").exit_code == 0
    changed = rhizome(db_url, "set", "food", "hours", "45", "--community", "utuado", "--month", "2026-12")
    assert changed.exit_code == 0
    listed = rhizome(db_url, "list", "--month", "2026-12")
    lines = listed.output.strip().splitlines()
    assert listed.exit_code == 0 and len(lines) == 2
    assert lines[0].endswith("2026-12 utuado food: 45 hours (set by cli)")
    assert lines[1].endswith("2026-12 region health: 6 slots (set by cli)")
    only = rhizome(db_url, "list", "--month", "2026-12", "--community", "region")
    assert "health" in only.output and "food" not in only.output
    assert "no goals for 2027-01" in rhizome(db_url, "list", "--month", "2027-01").output
    goal_id = lines[1].split("\t")[0]
    removed = rhizome(db_url, "remove", goal_id)
    assert removed.exit_code == 0 and "removed goal" in removed.output
    with make_session_factory(sqlite_engine)() as session:
        assert [g.sector for g in session.scalars(select(SectorGoal))] == ["food"]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (("set", "water", "hours", "5"), "sector must be one of food, education"),
        (("set", "food", "people", "5"), "kind must be one of hours, slots"),
        (("set", "food", "hours", "0"), "target must be a number above 0"),
        (("set", "food", "slots", "2.5"), "whole number of places"),
        (("set", "food", "hours", "5", "--community", "atlantis"), "no community 'atlantis'"),
        (("set", "food", "hours", "5", "--month", "2026-13"), "01 to 12"),
        (("remove", "4242"), "no goal 4242"),
        (("list", "--month", "soon"), "YYYY-MM"),
    ],
)
def test_the_command_refuses_bad_values_with_exit_1(
    db_url: str, words: tuple[str, ...], message: str
) -> None:
    result = rhizome(db_url, *words)
    assert result.exit_code == 1 and message in result.output, result.output
