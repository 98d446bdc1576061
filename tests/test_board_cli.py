"""`rhizome board ...` on a SQLite file: post from JSON, list with counts, change, take for a member, release,
cancel; a refused value exits 1 with the store's message and writes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from gateway.contract.clock import now as clock_now
from gateway.process.cli import cli
from gateway.store.db import make_engine, make_session_factory
from gateway.store.models import Base, BoardTask, Member, TaskShift, TaskSlot
from gateway.store.region import load_region
from tests.conftest import tiny_region_data


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'rhizome.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with make_session_factory(engine).begin() as session:
        load_region(session, tiny_region_data())
    engine.dispose()
    return url


def _run(db: str, *words: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--db", db, "board", *words], input=stdin)
    return result.exit_code, result.output


def test_post_list_take_change_release_cancel(db: str) -> None:
    day = (clock_now() + timedelta(days=3)).date()
    draft = {
        "title": "Seed library sorting",
        "sector": "food",
        "community": "utuado",
        "starts_at": f"{day}T00:00:00Z",
        "ends_at": f"{day + timedelta(days=20)}T00:00:00Z",
        "recurrence": {"days": [day.weekday()], "start": "14:00", "end": "16:00"},
        "slots": [{"skill": "pump-mechanic"}, {"newcomer": True}],
        "poster_kind": "assembly",
        "poster_name": "Utuado assembly",
    }
    code, out = _run(db, "post", "-", stdin=json.dumps(draft))
    assert code == 0 and "task 1: Seed library sorting (food), 3 shifts" in out, out
    engine = make_engine(db)
    with make_session_factory(engine)() as session:
        ana = session.scalar(select(Member.id).where(Member.name == "Ana"))
        shift = session.scalar(select(TaskShift.id).order_by(TaskShift.starts_at))
        slot = session.scalar(select(TaskSlot.id).where(TaskSlot.skill == "pump-mechanic"))
    code, out = _run(db, "take", str(ana), str(shift), str(slot))
    assert code == 0 and "taken" in out, out
    code, out = _run(db, "list", "--json")
    record = json.loads(out.splitlines()[0])
    assert record["filled"] == 1 and record["places"] == 6 and "Ana" not in out
    code, out = _run(db, "change", "1", '{"title": "Seed library, sorting day"}')
    assert code == 0
    code, out = _run(db, "release", str(ana), "1")
    assert code == 0 and "released" in out
    code, out = _run(db, "cancel", "1", "--reason", "the hall is closed")
    assert code == 0 and "cancelled; 0 told" in out
    with make_session_factory(engine)() as session:
        task = session.get(BoardTask, 1)
        assert task is not None and task.status == "cancelled" and task.title == "Seed library, sorting day"
    engine.dispose()


@pytest.mark.parametrize(
    ("words", "stdin", "message"),
    [
        (("post", "-"), "{not json", "not JSON"),
        (("post", "-"), json.dumps({"title": "x"}), "sector must be one of"),
        (("cancel", "99"), None, "no task 99"),
        (("change", "99", "[1]"), None, "say what changes"),
        (("take", "1", "1", "1"), None, "no slot 1 in shift 1"),
    ],
)
def test_a_refused_value_exits_1_with_the_message(
    db: str, words: tuple[str, ...], stdin: str | None, message: str
) -> None:
    code, out = _run(db, *words, stdin=stdin)
    assert code == 1 and message in out, out
    engine = make_engine(db)
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(BoardTask)) == 0
    engine.dispose()


def test_plan_board_suggests_people_once(db: str) -> None:
    start = clock_now() + timedelta(hours=30)
    draft = {
        "title": "Clinic afternoon",
        "sector": "health",
        "community": "utuado",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(),
        "slots": [{"newcomer": True}, {"skill": "nurse"}],
    }
    assert _run(db, "post", "-", stdin=json.dumps(draft))[0] == 0
    result = CliRunner().invoke(cli, ["--db", db, "plan", "board", "--time-limit", "5"])
    assert result.exit_code == 0, result.output
    assert "board: 1 suggested, 1 open places unmatched" in result.output  # Ana: no nurse among them
    assert "place 1/2: nobody within 25 km has the skill nurse" in result.output
