"""The crew page in the field's words: one distance with its direction, urgency as a word, what is wrong and
what to bring, refusals a person understands; open repairs near the member with "Take it"; escalation."""

from __future__ import annotations

import json
import re

import pytest
from flask import Flask
from sqlalchemy import select

from dashboard.read import crew as crew_read
from dashboard.read import wording
from dashboard.web.store import get_store
from gateway.contract.topics import member_alerts_topic
from gateway.store.models import Decline, Device, Fault, OutboxMessage, RepairTask, Site, TaskEvent, utcnow
from tests import test_dashboard_pages as pages
from tests.test_dashboard_pages import Auth

# The pages' fixtures: the tiny region with a task assigned to Ana, the app, a signed-in client.
ids, password_hash, app, client, auth = pages.ids, pages.password_hash, pages.app, pages.client, pages.auth


def _card(page: str, task_id: int) -> str:
    found = re.search(rf'<li class="rz-task[^"]*" id="task-{task_id}">(.*?)</li>', page, re.S)
    assert found is not None, page
    return found.group(1)


def _give_fault(app: Flask, task_id: int, kind: str, urgency: int, skills: list[str], why: str) -> None:
    with get_store(app).sessions.begin() as session:
        task = session.get(RepairTask, task_id)
        assert task is not None
        device = session.scalar(select(Device).where(Device.site_id == task.site_id))
        assert device is not None
        now = utcnow()
        fault = Fault(
            device_id=device.id,
            site_id=task.site_id,
            kind=kind,
            severity="critical",
            first_abnormal_at=now,
            opened_at=now,
        )
        session.add(fault)
        session.flush()
        task.fault_id, task.urgency, task.required_skills, task.explanation = fault.id, urgency, skills, why


def test_a_card_says_distance_once_urgency_as_a_word_what_is_wrong_and_what_to_bring(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    why = "Ana: has pump-mechanic; 4.6 km away (~9 min); 0.0 of 4 h this week"
    _give_fault(app, ids["task"], "pump_failure", 132, ["pump-mechanic"], why)
    auth.login("ana")
    card = _card(auth.client.get("/crew").get_data(as_text=True), ids["task"])
    assert "km away" not in card and card.count(" km ") == 1  # one distance, the one with a direction
    assert re.search(r"\d+\.\d km [NSEW]{1,2} of home", card)
    assert "~9 min to get there" in card
    assert ">urgent</span>" in card and 'title="urgency score 132' in card and "urgency 132" not in card
    assert "What is wrong:</strong> The pump runs but no water flows." in card
    assert "Bring:</strong> pump tools, seals and a spare impeller (skills: pump mechanic)" in card


def test_urgency_words_and_plain_fallbacks() -> None:
    assert [wording.urgency_word(u) for u in (140, 100, 99, 60, 59, 3)] == [
        "urgent",
        "urgent",
        "soon",
        "soon",
        "when you can",
        "when you can",
    ]
    assert wording.what_is_wrong("valve_leak") == "Valve leak."
    assert wording.what_is_wrong(None) is None
    assert wording.what_to_bring(()) == "basic tools; no special skill needed"
    assert wording.what_to_bring(("welding",)) == "welding tools"
    assert wording.without_distance("a; 12.0 km away (~24 min); b") == "a; ~24 min to get there; b"


def test_a_refused_move_is_said_in_plain_words(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    auth.login("ana")
    for action in ("accept", "start", "fixed"):
        assert auth.post(f"/crew/tasks/{ids['task']}/{action}", page="/crew").status_code == 302
    refused = auth.post(f"/crew/tasks/{ids['task']}/fixed", page="/crew").get_data(as_text=True)
    assert "This task is already marked fixed" in refused and "so it cannot be marked fixed now" in refused
    assert "marked_fixed" not in refused


def _open_task(app: Flask, site_id: int, title: str, skills: list[str], urgency: int = 120) -> int:
    with get_store(app).sessions.begin() as session:
        task = RepairTask(
            site_id=site_id, title=title, status="open", urgency=urgency, required_skills=skills
        )
        session.add(task)
        session.flush()
        return task.id


def test_open_repairs_near_the_member_are_listed_and_taken(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    """The incident: a critical task sat unassigned while the page said "No open tasks. Thank you!"."""
    with get_store(app).sessions.begin() as session:  # Ana has nothing of her own
        task = session.get(RepairTask, ids["task"])
        assert task is not None
        task.status, task.assigned_member_id = "closed", None
    near = _open_task(app, ids["pump"], "Pump <i>1</i> dry again", ["pump-mechanic"])
    lacking = _open_task(app, ids["pump"], "Cold room sensor silent", ["refrigeration"])
    auth.login("ana")
    page = auth.client.get("/crew").get_data(as_text=True)
    assert "No open tasks. Thank you!" not in page and "Open repairs near you are below" in page
    found = re.search(rf'<li class="rz-task rz-near-task" id="near-{near}">(.*?)</li>', page, re.S)
    assert found is not None and "Take it" in found.group(1)
    assert "Pump &lt;i&gt;1&lt;/i&gt; dry again" in found.group(1) and ">urgent</span>" in found.group(1)
    assert f"near-{lacking}" not in page  # a skill she lacks
    response = auth.post(f"/crew/tasks/{near}/take", page="/crew")
    assert response.status_code == 302
    with get_store(app).sessions() as session:
        taken = session.get(RepairTask, near)
        assert taken is not None and (taken.status, taken.assigned_member_id) == ("accepted", ids["member"])
    after = auth.client.get("/crew").get_data(as_text=True)
    assert f'id="task-{near}"' in after and f"near-{near}" not in after
    assert auth.post(f"/crew/tasks/{near}/take", page="/crew").status_code == 409  # hers already
    assert auth.post(f"/crew/tasks/{lacking}/take", page="/crew").status_code == 409  # needs refrigeration
    assert auth.post("/crew/tasks/999999/take", page="/crew").status_code == 404


def test_a_far_task_of_another_community_is_not_listed(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    with get_store(app).sessions.begin() as session:
        hub = session.get(Site, ids["jayuya_hub"])
        assert hub is not None
        hub.lat, hub.lon = 17.9, -66.0  # ~80 km from Ana's home in Utuado
    far = _open_task(app, ids["jayuya_hub"], "Far pump", [])
    close = _open_task(app, ids["pump"], "Close pump", [])
    auth.login("ana")
    page = auth.client.get("/crew").get_data(as_text=True)
    assert f"near-{close}" in page and f"near-{far}" not in page


FAULT_CLEARED = {
    "type": "fault_cleared",
    "fault_id": 7,
    "task_id": 12,
    "kind": "pump_failure",
    "community": "utuado",
    "site": "pump-1",
    "at": "2026-11-26T15:20:00.000Z",
}
TASK_ASSIGNED = {
    "v": 1,
    "event": "task_assigned",
    "ts": "2026-11-26T15:20:00.000Z",
    "task": 12,
    "title": "Pump running without flow at Pump 1",
    "site": 4,
    "urgency": 133,
    "skills": ["pump-mechanic"],
    "explanation": "Ana: has pump-mechanic; 4.6 km away (~9 min)",
    "escalated": False,
    "starts_at": "2026-11-26T16:00:00.000Z",
    "ends_at": "2026-11-26T18:00:00.000Z",
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (FAULT_CLEARED, "Fault cleared at pump-1: the readings are normal again (pump failure)"),
        ({**FAULT_CLEARED, "site_name": "Pump 1"}, "Fault cleared at Pump 1:"),
        (
            TASK_ASSIGNED,
            "New task for you: Pump running without flow at Pump 1 (urgent), from Thu 26 Nov 16:00",
        ),
        (
            {"v": 1, "event": "task_escalated", "title": "Cold room", "urgency": 70},
            "Help wanted: Cold room (soon)",
        ),
        (
            {"event": "help_accepted", "title": "Well", "hours": 4.0},
            "Your offer of 4 h for “Well” is accepted",
        ),
        (
            {"event": "help_refused", "title": "Well", "reason": "taken"},
            "Your offer for “Well” was not taken: taken",
        ),
        ({"event": "help_withdrawn", "title": "Well", "reason": ""}, "Your offer for “Well” is withdrawn."),
        ({"type": "slot_taken", "text": "Bo took your place"}, "Bo took your place"),
        ({"type": "pipe_burst", "site": "hub", "count": 2, "v": 1}, "Pipe burst: site: hub; count: 2."),
    ],
)
def test_every_alert_kind_reads_as_a_sentence(body: dict[str, object], expected: str) -> None:
    text, kind, _ = crew_read.read_alert(json.dumps(body).encode())
    assert text.startswith(expected) and "{" not in text and '"' not in text
    assert kind == body.get("event", body.get("type"))


def test_a_fault_cleared_alert_shows_as_words_on_the_page_and_the_stream(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    """The incident: the 'fault cleared' alert showed as raw JSON."""
    body = {**FAULT_CLEARED, "site_name": "Pump <1>", "link": "/crew#task-12"}
    evil = {"type": "fault_cleared", "site": "x", "link": "//evil.example/phish"}
    with get_store(app).sessions.begin() as session:
        for payload in (body, evil):
            session.add(
                OutboxMessage(topic=member_alerts_topic(ids["member"]), payload=json.dumps(payload).encode())
            )
    auth.login("ana")
    page = auth.client.get("/crew").get_data(as_text=True)
    alerts = page[page.index('id="rz-alerts"') : page.index("</ul>")]
    assert "Fault cleared at Pump &lt;1&gt;: the readings are normal again" in alerts
    assert "fault_cleared" not in alerts.replace('data-kind="fault_cleared"', "") and "{" not in alerts
    assert '<a href="/crew#task-12">open</a>' in alerts and "evil.example" not in alerts
    stream = auth.client.get("/crew/events?after=0&tasks_after=999999999").get_data(as_text=True)
    sent = [json.loads(b.split("data: ", 1)[1]) for b in stream.split("\n\n") if "event: alert" in b]
    assert [(a["kind"], a["link"]) for a in sent] == [
        ("fault_cleared", "/crew#task-12"),
        ("fault_cleared", None),
    ]
    assert sent[0]["text"].startswith("Fault cleared at Pump <1>")


def test_need_parts_escalates_with_a_note_and_tells_the_community(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("ana")
    page = auth.client.get("/crew").get_data(as_text=True)
    assert "Need parts / escalate" in _card(page, ids["task"])
    assert auth.post(f"/crew/tasks/{ids['task']}/accept", page="/crew").status_code == 302
    assert auth.post(f"/crew/tasks/{ids['task']}/start", page="/crew").status_code == 302
    bare = auth.post(f"/crew/tasks/{ids['task']}/escalate", {"reason": "  "}, page="/crew")
    assert bare.status_code == 400 and "say what is needed" in bare.get_data(as_text=True)
    note = "impeller <cracked>: need a 2-inch one"
    response = auth.post(f"/crew/tasks/{ids['task']}/escalate", {"reason": note}, page="/crew")
    assert response.status_code == 302
    with get_store(app).sessions() as session:
        task = session.get(RepairTask, ids["task"])
        assert task is not None
        assert (task.status, task.assigned_member_id, task.explanation) == (
            "escalated",
            None,
            f"needs: {note}",
        )
        events = session.execute(
            select(TaskEvent.event, TaskEvent.member_id, TaskEvent.reason)
            .where(TaskEvent.task_id == ids["task"])
            .order_by(TaskEvent.id)
        ).all()
        assert events[-1] == ("escalated", ids["member"], note)
        declined = session.scalars(select(Decline).where(Decline.member_id == ids["member"])).all()
        assert [d.task_id for d in declined] == [ids["task"]]  # the planner does not hand it straight back
        told = [
            json.loads(m.payload)
            for m in session.scalars(
                select(OutboxMessage).where(OutboxMessage.topic == "rhizome/v1/alerts/utuado")
            )
        ]
    assert [(t["event"], t["reason"], t["site_name"], t["by_crew"]) for t in told] == [
        ("task_escalated", note, "Pump 1", True)
    ]
    after = auth.client.get("/crew").get_data(as_text=True)
    assert (
        f'id="task-{ids["task"]}"' not in after and f'id="near-{ids["task"]}"' in after
    )  # hers to take back
    again = auth.post(f"/crew/tasks/{ids['task']}/escalate", {"reason": "x"}, page="/crew")
    assert again.status_code == 404  # no longer hers


def test_a_task_waiting_for_the_sensor_cannot_be_escalated(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("ana")
    for action in ("accept", "start", "fixed"):
        assert auth.post(f"/crew/tasks/{ids['task']}/{action}", page="/crew").status_code == 302
    assert "Need parts / escalate" not in _card(auth.client.get("/crew").get_data(as_text=True), ids["task"])
    refused = auth.post(f"/crew/tasks/{ids['task']}/escalate", {"reason": "parts"}, page="/crew")
    assert refused.status_code == 409
    assert (
        "already marked fixed; the sensor has yet to confirm it, so it cannot be escalated now"
        in refused.get_data(as_text=True)
    )
