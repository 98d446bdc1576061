"""Cross-community help over facts: repair tasks a node cannot staff, offered to its neighbours' crews; their
offers and the answers; and the hours people give away from home.

The task's node publishes a `task` fact for each of its repair tasks that is escalated, or open with nobody
assigned for longer than `NodeRules.help_after_s` of the work clock, and one more when that ends (taken
here, taken by a neighbour, closed, gone), so neighbours stop offering. It accepts the first fitting `help`
offer: the task is assigned to nobody here, with the helper's opaque ref, and the other offers are refused.
The helper's node reserves the accepted hours in maintenance only if they fit what the person offered
(this year in the sector, this week in all); otherwise it withdraws the offer. Each node publishes, at most
hourly and only when they changed, the sums of the hours its members gave away from home.

No fact names a person: a helper is "<node>/h<fed_help id>", which only the helper's node can resolve.
Bodies (docs/nodes.md has the same table):

    task    open:    {"ref": "<node>/<task id>", "community", "status": "open", "lat", "lon", "title",
                      "urgency", "skills": [...], "hours", "opened_at"}
            closing: {"ref", "community", "status": "taken" | "helped" | "closed" | "cancelled", "at"}
    help    offer:   {"ref", "community", "node", "helper", "offer": true, "hours", "skills": [matched]}
            withdrawal: {"ref", "community", "node", "helper", "offer": false, "reason"}
    answer  {"ref", "community", "accept", "helper", "offer": "<helper node>/<seq of the help fact>",
             "by": "rule", "reason"}
    hours   {"year", "given": {community: {sector: h}}, "planned": {community: {sector: h}}}
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract import clock
from gateway.contract.errors import Conflict, InvalidInput, NotFound
from gateway.contract.payloads import VERSION, format_ts
from gateway.contract.topics import member_alerts_topic
from gateway.store import federation as facts
from gateway.store import hours, offers
from gateway.store import tasks as lifecycle
from gateway.store.models import (
    Community,
    FedFact,
    FedHelp,
    HoursEntry,
    Member,
    MemberSkill,
    RepairTask,
    Site,
)
from gateway.store.models.vocab import HelpState, HoursState, TaskStatus, WorkKind
from gateway.store.outbox import enqueue

log = logging.getLogger(__name__)

HELP_MAX_KM: Final = 25.0  # as far as the board looks for a member (dashboard.read.board.fitting_tasks)
HELP_SECTOR: Final = offers.REPAIR_SECTOR
OPEN, TAKEN, HELPED, CLOSED, CANCELLED = "open", "taken", "helped", "closed", "cancelled"
ENDED: Final = (CLOSED, CANCELLED)


def task_ref(node: str, task_id: int) -> str:
    """The federation-wide name of one of a node's repair tasks."""
    return f"{node}/{task_id}"


def helper_ref(node: str, help_id: int) -> str:
    """The opaque name of one offer of help: its node and its fed_help row, never the person."""
    return f"{node}/h{help_id}"


def _split(ref: object, prefix: str = "") -> tuple[str, int] | None:
    """(node, number) of "<node>/<prefix><number>", or None."""
    if not isinstance(ref, str):
        return None
    node, _, rest = ref.partition("/")
    if not node or not rest.startswith(prefix) or not rest[len(prefix) :].isdigit():
        return None
    return node, int(rest[len(prefix) :])


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _work_seconds(since: datetime, now: datetime) -> float:
    """Work-clock seconds between two store stamps (real time; the work clock may run faster)."""
    return (_aware(now) - _aware(since)).total_seconds() * clock.speed()


def _latest_by_ref(session: Session, kind: str) -> dict[str, FedFact]:
    """ref -> the newest fact of `kind` about it (one origin speaks about each ref, so seq orders them)."""
    out: dict[str, FedFact] = {}
    for row in facts.facts_of_kind(session, kind):
        ref = row.body.get("ref")
        if isinstance(ref, str):
            out[ref] = row
    return out


# --- the task's node: what it opens to its neighbours, and whom it takes ----------------------------------


def _to_tell(task: RepairTask, help_after_s: float, now: datetime) -> str | None:
    """What neighbours should know of the task now; None while it is neither open to them nor over."""
    if task.status == TaskStatus.CLOSED:
        return CLOSED
    if task.helper_ref is not None:
        return HELPED
    if task.status in lifecycle.TO_PLAN and task.assigned_member_id is None:
        escalated = task.status == TaskStatus.ESCALATED
        if escalated or _work_seconds(task.created_at, now) >= help_after_s:
            return OPEN
        return None
    return TAKEN


def publish_tasks(
    session: Session, node: str, communities: Sequence[Community], help_after_s: float, now: datetime
) -> int:
    """A `task` fact for each task that became open to neighbours, and one when that ended."""
    told = {ref: row for ref, row in _latest_by_ref(session, "task").items() if row.origin == node}
    rows = session.execute(
        select(RepairTask, Site, Community.slug)
        .join(Site, RepairTask.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .where(Community.id.in_([c.id for c in communities]))
        .order_by(RepairTask.id)
    )
    written = 0
    seen: set[str] = set()
    for task, site, community in rows:
        ref = task_ref(node, task.id)
        seen.add(ref)
        last = told.get(ref)
        last_status = last.body.get("status") if last is not None else None
        status = _to_tell(task, help_after_s, now)
        if (
            status is None
            or status == last_status
            or last_status in ENDED
            or (last is None and status != OPEN)
        ):
            continue
        body: dict[str, Any] = {"ref": ref, "community": community, "status": status}
        if status == OPEN:
            body |= {
                "lat": site.lat,
                "lon": site.lon,
                "title": task.title,
                "urgency": task.urgency,
                "skills": sorted(str(s) for s in task.required_skills or ()),
                "hours": float(task.estimated_hours),
                "opened_at": format_ts(_aware(task.created_at)),
            }
        else:
            body["at"] = format_ts(_aware(now))
        facts.append_fact(session, node, "task", body, now)
        written += 1
    for ref, last in told.items():
        if ref not in seen and last.body.get("status") not in ENDED:  # the task is gone from the store
            body = {"ref": ref, "community": last.body.get("community"), "status": CANCELLED}
            facts.append_fact(session, node, "task", body | {"at": format_ts(_aware(now))}, now)
            written += 1
    return written


def _answer(
    session: Session, node: str, offer: FedFact, community: str, accept: bool, reason: str, now: datetime
) -> None:
    body = {
        "ref": offer.body["ref"],
        "community": community,
        "accept": accept,
        "helper": offer.body["helper"],
        "offer": f"{offer.origin}/{offer.seq}",
        "by": "rule",
        "reason": reason,
    }
    facts.append_fact(session, node, "answer", body, now)


def settle_tasks(session: Session, node: str, now: datetime) -> int:
    """Answer each standing offer for this node's tasks once: the first fitting one is taken, the rest are
    refused; a taken helper who withdraws gives the task back to the planner and the neighbours."""
    answered = {
        str(row.body["offer"])
        for row in facts.facts_of_kind(session, "answer")
        if row.origin == node and "offer" in row.body
    }
    told = _latest_by_ref(session, "task")
    offers_by_ref: dict[str, list[FedFact]] = defaultdict(list)
    latest: dict[tuple[str, str], FedFact] = {}
    for row in facts.facts_of_kind(session, "help"):
        ref, helper = row.body.get("ref"), row.body.get("helper")
        parsed = _split(ref)
        if row.origin == node or parsed is None or parsed[0] != node or not isinstance(helper, str):
            continue
        if not isinstance(row.body.get("skills", []), list):
            log.warning("help fact %s/%s is malformed; not answered", row.origin, row.seq)
            continue
        offers_by_ref[str(ref)].append(row)
        latest[(str(ref), helper)] = row
    done = 0
    for ref, rows in offers_by_ref.items():
        parsed = _split(ref)
        task = session.get(RepairTask, parsed[1]) if parsed is not None else None
        if task is not None and task.helper_ref is not None:
            standing = latest.get((ref, task.helper_ref))
            if standing is not None and not standing.body.get("offer"):
                reason = f"the neighbour {task.helper_ref} withdrew: {standing.body.get('reason', '')}"
                done += lifecycle.release_neighbour(session, task, reason, now)
        for offer in sorted(rows, key=lambda r: (r.at, r.origin, r.seq)):
            offer_id = f"{offer.origin}/{offer.seq}"
            if not offer.body.get("offer") or offer_id in answered:
                continue
            if latest[(ref, str(offer.body["helper"]))] is not offer:
                continue  # withdrawn before it was answered
            community = _community_of(session, task) or str(offer.body.get("community", ""))
            why_not = _why_not(task, told.get(ref), offer)
            if why_not is None and task is not None:
                reason = f"taken by {offer.body['helper']}, a neighbour from {offer.origin}"
                lifecycle.take_by_neighbour(session, task, str(offer.body["helper"]), reason, now)
                _answer(session, node, offer, community, True, "first fitting offer", now)
                log.info("task %s taken by the neighbour %s", ref, offer.body["helper"])
            else:
                _answer(session, node, offer, community, False, why_not or "no such task", now)
            answered.add(offer_id)
            done += 1
    return done


def _why_not(task: RepairTask | None, told: FedFact | None, offer: FedFact) -> str | None:
    """Why an offer cannot be taken, or None if it can."""
    if task is None:
        return "the task is gone"
    if task.helper_ref is not None:
        return "another neighbour has taken it"
    if not lifecycle.allows(task.status, lifecycle.TaskAction.ASSIGN):
        return "taken here" if task.status != TaskStatus.CLOSED else "the task is closed"
    if told is None or told.body.get("status") != OPEN:
        return "not open to neighbours"
    needed = {str(s) for s in task.required_skills or ()}
    if not needed <= {str(s) for s in offer.body.get("skills") or ()}:
        return "the offer lacks a skill the task needs"
    return None


def _community_of(session: Session, task: RepairTask | None) -> str | None:
    if task is None:
        return None
    return session.scalar(
        select(Community.slug).join(Site, Site.community_id == Community.id).where(Site.id == task.site_id)
    )


# --- a neighbour's crew: what they see, what they offer --------------------------------------------------


@dataclass(frozen=True)
class NeighbourTask:
    """A neighbour node's repair task open to this node's crew, as a member sees it."""

    ref: str
    node: str
    community: str
    title: str
    urgency: int
    skills: tuple[str, ...]
    hours: float
    km: float
    opened_at: str
    offered: bool  # this member has an offer standing for it


def km_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle kilometres."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def _skills(session: Session, member_id: int) -> set[str]:
    return set(session.scalars(select(MemberSkill.skill).where(MemberSkill.member_id == member_id)))


def neighbour_tasks(
    session: Session, node: str, member_id: int, within_km: float = HELP_MAX_KM
) -> list[NeighbourTask]:
    """Open tasks of other nodes within `within_km` of the member's home that need no skill they lack,
    the most urgent first, then the nearest. Empty for a member who is not active crew."""
    member = session.get(Member, member_id)
    if member is None or not member.active or not member.is_crew:
        return []
    skills = _skills(session, member_id)
    standing = set(
        session.scalars(
            select(FedHelp.task_ref).where(
                FedHelp.member_id == member_id, FedHelp.state.in_((HelpState.OFFERED, HelpState.ACCEPTED))
            )
        )
    )
    out = []
    for ref, row in _latest_by_ref(session, "task").items():
        body = row.body
        if row.origin == node or body.get("status") != OPEN:
            continue
        needed = tuple(str(s) for s in body.get("skills") or ())
        if not set(needed) <= skills:
            continue
        try:
            km = km_between(member.lat, member.lon, float(body["lat"]), float(body["lon"]))
            item = NeighbourTask(
                ref,
                row.origin,
                str(body["community"]),
                str(body["title"]),
                int(body["urgency"]),
                needed,
                float(body["hours"]),
                round(km, 2),
                str(body["opened_at"]),
                ref in standing,
            )
        except (KeyError, TypeError, ValueError):
            log.warning("task fact %s/%s is malformed; not shown", row.origin, row.seq)
            continue
        if km <= within_km:
            out.append(item)
    out.sort(key=lambda t: (-t.urgency, t.km, t.ref))
    return out


def room_for(session: Session, member: Member, extra_h: float, at: datetime) -> str | None:
    """Why `extra_h` more hours of maintenance now would go beyond what the member offered, or None if they
    fit: the year's maintenance hours (their split, or the baseline scaled to their year) and the week's
    pledge. (A community's own default split, a planner setting, is not known here.)"""
    offer = offers.sector_hours(member.sector_hours, member.hours_per_year).get(HELP_SECTOR, 0.0)
    start = hours.year_start(at)
    by_sector = hours.load_by_sector(session, start, start.replace(year=start.year + 1), member.id)
    used = sum(h for s, h in by_sector.get(member.id, {}).items() if offers.offer_sector(s) == HELP_SECTOR)
    if used + extra_h > offer + 1e-9:
        return f"{extra_h:g} h is more than the {max(0.0, offer - used):g} h of maintenance left this year"
    week = hours.weekly_load(session, hours.week_start(at), member_id=member.id).get(member.id, 0.0)
    if week + extra_h > float(member.hours_per_week or 0.0) + 1e-9:
        return f"{extra_h:g} h is more than the {max(0.0, member.hours_per_week - week):g} h left this week"
    return None


def _help_fact(session: Session, node: str, row: FedHelp, offer: bool, reason: str, now: datetime) -> FedFact:
    body: dict[str, Any] = {
        "ref": row.task_ref,
        "community": row.community,
        "node": node,
        "helper": helper_ref(node, row.id),
        "offer": offer,
    }
    if offer:
        body |= {"hours": row.hours, "skills": list(row.skills)}
    else:
        body["reason"] = reason
    return facts.append_fact(session, node, "help", body, now)


def offer_help(session: Session, node: str, member_id: int, ref: str, now: datetime) -> FedHelp:
    """A crew member offers to do a neighbour's open task: NotFound if it is not one shown to them,
    Conflict if they offered already, InvalidInput if its hours go beyond what they offered."""
    member = session.get(Member, member_id)
    task = next((t for t in neighbour_tasks(session, node, member_id) if t.ref == ref), None)
    if member is None or task is None:
        raise NotFound("no such neighbour task open to you")
    if task.offered:
        raise Conflict("you have offered to help with this task already")
    over = room_for(session, member, task.hours, clock.at_or_now(now))
    if over is not None:
        raise InvalidInput(over)
    row = FedHelp(
        task_ref=ref,
        community=task.community,
        title=task.title[:200],
        member_id=member_id,
        hours=task.hours,
        skills=sorted(set(task.skills) & _skills(session, member_id)),
        state=HelpState.OFFERED.value,
    )
    session.add(row)
    session.flush()
    row.offer_seq = _help_fact(session, node, row, True, "", now).seq
    return row


def withdraw_help(
    session: Session, node: str, help_id: int, member_id: int, reason: str, now: datetime
) -> None:
    """The member takes back an offer (or accepted help): its hours are released and the task's node told."""
    row = session.get(FedHelp, help_id)
    if row is None or row.member_id != member_id:
        raise NotFound("no such offer of yours")
    if row.state not in (HelpState.OFFERED, HelpState.ACCEPTED):
        raise Conflict(f"the offer is {row.state}: nothing to withdraw")
    _withdraw(session, node, row, reason or "the member withdrew", now)


def _withdraw(session: Session, node: str, row: FedHelp, reason: str, now: datetime) -> None:
    hours.release(session, WorkKind.HELP, row.id)
    row.state = HelpState.WITHDRAWN.value
    _help_fact(session, node, row, False, reason, now)


def _alert(session: Session, row: FedHelp, event: str, now: datetime, reason: str = "") -> None:
    body = {
        "v": VERSION,
        "event": event,
        "ts": format_ts(_aware(now)),
        "task": row.task_ref,
        "title": row.title,
        "community": row.community,
        "hours": row.hours,
        "reason": reason,
    }
    enqueue(session, member_alerts_topic(row.member_id), body)


def settle_help(session: Session, node: str, now: datetime) -> int:
    """This node's offers, on their answers and on the tasks' fate: accepted hours reserved if they still
    fit (else the offer is withdrawn), refusals noted, the hours counted done when the task closes. Each
    step moves a row only from the state it expects, so running twice does nothing more."""
    work_now = clock.at_or_now(now)
    done = 0
    for row in facts.facts_of_kind(session, "answer"):
        parsed = _split(row.body.get("helper"), "h")
        if row.origin == node or parsed is None or parsed[0] != node:
            continue
        offer = session.get(FedHelp, parsed[1])
        if (
            offer is None
            or offer.state != HelpState.OFFERED
            or row.body.get("offer") != f"{node}/{offer.offer_seq}"
        ):
            continue
        if row.body.get("ref") != offer.task_ref:
            continue
        done += 1
        if not row.body.get("accept"):
            offer.state = HelpState.REFUSED.value
            _alert(session, offer, "help_refused", now, str(row.body.get("reason", "")))
            continue
        member = session.get(Member, offer.member_id)
        over = "the member is gone" if member is None else room_for(session, member, offer.hours, work_now)
        if over is not None:
            _withdraw(session, node, offer, over, now)
            _alert(session, offer, "help_withdrawn", now, over)
            log.info("help %s for %s withdrawn: %s", offer.id, offer.task_ref, over)
            continue
        ends = work_now + timedelta(hours=offer.hours)
        hours.offer(
            session, offer.member_id, WorkKind.HELP, offer.id, HELP_SECTOR, offer.hours, work_now, ends
        )
        hours.reserve(session, WorkKind.HELP, offer.id)
        offer.state = HelpState.ACCEPTED.value
        _alert(session, offer, "help_accepted", now)
    told = _latest_by_ref(session, "task")
    live = (HelpState.OFFERED, HelpState.ACCEPTED)
    for offer in session.scalars(select(FedHelp).where(FedHelp.state.in_(live)).order_by(FedHelp.id)):
        fate = told.get(offer.task_ref)
        status = fate.body.get("status") if fate is not None else None
        if offer.state == HelpState.ACCEPTED and status == CLOSED:
            hours.finish(session, WorkKind.HELP, offer.id, work_now)
            offer.state = HelpState.DONE.value
            done += 1
        elif offer.state == HelpState.ACCEPTED and status == CANCELLED:
            hours.release(session, WorkKind.HELP, offer.id)
            offer.state = HelpState.REFUSED.value
            _alert(session, offer, "help_refused", now, "the task was cancelled")
            done += 1
        elif offer.state == HelpState.OFFERED and status in (TAKEN, CLOSED, CANCELLED):
            offer.state = HelpState.REFUSED.value  # it went elsewhere before an answer: nothing was held
            done += 1
    return done


# --- hours given away from home ----------------------------------------------------------------------------


def hours_body(session: Session, year: int) -> dict[str, Any]:
    """This node's members' help this year, summed per receiving community and sector: done hours (actual)
    as `given`, accepted ones still ahead as `planned`. Sums only."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    rows = session.execute(
        select(
            FedHelp.community, HoursEntry.sector, HoursEntry.state, HoursEntry.hours, HoursEntry.actual_hours
        )
        .join(FedHelp, (HoursEntry.work == WorkKind.HELP) & (HoursEntry.work_id == FedHelp.id))
        .where(HoursEntry.state.in_(hours.COUNTED))
        .where(HoursEntry.starts_at >= start, HoursEntry.starts_at < start.replace(year=year + 1))
    )
    given: dict[str, dict[str, float]] = defaultdict(dict)
    planned: dict[str, dict[str, float]] = defaultdict(dict)
    for community, sector, state, planned_h, actual in rows:
        into = given if state == HoursState.DONE else planned
        value = float(actual if state == HoursState.DONE and actual is not None else planned_h)
        into[community][sector] = into[community].get(sector, 0.0) + value
    rounded = {
        name: {c: {s: round(h, 2) for s, h in sorted(by.items())} for c, by in sorted(table.items())}
        for name, table in (("given", given), ("planned", planned))
    }
    return {"year": year, **rounded}


def publish_hours(session: Session, node: str, every_s: float, now: datetime) -> int:
    """An `hours` fact when the sums changed, at most every `every_s` of the work clock (a new year's first
    sums wait for nothing: the old year's are final)."""
    body = hours_body(session, clock.at_or_now(now).year)
    last = session.scalars(
        select(FedFact)
        .where(FedFact.origin == node, FedFact.kind == "hours")
        .order_by(FedFact.seq.desc())
        .limit(1)
    ).first()
    if last is None and not body["given"] and not body["planned"]:
        return 0
    if last is not None:
        if last.body == body:
            return 0
        same_year = last.body.get("year") == body["year"]
        if same_year and _work_seconds(last.at, now) < every_s:
            return 0
    facts.append_fact(session, node, "hours", body, now)
    return 1


def received_hours(session: Session, community: str, year: int, *, planned: bool = False) -> dict[str, float]:
    """Sector -> hours other nodes' members gave `community` in `year`, from each origin's latest `hours`
    fact (with `planned`, accepted hours still ahead count too)."""
    out: dict[str, float] = {}
    for row in facts.latest_of_kind(session, "hours").values():
        if row.body.get("year") != year:
            continue
        tables: list[Mapping[str, Any]] = [row.body.get("given") or {}]
        if planned:
            tables.append(row.body.get("planned") or {})
        for table in tables:
            by_sector = table.get(community) if isinstance(table, Mapping) else None
            if not isinstance(by_sector, Mapping):
                continue
            for sector, value in by_sector.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    out[str(sector)] = round(out.get(str(sector), 0.0) + float(value), 2)
    return out
