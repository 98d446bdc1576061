"""Coordinator edits of the region: validated form input in, rows out. Bad input raises FormError, an
InvalidInput of the one error tree (the dashboard's web layer answers it)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.contract.errors import InvalidInput
from gateway.contract.text import has_control
from gateway.contract.topics import is_slug
from gateway.store.models import Community, Good, Member, MemberSkill, NeedLevel, Site
from gateway.store.models.vocab import GOOD_SECTORS, SITE_KINDS


class FormError(InvalidInput):
    """A form value that cannot be stored, with a message saying which and why."""


def text(form: Mapping[str, str], name: str, limit: int = 200) -> str:
    """A required text field, stripped, at most `limit` characters."""
    value = form.get(name, "").strip()
    if not value:
        raise FormError(f"{name} is required")
    if len(value) > limit:
        raise FormError(f"{name} is longer than {limit} characters")
    if has_control(value):
        raise FormError(f"{name} holds a control character; write plain text")
    return value


def slug(form: Mapping[str, str], name: str = "slug") -> str:
    """A slug field: lowercase letters, digits and inner dashes."""
    value = form.get(name, "").strip()
    if not is_slug(value):
        raise FormError(
            f"{name} must be lowercase letters, digits and inner dashes (at most 48), got {value[:60]!r}"
        )
    return value


def number(form: Mapping[str, str], name: str, low: float, high: float) -> float:
    """A finite number in [low, high]."""
    raw = form.get(name, "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise FormError(f"{name} must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise FormError(f"{name} must be between {low:g} and {high:g}")
    return value


def choice(form: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices`."""
    value = form.get(name, "").strip()
    if value not in choices:
        raise FormError(f"{name} must be one of {', '.join(choices)}")
    return value


def _community(session: Session, form: Mapping[str, str], name: str = "community") -> Community:
    found = session.scalar(select(Community).where(Community.slug == slug(form, name)))
    if found is None:
        raise FormError(f"no community with slug {form.get(name, '')[:60]!r}")
    return found


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise FormError(f"{what} already exists") from None


def add_community(session: Session, form: Mapping[str, str]) -> Community:
    """A new community."""
    row = Community(
        slug=slug(form),
        name=text(form, "name"),
        lat=number(form, "lat", -90, 90),
        lon=number(form, "lon", -180, 180),
        population=int(number(form, "population", 0, 1e9)),
    )
    session.add(row)
    _flush(session, f"a community with slug {row.slug!r}")
    return row


def add_site(session: Session, form: Mapping[str, str]) -> Site:
    """A new site of a community."""
    community = _community(session, form)
    row = Site(
        community_id=community.id,
        slug=slug(form),
        name=text(form, "name"),
        kind=choice(form, "kind", SITE_KINDS),
        lat=number(form, "lat", -90, 90),
        lon=number(form, "lon", -180, 180),
        people_served=int(number(form, "people_served", 0, 1e9)) if form.get("people_served") else 0,
    )
    session.add(row)
    _flush(session, f"a site {row.slug!r} in {community.slug!r}")
    return row


def add_good(session: Session, form: Mapping[str, str]) -> Good:
    """A new good of the catalogue."""
    row = Good(
        slug=slug(form),
        name=text(form, "name"),
        unit=text(form, "unit", 20),
        sector=choice(form, "sector", GOOD_SECTORS),
        essential=form.get("essential") in ("on", "1", "true"),
        weight_kg_per_unit=number(form, "weight_kg_per_unit", 0, 1e6)
        if form.get("weight_kg_per_unit")
        else 1.0,
    )
    session.add(row)
    _flush(session, f"a good with slug {row.slug!r}")
    return row


def set_need_level(session: Session, form: Mapping[str, str]) -> NeedLevel:
    """Set (or replace) a community's minimum and target for a good."""
    community = _community(session, form)
    good = session.scalar(select(Good).where(Good.slug == slug(form, "good")))
    if good is None:
        raise FormError(f"no good with slug {form.get('good', '')[:60]!r}")
    minimum, target = number(form, "minimum", 0, 1e9), number(form, "target", 0, 1e9)
    if target < minimum:
        raise FormError("target must be at least the minimum")
    row = session.get(NeedLevel, (community.id, good.id)) or NeedLevel(
        community_id=community.id, good_id=good.id
    )
    row.minimum, row.target = minimum, target
    session.add(row)
    return row


def add_member(session: Session, form: Mapping[str, str]) -> Member:
    """A new member with roles and skills (comma-separated slugs)."""
    community = _community(session, form)
    skills = sorted({s.strip() for s in form.get("skills", "").split(",") if s.strip()})
    bad = [s for s in skills if not is_slug(s)]
    if bad:
        raise FormError(f"skills must be slugs such as pump-mechanic, got {bad[0][:40]!r}")
    row = Member(
        name=text(form, "name"),
        community_id=community.id,
        lat=number(form, "lat", -90, 90),
        lon=number(form, "lon", -180, 180),
        is_crew=form.get("is_crew") in ("on", "1", "true"),
        is_driver=form.get("is_driver") in ("on", "1", "true"),
        hours_per_week=number(form, "hours_per_week", 0, 168) if form.get("hours_per_week") else 0.0,
        skills=[MemberSkill(skill=s) for s in skills],
    )
    session.add(row)
    _flush(session, "that member")
    return row
