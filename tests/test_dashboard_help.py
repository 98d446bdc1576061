"""Cross-community help on a node's dashboard: the crew page lists the neighbours' open repair tasks a member
could take ("I can help" writes this node's `help` fact), their own offers ("Withdraw"), and the goals page
the hours neighbours gave. Two node stores pass facts by hand as in test_fed_help; the dashboard serves the
helper's (camuy). Where the dashboard is no node, none of it shows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from dashboard.web.accounts import Account, MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.config import DashboardConfig
from dashboard.web.store import get_store
from gateway.contract import clock
from gateway.process.settings import Settings
from gateway.store import federation as log_store
from gateway.store import tasks as lifecycle
from gateway.store.models import Community, FedHelp, Member, RepairTask
from tests.test_dashboard_pages import PASSWORD, Auth
from tests.test_fed_help import AT, HELPER, HOME, KEYS, exchange, member_id, open_task, step
from tests.test_fed_help import stores as stores  # the two node stores (a fixture)

SECTION = "Neighbours asking for help"
HOSTILE = '<img src=x onerror="alert(1)">'
ANONYMOUS_POST = 400  # no session, no CSRF token: refused before the view


def federation_file(path: Path) -> Path:
    lines = ["lease_s = 30", "beat_s = 5"]
    for name, key in KEYS.items():
        lines += [
            f"[nodes.{name}]",
            f'public_key = "{key.public}"',
            f'broker = "mqtt://10.0.0.{len(name)}:1883"',
        ]
    lines += ["[[links]]", f'dial = "{HOME}"', f'to = "{HELPER}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Served:
    app: Flask
    sessions: sessionmaker[Session]

    def signed_in(self, username: str) -> Auth:
        auth = Auth(self.app.test_client())
        assert auth.login(username).status_code == 302
        return auth


def serve(tmp_path: Path, stores: dict[str, sessionmaker[Session]], *, as_node: bool) -> Served:
    """camuy's store behind a dashboard (as the node camuy, or as a plain dashboard): `near` and `second` are
    crew accounts linked to those members, `viewer` a viewer."""
    hashed = make_account("someone", PASSWORD, "viewer").password_hash
    accounts = MemoryAccountStore(
        [
            Account("near", hashed, "crew", member_id(stores[HELPER], "near")),
            Account("second", hashed, "crew", member_id(stores[HELPER], "second")),
            Account("viewer", hashed, "viewer"),
        ]
    )
    url = f"sqlite:///{tmp_path / f'{HELPER}.db'}"
    node = {"node_name": HELPER, "federation_file": federation_file(tmp_path / "fed.toml")} if as_node else {}
    settings = Settings(database_url=url, **node)  # type: ignore[arg-type]
    app = create_app(settings, DashboardConfig(public_map=False), accounts, test_config={"TESTING": True})
    return Served(app, get_store(app).sessions)


@pytest.fixture
def node(tmp_path: Path, stores: dict[str, sessionmaker[Session]]) -> Iterator[Served]:
    served = serve(tmp_path, stores, as_node=True)
    yield served
    get_store(served.app).engine.dispose()


@pytest.fixture
def plain(tmp_path: Path, stores: dict[str, sessionmaker[Session]]) -> Iterator[Served]:
    served = serve(tmp_path, stores, as_node=False)
    yield served
    get_store(served.app).engine.dispose()


def section(page: str) -> str:
    found = re.search(r'<section id="rz-neighbours".*?</section>', page, re.S)
    assert found is not None
    return found.group(0)


def home_names(stores: dict[str, sessionmaker[Session]]) -> list[str]:
    """The names of the task node's people, which camuy's pages must never show."""
    with stores[HOME]() as session:
        return list(session.scalars(select(Member.name)))


def help_facts(served: Served) -> list[dict[str, object]]:
    with served.sessions() as session:
        return [dict(r.body) for r in log_store.facts_of_kind(session, "help") if r.origin == HELPER]


def test_a_crew_member_sees_the_task_offers_once_and_withdraws(
    node: Served,
    stores: dict[str, sessionmaker[Session]],
) -> None:
    task_id = open_task(stores[HOME], escalate=True)
    ref = f"{HOME}/{task_id}"
    step(stores, AT)
    with stores[HELPER]() as session:
        arecibo = session.scalars(select(Community.name).where(Community.slug == HOME)).one()
    auth = node.signed_in("near")
    page = auth.client.get("/crew").get_data(as_text=True)
    shown = section(page)
    assert SECTION in shown and "Pump failure at the well" in shown and arecibo in shown
    assert ">when you can</span>" in shown and 'title="urgency score 5' in shown
    assert "about 4 h" in shown and "skills: pump mechanic" in shown
    assert re.search(r"\d+\.\d km from home", shown) and f'value="{ref}"' in shown and "I can help" in shown
    names = home_names(stores)
    assert names and not [n for n in names if n in page]

    offered = auth.post("/crew/help", {"ref": ref}, page="/crew")
    assert offered.status_code == 302 and offered.location == "/crew"
    with node.sessions() as session:
        rows = list(session.scalars(select(FedHelp)))
    assert [(r.task_ref, r.state, r.member_id) for r in rows] == [
        (ref, "offered", member_id(stores[HELPER], "near"))
    ]
    assert help_facts(node) == [
        {
            "ref": ref,
            "community": HOME,
            "node": HELPER,
            "helper": f"{HELPER}/h{rows[0].id}",
            "offer": True,
            "hours": 4.0,
            "skills": ["pump-mechanic"],
        }
    ]
    after = auth.client.get("/crew").get_data(as_text=True)
    assert "your offer of 4 h for “Pump failure at the well” is sent" in after
    mine = section(after)
    assert "You offered to help." in mine and "I can help" not in mine and "waiting for an answer" in mine
    assert f"/crew/help/{rows[0].id}/withdraw" in mine

    again = auth.post("/crew/help", {"ref": ref}, page="/crew")
    assert again.status_code == 409 and "offered to help with this task already" in again.get_data(
        as_text=True
    )
    assert len(help_facts(node)) == 1

    withdrawn = auth.post(f"/crew/help/{rows[0].id}/withdraw", {"reason": "my car broke"}, page="/crew")
    assert withdrawn.status_code == 302
    with node.sessions() as session:
        assert session.get(FedHelp, rows[0].id).state == "withdrawn"  # type: ignore[union-attr]
    last = help_facts(node)[-1]
    assert (
        last["offer"] is False
        and last["reason"] == "my car broke"
        and last["helper"] == f"{HELPER}/h{rows[0].id}"
    )
    final = auth.client.get("/crew").get_data(as_text=True)
    assert "Your offer is withdrawn" in final and "I can help" in section(final)
    twice = auth.post(f"/crew/help/{rows[0].id}/withdraw", page="/crew")
    assert twice.status_code == 409 and "nothing to withdraw" in twice.get_data(as_text=True)
    # Another member's offer is not theirs to withdraw.
    other = node.signed_in("second").post(f"/crew/help/{rows[0].id}/withdraw", page="/crew")
    assert other.status_code == 404


def test_refusals_are_4xx_with_a_message(node: Served, stores: dict[str, sessionmaker[Session]]) -> None:
    task_id = open_task(stores[HOME], escalate=True)
    big = open_task(stores[HOME], escalate=True, hours_h=40.0)  # more than they offered
    step(stores, AT)
    auth = node.signed_in("second")
    for bad in ("", "x" * 300, "arecibo/1'><script>", "arecibo/h1", "../1"):
        assert auth.post("/crew/help", {"ref": bad}, page="/crew").status_code == 400, bad
    assert auth.post("/crew/help", {"ref": f"{HOME}/99999"}, page="/crew").status_code == 404
    over = auth.post("/crew/help", {"ref": f"{HOME}/{big}"}, page="/crew")
    assert over.status_code == 400 and "40 h is more than the" in over.get_data(as_text=True)
    # arecibo's own crew takes the task: it is no longer open to neighbours.
    with stores[HOME].begin() as session:
        task = session.get(RepairTask, task_id)
        crew = session.scalars(select(Member.id)).first()
        assert task is not None and crew is not None
        lifecycle.apply(session, task, lifecycle.TaskAction.ASSIGN, member_id=crew, at=AT)
    step(stores, AT)
    gone = auth.post("/crew/help", {"ref": f"{HOME}/{task_id}"}, page="/crew")
    assert gone.status_code == 409 and "no longer open to you" in gone.get_data(as_text=True)
    assert auth.post("/crew/help/99999/withdraw", page="/crew").status_code == 404
    long = auth.post("/crew/help/99999/withdraw", {"reason": "x" * 501}, page="/crew")
    assert long.status_code == 400
    assert help_facts(node) == []


def test_a_viewer_may_not_offer(node: Served, stores: dict[str, sessionmaker[Session]]) -> None:
    task_id = open_task(stores[HOME], escalate=True)
    step(stores, AT)
    viewer = node.signed_in("viewer")
    assert viewer.client.get("/crew").status_code == 403
    assert viewer.post("/crew/help", {"ref": f"{HOME}/{task_id}"}).status_code == 403
    assert viewer.post("/crew/help/1/withdraw").status_code == 403
    anonymous = node.app.test_client().post("/crew/help", data={"ref": f"{HOME}/{task_id}"})
    assert anonymous.status_code == ANONYMOUS_POST
    assert help_facts(node) == []


def test_not_a_node_shows_no_section_and_has_no_help_forms(
    plain: Served,
    stores: dict[str, sessionmaker[Session]],
) -> None:
    task_id = open_task(stores[HOME], escalate=True)
    step(stores, AT)
    auth = plain.signed_in("near")
    page = auth.client.get("/crew")
    assert page.status_code == 200 and SECTION not in page.get_data(as_text=True)
    assert auth.post("/crew/help", {"ref": f"{HOME}/{task_id}"}, page="/crew").status_code == 404
    assert auth.post("/crew/help/1/withdraw", page="/crew").status_code == 404
    assert help_facts(plain) == []


def test_the_other_nodes_text_is_escaped(node: Served, stores: dict[str, sessionmaker[Session]]) -> None:
    task_id = open_task(stores[HOME], escalate=True)
    with stores[HOME].begin() as session:
        task = session.get(RepairTask, task_id)
        assert task is not None
        task.title = HOSTILE
    with stores[HELPER].begin() as session:
        session.execute(update(Community).where(Community.slug == HOME).values(name=HOSTILE))
    step(stores, AT)
    page = node.signed_in("near").client.get("/crew").get_data(as_text=True)
    assert HOSTILE not in page and section(page).count("&lt;img src=x") == 2


def give_hours(stores: dict[str, sessionmaker[Session]], year: int) -> None:
    """arecibo's people helped camuy: arecibo's `hours` fact reaches camuy."""
    body = {"year": year, "given": {HELPER: {"maintenance": 4.0}, "ponce": {"food": 9.0}}, "planned": {}}
    with stores[HOME].begin() as session:
        log_store.append_fact(session, HOME, "hours", body, AT)
    exchange(stores)


def test_goals_show_the_hours_given_by_neighbours_on_a_node_only(
    node: Served,
    plain: Served,
    stores: dict[str, sessionmaker[Session]],
) -> None:
    give_hours(stores, clock.now().year)
    page = node.signed_in("viewer").client.get("/goals").get_data(as_text=True)
    found = re.search(r'<section id="rz-given-by-neighbours">.*?</section>', page, re.S)
    assert found is not None
    assert "given by neighbours: maintenance 4 h" in found.group(0) and "food" not in found.group(0)
    assert "not counted in this month's goals" in found.group(0)
    assert "rz-given-by-neighbours" not in plain.signed_in("viewer").client.get("/goals").get_data(
        as_text=True
    )


def test_goals_show_nothing_of_another_year(node: Served, stores: dict[str, sessionmaker[Session]]) -> None:
    give_hours(stores, clock.now().year - 1)
    page = node.signed_in("viewer").client.get("/goals").get_data(as_text=True)
    assert page.count("rz-given-by-neighbours") == 0
