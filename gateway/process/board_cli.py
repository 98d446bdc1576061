"""`rhizome board ...`: the open task board from a shell, for coordinators and scripts (a guild that posts
its weekly pickups from a file). The same checks as the dashboard's form and API (gateway.store.board);
a refused value exits 1 with its message. Listings count places, never name people.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import click

from gateway.contract import clock
from gateway.contract.payloads import format_ts
from gateway.process.context import pass_settings, store_transaction
from gateway.process.settings import Settings


@click.group("board", short_help="the open task board: post, list, change, cancel, take places")
def board() -> None:
    """The open task board: tasks of every sector, places people take or are asked for."""


@board.command("post", short_help="post a task from JSON (a file, or - for standard input)")
@click.argument("source", type=click.File("r"))
@click.option("--by", "account", default="cli", metavar="NAME", help="who posts it, as recorded [cli]")
@pass_settings
def post(settings: Settings, source: Any, account: str) -> int:
    """Post the task in SOURCE: {"title", "sector", "community", "starts_at", "ends_at", "slots": [...],
    optional "recurrence": {"days": [1], "start": "09:00", "end": "12:00"}, "hours_per_slot", "urgency",
    "place", "description", "poster_kind", "poster_name"}."""
    from gateway.store import board as store

    try:
        raw = json.load(source)
    except ValueError as exc:
        raise click.ClickException(f"not JSON: {exc}") from None
    with store_transaction(settings) as session:
        task = store.post(session, store.parse_draft(raw), member_id=None, account=account, now=clock.now())
        until = clock.now() + timedelta(days=store.SHIFT_HORIZON_DAYS)
        shifts = len(store.occurrences(task, until))
        click.echo(f"task {task.id}: {task.title} ({task.sector}), {shifts} shifts in the coming weeks")
    return 0


@board.command("list", short_help="open tasks with places filled / places")
@click.option("--sector", metavar="SECTOR", help="only this sector")
@click.option("--community", metavar="SLUG", help="only this community")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@pass_settings
def list_tasks(settings: Settings, sector: str | None, community: str | None, as_json: bool) -> int:
    """Open tasks with their coming shifts: how many places are filled (never by whom)."""
    from sqlalchemy import func, select

    from gateway.store.board import LIVE
    from gateway.store.models import BoardTask, Community, SlotSignup, TaskShift, TaskSlot

    now = clock.now()
    with store_transaction(settings) as session:
        query = (
            select(BoardTask, Community.slug)
            .join(Community, Community.id == BoardTask.community_id)
            .where(BoardTask.status == "open", BoardTask.ends_at > now)
            .order_by(BoardTask.starts_at, BoardTask.id)
        )
        if sector:
            query = query.where(BoardTask.sector == sector)
        if community:
            query = query.where(Community.slug == community)
        for task, slug in session.execute(query).all():
            places = session.scalar(select(func.count()).where(TaskSlot.task_id == task.id)) or 0
            shifts = session.scalar(
                select(func.count()).where(TaskShift.task_id == task.id, TaskShift.ends_at > now)
            )
            filled = session.scalar(
                select(func.count())
                .select_from(SlotSignup)
                .join(TaskShift, TaskShift.id == SlotSignup.shift_id)
                .where(TaskShift.task_id == task.id, TaskShift.ends_at > now, SlotSignup.state.in_(LIVE))
            )
            record = {
                "id": task.id,
                "title": task.title,
                "sector": task.sector,
                "community": slug,
                "starts_at": format_ts(task.starts_at),
                "recurring": task.recurrence is not None,
                "shifts": shifts,
                "places": places * (shifts or 0),
                "filled": filled,
            }
            if as_json:
                click.echo(json.dumps(record, ensure_ascii=False))
            else:
                click.echo(
                    f"{task.id:>6}  {task.sector:<11} {slug:<16} {record['filled']:>4}/{record['places']:<4} "
                    f"{task.title}"
                )
    return 0


@board.command("change", short_help="change a task (JSON of the fields that change)")
@click.argument("task_id", type=int)
@click.argument("changes")
@pass_settings
def change(settings: Settings, task_id: int, changes: str) -> int:
    """Change TASK_ID: CHANGES is JSON with any of title, description, place, urgency, hours_per_slot,
    starts_at, ends_at. Those signed up are told."""
    from gateway.store import board as store

    try:
        raw = json.loads(changes)
    except ValueError as exc:
        raise click.ClickException(f"not JSON: {exc}") from None
    with store_transaction(settings) as session:
        task = store.change(session, task_id, raw, now=clock.now())
        click.echo(f"task {task.id} changed")
    return 0


@board.command("cancel", short_help="cancel a task; those signed up are told")
@click.argument("task_id", type=int)
@click.option("--reason", default="", help="told to those signed up")
@pass_settings
def cancel(settings: Settings, task_id: int, reason: str) -> int:
    """Cancel TASK_ID: its coming shifts are off and everyone signed up is told."""
    from gateway.store import board as store

    with store_transaction(settings) as session:
        told = store.cancel(session, task_id, reason, now=clock.now())
        click.echo(f"task {task_id} cancelled; {told} told")
    return 0


@board.command("take", short_help="take a place for a member who asked (say, by phone)")
@click.argument("member_id", type=int)
@click.argument("shift_id", type=int)
@click.argument("slot_id", type=int)
@pass_settings
def take(settings: Settings, member_id: int, shift_id: int, slot_id: int) -> int:
    """Take SLOT_ID in SHIFT_ID for MEMBER_ID, who asked for it (someone without a phone). The same limits
    hold as when they take it themselves."""
    from gateway.store import board as store

    with store_transaction(settings) as session:
        signup = store.take(session, member_id, shift_id, slot_id, now=clock.now())
        click.echo(f"signup {signup.id}: {signup.state}")
    return 0


@board.command("release", short_help="give back a member's place, at their request")
@click.argument("member_id", type=int)
@click.argument("signup_id", type=int)
@pass_settings
def release(settings: Settings, member_id: int, signup_id: int) -> int:
    """Give back SIGNUP_ID of MEMBER_ID: the place is open again."""
    from gateway.store import board as store

    with store_transaction(settings) as session:
        store.release(session, signup_id, member_id, now=clock.now())
        click.echo(f"signup {signup_id}: released")
    return 0
