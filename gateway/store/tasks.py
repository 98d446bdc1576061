"""The repair-task lifecycle, in one table: who may move a task from which state, and what that records.

The gateway opens a task for a fault and closes it when the data confirms the repair; the planner assigns
it (or escalates it when nobody nearby can take it); the member accepts, declines, starts and marks it
fixed, or escalates it with a note (it needs parts or another skill: it is open to others and neighbours
again, and its community is told). A task marked fixed waits in `fixed_pending` for sensor data to confirm
the repair. Every move goes through `apply`, which checks TRANSITIONS, sets the status and updated_at,
appends the TaskEvent and queues the internal `task_changed` event, all in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract import clock
from gateway.contract.alerts import crew_task_link, place_fields
from gateway.contract.errors import Conflict, InvalidInput, NotFound
from gateway.contract.events import TaskChanged
from gateway.contract.payloads import VERSION, format_ts
from gateway.contract.topics import community_alerts_topic
from gateway.store import declines, hours
from gateway.store.models import Community, RepairTask, Site, TaskEvent, utcnow
from gateway.store.models.vocab import TaskEventKind, TaskStatus, WorkKind
from gateway.store.offers import REPAIR_SECTOR
from gateway.store.outbox import enqueue, enqueue_event

MAX_REASON: Final = 500  # the task_events.reason column; a longer reason from a person is refused


class TaskAction(StrEnum):
    """What can happen to a task, and who does it."""

    ASSIGN = "assign"  # the planner, to the member it chose
    ESCALATE = "escalate"  # the planner, when nobody can take it: wider communities are alerted; or the
    # member who holds it, with a note (parts, another skill): it is open to others again, neighbours too
    ACCEPT = "accept"  # the member
    DECLINE = "decline"  # the member, with a reason: the task is open again and they are not asked again
    START = "start"  # the member
    FIXED = "fixed"  # the member: the task waits for the data to confirm it
    CONFIRM = "confirm"  # the gateway: readings are normal again, the task closes


TRANSITIONS: Final[Mapping[tuple[TaskStatus, TaskAction], TaskStatus]] = {
    (TaskStatus.OPEN, TaskAction.ASSIGN): TaskStatus.ASSIGNED,
    (TaskStatus.ESCALATED, TaskAction.ASSIGN): TaskStatus.ASSIGNED,
    (TaskStatus.OPEN, TaskAction.ESCALATE): TaskStatus.ESCALATED,
    (TaskStatus.ASSIGNED, TaskAction.ESCALATE): TaskStatus.ESCALATED,
    (TaskStatus.ACCEPTED, TaskAction.ESCALATE): TaskStatus.ESCALATED,
    (TaskStatus.IN_PROGRESS, TaskAction.ESCALATE): TaskStatus.ESCALATED,
    (TaskStatus.ASSIGNED, TaskAction.ACCEPT): TaskStatus.ACCEPTED,
    (TaskStatus.ASSIGNED, TaskAction.DECLINE): TaskStatus.OPEN,
    (TaskStatus.ACCEPTED, TaskAction.DECLINE): TaskStatus.OPEN,
    (TaskStatus.ACCEPTED, TaskAction.START): TaskStatus.IN_PROGRESS,
    (TaskStatus.IN_PROGRESS, TaskAction.FIXED): TaskStatus.FIXED_PENDING,
    # The data closes a task in whatever state the people left it: the fault is gone either way.
    (TaskStatus.OPEN, TaskAction.CONFIRM): TaskStatus.CLOSED,
    (TaskStatus.ESCALATED, TaskAction.CONFIRM): TaskStatus.CLOSED,
    (TaskStatus.ASSIGNED, TaskAction.CONFIRM): TaskStatus.CLOSED,
    (TaskStatus.ACCEPTED, TaskAction.CONFIRM): TaskStatus.CLOSED,
    (TaskStatus.IN_PROGRESS, TaskAction.CONFIRM): TaskStatus.CLOSED,
    (TaskStatus.FIXED_PENDING, TaskAction.CONFIRM): TaskStatus.CLOSED,
}
# The TaskEvent each action records (a confirmation also records `closed` after it).
EVENT_OF: Final[Mapping[TaskAction, TaskEventKind]] = {
    TaskAction.ASSIGN: TaskEventKind.ASSIGNED,
    TaskAction.ESCALATE: TaskEventKind.ESCALATED,
    TaskAction.ACCEPT: TaskEventKind.ACCEPTED,
    TaskAction.DECLINE: TaskEventKind.DECLINED,
    TaskAction.START: TaskEventKind.STARTED,
    TaskAction.FIXED: TaskEventKind.MARKED_FIXED,
    TaskAction.CONFIRM: TaskEventKind.CONFIRMED,
}
# What a member may do from the crew page (a decline may also come through the planner's CLI).
MEMBER_ACTIONS: Final = (
    TaskAction.ACCEPT,
    TaskAction.DECLINE,
    TaskAction.START,
    TaskAction.FIXED,
    TaskAction.ESCALATE,
)


# Two honest meanings of "active": a fixed task waiting for the data stays on the member's list, but the
# member is free for the next task, so it no longer takes one of their slots.
SHOWN_TO_CREW: Final[Sequence[TaskStatus]] = (
    TaskStatus.ASSIGNED,
    TaskStatus.ACCEPTED,
    TaskStatus.IN_PROGRESS,
    TaskStatus.FIXED_PENDING,
)
HOLDS_A_SLOT: Final[Sequence[TaskStatus]] = (TaskStatus.ASSIGNED, TaskStatus.ACCEPTED, TaskStatus.IN_PROGRESS)
# What the planner (re)assigns: open and escalated, the states ASSIGN leaves from.
TO_PLAN: Final[Sequence[TaskStatus]] = tuple(s for s, a in TRANSITIONS if a is TaskAction.ASSIGN)
# Every state but closed: the ones the data's confirmation closes (the map shows these tasks).
NOT_CLOSED: Final[Sequence[TaskStatus]] = tuple(s for s, a in TRANSITIONS if a is TaskAction.CONFIRM)


# Why a move is refused, said as the person on the crew page would say it: by the state the task is in.
ALREADY: Final[Mapping[TaskStatus, str]] = {
    TaskStatus.OPEN: "This task is waiting for someone to take it",
    TaskStatus.ESCALATED: "This task is waiting for someone to take it (neighbours are asked too)",
    TaskStatus.ASSIGNED: "This task is not accepted yet",
    TaskStatus.ACCEPTED: "This task is accepted but not started yet",
    TaskStatus.IN_PROGRESS: "This task is already started",
    TaskStatus.FIXED_PENDING: "This task is already marked fixed; the sensor has yet to confirm it",
    TaskStatus.CLOSED: "This task is already fixed and closed",
}
VERB: Final[Mapping[TaskAction, str]] = {
    TaskAction.ASSIGN: "given to someone",
    TaskAction.ESCALATE: "escalated",
    TaskAction.ACCEPT: "accepted",
    TaskAction.DECLINE: "declined",
    TaskAction.START: "started",
    TaskAction.FIXED: "marked fixed",
    TaskAction.CONFIRM: "confirmed",
}


def refusal(status: str, action: TaskAction) -> str:
    """A refused move in plain words: "This task is already fixed and closed, so it cannot be started now"."""
    said = ALREADY.get(TaskStatus(status), f"This task is {status.replace('_', ' ')}")
    return f"{said}, so it cannot be {VERB[action]} now."


def allows(status: str, action: TaskAction) -> bool:
    """Whether a task in `status` may take `action`."""
    return (status, action) in TRANSITIONS


def open_task(
    session: Session,
    *,
    fault_id: int,
    site_id: int,
    title: str,
    urgency: int,
    skills: Sequence[str],
    reason: str,
    at: datetime,
    estimated_hours: float = 2.0,
) -> RepairTask:
    """A new open task for a fault, flushed (its id is set) with its `created` event; `estimated_hours`
    (the fault rule's `repair_hours`) is what a crew member's week is planned to give it."""
    task = RepairTask(
        fault_id=fault_id,
        estimated_hours=estimated_hours,
        site_id=site_id,
        title=title[:200],
        status=TaskStatus.OPEN.value,
        urgency=urgency,
        required_skills=list(skills),
        created_at=at,
        updated_at=at,
    )
    session.add(task)
    session.flush()
    session.add(
        TaskEvent(task_id=task.id, event=TaskEventKind.CREATED.value, reason=reason[:MAX_REASON], at=at)
    )
    return task


def apply(
    session: Session,
    task: RepairTask,
    action: TaskAction,
    *,
    member_id: int | None = None,
    reason: str = "",
    explanation: str | None = None,
    at: datetime | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> TaskStatus:
    """Move `task` by `action` if TRANSITIONS allows it from its status, and record the move.

    `member_id` is who acts (a member's action) or whom the planner assigns (ASSIGN, with `explanation`
    and the `window` it planned the work in; from `at` for the task's estimated hours when not given);
    the event's member is otherwise the one assigned. The hours ledger follows (gateway.store.hours):
    offered on ASSIGN, counted from ACCEPT, done on FIXED, released on DECLINE (which is remembered,
    gateway.store.declines). Raises Conflict if the move is not allowed.
    """
    if action is TaskAction.ASSIGN and member_id is None:
        raise InvalidInput("a task is assigned to a member")
    new = TRANSITIONS.get((TaskStatus(task.status), action))
    if new is None:
        raise Conflict(refusal(task.status, action))
    work_at = clock.at_or_now(at)  # hours and declines run on the work clock (simulated in the demo)
    at = at or utcnow()
    who = member_id if member_id is not None else task.assigned_member_id
    _count_hours(
        session, task, action, who, reason, work_at, window
    )  # before the move: it reads the old status
    if action is TaskAction.ASSIGN:
        task.assigned_member_id, task.explanation = member_id, explanation
    elif action is TaskAction.DECLINE:  # the explanation was why they were asked; it no longer holds
        task.assigned_member_id, task.explanation = None, None
    elif action is TaskAction.ESCALATE and task.assigned_member_id is not None:  # handed up by its member
        task.assigned_member_id, task.explanation = None, f"needs: {reason}"[:MAX_REASON]
    elif action is TaskAction.CONFIRM:
        task.closed_at = at
    task.status, task.updated_at = new.value, at
    event = EVENT_OF[action].value
    session.add(TaskEvent(task_id=task.id, member_id=who, event=event, reason=reason[:MAX_REASON], at=at))
    if action is TaskAction.CONFIRM:
        session.add(TaskEvent(task_id=task.id, member_id=who, event=TaskEventKind.CLOSED.value, at=at))
    enqueue_event(
        session, TaskChanged(task_id=task.id, status=new.value, member_id=task.assigned_member_id, at=at)
    )
    return new


def _count_hours(
    session: Session,
    task: RepairTask,
    action: TaskAction,
    who: int | None,
    reason: str,
    at: datetime,
    window: tuple[datetime, datetime] | None,
) -> None:
    """What the move means for the person's hours, and for whom the planner may ask next."""
    work = WorkKind.REPAIR
    if action is TaskAction.ASSIGN and who is not None:
        starts, ends = window or (at, at + timedelta(hours=task.estimated_hours))
        hours.offer(session, who, work, task.id, REPAIR_SECTOR, task.estimated_hours, starts, ends)
    elif action is TaskAction.ACCEPT:  # a repair's hours run from acceptance to "fixed"
        hours.reserve(session, work, task.id)
        hours.start(session, work, task.id, at)
    elif action is TaskAction.FIXED:
        hours.finish(session, work, task.id, at, from_planned_start=True)
    elif action is TaskAction.DECLINE or (action is TaskAction.ESCALATE and who is not None):
        # An escalating member is, like one who declines, not asked for it again for a while: the parts or
        # the skill it needs must come first (they may take it back from the crew page when they have them).
        hours.release(session, work, task.id)
        if who is not None:
            declines.record_task(session, task.id, who, reason, at)
    elif action is TaskAction.CONFIRM:  # the fault is gone: hours of work begun count, an offer lapses
        if task.status in (TaskStatus.ACCEPTED, TaskStatus.IN_PROGRESS):
            hours.finish(session, work, task.id, at, from_planned_start=True)
        else:
            hours.release(session, work, task.id)


def apply_action(session: Session, task_id: int, member_id: int, action: str, reason: str = "") -> RepairTask:
    """A member's action on one of their tasks (the crew page, or a decline through the planner).

    Raises NotFound (no such action, or not the member's task), InvalidInput (a decline needs a reason of
    at most MAX_REASON characters) or Conflict (not allowed from the task's status).
    """
    chosen = next((a for a in MEMBER_ACTIONS if a.value == action), None)
    if chosen is None:
        raise NotFound(f"unknown action {action[:40]!r}; use one of {', '.join(MEMBER_ACTIONS)}")
    reason = reason.strip()
    if chosen is TaskAction.DECLINE and not reason:
        raise InvalidInput("say why you decline, so the next person is not asked for nothing")
    if chosen is TaskAction.ESCALATE and not reason:
        raise InvalidInput("say what is needed (parts, a skill, more hands), so the next person can bring it")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is longer than {MAX_REASON} characters")
    task = session.scalar(select(RepairTask).where(RepairTask.id == task_id).with_for_update())
    if task is None or task.assigned_member_id != member_id:
        raise NotFound("no such task among yours")
    apply(session, task, chosen, member_id=member_id, reason=reason)
    if chosen is TaskAction.ESCALATE:
        _announce_escalation(session, task, reason)
    return task


def _announce_escalation(session: Session, task: RepairTask, note: str) -> None:
    """Tell the task's community that its member handed it up, and what it needs (docs/mqtt.md)."""
    site = session.get(Site, task.site_id)
    community = session.get(Community, site.community_id) if site is not None else None
    if site is None or community is None:
        return
    body = {
        "v": VERSION,
        "event": "task_escalated",
        "ts": format_ts(task.updated_at),
        "task": task.id,
        "title": task.title,
        "urgency": task.urgency,
        "skills": sorted(str(s) for s in task.required_skills or ()),
        "reason": note,
        "by_crew": True,
        **place_fields(site.name, site.lat, site.lon, crew_task_link(task.id)),
    }
    enqueue(session, community_alerts_topic(community.slug), body)


def decline(session: Session, task_id: int, member_id: int, reason: str) -> RepairTask:
    """The assigned member declines, with a reason: the task is open again and they are not asked again."""
    return apply_action(session, task_id, member_id, TaskAction.DECLINE, reason)


def take_by_neighbour(session: Session, task: RepairTask, helper_ref: str, reason: str, at: datetime) -> None:
    """A neighbour node's crew member takes the task (gateway.federation.help): it is assigned, to nobody of
    this node, so the planner no longer offers it here; `helper_ref` says who, opaquely. Conflict if the
    task is no longer one to plan (taken locally, closed)."""
    if not allows(task.status, TaskAction.ASSIGN):
        raise Conflict(f"the task is {task.status.replace('_', ' ')}: it cannot be taken by a neighbour")
    task.status, task.updated_at = TaskStatus.ASSIGNED.value, at
    task.assigned_member_id, task.helper_ref, task.explanation = None, helper_ref, reason[:MAX_REASON]
    session.add(
        TaskEvent(task_id=task.id, event=TaskEventKind.ASSIGNED.value, reason=reason[:MAX_REASON], at=at)
    )
    enqueue_event(session, TaskChanged(task_id=task.id, status=task.status, member_id=None, at=at))


def release_neighbour(session: Session, task: RepairTask, reason: str, at: datetime) -> bool:
    """The neighbour who took the task withdrew: it is escalated again, for the planner and for other
    neighbours. False (nothing done) if no neighbour holds it or it has moved on (closed)."""
    if task.helper_ref is None or task.status != TaskStatus.ASSIGNED:
        return False
    task.status, task.updated_at = TaskStatus.ESCALATED.value, at
    task.helper_ref, task.explanation = None, None
    session.add(
        TaskEvent(task_id=task.id, event=TaskEventKind.DECLINED.value, reason=reason[:MAX_REASON], at=at)
    )
    enqueue_event(session, TaskChanged(task_id=task.id, status=task.status, member_id=None, at=at))
    return True
