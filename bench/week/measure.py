"""The week's figures, from the store and the outbox (and the receipts on the members' topics).

Real and simulated time: every timestamp in the store is real wall-clock time; the simulated clock started
at `t0` (the first reading) and runs `speed` times faster, so simulated hours = real seconds * speed / 3600.
Detection and alerting are the gateway's and planner's own latencies, in real seconds; everything people
do (answer, travel, repair) is in simulated hours.
"""

from __future__ import annotations

import bisect
import json
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashboard.read.progress import sector_progress
from gateway.contract.scenarios import FAULTS, parse_duration
from gateway.contract.topics import INTERNAL_EVENTS, ROOT
from gateway.store import hours as hours_ledger
from gateway.store import offers
from gateway.store.goals import month_bounds, month_of
from gateway.store.models import (
    BoardTask,
    Community,
    DeadLetter,
    Device,
    Fault,
    Good,
    HoursEntry,
    Member,
    NeedLevel,
    OutboxMessage,
    Reading,
    RepairTask,
    Route,
    RouteStop,
    Site,
    SlotSignup,
    StockLedgerEntry,
    TaskEvent,
    TaskShift,
    TaskSlot,
)
from gateway.store.models.vocab import BOARD_SECTORS, HoursState, ShiftStatus, SignupState, WorkKind


def offset_s(value: Any) -> float:
    """Seconds of a scenario `at` given as seconds or '1d6h30m' (ISO times are not used by the week)."""
    if isinstance(value, int | float):
        return float(value)
    return parse_duration(value)


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: None) -> None: ...
def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands naive datetimes back; the store writes UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass(frozen=True)
class Clock:
    """Real time of the simulated start and the speed: converts between the two clocks."""

    t0: datetime
    speed: float
    days: float
    start: datetime | None = None  # the simulated start on the work clock (people's time, the ledger's)

    def real(self, sim_offset_s: float) -> datetime:
        return self.t0 + timedelta(seconds=sim_offset_s / self.speed)

    def sim_h(self, at: datetime) -> float:
        return (_aware(at) - self.t0).total_seconds() * self.speed / 3600


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _max(values: list[float]) -> float | None:
    return round(max(values), 3) if values else None


def fault_rows(
    session: Session, events: list[dict[str, Any]], clock: Clock, receipts: list[Any]
) -> list[dict[str, Any]]:
    """One row per scenario fault: the store's fault, task, alert and confirmation, with their delays."""
    slugs = dict(session.execute(select(Device.slug, Device.id)).all())
    kinds = dict(session.execute(select(Device.id, Device.kind)).all())
    alerts: dict[int, datetime] = {}  # task id -> first task_assigned heard on a member's topic
    for r in receipts:
        if r.topic.endswith("/alerts") and r.body.get("event") == "task_assigned":
            alerts.setdefault(int(r.body["task"]), r.at)
    faults_by_device: dict[int, list[Fault]] = defaultdict(list)
    for stored in session.scalars(select(Fault).order_by(Fault.first_abnormal_at)):
        faults_by_device[stored.device_id].append(stored)
    faulty = [e for e in events if e.get("event") in FAULTS]
    starts: dict[str, list[float]] = defaultdict(list)
    for e in faulty:
        starts[e["device"]].append(offset_s(e["at"]))
    queued: dict[int, datetime] = {}  # task id -> when its first task_assigned entered the outbox
    for payload, created in session.execute(
        select(OutboxMessage.payload, OutboxMessage.created_at)
        .where(OutboxMessage.topic.like("rhizome/v1/members/%/alerts"))
        .order_by(OutboxMessage.id)
    ):
        body = json.loads(payload)
        if body.get("event") == "task_assigned":
            queued.setdefault(int(body["task"]), _aware(created))
    used: set[int] = set()
    rows = []
    for e in sorted(faulty, key=lambda e: offset_s(e["at"])):
        at = offset_s(e["at"])
        later = [s for s in starts[e["device"]] if s > at]
        until = clock.real(min(later)) if later else None
        device_id = slugs.get(e["device"])
        begin = clock.real(at) - timedelta(seconds=2)  # device clocks and ours agree within this
        fault = next(
            (
                f
                for f in faults_by_device.get(device_id or -1, [])
                if f.id not in used
                and _aware(f.first_abnormal_at) >= begin
                and (until is None or _aware(f.first_abnormal_at) < until)
            ),
            None,
        )
        row: dict[str, Any] = {
            "device": e["device"],
            "kind": kinds.get(device_id) if device_id is not None else None,
            "event": e["event"],
            "at_h": round(at / 3600, 2),
            "detected": fault is not None,
            "rule": None,
            "tasked": False,
            "alerted": False,
            "accepted": False,
            "confirmed": False,
        }
        rows.append(row)
        if fault is None:
            continue
        used.add(fault.id)
        first = _aware(fault.first_abnormal_at)
        opened = _aware(fault.opened_at)
        row.update(
            rule=fault.kind,
            first_abnormal_h=round(clock.sim_h(first), 2),
            to_fault_sim_min=round((opened - first).total_seconds() * clock.speed / 60, 1),
        )
        task = session.scalar(select(RepairTask).where(RepairTask.fault_id == fault.id))
        if task is None:
            continue
        row["tasked"] = True
        row["to_task_s"] = round((_aware(task.created_at) - opened).total_seconds(), 3)
        outbox = queued.get(task.id)
        if outbox is not None:
            row["to_outbox_s"] = round((_aware(outbox) - opened).total_seconds(), 3)
        heard = alerts.get(task.id)
        if heard is not None:
            row["alerted"] = True
            row["fault_to_alert_s"] = round((heard - opened).total_seconds(), 3)
        task_events = session.execute(
            select(TaskEvent.event, TaskEvent.at, TaskEvent.reason)
            .where(TaskEvent.task_id == task.id)
            .order_by(TaskEvent.id)
        ).all()
        when: dict[str, datetime] = {}
        for name, at_, _reason in task_events:
            when.setdefault(name, _aware(at_))
        row["declines"] = sum(1 for name, *_ in task_events if name == "declined")
        row["no_shows"] = sum(
            1 for name, _, reason in task_events if name == "declined" and "no-show" in reason
        )
        for name, key in (
            ("accepted", "to_accept_h"),
            ("started", "to_start_h"),
            ("marked_fixed", "to_fixed_h"),
            ("confirmed", "to_confirm_h"),
        ):
            if name in when:
                row[key] = round(clock.sim_h(when[name]) - clock.sim_h(first), 2)
        # the accepted time that counts is the one of the member who went (after any decline)
        accepts = [at_ for name, at_, _ in task_events if name == "accepted"]
        if accepts:
            row["to_accept_h"] = round(clock.sim_h(_aware(accepts[-1])) - clock.sim_h(first), 2)
        row["accepted"] = bool(accepts)
        row["confirmed"] = "confirmed" in when
        row["status"] = task.status
    return rows


def coverage(session: Session, clock: Clock, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """Essential shortage-days in the same week without deliveries, and how many the planner covered.

    A need-day is a (community, essential good with a minimum > 0, simulated day). Its end-of-day stock is the
    sum over the community's sites of the last ledger level before the day ends. With the planner: the levels
    as stored. Without deliveries: from `baseline` (devices/baseline.py: every stock device stepped offline
    from the same seed with nobody moving goods) for the sites it holds; for any other site (and for all
    when no baseline is given) the ledger with every delivery entry taken back out. A shortage-day is a
    need-day under the minimum without deliveries; it is covered if the stock with the planner is at or
    above the minimum at the end of that day.
    """
    essential = dict(session.execute(select(Good.id, Good.slug).where(Good.essential.is_(True))).all())
    site_community = dict(session.execute(select(Site.id, Site.community_id)).all())
    community_slug = dict(session.execute(select(Community.id, Community.slug)).all())
    needs = {
        (c, g): m
        for c, g, m in session.execute(select(NeedLevel.community_id, NeedLevel.good_id, NeedLevel.minimum))
        if g in essential and m > 0
    }
    series: dict[tuple[int, int], tuple[list[datetime], list[float], list[float]]] = {}
    rows = session.execute(
        select(
            StockLedgerEntry.site_id,
            StockLedgerEntry.good_id,
            StockLedgerEntry.created_at,
            StockLedgerEntry.quantity_after,
            StockLedgerEntry.delta,
            StockLedgerEntry.source,
        )
        .where(StockLedgerEntry.good_id.in_(essential))
        .order_by(StockLedgerEntry.id)
    )
    moved: dict[tuple[int, int], float] = defaultdict(float)
    for site, good, at, after, delta, source in rows:
        key = (site, good)
        if source == "delivery":
            moved[key] += delta
        times, levels, replayed = series.setdefault(key, ([], [], []))
        times.append(_aware(at))
        levels.append(after)
        replayed.append(max(0.0, after - moved[key]))
    offline = _baseline_levels(session, baseline, essential)
    hours = int(clock.days * 24)
    marks = [clock.t0 + timedelta(seconds=h * 3600 / clock.speed) for h in range(1, hours + 1)]
    with_planner: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0] * hours)
    without: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0] * hours)
    for (site, good), (times, levels, replayed) in series.items():
        key = (site_community[site], good)
        if key not in needs:
            continue
        stepped = offline.get((site, good))
        for h, mark in enumerate(marks):
            i = bisect.bisect_right(times, mark) - 1
            if i >= 0:
                with_planner[key][h] += levels[i]
                if stepped is None:
                    without[key][h] += replayed[i]
            if stepped is not None:
                without[key][h] += stepped[min(h, len(stepped) - 1)]
    days = math.ceil(clock.days)  # a part day at the end counts at its last hour
    need_days = shortage = covered = met_with = met_without = 0
    short_hourly_with, short_hourly_without = [0] * hours, [0] * hours
    by_good: Counter[str] = Counter()
    covered_by_good: Counter[str] = Counter()
    for key, minimum in needs.items():
        w, b = with_planner[key], without[key]
        for h in range(hours):
            short_hourly_with[h] += w[h] < minimum
            short_hourly_without[h] += b[h] < minimum
        for d in range(days):
            end = min(hours, (d + 1) * 24) - 1
            need_days += 1
            met_with += w[end] >= minimum
            met_without += b[end] >= minimum
            if b[end] < minimum:
                shortage += 1
                by_good[essential[key[1]]] += 1
                covered += w[end] >= minimum
                covered_by_good[essential[key[1]]] += w[end] >= minimum
    return {
        "need_days": need_days,
        "shortage_days_baseline": shortage,
        "shortage_days_covered": covered,
        "essential_coverage": round(covered / shortage, 4) if shortage else None,
        "baseline_coverage": round(met_without / need_days, 4) if need_days else None,
        "met_share_with_planner": round(met_with / need_days, 4) if need_days else None,
        "shortage_days_by_good": dict(by_good.most_common()),
        "covered_days_by_good": {good: covered_by_good[good] for good, _ in by_good.most_common()},
        "hourly_short_with": short_hourly_with,
        "hourly_short_without": short_hourly_without,
        "communities": len({c for c, _ in needs}),
        "_slugs": community_slug,
    }


def _baseline_levels(
    session: Session, baseline: dict[str, Any] | None, goods: dict[int, str]
) -> dict[tuple[int, int], list[float]]:
    """(site id, good id) -> the site's hourly levels without deliveries, from a devices/baseline.py file."""
    if not baseline:
        return {}
    sites = {
        (community, site): site_id
        for site_id, site, community in session.execute(
            select(Site.id, Site.slug, Community.slug).join(Community, Site.community_id == Community.id)
        )
    }
    good_ids = {slug: good_id for good_id, slug in goods.items()}
    levels: dict[tuple[int, int], list[float]] = {}
    for device in baseline["devices"].values():
        site_id = sites.get((device["community"], device["site"]))
        if site_id is None:
            raise ValueError(
                f"baseline names a site the store does not hold: {device['community']}/{device['site']}"
            )
        for good, values in device["levels"].items():
            if good in good_ids:
                levels[site_id, good_ids[good]] = [float(v) for v in values]
    return levels


def _gini(values: list[float]) -> float | None:
    """0 when everyone carries the same, towards 1 when one person carries it all; None when nobody does."""
    if not values or sum(values) == 0:
        return None
    values = sorted(values)
    n = len(values)
    return round(sum((2 * (i + 1) - n - 1) * v for i, v in enumerate(values)) / (n * sum(values)), 3)


OVER = 1.0 + 1e-6  # a load ratio above this is over the pledge (rounding of hours aside)


@dataclass(frozen=True)
class _Person:
    """What the measurement needs of a member: who, their roles, and their offer."""

    id: int
    name: str
    community: str
    roles: str  # "crew", "driver", "crew+driver" or "none"
    pledge: float  # hours a week
    sectors: dict[str, float]  # the year's offer by sector


def _people(session: Session) -> dict[int, _Person]:
    """Every active member once, whatever their roles."""
    slugs = dict(session.execute(select(Community.id, Community.slug)).all())
    people = {}
    for m in session.scalars(select(Member).where(Member.active.is_(True)).order_by(Member.id)):
        roles = "+".join(r for r, on in (("crew", m.is_crew), ("driver", m.is_driver)) if on) or "none"
        split = offers.sector_hours(m.sector_hours, m.hours_per_year)
        people[m.id] = _Person(m.id, m.name, slugs.get(m.community_id, "?"), roles, m.hours_per_week, split)
    return people


def entry_hours(entry: HoursEntry) -> float:
    """The hours an entry counts: planned until it is done, then the actual ones (the planned ones when it
    never recorded a start: that is what gateway.store.hours.finish wrote). The ledger runs on the work
    clock, simulated in the week (gateway.contract.clock), so these are simulated hours."""
    if entry.state == HoursState.DONE and entry.actual_hours is not None:
        return entry.actual_hours
    return entry.hours


def volunteering(session: Session, clock: Clock) -> dict[str, Any]:
    """People's hours from the hours ledger, each person once whatever their roles.

    Load = offered + reserved + done hours (done: actual) of work starting in a week (Monday-based, on the
    work clock the ledger runs on: simulated in the week), against the person's weekly pledge: the largest
    week's ratio says whether the plans kept within what they offered. Hours given are the done hours.
    Km driven counts routes with at least one stop done."""
    people = _people(session)
    load: dict[int, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))
    planned: dict[int, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))  # at planned hours
    given: dict[int, float] = defaultdict(float)
    by_sector: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    year_sector: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    states: Counter[str] = Counter()
    for entry in session.scalars(select(HoursEntry).order_by(HoursEntry.id)):
        hours = entry_hours(entry)
        states[entry.state] += 1
        if entry.state not in hours_ledger.COUNTED:
            continue
        week = hours_ledger.week_start(_aware(entry.starts_at))
        load[entry.member_id][week] += hours
        planned[entry.member_id][week] += entry.hours
        year_sector[entry.member_id][offers.offer_sector(entry.sector)] += hours
        if entry.state == HoursState.DONE:
            given[entry.member_id] += hours
            by_sector[entry.sector][entry.member_id] += hours
    ratios = _load_ratios(people, load, clock.days)
    pledged = [p for p in people.values() if p.pledge > 0]
    over = sorted(
        (_over_row(people[m], load[m], ratio) for m, ratio in ratios["max"].items() if ratio > OVER),
        key=lambda row: -row["ratio"],
    )
    return {
        "km_driven": round(_km_driven(session), 1),
        "weeks": round(clock.days / 7, 3),
        "members": len(people),
        "members_with_pledge": len(pledged),
        "members_working": sum(1 for weekly in load.values() if sum(weekly.values()) > 0),
        "hours_given": round(sum(given.values()), 1),
        "hours_load": round(sum(sum(w.values()) for w in load.values()), 1),
        "hours_pledged": round(sum(p.pledge for p in pledged) * clock.days / 7, 1),
        "members_over_pledge": _over_count(people, load),
        # the same with each done piece of work at the hours it was planned for: the planners offer again
        # the time a job did not take, so this may pass a pledge nobody gave more than (a diagnostic)
        "members_over_pledge_planned": _over_count(people, planned),
        "max_load_ratio": round(max(ratios["max"].values()), 3) if ratios["max"] else None,
        "load_gini": _gini(list(ratios["period"].values())),
        "members_over_sector_offer": _over_sector_offer(people, year_sector),
        "entries_by_state": dict(sorted(states.items())),
        "over_pledge": over[:10],
        "by_sector": _sector_rows(by_sector, pledged),
        "by_roles": _role_rows(people, given, load, clock.days),
    }


Weekly = dict[int, dict[datetime, float]]  # member id -> week start -> hours


def _load_ratios(people: dict[int, _Person], load: Weekly, days: float) -> dict[str, dict[int, float]]:
    """Per member with a pledge: the largest week's load / pledge ("max"), and the whole period's load /
    (pledge x weeks simulated) ("period", what the Gini compares)."""
    largest, period = {}, {}
    for person in people.values():
        if person.pledge <= 0:
            continue
        weekly = load.get(person.id, {})
        largest[person.id] = max(weekly.values(), default=0.0) / person.pledge
        period[person.id] = sum(weekly.values()) / (person.pledge * days / 7)
    return {"max": largest, "period": period}


def _over_count(people: dict[int, _Person], load: Weekly) -> int:
    """Members whose largest week's load is over their pledge (any load is, without a pledge)."""
    count = 0
    for m, weekly in load.items():
        most = max(weekly.values(), default=0.0)
        pledge = people[m].pledge if m in people else 0.0
        count += most > 1e-9 and (pledge <= 0 or most / pledge > OVER)
    return count


def _over_row(person: _Person, weekly: dict[datetime, float], ratio: float) -> dict[str, Any]:
    return {
        "name": person.name,
        "community": person.community,
        "roles": person.roles,
        "pledge_h": person.pledge,
        "week_h": round(max(weekly.values(), default=0.0), 2),
        "ratio": round(ratio, 2),
    }


def _over_sector_offer(people: dict[int, _Person], year_sector: dict[int, dict[str, float]]) -> int:
    """Members asked for more hours in a sector than they offer it in a year."""
    return sum(
        1
        for m, sectors in year_sector.items()
        if m in people and any(h > people[m].sectors.get(s, 0.0) + 1e-6 for s, h in sectors.items())
    )


def _sector_rows(by_sector: dict[str, dict[int, float]], pledged: list[_Person]) -> dict[str, Any]:
    """Hours given per work sector: how many gave them, the most one person gave, and how evenly they fell
    over everyone with a pledge (Gini)."""
    rows = {}
    for sector, by_member in sorted(by_sector.items()):
        values = [by_member.get(p.id, 0.0) for p in pledged]
        rows[sector] = {
            "hours": round(sum(by_member.values()), 1),
            "members": sum(1 for v in by_member.values() if v > 0),
            "max_member_h": round(max(by_member.values(), default=0.0), 1),
            "gini": _gini(values),
        }
    return rows


def _role_rows(
    people: dict[int, _Person], given: dict[int, float], load: Weekly, days: float
) -> dict[str, Any]:
    """Members, pledge over the period, load and hours given by roles held (each person in one row)."""
    rows: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for person in people.values():
        row = rows[person.roles]
        row["members"] += 1
        row["pledged_h"] += person.pledge * days / 7
        row["load_h"] += sum(load.get(person.id, {}).values())
        row["given_h"] += given.get(person.id, 0.0)
    return {roles: {k: round(v, 1) for k, v in row.items()} for roles, row in sorted(rows.items())}


def _km_driven(session: Session) -> float:
    """Km of the routes on which at least one stop was done (driven, if not to the end)."""
    driven = select(RouteStop.route_id).where(RouteStop.status == "done").distinct()
    return float(
        session.scalar(
            select(func.coalesce(func.sum(Route.distance_km), 0.0)).where(
                Route.id.in_(driven), Route.member_id.is_not(None)
            )
        )
        or 0.0
    )


BOARD_AHEAD_DAYS = 7  # the matcher suggests places this far ahead: the board's period runs on past the end


def _outbox_bodies(session: Session, topic_like: str) -> list[dict[str, Any]]:
    """The JSON bodies of the outbox rows on these topics, in order."""
    bodies = []
    for (payload,) in session.execute(
        select(OutboxMessage.payload).where(OutboxMessage.topic.like(topic_like)).order_by(OutboxMessage.id)
    ):
        body = json.loads(payload)
        if isinstance(body, dict):
            bodies.append(body)
    return bodies


def board(session: Session, clock: Clock) -> dict[str, Any]:
    """The open task board over the run, from its tables, the hours ledger and the outbox.

    A **place** is one slot of one shift (not cancelled). The board's period is the run and the
    BOARD_AHEAD_DAYS after its end, the places the matcher and the browsing members could fill during the
    run; `in_run` counts the places whose shift started within the run. A place is **filled** when someone
    took it or did it. Suggestions and urgent alerts are the matcher's alerts in the outbox; accepts,
    declines and places taken unasked are the board's own events. A member is over their pledge when, in a
    week they hold board work, their whole load as the planners answer for it (`answered_hours`) is over
    their weekly pledge; `members_worked_past_pledge` counts done jobs at their actual hours instead.
    Sector progress is the dashboard's (dashboard.read.progress), in the month the run started, as it stood
    at the end of the run (or of that month). Sums only: nobody's name."""
    start = clock.start or _aware(session.scalar(select(func.min(BoardTask.created_at)))) or clock.t0
    end = start + timedelta(days=clock.days)
    horizon = end + timedelta(days=BOARD_AHEAD_DAYS)
    tasks: Counter[str] = Counter(
        dict(session.execute(select(BoardTask.sector, func.count()).group_by(BoardTask.sector)).all())
    )
    slots = Counter(
        dict(session.execute(select(TaskSlot.task_id, func.count()).group_by(TaskSlot.task_id)).all())
    )
    sector_of = dict(session.execute(select(BoardTask.id, BoardTask.sector)).all())
    shifts = session.execute(
        select(TaskShift.id, TaskShift.task_id, TaskShift.starts_at)
        .where(TaskShift.status != ShiftStatus.CANCELLED)
        .where(TaskShift.starts_at >= start, TaskShift.starts_at < horizon)
    ).all()
    filled_places = {
        (shift_id, slot_id): state
        for shift_id, slot_id, state in session.execute(
            select(SlotSignup.shift_id, SlotSignup.slot_id, SlotSignup.state).where(
                SlotSignup.state.in_((SignupState.TAKEN, SignupState.DONE))
            )
        )
    }
    filled_by_shift = Counter(shift_id for shift_id, _slot in filled_places)
    done_by_shift = Counter(s for (s, _), state in filled_places.items() if state == SignupState.DONE)
    rows: dict[str, dict[str, int]] = {
        s: {"tasks": tasks.get(s, 0), "places": 0, "filled": 0, "places_in_run": 0, "filled_in_run": 0}
        for s in BOARD_SECTORS
    }
    done = 0
    for shift_id, task_id, starts_at in shifts:
        row = rows[sector_of[task_id]]
        row["places"] += slots[task_id]
        row["filled"] += filled_by_shift[shift_id]
        done += done_by_shift[shift_id]
        if _aware(starts_at) < end:
            row["places_in_run"] += slots[task_id]
            row["filled_in_run"] += filled_by_shift[shift_id]
    places, filled = sum(r["places"] for r in rows.values()), sum(r["filled"] for r in rows.values())
    in_run = sum(r["places_in_run"] for r in rows.values())
    filled_in_run = sum(r["filled_in_run"] for r in rows.values())
    alerts = Counter(b.get("type") for b in _outbox_bodies(session, f"{ROOT}/members/%/alerts"))
    events = Counter(
        b.get("status") for b in _outbox_bodies(session, INTERNAL_EVENTS) if b.get("type") == "board_changed"
    )
    states = Counter(
        dict(session.execute(select(SlotSignup.state, func.count()).group_by(SlotSignup.state)).all())
    )
    board_hours = [
        e
        for e in session.scalars(select(HoursEntry).where(HoursEntry.work == WorkKind.TASK))
        if e.state in hours_ledger.COUNTED
    ]
    over_pledge, worked_past = _board_over_pledge(session, board_hours)
    return {
        "period_from": start.isoformat(),
        "period_to": horizon.isoformat(),
        "tasks": sum(tasks.values()),
        "tasks_by_sector": {s: tasks.get(s, 0) for s in BOARD_SECTORS},
        "places": places,
        "filled": filled,
        "filled_share": round(filled / places, 4) if places else None,
        "places_in_run": in_run,
        "filled_in_run": filled_in_run,
        "filled_in_run_share": round(filled_in_run / in_run, 4) if in_run else None,
        "places_done": done,
        "suggested": alerts["task_suggested"],
        "accepted": events["accepted"],
        "declined": events["declined"],
        "lapsed": states.get(SignupState.LAPSED, 0),
        "waiting": states.get(SignupState.SUGGESTED, 0),
        "taken_unasked": events["taken"],
        "released": states.get(SignupState.RELEASED, 0),
        "urgent_alerts": alerts["slot_urgent"],
        "urgent_shifts": session.scalar(
            select(func.count()).select_from(TaskShift).where(TaskShift.urgent_alerted_at.is_not(None))
        )
        or 0,
        "hours_held": round(sum(entry_hours(e) for e in board_hours if e.state != HoursState.DONE), 1),
        "hours_given": round(sum(entry_hours(e) for e in board_hours if e.state == HoursState.DONE), 1),
        "members_with_board_work": len({e.member_id for e in board_hours}),
        "members_over_pledge": over_pledge,
        "members_worked_past_pledge": worked_past,
        "by_sector": rows,
        "progress": _progress_rows(session, start, end),
    }


def answered_hours(entry: HoursEntry) -> float:
    """The hours the planners answer for: as `entry_hours`, but a done job that ran past its planned hours
    counts its planned ones. The time past the plan is time the person gave (or, in a simulated week on a
    busy machine, the clock running on while a process waited): no planner asked for it."""
    hours = entry_hours(entry)
    return min(hours, entry.hours) if entry.state == HoursState.DONE else hours


def _board_over_pledge(session: Session, board_hours: list[HoursEntry]) -> tuple[int, int]:
    """Members whose whole load in a week they hold board work is over their weekly pledge: as the planners
    answer for it (`answered_hours`), and as worked (done jobs at their actual hours)."""
    weeks = {(e.member_id, hours_ledger.week_start(_aware(e.starts_at))) for e in board_hours}
    if not weeks:
        return 0, 0
    pledge = dict(session.execute(select(Member.id, Member.hours_per_week)).all())
    answered: dict[tuple[int, datetime], float] = defaultdict(float)
    worked: dict[tuple[int, datetime], float] = defaultdict(float)
    for entry in session.scalars(
        select(HoursEntry).where(
            HoursEntry.member_id.in_({m for m, _ in weeks}), HoursEntry.state.in_(hours_ledger.COUNTED)
        )
    ):
        key = entry.member_id, hours_ledger.week_start(_aware(entry.starts_at))
        answered[key] += answered_hours(entry)
        worked[key] += entry_hours(entry)

    def over(load: dict[tuple[int, datetime], float]) -> int:
        return len({m for m, week in weeks if load[m, week] > (pledge.get(m) or 0.0) * OVER + 1e-9})

    return over(answered), over(worked)


def _progress_rows(session: Session, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Each sector with goals in the run's first month: the dashboard's sentence, percent and each goal."""
    month_end = month_bounds(month_of(start))[1]
    at = min(end, month_end - timedelta(microseconds=1))
    rows = []
    for p in sector_progress(session, now=at):
        rows.append(
            {
                "sector": p.sector,
                "sentence": p.sentence,
                "percent": p.percent,
                "detail": p.detail,
                "stock_goals": p.stock_goals,
                "stock_met": p.stock_met,
                "goals": [
                    {
                        "kind": g.kind,
                        "community": g.community_name,
                        "target": g.target,
                        "achieved": round(g.achieved, 1),
                        "met": g.met,
                        "sentence": g.sentence,
                    }
                    for g in p.work
                ],
            }
        )
    return rows


def messages(session: Session, published: int | None, receipts: list[Any]) -> dict[str, Any]:
    """Readings stored against readings sent; the outbox drained; dead letters by reason."""
    stored = session.scalar(select(func.count()).select_from(Reading)) or 0
    outbox = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
    outbox_published = (
        session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_not(None))
        )
        or 0
    )
    member_rows = (
        session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.topic.like("rhizome/v1/members/%"))
        )
        or 0
    )
    dead = dict(session.execute(select(DeadLetter.reason, func.count()).group_by(DeadLetter.reason)).all())
    return {
        "readings_sent": published,
        "readings_stored": stored,
        "stored_equals_sent": published is not None and stored == published,
        "outbox_rows": outbox,
        "outbox_published": outbox_published,
        "member_messages": member_rows,
        "member_messages_heard": len(receipts),
        "dead_letters": dead,
    }


def summarise(
    rows: list[dict[str, Any]],
    cov: dict[str, Any],
    vol: dict[str, Any],
    msg: dict[str, Any],
    session: Session,
    brd: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The figures of the last JSON line (with the board's headline figures when `brd` is given)."""

    def col(key: str) -> list[float]:
        return [r[key] for r in rows if r.get(key) is not None]

    unconfirmed = (
        session.scalar(
            select(func.count())
            .select_from(RepairTask)
            .where(
                RepairTask.status == "closed",
                ~select(TaskEvent.id)
                .where(TaskEvent.task_id == RepairTask.id, TaskEvent.event == "confirmed")
                .exists(),
            )
        )
        or 0
    )
    repaired = [r for r in rows if r.get("to_fixed_h") is not None]
    all_faults = session.scalar(select(func.count()).select_from(Fault)) or 0
    return {
        "faults": len(rows),
        "faults_detected": sum(r["detected"] for r in rows),
        "faults_tasked": sum(r["tasked"] for r in rows),
        "faults_alerted": sum(r["alerted"] for r in rows),
        "faults_accepted": sum(r["accepted"] for r in rows),
        "faults_repaired": len(repaired),
        "faults_confirmed": sum(r["confirmed"] for r in rows),
        "repaired_not_confirmed": sum(1 for r in repaired if not r["confirmed"]),
        "faults_in_store": all_faults,
        "faults_not_in_scenario": all_faults - sum(r["detected"] for r in rows),
        "tasks_closed_unconfirmed": unconfirmed,
        "fault_to_alert_median_s": _median(col("fault_to_alert_s")),
        "fault_to_alert_max_s": _max(col("fault_to_alert_s")),
        "to_accept_median_h": _median(col("to_accept_h")),
        "to_confirm_median_h": _median(col("to_confirm_h")),
        "to_confirm_max_h": _max(col("to_confirm_h")),
        "essential_coverage": cov["essential_coverage"],
        "baseline_coverage": cov["baseline_coverage"],
        "met_share_with_planner": cov["met_share_with_planner"],
        "shortage_days_baseline": cov["shortage_days_baseline"],
        "shortage_days_covered": cov["shortage_days_covered"],
        "km_driven": vol["km_driven"],
        "km_per_covered_day": (
            round(vol["km_driven"] / cov["shortage_days_covered"], 1)
            if cov["shortage_days_covered"]
            else None
        ),
        "members_over_pledge": vol["members_over_pledge"],
        "members_over_pledge_planned": vol["members_over_pledge_planned"],
        "max_load_ratio": vol["max_load_ratio"],
        "load_gini": vol["load_gini"],
        "hours_given": vol["hours_given"],
        "hours_pledged": vol["hours_pledged"],
        "hours_load": vol["hours_load"],
        "members_working": vol["members_working"],
        "members_over_sector_offer": vol["members_over_sector_offer"],
        "stored_equals_sent": msg["stored_equals_sent"],
        "readings_sent": msg["readings_sent"],
        "readings_stored": msg["readings_stored"],
        "outbox_unpublished": msg["outbox_rows"] - msg["outbox_published"],
        "dead_letters": sum(msg["dead_letters"].values()),
        **(_board_headline(brd) if brd is not None else {}),
    }


def _board_headline(brd: dict[str, Any]) -> dict[str, Any]:
    """The board's figures for the JSON line: places, fill, answers, the pledge kept, sector progress."""
    return {
        "board_tasks": brd["tasks"],
        "board_sectors_posted": sum(1 for n in brd["tasks_by_sector"].values() if n),
        "board_places": brd["places"],
        "board_filled": brd["filled"],
        "board_filled_share": brd["filled_share"],
        "board_places_in_run": brd["places_in_run"],
        "board_filled_in_run": brd["filled_in_run"],
        "board_suggested": brd["suggested"],
        "board_accepted": brd["accepted"],
        "board_declined": brd["declined"],
        "board_lapsed": brd["lapsed"],
        "board_taken_unasked": brd["taken_unasked"],
        "board_urgent_alerts": brd["urgent_alerts"],
        "board_members_over_pledge": brd["members_over_pledge"],
        "board_members_worked_past_pledge": brd["members_worked_past_pledge"],
        "sectors_with_goals": len(brd["progress"]),
        "sector_progress": {row["sector"]: row["percent"] for row in brd["progress"]},
    }


def dumps(figures: dict[str, Any]) -> str:
    """One JSON line."""
    return json.dumps(figures, separators=(",", ":"), sort_keys=False)
