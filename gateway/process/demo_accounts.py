"""The demo's sign-ins: one dashboard account per role, with a fresh random password each run.

The accounts are saved by the dashboard's own command (`rhizome dashboard-accounts`, the passwords on its
standard input), run as a child like every other part of the demo, so the gateway imports nothing of the
dashboard and the accounts land wherever the dashboard reads them. The passwords exist only in this process
and on the demo's terminal; the accounts file keeps their hashes.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store.models import Community, Member, MemberSkill

# The community whose people the demo signs in as; its pump and cold room fail in the demo scenario.
DEMO_COMMUNITY = "aguada"
DEMO_SKILLS = ("pump-mechanic", "refrigeration")  # what its two faults' repair tasks ask for


@dataclass(frozen=True)
class DemoLogin:
    """One printed sign-in."""

    username: str
    password: str
    role: str
    member_id: int | None = None
    label: str = ""  # who the account acts as, for the printed block


def demo_community(session: Session, preferred: str = DEMO_COMMUNITY) -> Community:
    """`preferred` if the region has it, else the first community with an active crew member and driver;
    ValueError when there is none."""
    found = session.scalar(select(Community).where(Community.slug == preferred))
    if found is not None:
        return found
    for community in session.scalars(select(Community).order_by(Community.id)):
        if all(_first(session, community, role) for role in ("crew", "driver")):
            return community
    raise ValueError("the demo region has no community with an active crew member and a driver")


def demo_logins(session: Session, community: Community) -> list[DemoLogin]:
    """A coordinator, a crew member and a driver of `community`, and a viewer, each with a new random
    password; ValueError when the community has no active crew member or driver."""
    logins = [DemoLogin("coordinator", _password(), "coordinator")]
    for role in ("crew", "driver"):
        member = _first(session, community, role)
        if member is None:
            raise ValueError(f"the demo region has no active {role} member in {community.name}")
        logins.append(DemoLogin(role, _password(), role, member.id, f"{member.name}, {community.name}"))
    logins.append(DemoLogin("viewer", _password(), "viewer"))
    return logins


def _first(session: Session, community: Community, role: str) -> Member | None:
    """The community's first active member of `role`; for crew, one who can repair both of the demo's
    faults if there is one (the planner still assigns whom it finds best)."""
    flag = Member.is_crew if role == "crew" else Member.is_driver
    query = select(Member).where(Member.community_id == community.id, flag, Member.active)
    if role == "crew":
        fits = (
            select(func.count())
            .where(MemberSkill.member_id == Member.id, MemberSkill.skill.in_(DEMO_SKILLS))
            .correlate(Member)
            .scalar_subquery()
        )
        query = query.order_by(fits.desc())
    return session.scalar(query.order_by(Member.id).limit(1))


def start_saving(logins: list[DemoLogin], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start one `rhizome dashboard-accounts` child that saves every login in turn (each is hashed with
    scrypt); `finish_saving` waits. The passwords travel on its standard input only."""
    args = [sys.executable, "-m", "gateway.process.cli", "dashboard-accounts"]
    child = subprocess.Popen(
        args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    wanted = [
        {
            "username": login.username,
            "password": login.password,
            "role": login.role,
            "member": login.member_id,
        }
        for login in logins
    ]
    assert child.stdin is not None
    child.stdin.write(json.dumps(wanted))
    child.stdin.close()
    return child


def finish_saving(child: subprocess.Popen[str], timeout: float = 120.0) -> None:
    """Wait for the accounts command; OSError with its output when it could not save them."""
    assert child.stdout is not None
    output = child.stdout.read()  # a few lines of log; the child ends once it has written them
    child.stdout.close()
    if child.wait(timeout=timeout) != 0:
        raise OSError("could not save the demo accounts: " + output.strip()[-1000:])


def sign_in_block(url: str, logins: list[DemoLogin]) -> str:
    """What the demo prints: where to sign in, and each account's name and password."""
    lines = [f"Sign in at {url}login as:"]
    width = max(len(login.username) for login in logins)
    for login in logins:
        who = f"  ({login.label})" if login.label else ""
        lines.append(f"  {login.username:<{width}} / {login.password}   {login.role}{who}")
    lines.append("(new passwords every demo run; the accounts file keeps only their hashes)")
    return "\n".join(lines)


def _password() -> str:
    return secrets.token_urlsafe(12)  # 16 characters, past the dashboard's minimum of 10
